"""Start a miner: wallet → chain → backend → publish the axon → serve until stopped.

Publishing is idempotent and patient (miner/axon.py): a restart does not re-send an address the
chain already holds, and a serving rate limit or a chain outage never stops the HTTP server."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import threading
import time

from loguru import logger

from tuneforge.chain.base import ChainError, ChainView
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.logs import configure_logging
from tuneforge.generation.base import Backend, GenerationError
from tuneforge.generation.settings import GenerationSettings
from tuneforge.miner.axon import AxonPublisher
from tuneforge.miner.config import MinerSettings
from tuneforge.miner.ip_watch import (
    IpSource,
    IpSourceConfigError,
    IpSourceError,
    IpWatcher,
    StaticIpSource,
    ip_source_from_spec,
)


class MinerStartupError(TuneForgeError):
    """The miner cannot start; the message says what to fix."""

    code = "miner_startup"


class _Stopped(Exception):
    """SIGTERM after uvicorn's graceful shutdown (uvicorn re-raises the signal it caught)."""


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise _Stopped()


def published_address(settings: MinerSettings) -> tuple[str, int]:
    """The ip:port validators should call: the external one when given, else the bind address."""
    ip = settings.axon.external_ip or settings.axon.ip
    port = settings.axon.external_port or settings.axon.port
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise MinerStartupError(f"axon address {ip!r} is not an IP address") from None
    if address.is_unspecified:
        raise MinerStartupError(
            f"the server binds {ip}, which validators cannot call; pass "
            "--axon.external_ip with this machine's public IP (and --axon.external_port if "
            "a NAT maps the port)"
        )
    return str(address), port


# Networks where validators call the published address over the internet. `local` (a local
# subtensor), `localnet` (LocalChain) and ws:// endpoints are test setups where a loopback or
# private address is the right one to publish.
PUBLIC_NETWORKS = frozenset({"finney", "test", "archive"})


def is_public_network(network: str) -> bool:
    return network in PUBLIC_NETWORKS or network.startswith("wss://")


def refuse_unreachable(ip: str, network: str) -> None:
    """On a public network, refuse an address no validator can call: documentation
    placeholders (203.0.113.0/24 …), private, loopback, link-local, reserved, multicast.

    Publishing one would register a miner that silently earns nothing (issue 13: the example
    config's placeholder went on chain without a word)."""
    if not is_public_network(network):
        return
    address = ipaddress.ip_address(ip)
    if address.is_global:
        return
    kind = next(
        (
            name
            for name, flag in (
                ("a loopback", address.is_loopback),
                ("a link-local", address.is_link_local),
                ("a multicast", address.is_multicast),
                ("a private or documentation (placeholder)", address.is_private),
            )
            if flag
        ),
        "a reserved",
    )
    raise MinerStartupError(
        f"{ip} is {kind} address that validators on {network} cannot reach; set "
        "TUNEFORGE_AXON__EXTERNAL_IP in miner.env (or --axon.external_ip) to this machine's "
        "public IP, or use --miner.ip_source url:https://api.ipify.org"
    )


def ip_source(settings: MinerSettings) -> IpSource | None:
    """The configured public-IP source (`--miner.ip_source`), or None when IPs are not watched."""
    try:
        return ip_source_from_spec(settings.miner.ip_source, settings.axon.external_ip)
    except IpSourceConfigError as exc:
        raise MinerStartupError(str(exc)) from None


def startup_address(settings: MinerSettings, source: IpSource | None) -> tuple[str, int]:
    """The ip:port to publish at startup: a dynamic source's answer, else `published_address`."""
    if source is None or isinstance(source, StaticIpSource):
        return published_address(settings)
    port = settings.axon.external_port or settings.axon.port
    try:
        return source.current_ip(), port
    except IpSourceError as exc:
        # Without an answer there is nothing right to publish; a restart (pm2) retries.
        raise MinerStartupError(
            f"could not read the public IP from {source.description}: {exc}"
        ) from None


