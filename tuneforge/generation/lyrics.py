"""Lyrics for vocal challenges that come without them: a small chat LM writes, we clean.

The writer is a Qwen3-class instruction-tuned causal LM run through transformers (chat template,
thinking off). Its output is hostile text: cleaning keeps only short lyric lines under the
section tags ACE-Step was trained on. When the model is missing, fails, or writes nothing usable,
a fixed fallback is sung instead, so a vocal challenge never goes without words.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from loguru import logger

from tuneforge.core.protocol import MusicGenerationSynapse

# A sung line takes roughly 3 s at common tempos; a line longer than this cannot be sung in one
# breath and is usually prose the model slipped in.
SECONDS_PER_LINE = 3.0
MIN_LINES, MAX_LINES = 4, 24
MAX_WORDS_PER_LINE = 10
MAX_LINE_CHARS = 64
# Enough new tokens for the line budget (about 12 tokens a line) plus section tags.
TOKENS_PER_LINE = 14

FALLBACK_LYRICS = (
    "[verse]\n"
    "I hear the rhythm calling me\n"
    "A melody to set me free\n"
    "The city lights are shining bright\n"
    "We sing together through the night\n"
    "[chorus]\n"
    "Oh we rise, we rise again\n"
    "Hand in hand until the end\n"
    "Let the music carry on\n"
    "Hold the moment, sing along\n"
    "[verse]\n"
    "The morning comes with open skies\n"
    "A brand new fire in our eyes\n"
    "Every step a song we know\n"
    "Every heartbeat steady and slow\n"
    "[chorus]\n"
    "Oh we rise, we rise again\n"
    "Hand in hand until the end\n"
    "Let the music carry on\n"
    "Hold the moment, sing along"
)

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
# "Verse 1:", "**Chorus**", "[Pre-Chorus 2]", "(Bridge)", "## Outro" -> a section tag.
_TAG_LINE = re.compile(
    r"^[\s#*_(\[]*(pre-chorus|prechorus|verse|chorus|bridge|intro|outro|hook|refrain)"
    r"(\s*\d+)?[\s*_)\]:.-]*$",
    re.IGNORECASE,
)
_BRACKETED = re.compile(r"^\s*[\[(].*[\])]\s*$")
_NUMBERING = re.compile(r"^\s*(\d+[.):]|[-*•]|>)\s*")
_PREAMBLE = re.compile(
    r"^(here('s| is| are)|sure|certainly|okay|ok,|title:|song title|lyrics:|note:|i hope|"
    r"this song|feel free|let me)",
    re.IGNORECASE,
)
_ALLOWED = re.compile(r"[^\w\s'’,.!?-]", re.UNICODE)


def line_budget(duration_seconds: float) -> int:
    """How many sung lines fit the clip: one per ~3 s, between 4 and 24."""
    return max(MIN_LINES, min(MAX_LINES, round(duration_seconds / SECONDS_PER_LINE)))


def _section_tag(line: str) -> str | None:
    match = _TAG_LINE.match(line)
    if match is None:
        return None
    name = match.group(1).lower()
    name = {"prechorus": "pre-chorus", "refrain": "chorus"}.get(name, name)
    return f"[{name}]"


def _lyric_line(line: str) -> str:
    """A line stripped of list markers, markdown and symbols, cut to a singable length."""
    line = _NUMBERING.sub("", line)
    line = _ALLOWED.sub("", line.replace("**", "").replace("__", ""))
    words = line.split()[:MAX_WORDS_PER_LINE]
    text = " ".join(words)
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS].rsplit(" ", 1)[0]
    return text.strip(" ,-")


def clean_lyrics(raw: str, max_lines: int) -> str:
    """Model output -> tagged lyrics of at most `max_lines` sung lines ("" when none survive).

    Drops thinking blocks, preambles, numbering, markdown, unknown tags and over-long lines;
    turns "Verse 1:" / "**Chorus**" / "(Bridge)" into `[verse]` / `[chorus]` / `[bridge]`.
    """
    out: list[str] = []
    sung = 0
    for raw_line in _THINK.sub("", raw).splitlines():
        line = raw_line.strip().strip('"“”')
        if not line:
            continue
        tag = _section_tag(line)
        if tag is not None:
            if out and out[-1].startswith("["):
                out[-1] = tag  # two tags in a row: the later one heads the lines that follow
            else:
                out.append(tag)
            continue
        if _BRACKETED.match(line) or _PREAMBLE.match(line) or line.endswith(":"):
            continue
        text = _lyric_line(line)
        if len(text.split()) < 2:
            continue
        if sung >= max_lines:
            break
        if not out:
            out.append("[verse]")
        out.append(text)
        sung += 1
    while out and out[-1].startswith("["):
        out.pop()  # a trailing tag heads nothing
    return "\n".join(out) if sung >= 2 else ""


def fallback_lyrics(duration_seconds: float) -> str:
    """The fixed lyrics, cut to the clip's line budget (whole sections kept where possible)."""
    return clean_lyrics(FALLBACK_LYRICS, line_budget(duration_seconds))


