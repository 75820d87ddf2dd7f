"""The TuneForge API application (API.md): `create_app(settings, chain)`.

The app object is complete after `create_app` (so tests may drive it over an in-process
transport); the lifespan only starts the background metagraph refresher and the job sweeper.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger

from tuneforge.api import db as dbmod
from tuneforge.api import deps, docs_ui, openapi, webhooks
from tuneforge.api.context import ApiContext
from tuneforge.api.fingerprints import FingerprintService
from tuneforge.api.fingerprints import router as fingerprints_router
from tuneforge.api.jobs import JobService
from tuneforge.api.leaderboard import Leaderboard
from tuneforge.api.leaderboard import router as leaderboard_router
from tuneforge.api.metrics import ApiMetrics, DatabaseCollector, MetricsMiddleware, leaf_routes
from tuneforge.api.middleware import GuardMiddleware
from tuneforge.api.ratelimit import rate_limiter_from_url
from tuneforge.api.routes_customer import router as customer_router
from tuneforge.api.routes_neuron import router as neuron_router
from tuneforge.api.routes_votes import router as votes_router
from tuneforge.api.routes_webhooks import router as webhooks_router
from tuneforge.api.scores import ScoreService
from tuneforge.api.settings import ApiSettings
from tuneforge.api.storage import AudioStore
from tuneforge.api.validation_text import describe_all
from tuneforge.api.votes import VoteService
from tuneforge.api.webhooks import WebhookPolicy, WebhookSender
from tuneforge.auth.nonces import nonce_store_from_url
from tuneforge.chain.base import ChainView
from tuneforge.chain.metagraph import ChainSource, MetagraphCache
from tuneforge.core.config import expand_path
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.metrics import ClientAllowList, metrics_endpoint, new_registry

SETTINGS_ENV = "TUNEFORGE_API_SETTINGS_JSON"


def chain_factory_for(settings: ApiSettings) -> Callable[[], ChainView]:
    def factory() -> ChainView:
        from tuneforge.chain.factory import open_chain

        return open_chain(
            settings.chain.network,
            settings.chain.netuid,
            None,
            localnet_path=settings.localnet.path,
        )

    return factory


def build_context(settings: ApiSettings, chain: ChainSource, migrate: bool = True) -> ApiContext:
    database = dbmod.Database.open(settings.database_url)
    if migrate:
        dbmod.upgrade(database)
    store = AudioStore(expand_path(settings.audio_dir))
    metagraph = MetagraphCache(chain, settings.metagraph_refresh_s)
    metagraph.try_refresh()  # a chain down at startup: auth refuses until it is back
    scores = ScoreService(database, store)
    ctx = ApiContext(
        settings=settings,
        db=database,
        store=store,
        jobs=JobService(
            database,
            store,
            settings.job_lease_s,
            settings.job_deadline_s,
            on_finished=webhooks.enqueue,
        ),
        scores=scores,
        limiter=rate_limiter_from_url(settings.redis_url or None),
        # Nonces are remembered for twice the window: a nonce is fresh for ±window.
        nonces=nonce_store_from_url(
            settings.redis_url or None, "tuneforge:api:nonce", 2 * settings.nonce_window_s
        ),
        metagraph=metagraph,
        # One registry per app, never the global one: several apps may share a process.
        metrics=ApiMetrics(new_registry()),
        leaderboard=Leaderboard(
            scores, settings.leaderboard_cache_s, settings.leaderboard_max_miners
        ),
        fingerprints=FingerprintService(database),
        webhooks=WebhookSender(
            database,
            WebhookPolicy(
                allow_private=settings.webhook_allow_private,
                timeout_s=settings.webhook_timeout_s,
                max_attempts=settings.webhook_max_attempts,
                retry_base_s=settings.webhook_retry_base_s,
                retry_max_s=settings.webhook_retry_max_s,
            ),
        ),
        votes=VoteService(database),
    )
    ctx.metrics.registry.register(DatabaseCollector(ctx))
    return ctx


def _sweeper(ctx: ApiContext, stop: threading.Event) -> None:
    while not stop.wait(ctx.settings.sweeper_interval_s):
        try:
            ctx.jobs.sweep()
        except Exception:  # a failed sweep is retried next period; the loop must live on
            logger.exception("job sweep failed")


# Every router the app serves, in the order they are included.
ROUTERS = (
    customer_router,
    neuron_router,
    leaderboard_router,
    fingerprints_router,
    votes_router,
    webhooks_router,
)


def create_app(
    settings: ApiSettings, chain: ChainSource | None = None, migrate: bool = True
) -> FastAPI:
    """The app; `chain` is a ChainView or (better) a factory opened on the chain thread."""
    ctx = build_context(settings, chain or chain_factory_for(settings), migrate=migrate)
    app = FastAPI(
        title="TuneForge API",
        version="1.0",
        description="Customers generate music with API keys; neurons read scores and validators "
        "publish rounds and deliver jobs with hotkey signatures. Reference: docs/api.md in the "
        "TuneForge repository; this page is served from the package (no CDN).",
        lifespan=_lifespan(ctx),
        # FastAPI's own pages load their assets from a CDN: docs_ui serves packaged copies.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    openapi.install(app)
    docs_ui.install(app)
    _install_error_handlers(app)
    app.get("/api/v1/health", tags=["health"])(app.get("/health", include_in_schema=False)(health))
    for router in ROUTERS:
        app.include_router(router)
    app.add_api_route(
        "/metrics",
        metrics_endpoint(ctx.metrics.registry, ClientAllowList.of(settings.metrics_allow)),
        methods=["GET"],
        include_in_schema=False,
    )
    app.add_middleware(
        GuardMiddleware,
        limiter=ctx.limiter,
        anonymous_limit=settings.anonymous_rate_limit_per_minute,
        body_limit=ctx.body_limit,
    )
    # Added last, so outermost: it also sees the guard's own 413 and 429 answers.
    routes = leaf_routes([*app.router.routes, *(r for router in ROUTERS for r in router.routes)])
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics, routes=routes)
    return app


def _lifespan(ctx: ApiContext) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the metagraph, the job sweeper and the webhook sender; stop them all at exit."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        ctx.metagraph.start()
        sweeper = threading.Thread(
            target=_sweeper, args=(ctx, stop), name="job-sweeper", daemon=True
        )
        sweeper.start()
        sender = threading.Thread(
            target=ctx.webhooks.loop,
            args=(stop, ctx.settings.webhook_poll_s),
            name="webhook-sender",
            daemon=True,
        )
        sender.start()
        logger.info("API up: database {}, audio in {}", ctx.db.url.split("@")[-1], ctx.store.root)
        try:
            yield
        finally:
            stop.set()
            ctx.metagraph.close()
            sweeper.join(timeout=5)
            sender.join(timeout=ctx.settings.webhook_timeout_s + 5)
            ctx.db.dispose()

    return lifespan


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TuneForgeError)
    async def _refused(_request: Request, exc: TuneForgeError) -> JSONResponse:
        # The one place a domain error becomes HTTP: its own status and caller-safe text.
        return JSONResponse(
            {"detail": exc.detail_text}, status_code=exc.status, headers=dict(exc.headers)
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_all(exc.errors())}, status_code=400)


def health(request: Request) -> JSONResponse:
    """No auth: database reachable, metagraph age, queue depth."""
    state = deps.context(request)
    try:
        queue_depth: int | None = state.jobs.queue_depth()  # doubles as the database ping
        database_ok = True
    except Exception as exc:  # any driver error means the database is unreachable
        logger.warning("health: database unreachable: {}", exc)
        queue_depth, database_ok = None, False
    snapshot = state.metagraph.snapshot
    age = state.metagraph.age_s()
    body: dict[str, Any] = {
        "status": "ok" if database_ok else "degraded",
        "database": database_ok,
        "metagraph_age_s": None if age is None else round(age, 3),
        "metagraph_block": None if snapshot is None else snapshot.block,
        "neurons": None if snapshot is None else len(snapshot.neurons),
        "queue_depth": queue_depth,
    }
    return JSONResponse(body, status_code=200 if database_ok else 503)


def app_from_env() -> FastAPI:
    """uvicorn factory for `tuneforge api serve` workers: settings travel as JSON in the env."""
    settings = ApiSettings.model_validate_json(os.environ[SETTINGS_ENV])
    return create_app(settings, migrate=False)
