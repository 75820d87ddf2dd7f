"""Free 127.0.0.1 ports for local servers; an ASGI app served in a thread (benchmarks, tests)."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Listening ports are drawn from [LISTEN_PORT_FLOOR, the ephemeral range's floor): above the
# registered services most machines run, below every port the kernel lends to outgoing sockets.
LISTEN_PORT_FLOOR = 20000
PORT_TRIES = 64


def ephemeral_port_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int] | None:
    """The kernel's (low, high) ports for outgoing sockets and bind(0); None where unreadable."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def port_is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:`port` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(ephemeral: tuple[int, int] | None = None) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, chosen outside the ephemeral range.

    Why not bind(0): that port comes out of the range the kernel also lends to every outgoing
    connection. A server that starts seconds after its port was chosen (a child process still
    importing) can find a client socket sitting on it — CI once lost a localnet run to
    `[Errno 98] address already in use` that way. Below the range only explicit binds compete,
    and a random draw makes two callers choosing at once unlikely to meet.
    """
    low, _high = ephemeral or ephemeral_port_range() or (0, 0)
    if low - LISTEN_PORT_FLOOR >= PORT_TRIES:
        draw = random.SystemRandom()
        for _ in range(PORT_TRIES):
            port = draw.randrange(LISTEN_PORT_FLOOR, low)
            if port_is_free(port):
                return port
    # No room below the range (or no Linux range file): the kernel's choice is what is left.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Run `app` under uvicorn in a daemon thread; yields its base URL and stops it on exit."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
