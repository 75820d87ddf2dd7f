"""Done-when for the network copy index: on a local network (LocalChain, the real API, real
miner apps on loopback, the validator's round machinery), a miner that downloads the API's export
and answers every challenge with a disguised copy of another validator's best tracks ends with
weight zero, the original named in its breakdown — and without the index it would be paid."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from bittensor.sp_core import Keypair

from tests.helpers import signals
from tests.helpers.api_server import free_port, signed_request
from tests.helpers.miner_server import serve_app
from tests.helpers.validator_api import api_on_port, api_settings
from tests.helpers.validator_net import ValidatorNet, make_validator_net, synth_miners
from tests.helpers.wallets import make_wallet
from tuneforge.chain.local import LocalChain
from tuneforge.core.audio import Audio, decode_wav, encode_wav, resample
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.generation.synth import SynthBackend
from tuneforge.scoring import fingerprint as fp
from tuneforge.scoring.clip import Clip
from tuneforge.validator.api_client import ApiClient
from tuneforge.validator.copies import CopyChecker
from tuneforge.validator.weight_rule import compute_weights

pytestmark = pytest.mark.slow

OTHER_VALIDATOR = Keypair.create_from_uri("//CopiesOtherValidator")
SECONDS = 12.0


class ReplayBackend:
    """A miner 'backend' that generates nothing: it downloads the export and replays the
    best-scored track, 4% faster (so also ~0.7 semitone higher), from 1.7 s in, with noise."""

    name = "replay"
    model_id = "replay"
    sample_rate = 32_000
    max_duration_seconds = 60.0

    def __init__(self, api_url: str, keypair: Any) -> None:
        self.api_url = api_url
        self.keypair = keypair

    def load(self) -> None:
        return None

    def generate(self, request: MusicGenerationSynapse) -> Audio:
        with httpx.Client(base_url=self.api_url, timeout=30) as http:
            export = signed_request(http, self.keypair, "GET", "/api/v1/scores/export").json()
            best = max(export["items"], key=lambda item: item["final_score"])
            wav = signed_request(http, self.keypair, "GET", best["audio_url"]).content
        original = decode_wav(wav)
        faster = resample(Audio(original.samples, int(original.sample_rate * 1.04)), 32_000)
        start = int(1.7 * 32_000)
        n = int(request.duration_seconds * 32_000)
        excerpt = Audio(faster.samples[:, start : start + n], 32_000)
        return signals.with_noise(excerpt, 25, seed=request.seed or 0)


@contextmanager
def replaying_miner(net: ValidatorNet, api_url: str) -> Iterator[str]:
    from tuneforge.miner.app import create_app
    from tuneforge.miner.config import MinerSection, MinerSettings

    wallet = make_wallet(net.tmp_path, "replayer")
    hotkey = wallet.hotkey.ss58_address
    net.chain.register(hotkey, wallet.coldkeypub.ss58_address)
    settings = MinerSettings(
        network="localnet", miner=MinerSection(min_stake=0.0, metagraph_refresh_s=60.0)
    )
    view = LocalChain(net.chain.path, netuid=net.chain.netuid, hotkey=hotkey)
    backend = ReplayBackend(api_url, wallet.hotkey)
    with serve_app(create_app(settings, backend, view, wallet)) as url:
        host, port = url.removeprefix("http://").split(":")
        net.chain.serve_hotkey(hotkey, host, int(port))
        yield hotkey


def publish_originals(api_url: str) -> list[str]:
    """Another validator's published round: two original pieces with audio and fingerprints."""
    results, wavs = [], {}
    for index, (key, tempo) in enumerate([("C major", 120), ("G minor", 96)]):
        audio = SynthBackend().generate(
            MusicGenerationSynapse(
                prompt="x", key=key, tempo_bpm=tempo, duration_seconds=20, seed=40 + index
            )
        )
        wav = encode_wav(audio)
        track_id = f"trk_original_{index}"
        wavs[track_id] = wav
        results.append(
            {
                "track_id": track_id,
                "miner_uid": 200 + index,
                "miner_hotkey": f"original-miner-{index}",
                "final_score": 0.9 - 0.1 * index,
                "composite": 0.9,
                "audio_sha256": hashlib.sha256(wav).hexdigest(),
                "duration_seconds": audio.duration_seconds,
                "sample_rate": audio.sample_rate,
                "fingerprint": fp.encode(fp.fingerprint(Clip(audio))),
            }
        )
    body = {"round_id": str(uuid.uuid4()), "block": 1, "challenge": {}, "results": results}
    with httpx.Client(base_url=api_url, timeout=30) as http:
        answer = signed_request(
            http, OTHER_VALIDATOR, "POST", "/api/v1/scores", json.dumps(body).encode()
        )
        assert answer.status_code == 201, answer.text
        for track_id, wav in wavs.items():
            path = f"/api/v1/scores/audio/{track_id}"
            put = signed_request(http, OTHER_VALIDATOR, "PUT", path, wav, content_type="audio/wav")
            assert put.status_code == 201, put.text
    return list(wavs)


def run_network(tmp_path: Path, with_index: bool) -> dict[str, Any]:
    net = make_validator_net(tmp_path)
    net.chain.register(OTHER_VALIDATOR.ss58_address, stake=5000.0, validator_permit=True)
    settings = api_settings(net)
    port = free_port()
    with ExitStack() as stack:
        stack.enter_context(api_on_port(settings, port))
        url = f"http://127.0.0.1:{port}"
        originals = publish_originals(url)
        honest = stack.enter_context(synth_miners(net, 2))
        replayer = stack.enter_context(replaying_miner(net, url))
        validator_settings = net.settings(
            min_challenge_seconds=SECONDS, max_challenge_seconds=SECONDS
        )
        loop, state, _client = net.build(validator_settings)

        async def rounds() -> list[Any]:
            api = ApiClient(url, net.wallet, timeout_s=60)
            loop.runner.copies = CopyChecker(api if with_index else None)
            try:
                return [await loop.runner.run_round(loop.metagraph(force=True)) for _ in range(2)]
            finally:
                await api.aclose()

        reports = asyncio.run(rounds())
        emas = state.miners.emas()
        weights = compute_weights({uid: ema for (uid, _), ema in emas.items()})
        uids = {hotkey: uid for (uid, hotkey) in emas}
        last = reports[-1]
        reasons = {
            o.hotkey: s.reasons.get("fingerprint_penalty", "")
            for o, s in zip(last.outcomes, last.scores, strict=True)
        }
        return {
            "weights": weights,
            "replayer_uid": uids[replayer],
            "honest_uids": [uids[w.hotkey.ss58_address] for w in honest],
            "replayer_reason": reasons[replayer],
            "originals": originals,
        }


def test_a_replaying_miner_ends_at_weight_zero_with_the_original_named(tmp_path: Path) -> None:
    network = run_network(tmp_path, with_index=True)
    assert network["weights"].get(network["replayer_uid"], 0.0) == 0.0
    assert any(network["weights"].get(uid, 0.0) > 0 for uid in network["honest_uids"])
    reason = network["replayer_reason"]
    assert "trk_original_0" in reason and "original-miner-0" in reason, reason


def test_without_the_index_the_same_replaying_miner_is_paid(tmp_path: Path) -> None:
    network = run_network(tmp_path, with_index=False)
    assert network["weights"].get(network["replayer_uid"], 0.0) > 0.0
    assert "network copy index not consulted" in network["replayer_reason"]
