"""A miner holding MusicGen and ACE-Step over loopback: vocal challenges are sung by ACE-Step
with their lyrics, instrumental ones made by MusicGen, and each signed WAV says which model."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers.miner_server import get_info, make_net, post_generate, serve_app, synapse_body
from tests.helpers.tiny_musicgen import build_tiny_musicgen
from tests.helpers.tiny_singing import build_tiny_ace_step, offline_and_threads  # noqa: F401
from tuneforge.auth.btauth import verify_response
from tuneforge.core.audio import decode_wav
from tuneforge.core.protocol import GENERATE_PATH, HEADER_MODEL, HEADER_SAMPLE_RATE
from tuneforge.generation.ace_step import AceStepBackend
from tuneforge.generation.musicgen import MusicGenBackend
from tuneforge.generation.router import RoutedBackend
from tuneforge.generation.settings import GenerationSettings


class _Singer(AceStepBackend):
    """The real ACE-Step backend, noting what it was asked to sing."""

    def __init__(self, settings: GenerationSettings) -> None:
        super().__init__(settings)
        self.sung: list[str] = []

    def _generate_locked(self, request, lyrics, seed):  # type: ignore[no-untyped-def]
        self.sung.append(lyrics)
        return super()._generate_locked(request, lyrics, seed)


def test_vocal_challenge_reaches_ace_step_with_its_lyrics_instrumental_reaches_musicgen(
    tmp_path: Path,
) -> None:
    common = dict(device="cpu", cpu_threads=1, lyrics_model="")
    musicgen = MusicGenBackend(
        GenerationSettings(backend="musicgen", model=str(build_tiny_musicgen(tmp_path / "mg")))
    )
    ace_dir = str(build_tiny_ace_step(tmp_path / "ace"))
    singer = _Singer(GenerationSettings(backend="ace-step", model=ace_dir, steps=2, **common))
    backend = RoutedBackend(musicgen, singer)
    backend.load()
    net = make_net(tmp_path)
    validator = net.add_caller("validator")
    me, miner = validator.hotkey.ss58_address, net.miner_hotkey
    lyrics = "[verse]\nsalt on the wind\nwe sail tonight"
    with serve_app(net.app(backend)) as url, httpx.Client(base_url=url, timeout=120) as client:
        info = get_info(client, validator, miner).json()
        assert info["sings"] is True and info["backend"] == "musicgen+ace-step"

        body = synapse_body(prompt="sea shanty", vocals=True, lyrics=lyrics, duration_seconds=2.0)
        sung = post_generate(client, validator, miner, body)
        assert sung.status_code == 200, sung.text
        verify_response(sung.headers, sung.content, "POST", GENERATE_PATH, miner, me)
        assert sung.headers[HEADER_MODEL] == ace_dir
        assert sung.headers[HEADER_SAMPLE_RATE] == "48000"
        audio = decode_wav(sung.content)
        assert audio.samples.shape == (2, 96_000)
        assert singer.sung == [lyrics]

        body = synapse_body(prompt="calm piano", vocals=False, duration_seconds=2.0)
        plain = post_generate(client, validator, miner, body)
        assert plain.status_code == 200, plain.text
        verify_response(plain.headers, plain.content, "POST", GENERATE_PATH, miner, me)
        assert plain.headers[HEADER_MODEL] == musicgen.model_id
        assert decode_wav(plain.content).sample_rate == 32_000
        assert singer.sung == [lyrics]  # the instrumental never reached the singer
