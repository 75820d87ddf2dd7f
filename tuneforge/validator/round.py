"""One validator round: challenge → pick miners → query → score together → EMA → persist.

The round is scored against the validator's OWN challenge object; nothing a miner sends back
(headers, echoed fields) reaches the scoring engine except the audio bytes it signed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from tuneforge.chain.base import Metagraph, Neuron
from tuneforge.core.protocol import MusicGenerationSynapse, request_deadline_s
from tuneforge.core.publication import ROUND_RESULT, TRACK_AUDIO, published_track, round_result
from tuneforge.scoring import fingerprint as fp
from tuneforge.scoring.base import ClipScore, Submission
from tuneforge.scoring.engine import ScoredRound
from tuneforge.scoring.memory import RoundMemory
from tuneforge.validator.challenges import make_challenge, miner_seed, round_seed
from tuneforge.validator.config import ValidatorSettings
from tuneforge.validator.copies import CopyChecker, apply_verdicts
from tuneforge.validator.ema import update_ema
from tuneforge.validator.metrics import ValidatorMetrics
from tuneforge.validator.publisher import round_group
from tuneforge.validator.query import MinerClient, QueryOutcome
from tuneforge.validator.spool import RoundSpool, clear_stale, spool_root
from tuneforge.validator.state import MinerRoundResult, OutboxEntry, ValidatorState
from tuneforge.validator.tracks import answer_track

if TYPE_CHECKING:
    from loguru import Logger

    from tuneforge.core.audio import WavAudio
    from tuneforge.scoring.shared import Peek


class RoundScorer(Protocol):
    """What a round needs from the scoring engine (tuneforge.scoring.engine.ScoringEngine)."""

    def start_first_pass(self, audio: WavAudio) -> Future[Peek] | None: ...

    def score(
        self,
        challenge: MusicGenerationSynapse,
        submissions: list[Submission],
        started: Mapping[int, Future[Peek]] | None = None,
    ) -> ScoredRound: ...


@dataclass
class RoundReport:
    round_number: int
    challenge: MusicGenerationSynapse
    outcomes: list[QueryOutcome]
    scores: list[ClipScore]
    emas: dict[tuple[int, str], float]
    seconds: float

    def without_audio(self) -> RoundReport:
        """The report with every answer's audio and WAV bytes dropped (what a loop may keep
        between rounds: 256 answers of 30 s would otherwise hold ~1 GB)."""
        outcomes = [dataclasses.replace(o, audio=None, wav=None) for o in self.outcomes]
        return dataclasses.replace(self, outcomes=outcomes)


def select_miners(
    metagraph: Metagraph,
    self_hotkey: str,
    last_queried: Mapping[tuple[int, str], int],
    sample_size: int,
    seed: bytes,
) -> list[Neuron]:
    """Serving miners, least recently queried first (never queried = round 0).

    Ties are broken by a hash of the round seed and the hotkey, so equal miners rotate fairly
    without anyone being able to predict or choose their slot.
    """
    candidates = [n for n in metagraph.serving() if n.hotkey != self_hotkey]

    def order(neuron: Neuron) -> tuple[int, bytes, int]:
        tiebreak = hashlib.sha256(seed + neuron.hotkey.encode()).digest()
        return last_queried.get((neuron.uid, neuron.hotkey), 0), tiebreak, neuron.uid

    chosen = sorted(candidates, key=order)[:sample_size]
    return sorted(chosen, key=lambda n: n.uid)


def track_id(round_id: str, hotkey: str) -> str:
    return "trk_" + hashlib.sha256(f"{round_id}|{hotkey}".encode()).hexdigest()[:32]


class FirstPasses:
    """The first scoring pass of each answer, started as it arrives: the scoring workers decode
    and fingerprint the early answers while the round waits for the late ones (the result is
    the same as starting them all at the end)."""

    def __init__(self, scorer: RoundScorer) -> None:
        self._scorer = scorer
        self.started: dict[int, Future[Peek]] = {}

    def arrived(self, index: int, outcome: QueryOutcome) -> None:
        if outcome.audio is None:
            return
        try:
            future = self._scorer.start_first_pass(outcome.audio)
        except Exception as exc:  # e.g. a dead worker: the round's scoring runs this pass later
            logger.warning("first pass of uid {} not started: {}", outcome.uid, exc)
            return
        if future is not None:
            self.started[index] = future

    def cancel(self) -> None:
        for future in self.started.values():
            future.cancel()  # a no-op once it has run


class RoundRunner:
    """Runs rounds against one state, one miner client and one scoring engine."""

    def __init__(
        self,
        settings: ValidatorSettings,
        hotkey: str,
        state: ValidatorState,
        client: MinerClient,
        scorer: RoundScorer,
        metrics: ValidatorMetrics | None = None,
        copies: CopyChecker | None = None,
    ) -> None:
        self.settings = settings
        self.hotkey = hotkey
        self.state = state
        self.client = client
        self.scorer = scorer
        self.metrics = metrics or ValidatorMetrics()
        # The network copy check; without one every clip is checked locally only (and says so).
        self.copies = copies or CopyChecker(None)
        self._secret = state.meta.secret()
        # Each round's answers wait on disk until it is committed (validator/spool.py).
        self._spool_root = spool_root(state.path)
        clear_stale(self._spool_root)

    @property
    def secret(self) -> bytes:
        return self._secret

    async def score(
        self,
        challenge: MusicGenerationSynapse,
        outcomes: list[QueryOutcome],
        purpose: str,
    ) -> tuple[list[ClipScore], list[str | None]]:
        """(scores, each clip's encoded fingerprint) for answers that leave no trace in the
        scoring history (customer jobs): the round's memory is dropped."""
        scores, fingerprints, _ = await self.score_with_memory(challenge, outcomes, purpose)
        return scores, fingerprints

    async def score_with_memory(
        self,
        challenge: MusicGenerationSynapse,
        outcomes: list[QueryOutcome],
        purpose: str,
        first_passes: Mapping[int, Future[Peek]] | None = None,
    ) -> tuple[list[ClipScore], list[str | None], RoundMemory]:
        """(scores, each clip's encoded fingerprint, what the history should keep). Answers are
        scored off the event loop (a thread that feeds the engine's worker processes); the
        network copy index is asked about the fingerprints the scoring passes computed.
        `first_passes`: those begun as the answers arrived (`FirstPasses`)."""
        # Speed is judged on the time this validator measured (request sent -> last byte read),
        # never on the miner's own X-TuneForge-Generation-Ms claim, which a miner could fake.
        submissions = [
            Submission(
                miner_hotkey=o.hotkey,
                audio=o.audio,
                generation_ms=o.elapsed_ms if o.audio is not None else None,
                error=o.error,
            )
            for o in outcomes
        ]
        started = time.perf_counter()
        scoring = asyncio.ensure_future(
            asyncio.to_thread(self.scorer.score, challenge, submissions, first_passes)
        )

        async def fingerprints() -> list[str | None]:
            scored = await asyncio.shield(scoring)
            return [None if f is None else fp.encode(f) for f in scored.fingerprints]

        check = asyncio.create_task(self.copies.check(fingerprints(), [o.audio for o in outcomes]))
        try:
            scored = await scoring
        except BaseException:
            check.cancel()
            raise
        scores = scored.scores
        verdicts = await check
        self.metrics.scoring_seconds.labels(purpose=purpose).observe(time.perf_counter() - started)
        if len(scores) != len(outcomes):
            raise RuntimeError(f"engine returned {len(scores)} scores for {len(outcomes)} clips")
        apply_verdicts(scores, verdicts)
        for outcome in outcomes:
            self.metrics.queries.labels(purpose=purpose, outcome=outcome.code or "ok").inc()
        for score in scores:
            for check in score.failures:
                self.metrics.check_failures.labels(check=check).inc()
        return scores, [v.fingerprint for v in verdicts], scored.memory

    async def run_round(self, metagraph: Metagraph) -> RoundReport | None:
        """Run the next round; None when there is nobody to query (nothing is counted). Its
        answers are spooled to disk for the round, then removed (the report's answers can no
        longer be read)."""
        with RoundSpool(self._spool_root) as spool:
            return await self._run_round(metagraph, spool)

    async def _run_round(self, metagraph: Metagraph, spool: RoundSpool) -> RoundReport | None:
        neuron_settings = self.settings.neuron
        round_number = self.state.rounds.completed() + 1
        started = time.time()
        attempt = self.state.rounds.begin_attempt(round_number)
        seed = round_seed(self.hotkey, round_number, self._secret, attempt)
        challenge = make_challenge(
            seed, neuron_settings.min_challenge_seconds, neuron_settings.max_challenge_seconds
        )
        queried = self.state.miners.last_queried()
        miners = select_miners(metagraph, self.hotkey, queried, neuron_settings.sample_size, seed)
        log = logger.bind(round=round_number)
        if not miners:
            log.warning("round {}: no serving miners on netuid {}", round_number, metagraph.netuid)
            return None
        deadline = request_deadline_s(
            challenge.duration_seconds, neuron_settings.timeout, neuron_settings.timeout_per_second
        )
        log.info(
            "round {} (attempt {}): {} miners, {} {:.0f}s {} bpm {}, deadline {:.1f}s",
            round_number,
            attempt,
            len(miners),
            challenge.genre,
            challenge.duration_seconds,
            challenge.tempo_bpm,
            challenge.key,
            deadline,
        )
        seeds = {n.hotkey: miner_seed(seed, n.hotkey) for n in miners}
        first = FirstPasses(self.scorer)
        try:
            outcomes = await self.client.query_many(
                miners, challenge, deadline, seeds, on_answer=first.arrived, keep=spool.keep
            )
            scores, fingerprints, memory = await self.score_with_memory(
                challenge, outcomes, "round", first.started
            )
        finally:
            first.cancel()  # an abandoned round leaves no queued work in the scoring workers
        emas = update_ema(
            self.state.miners.emas(),
            {(o.uid, o.hotkey): s.final_score for o, s in zip(outcomes, scores, strict=True)},
            neuron_settings.alpha,
        )
        results = _round_results(round_number, challenge, outcomes, scores, seeds)
        round_id = str(uuid.UUID(bytes=hashlib.sha256(b"round-id|" + seed).digest()[:16]))
        outbox = self._publications(
            round_id, metagraph.block, challenge, outcomes, scores, fingerprints
        )
        self.state.commit_round(
            round_number,
            challenge.model_dump(),
            metagraph.block,
            started,
            results,
            emas,
            outbox,
            memory=memory,
        )
        seconds = time.time() - started
        self.metrics.rounds.inc()
        self.metrics.round_seconds.observe(seconds)
        self.metrics.set_emas(self.state.miners.emas())
        _log_scores(log, outcomes, scores, emas)
        log.info("round {} done in {:.1f}s", round_number, seconds)
        return RoundReport(round_number, challenge, outcomes, scores, emas, seconds)

    def _publications(
        self,
        round_id: str,
        block: int,
        challenge: MusicGenerationSynapse,
        outcomes: list[QueryOutcome],
        scores: list[ClipScore],
        fingerprints: list[str | None],
    ) -> list[OutboxEntry]:
        """Outbox items for the API (API.md `POST /scores` + one audio upload per track), one
        group per round so the audio follows the acknowledged round."""
        if not self.settings.api.publish:
            return []
        group = round_group(round_id)
        items: list[OutboxEntry] = []
        tracks = []
        for outcome, score, encoded in zip(outcomes, scores, fingerprints, strict=True):
            if outcome.audio is None:
                continue
            trk = track_id(round_id, outcome.hotkey)
            track = published_track(trk, answer_track(outcome, score, encoded))
            digest = track["audio_sha256"]
            tracks.append(track)
            # The answer itself, not its bytes: the outbox reads each back from the round's
            # spool as it writes its row, so the commit holds one answer at a time.
            items.append(
                (
                    TRACK_AUDIO,
                    {"round_id": round_id, "track_id": trk, "audio_sha256": digest},
                    outcome.audio,
                    group,
                )
            )
        if not tracks:
            return []  # nobody answered: the API refuses a round without results
        # The round goes first: audio uploads refer to its track ids.
        round_payload = round_result(round_id, block, challenge, tracks)
        return [(ROUND_RESULT, round_payload, None, group), *items]


def _round_results(
    round_number: int,
    challenge: MusicGenerationSynapse,
    outcomes: list[QueryOutcome],
    scores: list[ClipScore],
    seeds: Mapping[str, int],
) -> list[MinerRoundResult]:
    """What the state keeps of each miner's answer this round: its score and how it was asked."""
    return [
        MinerRoundResult(
            uid=o.uid,
            hotkey=o.hotkey,
            final_score=s.final_score,
            result={
                **s.to_dict(),
                "round": round_number,
                "challenge_id": challenge.challenge_id,
                "query": {**o.facts(), "seed": seeds[o.hotkey]},
            },
        )
        for o, s in zip(outcomes, scores, strict=True)
    ]


def _log_scores(
    log: Logger,
    outcomes: list[QueryOutcome],
    scores: list[ClipScore],
    emas: Mapping[tuple[int, str], float],
) -> None:
    for o, s in zip(outcomes, scores, strict=True):
        log.info(
            "uid {} {} final {:.3f} ema {:.3f}{}",
            o.uid,
            o.hotkey[:8],
            s.final_score,
            emas[(o.uid, o.hotkey)],
            f" ({o.error})" if o.error else "",
        )
