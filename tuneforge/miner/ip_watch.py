"""Keep the published axon right when the miner's public IP changes (home lines, cloud restarts).

An `IpSource` says what this machine's public IP is now; an `IpWatcher` asks it every
`miner.ip_check_interval_s` and calls `chain.serve(ip, port)` when the answer differs from the
address it last published. A source or chain failure is logged and retried at the next check:
the watcher never stops the miner, which keeps serving on its current address meanwhile.

Sources (`--miner.ip_source`): `static` (the configured `--axon.external_ip`),
`url:<http(s) URL answering the IP as plain text>`, `cmd:<shell command printing the IP>`, or
`none`. Left empty it is `static` when `--axon.external_ip` is set, else `none`.
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
from typing import Final, Protocol, runtime_checkable

import httpx
from loguru import logger

from tuneforge.chain.base import ChainError, ChainView
from tuneforge.core.errors import TuneForgeError
from tuneforge.core.periodic import Periodic

URL_PREFIX: Final = "url:"
CMD_PREFIX: Final = "cmd:"
STATIC: Final = "static"
NONE: Final = "none"
# An IP as text is at most 45 characters (IPv6 with an embedded IPv4); a source answering more
# than this is not answering an IP, and nothing larger is read from the network.
MAX_ANSWER_BYTES: Final = 256
DEFAULT_SOURCE_TIMEOUT_S: Final = 10.0
STOP_WAIT_S: Final = 5.0


class IpSourceError(TuneForgeError):
    """The source could not tell the current IP this time (retried at the next check)."""

    code = "ip_source"


class IpSourceConfigError(TuneForgeError, ValueError):
    """`--miner.ip_source` names no usable source; the message says what to write."""

    code = "ip_source_config"


@runtime_checkable
class IpSource(Protocol):
    """Where the miner learns its public IP."""

    description: str  # for logs, e.g. "url:https://api.ipify.org"

    def current_ip(self) -> str:
        """This machine's public IP now, validated; raises IpSourceError."""
        ...


def parse_ip(text: str) -> str:
    """The single IP address in `text` (surrounding whitespace allowed), normalised.

    Refuses anything a validator could not call: empty, not an address, 0.0.0.0/::, multicast.
    """
    candidate = text.strip()
    if not candidate:
        raise IpSourceError("the IP source answered nothing")
    if len(candidate) > 64 or any(ch.isspace() for ch in candidate):
        raise IpSourceError(f"the IP source answered {candidate[:32]!r}…, not one IP address")
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        raise IpSourceError(f"the IP source answered {candidate!r}, not an IP address") from None
    if address.is_unspecified or address.is_multicast:
        raise IpSourceError(f"the IP source answered {address}, which validators cannot call")
    return str(address)


class StaticIpSource:
    """The operator's configured `--axon.external_ip`."""

    def __init__(self, ip: str) -> None:
        try:
            self.ip = parse_ip(ip)
        except IpSourceError as exc:
            raise IpSourceConfigError(f"--axon.external_ip: {exc}") from None
        self.description = f"static {self.ip}"

    def current_ip(self) -> str:
        return self.ip


class UrlIpSource:
    """GET a URL that answers the caller's IP as text (e.g. https://api.ipify.org).

    The answer is untrusted: read with a timeout, at most MAX_ANSWER_BYTES, no redirects.
    """

    def __init__(self, url: str, timeout_s: float = DEFAULT_SOURCE_TIMEOUT_S) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise IpSourceConfigError(f"ip source URL {url!r} must be http:// or https://")
        self.url = url
        self.timeout_s = timeout_s
        self.description = f"{URL_PREFIX}{url}"

    def current_ip(self) -> str:
        try:
            with (
                httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client,
                client.stream("GET", self.url, headers={"Accept": "text/plain"}) as response,
            ):
                if response.status_code != 200:
                    raise IpSourceError(f"{self.url} answered HTTP {response.status_code}")
                answer = bytearray()
                for chunk in response.iter_bytes():
                    answer += chunk
                    if len(answer) > MAX_ANSWER_BYTES:
                        raise IpSourceError(
                            f"{self.url} answered more than {MAX_ANSWER_BYTES} bytes"
                        )
        except httpx.HTTPError as exc:
            raise IpSourceError(f"{self.url} unreachable: {type(exc).__name__}: {exc}") from None
        return parse_ip(answer.decode("utf-8", errors="replace"))


