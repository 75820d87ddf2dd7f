"""What a person meets first in the API: Swagger UI (/docs) and ReDoc (/redoc) work offline
(their pages load only assets the API serves from the package, and a headless Chromium renders
the operations list), and a request the API refuses says which field is wrong."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.api_server import (
    ServerThread,
    make_chain,
    make_settings,
    new_customer,
    running_api,
)
from tests.test_api_leaderboard import chromium, find_chromium

KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    tmp = tmp_path_factory.mktemp("api_docs_ui")
    chain_path, _ = make_chain(tmp)
    settings = make_settings(tmp, chain_path)
    with running_api(settings) as running:
        KEY["auth"] = f"Bearer {new_customer(settings)[1]}"
        yield running


def generate(server: ServerThread, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/music/generate",
        content=content,
        headers={"Authorization": KEY["auth"], "Content-Type": "application/json"},
        timeout=10,
    )


def test_a_bad_field_value_is_named_in_the_error(server: ServerThread) -> None:
    response = generate(server, b'{"prompt": "calm piano", "key": "H dorian"}')
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("key: ") and "Value error" not in detail, detail


def test_a_body_that_is_not_json_says_so(server: ServerThread) -> None:
    response = generate(server, b"prompt=calm piano")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("the request body is not valid JSON"), detail
    assert not detail.startswith("0:")


def asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_api_itself(server: ServerThread, page: str) -> None:
    html = httpx.get(server.url + page, timeout=10).text
    urls = asset_urls(html)
    assert urls, html
    for url in urls:
        # No CDN, no Google fonts: every script/style/icon is a path on this server.
        assert url.startswith("/docs/static/"), url
        asset = httpx.get(server.url + url, timeout=10)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000
    assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html


def test_only_the_known_asset_names_are_served(server: ServerThread) -> None:
    for name in ("core.py", "..%2F..%2Fapp.py", "swagger-ui-bundle.js.map", "%2Fetc%2Fpasswd"):
        assert httpx.get(f"{server.url}/docs/static/{name}", timeout=10).status_code == 404


def test_the_openapi_description_points_at_the_repository_docs(server: ServerThread) -> None:
    description = httpx.get(server.url + "/openapi.json", timeout=10).json()["info"]["description"]
    assert "See API.md" not in description and "docs/api.md" in description


@pytest.mark.slow
def test_headless_chromium_renders_the_swagger_operations_list(
    server: ServerThread, tmp_path: Path
) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium not found: install Debian's `chromium` package to run this test")
    dom = chromium(binary, tmp_path / "profile", "--dump-dom", server.url + "/docs")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # Swagger UI drew one block per operation, e.g. the customer's generate call.
    assert len(re.findall(r'class="opblock opblock-', html)) >= 10, html[:2000]
    assert "/api/v1/music/generate" in html
