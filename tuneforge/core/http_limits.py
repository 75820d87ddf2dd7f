"""Limits every TuneForge HTTP server applies before a request reaches the app (issue 11).

uvicorn's default parser (httptools) buffers request heads of any size: a 16 MiB header was
processed. Servers we start use h11 with a bound on the request head instead, and answer a head
over the bound with 431 (h11's own hint) rather than uvicorn's generic 400. The same bound is
also checked as total header bytes inside the API, for deployments that choose another server.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

# Request line plus all headers. A signed neuron request needs well under 1 KiB; 32 KiB leaves
# room for proxies' forwarding headers and long cookies.
MAX_HEADER_BYTES = 32 * 1024

_431_BODY = b'{"detail": "Request header fields too large"}'


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering an over-long request head with 431. Module level, so
    uvicorn can hand it to worker processes."""

    def send_400_response(self, msg: str) -> None:
        pending, _closed = self.conn.trailing_data
        if len(pending) <= MAX_HEADER_BYTES:
            super().send_400_response(msg)
            return
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(_431_BODY)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + _431_BODY
        )
        self.transport.close()


def uvicorn_limits() -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` / `uvicorn.run` that bound the request head."""
    return {"http": BoundedH11Protocol, "h11_max_incomplete_event_size": MAX_HEADER_BYTES}
