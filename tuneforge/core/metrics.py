"""Prometheus exposition for every role: a `/metrics` route for the ASGI apps (miner, API), with
an allow-list of client networks. The validator serves its registry from its status server.

Each app gets its own `CollectorRegistry` instead of prometheus-client's global one, so several
apps (tests, localnet) can live in one process without "Duplicated timeseries" errors.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tuneforge.core.errors import TuneForgeError

METRICS_PATH = "/metrics"
LOOPBACK_ONLY = ("127.0.0.1/32", "::1/128")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class MetricsConfigError(TuneForgeError, ValueError):
    """An allow-list entry that is not an IP address or network."""

    code = "metrics_config"


def new_registry() -> CollectorRegistry:
    """A fresh registry for one app (never the process-global default)."""
    return CollectorRegistry(auto_describe=True)


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text exposition format."""
    return generate_latest(registry)


def negotiate(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """(body, content type) for a scraper's Accept header, exactly as prometheus-client's own
    server answers: OpenMetrics or text 1.0.0 when asked for, else text 0.0.4."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Allow-list entries ("10.0.0.5", "10.0.0.0/8", "::1") as networks; raises on garbage."""
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise MetricsConfigError(f"not an IP address or network: {entry!r}") from exc
    return tuple(networks)


@dataclass(frozen=True)
class ClientAllowList:
    """Which client addresses may scrape. An empty list allows nobody."""

    networks: tuple[IPNetwork, ...] = field(default_factory=lambda: parse_networks(LOOPBACK_ONLY))

    @classmethod
    def of(cls, entries: Iterable[str]) -> ClientAllowList:
        return cls(parse_networks(entries))

    def allows(self, host: str | None) -> bool:
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # a unix socket or a test client name: not an address we can vouch for
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.networks)


def metrics_endpoint(
    registry: CollectorRegistry, allow: ClientAllowList | None = None
) -> Callable[[Request], Response]:
    """A Starlette/FastAPI endpoint serving `registry`; clients outside `allow` get a JSON 403.

    The handler is sync on purpose: collectors may query a database, so it runs in the
    threadpool and never blocks the event loop.
    """
    allow_list = allow or ClientAllowList()

    def endpoint(request: Request) -> Response:
        host = request.client.host if request.client else None
        if not allow_list.allows(host):
            return JSONResponse({"detail": "Metrics are not available to this address"}, 403)
        body, content_type = negotiate(registry, request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})

    return endpoint
