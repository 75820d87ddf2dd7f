"""The shared metrics helper: per-app registries, the /metrics route and the status server."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CONTENT_TYPE_PLAIN_0_0_4, Counter
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.routing import Route

from tests.helpers.api_server import ServerThread
from tests.helpers.metrics_scrape import parse, value
from tuneforge.api.settings import ApiSettings
from tuneforge.core.metrics import (
    ClientAllowList,
    MetricsConfigError,
    metrics_endpoint,
    new_registry,
    parse_networks,
    render,
)


def counting_app(allow: ClientAllowList | None = None) -> tuple[Starlette, Counter]:
    registry = new_registry()
    hits = Counter("demo_hits", "hits", registry=registry)
    app = Starlette(routes=[Route("/metrics", metrics_endpoint(registry, allow))])
    return app, hits


def test_two_apps_in_one_process_keep_separate_registries_with_the_same_metric_names() -> None:
    first, first_hits = counting_app()
    second, second_hits = counting_app()  # the global registry would refuse this duplicate
    first_hits.inc(3)
    second_hits.inc(5)
    with ServerThread(first) as one, ServerThread(second) as two:
        a = httpx.get(f"{one.url}/metrics", timeout=5)
        b = httpx.get(f"{two.url}/metrics", timeout=5)
    assert a.status_code == b.status_code == 200
    assert a.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    assert value(parse(a.text), "demo_hits_total") == 3.0
    assert value(parse(b.text), "demo_hits_total") == 5.0


def test_the_route_negotiates_the_format_like_prometheus_clients_own_server() -> None:
    app, hits = counting_app()
    hits.inc()
    with ServerThread(app) as server:
        text = httpx.get(
            f"{server.url}/metrics",
            headers={"Accept": "text/plain;version=1.0.0;escaping=underscores"},
            timeout=5,
        )
        open_metrics = httpx.get(
            f"{server.url}/metrics",
            headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
            timeout=5,
        )
    assert text.headers["content-type"].startswith(CONTENT_TYPE_LATEST)
    assert value(parse(text.text), "demo_hits_total") == 1.0
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")


def test_a_client_outside_the_allow_list_gets_a_json_403() -> None:
    app, hits = counting_app(ClientAllowList.of(["10.0.0.0/8"]))
    hits.inc()
    with ServerThread(app) as server:
        response = httpx.get(f"{server.url}/metrics", timeout=5)
    assert response.status_code == 403
    assert response.json() == {"detail": "Metrics are not available to this address"}
    assert "demo_hits" not in response.text


def test_allow_list_matches_addresses_networks_and_ipv4_mapped_ipv6() -> None:
    default = ClientAllowList()
    assert default.allows("127.0.0.1") and default.allows("::1")
    assert default.allows("::ffff:127.0.0.1")  # dual-stack sockets report IPv4 like this
    assert not default.allows("192.168.1.5")
    assert not default.allows("testclient") and not default.allows(None)
    office = ClientAllowList.of(["10.1.0.0/16", "2001:db8::/32"])
    assert office.allows("10.1.200.3") and office.allows("2001:db8::7")
    assert not office.allows("10.2.0.1") and not office.allows("127.0.0.1")
    assert not ClientAllowList.of([]).allows("127.0.0.1")


def test_garbage_allow_list_entries_are_refused_with_the_entry_named() -> None:
    with pytest.raises(MetricsConfigError, match="'localhost'"):
        parse_networks(["127.0.0.1", "localhost"])
    with pytest.raises(ValidationError, match="10.0.0.300"):
        ApiSettings(metrics_allow=["10.0.0.300"])
    assert ApiSettings().metrics_allow == ["127.0.0.1", "::1"]


def test_render_is_the_text_exposition_of_the_registry() -> None:
    registry = new_registry()
    rounds = Counter("validator_rounds", "rounds", registry=registry)
    rounds.inc(3)
    assert value(parse(render(registry).decode()), "validator_rounds_total") == 3.0