def check_registered(chain: ChainView, hotkey: str, network: str, netuid: int) -> int:
    uid = chain.uid_of(hotkey)
    if uid is None:
        raise MinerStartupError(
            f"hotkey {hotkey} is not registered on netuid {netuid} ({network}); register it "
            f"first (e.g. `btcli subnet register --netuid {netuid}`, or scripts/register.sh)"
        )
    return uid


def load_backends(settings: GenerationSettings, devices: list[str]) -> list[Backend]:
    """One loaded model replica per device (`--miner.devices`), in device order: worker `i` of
    the queue generates on replica `i`, so every GPU given to the miner works at once."""
    replicas: list[Backend] = []
    for device in devices:
        replica = load_backend(settings.model_copy(update={"device": device}))
        logger.info("replica {} on {}", len(replicas), device)
        replicas.append(replica)
    return replicas


def load_backend(settings: GenerationSettings) -> Backend:
    """Create the backend and load its model before the axon is published: a first validator
    request must not pay minutes of loading (or downloading) and miss its deadline."""
    from tuneforge.generation.factory import create_backend

    started = time.perf_counter()
    try:
        backend = create_backend(settings)
        backend.load()
    except GenerationError as exc:
        raise MinerStartupError(f"could not load the {settings.backend} backend: {exc}") from exc
    logger.info(
        "{} backend ready with {} in {:.1f} s",
        backend.name,
        backend.model_id,
        time.perf_counter() - started,
    )
    return backend


def run(settings: MinerSettings) -> None:
    """Serve until SIGINT/SIGTERM; the chain client is opened once and closed on the way out."""
    import uvicorn

    from tuneforge.chain.factory import open_chain
    from tuneforge.core.http_limits import uvicorn_limits
    from tuneforge.core.wallets import load_wallet
    from tuneforge.miner.app import create_app

    configure_logging(settings.logging, "miner.log")
    # The address first: a wrong one is refused before a wallet, chain or model is touched.
    source = ip_source(settings)
    ip, port = startup_address(settings, source)
    refuse_unreachable(ip, settings.network)
    wallet = load_wallet(settings.wallet.name, settings.wallet.hotkey, settings.wallet.path)
    hotkey = wallet.hotkey.ss58_address
    chain = open_chain(settings.network, settings.netuid, wallet, settings.localnet.path)
    watcher: IpWatcher | None = None
    publisher: AxonPublisher | None = None
    try:
        uid = check_registered(chain, hotkey, settings.network, settings.netuid)
        devices = settings.miner.device_list(settings.generation.device)
        backends = load_backends(settings.generation, devices)
        app = create_app(settings, backends, chain, wallet)
        publisher = AxonPublisher(chain, hotkey, ip, port)
        try:
            publisher.start()
        except ChainError as exc:
            raise MinerStartupError(f"could not publish {ip}:{port}: {exc}") from exc
        if publisher.published.is_set():
            logger.info("uid {} serves {}:{} on netuid {}", uid, ip, port, settings.netuid)
        if source is not None:
            watcher = IpWatcher(chain, source, port, settings.miner.ip_check_interval_s, ip)
            watcher.start()
        config = uvicorn.Config(
            app,
            host=settings.axon.ip,
            port=settings.axon.port,
            log_level=settings.logging.level.lower(),
            access_log=False,
            # The app reads bodies itself with a hard cap; these bound what reaches it.
            limit_concurrency=256,
            timeout_keep_alive=30,
            **uvicorn_limits(),
        )
        if threading.current_thread() is threading.main_thread():
            # uvicorn drains requests on SIGTERM, then re-raises it to the handler found at
            # start; this one turns it into an exception so the cleanup below still runs.
            signal.signal(signal.SIGTERM, _stop_on_sigterm)
        with contextlib.suppress(_Stopped, KeyboardInterrupt):
            uvicorn.Server(config).run()
    finally:
        if publisher is not None:
            publisher.stop()
        if watcher is not None:
            watcher.stop()
        chain.close()
        logger.info("miner stopped")
