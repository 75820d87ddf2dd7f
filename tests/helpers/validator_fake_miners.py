"""Misbehaving miners for validator tests: ONE FastAPI server speaking the protocol for many
registered hotkeys, each with its own behaviour (chosen by the request's receiver header).

Every answer is built from real bytes (real WAV encoding, real btauth/1 signatures by the
miner's own wallet), only wrong in the one way its behaviour names.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import bittensor as bt
import numpy as np
from bittensor.http_auth import HEADER_HOTKEY, HEADER_RECEIVER
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.helpers.wallets import make_wallet
from tuneforge.auth.btauth import sign_response
from tuneforge.chain.local import LocalChain
from tuneforge.core.audio import Audio, encode_wav
from tuneforge.core.protocol import (
    GENERATE_PATH,
    HEADER_GENERATION_MS,
    HEADER_MODEL,
    HEADER_SAMPLE_RATE,
    HEADER_SPEC_VERSION,
    SPEC_VERSION,
    MusicGenerationSynapse,
)

STREAM_CHUNK = 64 * 1024

# behaviour -> the failure code the validator must report (None: a valid answer)
EXPECTED_CODES: dict[str, str | None] = {
    "good": None,
    "echo": None,
    "timeout": "timeout",
    "error_500": "http_status",
    "empty": "empty_body",
    "not_wav": "not_wav",
    "truncated": "truncated",
    "nan": "not_finite",
    "ten_minutes": "too_long",
    "too_large": "too_large",
    "unsigned": "missing_signature",
    "bad_signature": "bad_signature",
    "other_signer": "wrong_signer",
    # decodable but hostile to the numbers: huge finite floats stop at the decoder; the rest
    # reach scoring and must be scored (low) without breaking the round
    "huge_float": "out_of_range",
    "hot_float": None,
    "subnormal": None,
    "dc_offset": None,
    "nyquist": None,
    "one_impulse": None,
}

# Float32 sample arrays (1 s at 32 kHz) for the decodable hostile behaviours.
HOSTILE_SAMPLES: dict[str, np.ndarray] = {
    "huge_float": np.full(32_000, 1e20, dtype=np.float32) * np.sign(np.sin(np.arange(32_000))),
    "hot_float": (4.0 * np.sin(2 * np.pi * 440 * np.arange(32_000) / 32_000)).astype(np.float32),
    "subnormal": np.full(32_000, 1e-40, dtype=np.float32),
    "dc_offset": np.full(32_000, 0.7, dtype=np.float32),
    "nyquist": np.tile(np.array([1.0, -1.0], dtype=np.float32), 16_000),
    "one_impulse": np.eye(1, 32_000, 16_000, dtype=np.float32)[0],
}


def tone_wav(seconds: float, seed: int = 0, rate: int = 32_000, subtype: str = "PCM_16") -> bytes:
    """A major chord (its root chosen by the seed) with a pulsing envelope: real audio that any
    decoder accepts, different for different seeds like a real model's."""
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    root = 220.0 * 2.0 ** ((seed % 12) / 12.0)
    chord = sum(np.sin(2 * np.pi * root * r * t) for r in (1.0, 1.26, 1.5)) / 3
    envelope = 0.5 + 0.5 * (np.sin(2 * np.pi * 2.0 * t) > 0)
    return encode_wav(Audio((0.4 * chord * envelope).astype(np.float32), rate), subtype=subtype)


@dataclass
class FakeMiners:
    """Hotkey -> behaviour; `requests` records (behaviour, synapse) as received."""

    wallets: dict[str, bt.Wallet]  # behaviour -> wallet
    impostor: bt.Wallet
    requests: list[tuple[str, MusicGenerationSynapse]] = field(default_factory=list)
    sent_bytes: dict[str, int] = field(default_factory=dict)
    # "hold" answers its first `answer_first` requests at once, then holds each later one
    # until `hold` is set; `held` is set when a request starts being held.
    answer_first: int = 0
    hold_requests: int = 0
    hold: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    # "timeout" answers after this long: beyond the tests' deadlines, short enough that the
    # server's graceful shutdown does not wait long for it.
    timeout_s: float = 2.5

    def hotkey(self, behaviour: str) -> str:
        return self.wallets[behaviour].hotkey.ss58_address

    def behaviour_of(self, hotkey: str) -> str | None:
        return next((b for b, w in self.wallets.items() if w.hotkey.ss58_address == hotkey), None)


def make_fake_miners(tmp_path: Path, behaviours: list[str]) -> FakeMiners:
    wallets = {b: make_wallet(tmp_path, f"fake-{b}") for b in behaviours}
    return FakeMiners(wallets=wallets, impostor=make_wallet(tmp_path, "fake-impostor"))


def register_fake_miners(chain: LocalChain, miners: FakeMiners, axon: str) -> dict[str, int]:
    """Register every fake miner with `axon` ("127.0.0.1:port"); behaviour -> uid."""
    return {
        b: chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address, axon=axon)
        for b, w in miners.wallets.items()
    }