def _instruction(request: MusicGenerationSynapse, lines: int) -> str:
    style = ", ".join(part for part in (request.genre, request.mood) if part)
    about = request.prompt.strip()
    return (
        f"Write original song lyrics{f' for a {style} song' if style else ''} about: {about}\n"
        f"Write exactly {lines} short lines of at most 8 words each, in English, under section "
        "tags [verse] and [chorus] on their own lines. Output only the lyrics: no title, no "
        "numbering, no comments."
    )


class LyricsWriter:
    """Writes lyrics with a chat LM from a hub id or local folder; never raises on `write`."""

    def __init__(self, model_id: str, device: str = "cpu", dtype: Any = None) -> None:
        self.model_id = model_id
        self._device = device
        self._dtype = dtype
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._failed = not model_id  # no model configured: always the fallback

    @property
    def available(self) -> bool:
        return self._model is not None

    def load(self) -> bool:
        """Load the model now; False (with the reason logged) when it cannot be had."""
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> bool:
        if self._model is not None:
            return True
        if self._failed:
            return False
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_id)
            model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=self._dtype)
        except (OSError, ValueError, ImportError) as exc:
            # Load once per process: a missing model must not cost every vocal request a retry.
            self._failed = True
            logger.warning(
                "lyrics model {} unavailable, using fixed lyrics: {}", self.model_id, exc
            )
            return False
        self._model = model.to(self._device).eval()
        self._tokenizer = tokenizer
        return True

    def write(self, request: MusicGenerationSynapse, seed: int) -> str:
        """Lyrics for `request` (the fixed fallback when the model is missing or fails)."""
        lines = line_budget(request.duration_seconds)
        with self._lock:
            if self._load_locked():
                try:
                    raw = self._generate_locked(_instruction(request, lines), lines, seed)
                except (RuntimeError, ValueError, TypeError) as exc:
                    logger.warning("lyrics model failed, using fixed lyrics: {}", exc)
                    raw = ""
                cleaned = clean_lyrics(raw, lines)
                if cleaned:
                    return cleaned
                logger.info("lyrics model wrote nothing singable; using fixed lyrics")
        return fallback_lyrics(request.duration_seconds)

    def _generate_locked(self, instruction: str, lines: int, seed: int) -> str:
        import torch

        text = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": instruction}],
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=False,  # Qwen3: no <think> block eating the token budget
        )
        inputs = self._tokenizer(text, return_tensors="pt").to(self._device)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self._model.generate(
                **inputs,
                do_sample=True,
                temperature=0.7,  # Qwen3's recommended non-thinking sampling
                top_p=0.8,
                top_k=20,
                max_new_tokens=lines * TOKENS_PER_LINE + 16,
                pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
            )
        new_tokens = out[0, inputs["input_ids"].shape[1] :]
        return str(self._tokenizer.decode(new_tokens, skip_special_tokens=True))
