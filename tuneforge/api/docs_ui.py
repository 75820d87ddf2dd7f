"""Swagger UI (`/docs`) and ReDoc (`/redoc`) served from package files, never from a CDN.

FastAPI's default pages load their JavaScript and CSS from jsdelivr, so on an offline host (or
behind a strict egress firewall) `/docs` is a blank page. The assets ship in the
`fastapi-offline` wheel (MIT; Swagger UI Apache-2.0, ReDoc MIT) and are served from here under
`/docs/static/`; only the four known file names are served, so no path ever reaches the disk.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

STATIC_PREFIX = "/docs/static"
# name -> media type; anything else under STATIC_PREFIX is a 404.
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
# The assets never change for an installed version: let browsers keep them for a day.
CACHE_CONTROL = "public, max-age=86400"


def asset_dir() -> Traversable:
    """The packaged Swagger UI / ReDoc files (an import error here names the missing extra)."""
    try:
        import fastapi_offline
    except ImportError as exc:  # the `api` extra was not installed
        raise RuntimeError(
            "the API docs need the fastapi-offline package: pip install -e '.[api]'"
        ) from exc
    return files(fastapi_offline).joinpath("static")


def install(app: FastAPI) -> None:
    """Serve /docs and /redoc with local assets; the app must be built with docs_url=None and
    redoc_url=None so FastAPI's CDN pages are not registered first."""
    static = asset_dir()
    router = APIRouter(include_in_schema=False)
    title = app.title

    @router.get("/docs")
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} — Swagger UI",
            swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PREFIX}/favicon.png",
        )

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} — ReDoc",
            redoc_js_url=f"{STATIC_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PREFIX}/favicon.png",
            # ReDoc would fetch Google fonts from the internet otherwise.
            with_google_fonts=False,
        )

    @router.get(STATIC_PREFIX + "/{name}")
    def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(status_code=404, detail="Not found")
        return Response(
            static.joinpath(name).read_bytes(),
            media_type=media_type,
            headers={"Cache-Control": CACHE_CONTROL},
        )

    app.include_router(router)