class CommandIpSource:
    """Run an operator-configured shell command that prints the IP (e.g. a `dig` query).

    The command comes from the operator's own settings, so running it through the shell is
    intended; its output is still validated like any other answer.
    """

    def __init__(self, command: str, timeout_s: float = DEFAULT_SOURCE_TIMEOUT_S) -> None:
        if not command.strip():
            raise IpSourceConfigError("ip source 'cmd:' needs a command after the colon")
        self.command = command
        self.timeout_s = timeout_s
        self.description = f"{CMD_PREFIX}{command}"

    def current_ip(self) -> str:
        try:
            done = subprocess.run(
                self.command,
                shell=True,
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise IpSourceError(f"{self.command!r} ran over {self.timeout_s:g} s") from None
        except OSError as exc:
            raise IpSourceError(f"{self.command!r} could not run: {exc}") from None
        if done.returncode != 0:
            stderr = done.stderr[:200].decode("utf-8", errors="replace").strip()
            raise IpSourceError(f"{self.command!r} exited {done.returncode}: {stderr}")
        return parse_ip(done.stdout[:MAX_ANSWER_BYTES].decode("utf-8", errors="replace"))


def check_ip_source_spec(spec: str) -> str:
    """Validate the `--miner.ip_source` text (shape only); returns it stripped."""
    spec = spec.strip()
    if spec in ("", STATIC, NONE) or spec.startswith((URL_PREFIX, CMD_PREFIX)):
        return spec
    raise IpSourceConfigError(
        f"ip_source {spec!r} is none of: static | none | url:<http(s) URL> | cmd:<command>"
    )


def ip_source_from_spec(
    spec: str, external_ip: str, timeout_s: float = DEFAULT_SOURCE_TIMEOUT_S
) -> IpSource | None:
    """The source `spec` names (see the module docstring); None when IPs are not watched."""
    spec = check_ip_source_spec(spec)
    if spec == "":
        spec = STATIC if external_ip else NONE
    if spec == NONE:
        return None
    if spec == STATIC:
        if not external_ip:
            raise IpSourceConfigError("ip_source 'static' needs --axon.external_ip")
        return StaticIpSource(external_ip)
    if spec.startswith(URL_PREFIX):
        return UrlIpSource(spec[len(URL_PREFIX) :].strip(), timeout_s)
    return CommandIpSource(spec[len(CMD_PREFIX) :].strip(), timeout_s)


class IpWatcher:
    """Re-publishes `ip:port` on the chain whenever the source reports a new IP."""

    def __init__(
        self,
        chain: ChainView,
        source: IpSource,
        port: int,
        interval_s: float = 300.0,
        published_ip: str | None = None,
    ) -> None:
        self.chain = chain
        self.source = source
        self.port = port
        self.interval_s = interval_s
        self._published_ip = published_ip
        self._lock = threading.Lock()  # check_once may run from the thread and from a caller
        # A check in progress may be waiting on its source or the chain (a daemon thread: it
        # cannot hold the process open), so stopping waits only briefly.
        self._watch = Periodic("tuneforge-ip-watch", interval_s, self._check_logged, STOP_WAIT_S)

    @property
    def published_ip(self) -> str | None:
        """The IP this watcher (or startup) last published successfully."""
        return self._published_ip

    def check_once(self) -> bool:
        """Ask the source once; publish if the IP changed. True when a new IP was published.

        Never raises for source or chain failures: they are logged, and the next check retries.
        """
        with self._lock:
            try:
                ip = self.source.current_ip()
            except IpSourceError as exc:
                logger.warning("public IP check failed ({}): {}", self.source.description, exc)
                return False
            if ip == self._published_ip:
                return False
            try:
                self.chain.serve(ip, self.port)
            except ChainError as exc:
                logger.warning(
                    "public IP is now {} but publishing {}:{} failed, retrying in {:g} s: {}",
                    ip,
                    ip,
                    self.port,
                    self.interval_s,
                    exc,
                )
                return False
            previous, self._published_ip = self._published_ip, ip
            logger.info(
                "public IP changed {} -> {}: published {}:{} on netuid {}",
                previous or "(none)",
                ip,
                ip,
                self.port,
                self.chain.netuid,
            )
            return True

    def start(self) -> None:
        """Check every `interval_s` in a daemon thread until `stop()`."""
        if not self._watch.start():
            return
        logger.info(
            "watching the public IP ({}) every {:g} s", self.source.description, self.interval_s
        )

    def stop(self) -> None:
        self._watch.stop()

    def _check_logged(self) -> None:
        try:
            self.check_once()
        except Exception:  # a bug in a custom source must not end the watching for good
            logger.exception("public IP check crashed; retrying in {:g} s", self.interval_s)
