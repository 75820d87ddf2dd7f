"""Whisper as the validator reads it: batched greedy decoding with a KV cache, which gives the
token log-probabilities (OpenAI's confidence measure) and the no-speech probability that the
`vocal_lyrics` scorer needs. `NeuralModels` holds one reader; the neural bench times it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tuneforge.core.audio import split_windows
from tuneforge.core.errors import TuneForgeError

WHISPER_RATE = 16_000
WHISPER_WINDOW_S = 30.0
WHISPER_MAX_NEW_TOKENS = 120  # ~4 words/s of lyrics over a 30 s window
WHISPER_BATCH = 8  # 30 s windows decoded at once


class WhisperTokenError(TuneForgeError, RuntimeError):
    """The tokenizer lacks the special tokens decoding starts and stops on."""

    status = 500
    code = "whisper_token_missing"


@dataclass(frozen=True)
class Transcript:
    """Whisper's reading of a clip: text, mean token log-probability, and the probability of
    the no-speech token at the first decoding step (max over 30 s windows' minimum)."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    num_tokens: int

    @property
    def is_speech(self) -> bool:
        """Whisper's own silence rule: high no-speech probability AND low confidence = silence."""
        if not self.text.strip():
            return False
        return not (self.no_speech_prob > 0.6 and self.avg_logprob < -1.0)


class WhisperReader:
    """A loaded Whisper model and its processor (feature extractor + tokenizer)."""

    def __init__(self, model: Any, processor: Any, device: str, dtype: Any) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype

    @classmethod
    def load(cls, source: str, device: str, dtype: Any) -> WhisperReader:
        """`source`: a hub id or a local directory (`from_pretrained`)."""
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        processor = WhisperProcessor.from_pretrained(source)
        model = WhisperForConditionalGeneration.from_pretrained(source, dtype=dtype)
        # transformers types `to` through a decorator that mypy reads as taking the model.
        return cls(model.to(device).eval(), processor, device, dtype)  # type: ignore[arg-type]

    def token_id(self, *names: str) -> int | None:
        tokenizer = self.processor.tokenizer
        for name in names:
            token_id = tokenizer.convert_tokens_to_ids(name)
            # Whisper's unk token IS <|endoftext|>: check the id maps back to the name.
            if token_id is not None and tokenizer.convert_ids_to_tokens(token_id) == name:
                return int(token_id)
        return None

    def transcribe(self, clips_audio: list[np.ndarray]) -> list[Transcript]:
        """One Transcript per clip (`clips_audio`: each clip mono at WHISPER_RATE), all 30 s
        windows of all clips decoded in batches of WHISPER_BATCH."""
        sot = self.token_id("<|startoftranscript|>")
        eot = self.token_id("<|endoftext|>")
        if sot is None or eot is None:
            raise WhisperTokenError("whisper tokenizer lacks <|startoftranscript|>/<|endoftext|>")
        prefix = [sot] + [
            t
            for t in (
                self.token_id("<|en|>"),
                self.token_id("<|transcribe|>"),
                self.token_id("<|notimestamps|>"),
            )
            if t is not None
        ]
        no_speech = self.token_id("<|nospeech|>", "<|nocaptions|>")
        windows, owners = [], []
        for index, y in enumerate(clips_audio):
            for window in split_windows(y, int(WHISPER_WINDOW_S * WHISPER_RATE), WHISPER_RATE):
                windows.append(window)
                owners.append(index)
        features = self.processor.feature_extractor(
            windows, sampling_rate=WHISPER_RATE, return_tensors="pt"
        )["input_features"].to(self.device, self.dtype)
        max_new = min(WHISPER_MAX_NEW_TOKENS, self.model.config.max_target_positions - len(prefix))
        texts: list[list[int]] = []
        logprobs: list[list[float]] = []
        no_speech_probs: list[float] = []
        for start in range(0, len(windows), WHISPER_BATCH):
            tokens, lps, nsp = self._greedy(
                features[start : start + WHISPER_BATCH], prefix, eot, no_speech, max_new
            )
            texts += tokens
            logprobs += lps
            no_speech_probs += nsp
        tokenizer = self.processor.tokenizer
        results = []
        for index in range(len(clips_audio)):
            mine = [i for i, o in enumerate(owners) if o == index]
            text = " ".join(
                tokenizer.decode(texts[i], skip_special_tokens=True).strip() for i in mine
            ).strip()
            lp = [v for i in mine for v in logprobs[i]]
            results.append(
                Transcript(
                    text=text,
                    avg_logprob=float(np.mean(lp)) if lp else 0.0,
                    no_speech_prob=float(min(no_speech_probs[i] for i in mine)),
                    num_tokens=len(lp),
                )
            )
        return results

    def _greedy(
        self, features: Any, prefix: list[int], eot: int, no_speech: int | None, max_new: int
    ) -> tuple[list[list[int]], list[list[float]], list[float]]:
        """Batched greedy decoding with a KV cache; deterministic, and gives token log-probs
        (OpenAI's confidence measure) and the no-speech probability after <|startoftranscript|>."""
        import torch

        batch = features.shape[0]
        with torch.inference_mode():
            encoder_out = self.model.model.encoder(features)
            ids = torch.tensor([prefix] * batch, device=self.device)
            out = self.model(encoder_outputs=encoder_out, decoder_input_ids=ids, use_cache=True)
            logits = out.logits.float()
            if no_speech is not None:
                nsp = torch.softmax(logits[:, 0], dim=-1)[:, no_speech].cpu().tolist()
            else:
                nsp = [0.0] * batch
            past = out.past_key_values
            step_logits = logits[:, -1]
            done = torch.zeros(batch, dtype=torch.bool, device=self.device)
            tokens: list[list[int]] = [[] for _ in range(batch)]
            lps: list[list[float]] = [[] for _ in range(batch)]
            for _ in range(max_new):
                logp = torch.log_softmax(step_logits, dim=-1)
                best = torch.argmax(logp, dim=-1)
                best_lp = logp.gather(1, best[:, None])[:, 0]
                for b in range(batch):
                    if not done[b] and int(best[b]) != eot:
                        tokens[b].append(int(best[b]))
                        lps[b].append(float(best_lp[b]))
                done |= best == eot
                if bool(done.all()):
                    break
                out = self.model(
                    encoder_outputs=encoder_out,
                    decoder_input_ids=best[:, None],
                    past_key_values=past,
                    use_cache=True,
                )
                past = out.past_key_values
                step_logits = out.logits[:, -1].float()
        return tokens, lps, [float(v) for v in nsp]