def fake_miner_app(miners: FakeMiners, answer_seconds: float = 2.0) -> FastAPI:
    app = FastAPI()

    def signed(wallet: bt.Wallet, body: bytes, caller: str) -> dict[str, str]:
        return {
            HEADER_SPEC_VERSION: SPEC_VERSION,
            HEADER_MODEL: "fake/model",
            HEADER_GENERATION_MS: "12",
            HEADER_SAMPLE_RATE: "32000",
            **sign_response(wallet, "POST", GENERATE_PATH, body, caller),
        }

    @app.post(GENERATE_PATH)
    async def generate(request: Request) -> Response:
        body = await request.body()
        synapse = MusicGenerationSynapse.model_validate_json(body)
        receiver = request.headers.get(HEADER_RECEIVER, "")
        caller = request.headers.get(HEADER_HOTKEY, "")
        behaviour = miners.behaviour_of(receiver) or "unknown"
        miners.requests.append((behaviour, synapse))
        wallet = miners.wallets.get(behaviour)
        if wallet is None:
            return JSONResponse({"detail": "unknown receiver"}, status_code=401)
        wav = tone_wav(min(synapse.duration_seconds, answer_seconds), synapse.seed)
        if behaviour in ("good", "hold"):
            if behaviour == "hold":
                miners.hold_requests += 1
                if miners.hold_requests > miners.answer_first:
                    miners.held.set()
                    while not miners.hold.is_set():
                        await asyncio.sleep(0.05)
            return Response(wav, media_type="audio/wav", headers=signed(wallet, wav, caller))
        if behaviour == "echo":
            # Claims to have answered another challenge, in headers and in a JSON-ish echo.
            headers = {
                **signed(wallet, wav, caller),
                "X-TuneForge-Prompt": "silence",
                "X-TuneForge-Genre": "ambient",
                "X-TuneForge-Tempo-Bpm": "60",
                "X-TuneForge-Key": "C major",
                "X-TuneForge-Duration-Seconds": "2",
                "X-TuneForge-Challenge": '{"prompt": "silence", "genre": "ambient"}',
            }
            return Response(wav, media_type="audio/wav", headers=headers)
        if behaviour == "timeout":
            await asyncio.sleep(miners.timeout_s)
            return Response(wav, media_type="audio/wav", headers=signed(wallet, wav, caller))
        if behaviour == "error_500":
            return JSONResponse({"detail": "generation failed: boom"}, status_code=500)
        if behaviour == "empty":
            return Response(b"", media_type="audio/wav", headers=signed(wallet, b"", caller))
        if behaviour == "not_wav":
            junk = b"ID3\x04" + bytes(range(256)) * 64
            return Response(junk, media_type="audio/wav", headers=signed(wallet, junk, caller))
        if behaviour == "truncated":
            cut = wav[: len(wav) // 2]
            return Response(cut, media_type="audio/wav", headers=signed(wallet, cut, caller))
        if behaviour == "nan":
            samples = np.full(32_000, np.nan, dtype=np.float32)
            nan_wav = _float_wav(samples, 32_000)
            return Response(
                nan_wav, media_type="audio/wav", headers=signed(wallet, nan_wav, caller)
            )
        if behaviour in HOSTILE_SAMPLES:
            samples = np.tile(HOSTILE_SAMPLES[behaviour], int(min(synapse.duration_seconds, 4)))
            hostile = _float_wav(samples, 32_000)
            return Response(
                hostile, media_type="audio/wav", headers=signed(wallet, hostile, caller)
            )
        if behaviour == "ten_minutes":
            long_wav = encode_wav(Audio(np.zeros((1, 8_000 * 600), dtype=np.float32), 8_000))
            return Response(
                long_wav, media_type="audio/wav", headers=signed(wallet, long_wav, caller)
            )
        if behaviour == "too_large":
            return StreamingResponse(_endless(miners), media_type="audio/wav")
        if behaviour == "unsigned":
            return Response(wav, media_type="audio/wav", headers={HEADER_MODEL: "fake/model"})
        if behaviour == "bad_signature":
            headers = signed(wallet, wav + b"tampered", caller)
            return Response(wav, media_type="audio/wav", headers=headers)
        if behaviour == "other_signer":
            return Response(
                wav, media_type="audio/wav", headers=signed(miners.impostor, wav, caller)
            )
        return JSONResponse({"detail": f"no behaviour {behaviour}"}, status_code=400)

    return app


async def _endless(miners: FakeMiners, total: int = 256 * 1024 * 1024) -> AsyncIterator[bytes]:
    """A WAV header then zeros, far beyond any limit, counting what was handed to the socket."""
    chunk = b"\0" * STREAM_CHUNK
    sent = 0
    yield b"RIFF\xff\xff\xff\x7fWAVE"
    while sent < total:
        sent += len(chunk)
        miners.sent_bytes["too_large"] = sent
        yield chunk


def _float_wav(samples: np.ndarray, rate: int) -> bytes:
    """A 32-bit float WAV written by hand: soundfile would refuse to write NaNs faithfully."""
    data = samples.astype("<f4").tobytes()
    fmt = (
        b"fmt "
        + (16).to_bytes(4, "little")
        + (3).to_bytes(2, "little")  # IEEE float
        + (1).to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + (rate * 4).to_bytes(4, "little")
        + (4).to_bytes(2, "little")
        + (32).to_bytes(2, "little")
    )
    chunks = fmt + b"data" + len(data).to_bytes(4, "little") + data
    return b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks
