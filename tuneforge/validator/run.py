"""Start a validator: wallet → chain → state → scoring engine → loop until stopped."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from tuneforge.core.config import expand_path
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.heap import release_freed_memory_promptly
from tuneforge.core.logs import configure_logging
from tuneforge.scoring.weights import CATALOGUE_PENALTY, CHECKS
from tuneforge.validator.config import ScoringModelSettings, ValidatorSettings

if TYPE_CHECKING:
    import bittensor as bt

    from tuneforge.auth.hotkey import HotkeySigner
    from tuneforge.chain.base import ChainView
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.scoring.neural import NeuralModels
    from tuneforge.validator.api_client import ApiClient
    from tuneforge.validator.catalogue import CatalogueClient
    from tuneforge.validator.loop import ValidatorLoop
    from tuneforge.validator.metrics import ValidatorMetrics
    from tuneforge.validator.preference_training import PreferenceTrainer
    from tuneforge.validator.publisher import Publisher
    from tuneforge.validator.query import MinerClient
    from tuneforge.validator.state import ValidatorState

FLUSH_ON_EXIT_S = 10.0


class ValidatorStartupError(TuneForgeError):
    """The validator cannot start; the message says what to fix."""

    code = "validator_startup"


def load_models(scoring: ScoringModelSettings) -> NeuralModels | None:
    """Neural models when any path is configured; a model that cannot load stops the start-up
    unless `allow_missing` (then its scorers do not run and every result says `degraded`)."""
    if not any((scoring.clap, scoring.mert, scoring.whisper, scoring.mos, scoring.preference)):
        logger.info("no neural scoring models configured: neural scorers are excluded")
        return None
    from tuneforge.scoring.neural import NeuralModels

    try:
        models = NeuralModels.load(
            clap=scoring.clap or None,
            mert=scoring.mert or None,
            whisper=scoring.whisper or None,
            mos=scoring.mos or None,
            preference=scoring.preference or None,
            device=scoring.device,
            allow_missing=scoring.allow_missing,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValidatorStartupError(
            f"a scoring model could not be loaded: {exc} (fix the path/id, or pass "
            "--scoring.allow_missing to run degraded)"
        ) from exc
    for name, description in models.describe().items():
        logger.info("scoring model {}: {}", name, description)
    return models


def check_scorer_set(engine: ScoringEngine, network: str, allow_missing: bool) -> None:
    """Every validator of a real network runs the whole active scorer set, so that two honest
    validators give the same clip the same score. Only LocalChain (`localnet`) or an explicit
    `--scoring.allow_missing` may run degraded, and then every published result says so."""
    if not engine.degraded:
        return
    lacking = "; ".join(engine.scorer_set.problems())
    if allow_missing or network == "localnet":
        logger.warning("degraded scorer set (results are published as degraded): {}", lacking)
        return
    raise ValidatorStartupError(
        f"network {network!r} needs the whole scorer set, this validator lacks: {lacking} "
        "(configure --scoring.clap/--scoring.mert/--scoring.whisper, see docs/validator.md; "
        "--scoring.allow_missing runs degraded, for experiments only)"
    )


def log_preference(engine: ScoringEngine) -> None:
    """Say at start-up whether the preference scorer runs, with its accuracy and weight."""
    from tuneforge.scoring.weights import PREFERENCE, preference_share

    entry = engine.scorer_set.scorers[PREFERENCE]
    if entry.instance is None:  # inactive by the rule, or excluded here (reason said above)
        logger.info("preference scorer not run: {}", entry.not_run_reason)
        return
    accuracy = getattr(engine.models, "preference_heldout_accuracy", None)
    logger.info(
        "preference scorer active: held-out accuracy {:.3f}, weight {:.2f} ({:.1f}% of the score)",
        accuracy,
        engine.weight_of(PREFERENCE),
        preference_share(accuracy) * 100,
    )


def check_catalogue(network: str, key: str, allow_missing: bool) -> bool:
    """Whether this validator looks clips up in the public catalogue: exactly when the network
    has the check on (its row in `weights.PENALTIES` is active) — then a validator of a real
    network without an AcoustID key must not start, like one without a required model (D31)."""
    if not CHECKS[CATALOGUE_PENALTY].active:
        if key:
            logger.info("AcoustID key configured, but the network has the catalogue check off")
        return False
    if key:
        return True
    if allow_missing or network == "localnet":
        logger.warning("catalogue check is on network-wide but no AcoustID key: not looked up")
        return False
    raise ValidatorStartupError(
        f"network {network!r} has the catalogue check on: configure --catalogue.acoustid_key "
        "(an AcoustID application key, see docs/validator.md)"
    )


async def _serve(
    validator: ValidatorLoop,
    stop: asyncio.Event,
    publisher: Publisher | None = None,
    trainer: PreferenceTrainer | None = None,
) -> None:
    """Run the loop (and the publisher beside it); SIGTERM/SIGINT end it cleanly (an unfinished
    round is simply not counted, unsent publications stay in the outbox)."""
    running = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(signum, stop.set)
    publishing = asyncio.ensure_future(publisher.run(stop)) if publisher is not None else None
    training = asyncio.ensure_future(trainer.run(stop)) if trainer is not None else None
    try:
        await validator.run(stop)
        if publisher is not None and not stop.is_set():
            # max_rounds reached: give queued publications a short chance to leave now.
            await publisher.flush(FLUSH_ON_EXIT_S)
    finally:
        stop.set()
        if training is not None:
            training.cancel()
            await asyncio.gather(training, return_exceptions=True)
        if publishing is not None:
            try:
                await asyncio.wait_for(publishing, timeout=FLUSH_ON_EXIT_S)
            except TimeoutError:
                logger.info("publisher stopped mid-send; the item stays queued")


@dataclass(frozen=True)
class _Opened:
    """What `run` opened before the event loop starts (and closes on the way out)."""

    settings: ValidatorSettings
    wallet: bt.Wallet  # signs btauth/1 requests to miners, and the API's hotkey auth
    state: ValidatorState
    engine: ScoringEngine
    chain: ChainView
    metrics: ValidatorMetrics
    looks_up: bool  # the catalogue check looks recordings up (an AcoustID key is set)

    @property
    def hotkey(self) -> str:
        return str(self.wallet.hotkey.ss58_address)


def run(settings: ValidatorSettings) -> None:
    """Run rounds until SIGTERM/SIGINT or `max_rounds`; resources are closed on the way out."""
    from tuneforge.chain.factory import open_chain
    from tuneforge.core.wallets import load_wallet
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.validator.metrics import ValidatorMetrics
    from tuneforge.validator.status import StatusServer

    configure_logging(settings.logging, "validator.log")
    _check_settings(settings)
    release_freed_memory_promptly()  # before the scoring workers spawn: they inherit it
    neuron = settings.neuron
    wallet = load_wallet(settings.wallet.name, settings.wallet.hotkey, settings.wallet.path)
    state_path = expand_path(neuron.state_path)
    state = _open_state(settings, state_path)
    try:
        # Before any chain connection: a validator that cannot score like the rest of the
        # network must not start at all.
        models = load_models(settings.scoring)
        # The scorer set as it holds on this network: the preference row by the consensus rule
        # over the head loaded now (D42); a head trained later counts from the next start.
        engine = ScoringEngine.create(
            state.history, models, workers=settings.scoring.workers, network=settings.network
        )
        check_scorer_set(engine, settings.network, settings.scoring.allow_missing)
        log_preference(engine)
        looks_up = check_catalogue(
            settings.network, settings.catalogue.acoustid_key, settings.scoring.allow_missing
        )
        chain = open_chain(settings.network, settings.netuid, wallet, settings.localnet.path)
    except BaseException:
        state.close()
        raise
    metrics = ValidatorMetrics()
    metrics.watch_outbox(state.outbox.depth)
    metrics.set_emas(state.miners.emas())
    status = (
        StatusServer(state_path, neuron.status_port, metrics.registry)
        if neuron.status_port
        else None
    )
    opened = _Opened(settings, wallet, state, engine, chain, metrics, looks_up)
    try:
        logger.info("scoring engine warmed up in {:.1f} s", engine.warm_up())
        logger.info(
            "validator {} on netuid {} ({}), state {} at round {}",
            opened.hotkey,
            settings.netuid,
            settings.network,
            state_path,
            state.rounds.completed(),
        )
        if status is not None:
            status.start()
        asyncio.run(_main(opened))
    finally:
        if status is not None:
            status.stop()
        engine.close()
        chain.close()
        state.close()
        logger.info("validator stopped")


def _check_settings(settings: ValidatorSettings) -> None:
    """Flag combinations that cannot work, refused before anything is opened."""
    neuron, api = settings.neuron, settings.api
    if neuron.min_challenge_seconds > neuron.max_challenge_seconds:
        raise ValidatorStartupError("--neuron.min_challenge_seconds exceeds max_challenge_seconds")
    if (api.publish or api.jobs) and not api.url:
        raise ValidatorStartupError("--api.publish / --api.jobs need --api.url (the API base URL)")


def _open_state(settings: ValidatorSettings, state_path: Path) -> ValidatorState:
    """The state file with its history budgets and the weight rule's parameters."""
    from tuneforge.validator.state import StateError, ValidatorState

    neuron = settings.neuron
    try:
        state = ValidatorState(
            state_path,
            int(neuron.history_mb_per_miner * 1_000_000),
            int(neuron.history_mb_total * 1_000_000),
        )
    except StateError as exc:
        raise ValidatorStartupError(str(exc)) from exc
    state.weights.set_rule(neuron.weights_exponent, neuron.weights_top_k)
    return state


async def _main(opened: _Opened) -> None:
    """The clients live on this event loop: opened here, closed here."""
    from tuneforge.validator.query import MinerClient

    settings = opened.settings
    neuron = settings.neuron
    client = MinerClient(opened.wallet, neuron.max_response_bytes, neuron.max_audio_seconds)
    api: ApiClient | None = None
    catalogue: CatalogueClient | None = None
    try:
        api = _api_client(settings, opened.wallet)
        catalogue = _catalogue_client(settings) if opened.looks_up else None
        await _serve(*_services(opened, client, api, catalogue))
    finally:
        await client.aclose()
        if catalogue is not None:
            await catalogue.aclose()
        if api is not None:
            await api.aclose()


def _api_client(settings: ValidatorSettings, wallet: HotkeySigner) -> ApiClient | None:
    """The API client when publishing, serving jobs or checking copies needs one."""
    from tuneforge.validator.api_client import ApiClient

    api = settings.api
    wants_api = api.publish or api.jobs
    if not (wants_api or (api.copy_check and api.url)):
        return None
    try:
        return ApiClient(api.url, wallet, api.timeout_s)
    except ValueError as exc:
        raise ValidatorStartupError(str(exc)) from exc


def _catalogue_client(settings: ValidatorSettings) -> CatalogueClient:
    from tuneforge.validator.catalogue import CatalogueClient

    catalogue = settings.catalogue
    try:
        return CatalogueClient(catalogue.acoustid_key, catalogue.url, wait_s=catalogue.wait_s)
    except ValueError as exc:
        raise ValidatorStartupError(str(exc)) from exc


def _services(
    opened: _Opened, client: MinerClient, api: ApiClient | None, catalogue: CatalogueClient | None
) -> tuple[ValidatorLoop, asyncio.Event, Publisher | None, PreferenceTrainer | None]:
    """The round loop and, with an API, the publisher, the job worker and the trainer."""
    from tuneforge.validator.copies import CopyChecker
    from tuneforge.validator.jobs import JobWorker
    from tuneforge.validator.loop import ValidatorLoop
    from tuneforge.validator.publisher import Publisher
    from tuneforge.validator.round import RoundRunner

    settings, hotkey, state = opened.settings, opened.hotkey, opened.state
    api_settings = settings.api
    copies = CopyChecker(api if api_settings.copy_check else None, catalogue)
    runner = RoundRunner(settings, hotkey, state, client, opened.engine, opened.metrics, copies)
    publisher = None
    if api is not None:
        publisher = Publisher.from_settings(state, api, opened.metrics, api_settings)
    wake = publisher.wake.set if publisher is not None else (lambda: None)
    jobs = (
        JobWorker(settings, hotkey, runner, api, on_enqueued=wake)
        if api is not None and api_settings.jobs
        else None
    )
    loop = ValidatorLoop(settings, hotkey, opened.chain, state, runner, jobs, on_round=wake)
    trainer = None
    if api is not None and api_settings.preference_train_interval_s > 0:
        # Imported only here: the head's recipe needs torch (~200 MB resident), which a
        # validator that does not train must not carry through its rounds.
        from tuneforge.validator.preference_training import PreferenceTrainer

        out = expand_path(api_settings.preference_dir)
        trainer = PreferenceTrainer(
            api,
            opened.engine.models,
            out,
            out.with_name(out.name + "-audio"),
            api_settings.preference_train_interval_s,
        )
    return loop, asyncio.Event(), publisher, trainer
