"""`tuneforge localnet --votes N`: a scripted customer votes, the validator trains on the votes.

The customer asks for several candidates per request (`variants`), downloads them and compares
every pair of one request, preferring the track with more treble (a larger share of its power
above 2 kHz, judged in the band the validator analyses): a stated, simple taste that the
validator's embedding can hear, so the preference head has something learnable. Then the
validator's own `tuneforge validator train-preference` reads the votes from the API and trains,
and its report (pairs, held-out accuracy, the weight the rule gives) goes into the localnet
report.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from tuneforge.localnet.options import LocalnetError, WaitTimeout

# Short clips keep the scripted jobs cheap (one credit per variant).
VOTE_CLIP_SECONDS = 3.0
# The taste is judged only below the validator's analysis Nyquist (clips are analysed at
# 22.05 kHz): a hi-hat's energy above it moved the old spectral-centroid taste, but no embedding
# the head reads can hear it. On 150 synth jobs, held-out accuracy at 50 votes (10 held-out pairs)
# was 0.63 on average with 35% of runs under the 0.55 bar for the centroid, 0.91 with none of 25
# under it for this share (D57).
HEARD_BAND_HZ = 11_025.0
TREBLE_FROM_HZ = 2_000.0
PROMPTS = (
    "Bright synth arpeggio over a steady beat",
    "Dark ambient drone with slow pads",
    "Upbeat acoustic guitar strumming",
    "Warm electric piano chords",
)


# The API limits each account per minute (its plan): the scripted customer, polling 17 jobs,
# meets that limit and waits it out like a patient customer would, within these bounds.
RATE_LIMIT_TRIES = 12
RATE_LIMIT_WAIT_S = 15.0


def patient(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, waiting out 429 answers for their Retry-After (bounded)."""
    answer = client.request(method, url, **kwargs)
    for _ in range(RATE_LIMIT_TRIES):
        if answer.status_code != 429:
            break
        try:
            wait = float(answer.headers.get("Retry-After", "2"))
        except ValueError:
            wait = 2.0
        time.sleep(min(RATE_LIMIT_WAIT_S, max(0.5, wait)))
        answer = client.request(method, url, **kwargs)
    return answer


def treble_share(wav: bytes) -> float:
    """Share (0-1) of a WAV's power from TREBLE_FROM_HZ up to HEARD_BAND_HZ, of all its power up
    to HEARD_BAND_HZ: the scripted customer's whole taste (more treble wins)."""
    import soundfile as sf

    data, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    power = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1.0 / rate)
    heard = power[freqs <= HEARD_BAND_HZ]
    total = float(heard.sum())
    treble = float(power[(freqs >= TREBLE_FROM_HZ) & (freqs <= HEARD_BAND_HZ)].sum())
    return treble / total if total > 0 else 0.0


def scripted_votes(
    api_url: str,
    api_key: str,
    *,
    votes: int,
    variants: int,
    wait_s: float,
    wait_for: Callable[[str, Callable[[], Any], float], Any],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Request jobs of `variants` tracks and compare every pair until `votes` votes are cast."""
    auth = {"Authorization": f"Bearer {api_key}"}
    pairs_per_job = math.comb(variants, 2)
    jobs = math.ceil(votes / pairs_per_job) if pairs_per_job else 0
    if jobs == 0:
        return {"votes": 0, "jobs": 0, "note": "votes need at least two miners (two variants)"}
    say(f"scripted customer: {jobs} requests of {variants} variants for {votes} votes")
    request_ids = []
    with httpx.Client(base_url=api_url, headers=auth, timeout=30.0) as client:
        for index in range(jobs):
            body = {
                "prompt": PROMPTS[index % len(PROMPTS)],
                "duration_seconds": VOTE_CLIP_SECONDS,
                "variants": variants,
            }
            accepted = client.post(
                "/api/v1/music/generate",
                json=body,
                headers={"Idempotency-Key": f"localnet-vote-{index}"},
            )
            if accepted.status_code != 201:
                raise LocalnetError(
                    f"POST /music/generate: {accepted.status_code} {accepted.text[:300]}"
                )
            request_ids.append(accepted.json()["request_id"])
        finished: dict[str, dict[str, Any]] = {}

        def all_done() -> bool:
            for request_id in request_ids:
                if request_id in finished:
                    continue
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    body = client.get(f"/api/v1/music/status/{request_id}").json()
                    if body.get("status") in ("completed", "failed"):
                        finished[request_id] = body
            return len(finished) == len(request_ids)

        with contextlib.suppress(WaitTimeout):
            wait_for(f"{jobs} scripted customer jobs", all_done, wait_s)
        cast = 0
        for request_id in request_ids:
            tracks = (finished.get(request_id) or {}).get("tracks") or []
            treble = {}
            for track in tracks:
                audio = patient(client, "GET", track["audio_url"])
                if audio.status_code == 200:
                    treble[track["track_id"]] = treble_share(audio.content)
            for a, b in itertools.combinations(sorted(treble), 2):
                if cast >= votes:
                    break
                winner, loser = (a, b) if treble[a] >= treble[b] else (b, a)
                answer = patient(
                    client, "POST", "/api/v1/music/compare", json={"winner": winner, "loser": loser}
                )
                if answer.status_code in (200, 201):
                    cast += 1
    say(f"scripted customer: {cast} votes cast over {len(finished)} finished requests")
    return {"votes": cast, "jobs": jobs, "finished": len(finished)}


def train_on_votes(tuneforge_cli: Callable[..., str], argv: list[str]) -> dict[str, Any]:
    """The validator's `train-preference --json` report (or why it could not run)."""
    try:
        return dict(json.loads(tuneforge_cli("validator", "train-preference", *argv, "--json")))
    except (LocalnetError, ValueError) as exc:
        return {"active": False, "error": str(exc)[:500]}
