"""The validator's one HTTP client to the TuneForge API: hotkey-signed requests (API.md, method
2, via tuneforge.auth.hotkey), timeouts, and a cap on what is read back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from tuneforge.auth.hotkey import HotkeyAuth, HotkeySigner
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.publication import API_PREFIX

# API answers are small JSON documents; anything bigger is not an answer we need.
MAX_RESPONSE_BYTES = 1024 * 1024


class ApiUnavailable(TuneForgeError):
    """No usable answer: connection refused, timeout, or an oversized reply (retry later)."""

    status = 503
    code = "api_unavailable"


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def detail(self) -> str:
        """The API's `{"detail": ...}` text (or the start of the body), for logs."""
        try:
            detail = self.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        return str(detail if detail is not None else self.body[:200].decode(errors="replace"))


class ApiClient:
    """Signed requests to `base_url` over ONE shared httpx.AsyncClient."""

    def __init__(self, base_url: str, wallet: HotkeySigner, timeout_s: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"API url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.wallet = wallet
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            follow_redirects=False,
            trust_env=False,
            auth=HotkeyAuth(wallet),  # every request signed (API.md, method 2)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json",
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> ApiAnswer:
        """One signed request (`path` under /api/v1); raises ApiUnavailable when no answer
        (or one longer than `max_bytes`: audio downloads pass a larger cap)."""
        full_path = API_PREFIX + path
        headers = {"Content-Type": content_type} if body else {}
        try:
            async with self._client.stream(
                method, full_path, content=body, headers=headers
            ) as response:
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise ApiUnavailable(f"{method} {full_path}: reply over {len(data)} bytes")
                return ApiAnswer(response.status_code, bytes(data))
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{method} {full_path}: {type(exc).__name__}: {exc}") from exc

    async def post_json(self, path: str, payload: Any) -> ApiAnswer:
        return await self.request("POST", path, json.dumps(payload).encode())
