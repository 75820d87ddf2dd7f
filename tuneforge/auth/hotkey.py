"""Hotkey-signature authentication of the TuneForge API (API.md, "Method 2").

A neuron signs `f"{nonce}.{hotkey}.{METHOD}.{path}.{sha256hex(body) or 'empty'}"` with its
sr25519 hotkey and sends `X-Validator-Hotkey`, `X-Validator-Nonce` and `X-Validator-Signature`.
The server checks, in this order: headers well-formed -> nonce inside the window -> hotkey
registered -> validator permit for writes -> signature -> nonce unseen (replay). Everything before
the signature needs only the headers, so it is checked before any body byte is read; a nonce is
remembered only once the signature proved who sent it, so a forger cannot burn someone else's
nonces.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import httpx

from tuneforge.auth.nonces import NonceStore
from tuneforge.chain.base import Neuron
from tuneforge.core.errors import TuneForgeError

HEADER_HOTKEY = "X-Validator-Hotkey"
HEADER_NONCE = "X-Validator-Nonce"
HEADER_SIGNATURE = "X-Validator-Signature"

DEFAULT_WINDOW_S = 300.0

_SS58_PATTERN = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{40,56}$")
_NONCE_PATTERN = re.compile(r"^\d{1,20}$")
_SIGNATURE_PATTERN = re.compile(r"^(0x)?[0-9a-fA-F]{128}$")

MetagraphLookup = Callable[[str], Neuron | None]


class Keypair(Protocol):
    """What signs: an unlocked sr25519 hotkey (`bittensor.Keypair`)."""

    @property
    def ss58_address(self) -> str: ...

    def sign(self, data: bytes) -> bytes | str: ...


class Wallet(Protocol):
    """A wallet signs with its hotkey (`bittensor.Wallet`)."""

    @property
    def hotkey(self) -> Keypair: ...


HotkeySigner = Keypair | Wallet


class HotkeyAuthError(TuneForgeError):
    """Refused hotkey authentication: `status` is 401 (credentials) or 403 (not allowed)."""

    code = "hotkey_auth"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def body_hash(body: bytes) -> str:
    """SHA-256 hex of the raw body, or "empty" for an empty body."""
    return hashlib.sha256(body).hexdigest() if body else "empty"


def signing_message(nonce: int | str, hotkey: str, method: str, path: str, body: bytes) -> str:
    return f"{nonce}.{hotkey}.{method.upper()}.{path}.{body_hash(body)}"


def _keypair_of(signer: HotkeySigner) -> Keypair:
    """A `bittensor.Wallet` signs with its hotkey; a bare Keypair signs itself."""
    # Checked by attribute, not isinstance: a Protocol check would read `Wallet.hotkey`, a
    # property that loads the key file.
    if hasattr(signer, "sign") and hasattr(signer, "ss58_address"):
        return cast(Keypair, signer)
    return signer.hotkey


def sign_hotkey_headers(
    keypair_or_wallet: HotkeySigner,
    method: str,
    path: str,
    body: bytes = b"",
    nonce_ns: int | None = None,
) -> dict[str, str]:
    """The three signature headers for one request (`path` without the query string)."""
    keypair = _keypair_of(keypair_or_wallet)
    nonce = time.time_ns() if nonce_ns is None else int(nonce_ns)
    hotkey = keypair.ss58_address
    signature = keypair.sign(signing_message(nonce, hotkey, method, path, body).encode())
    if isinstance(signature, str):
        signature = bytes.fromhex(signature.removeprefix("0x"))
    return {
        HEADER_HOTKEY: hotkey,
        HEADER_NONCE: str(nonce),
        HEADER_SIGNATURE: "0x" + signature.hex(),
    }


class HotkeyAuth(httpx.Auth):
    """The API's hotkey scheme as an httpx auth hook: signs each request with `signer`'s
    hotkey over the body and the path without its query string (what the API verifies)."""

    requires_request_body = True  # the signature covers the body

    def __init__(self, signer: HotkeySigner) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            sign_hotkey_headers(self.signer, request.method, request.url.path, request.content)
        )
        yield request


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value


@dataclass(frozen=True)
class HotkeyClaim:
    """What the headers claim, checked as far as headers alone allow (no body read yet)."""

    hotkey: str
    nonce: int
    nonce_text: str
    signature: bytes
    verifier: Any  # the sr25519 Keypair of `hotkey`


def check_hotkey_headers(
    headers: Mapping[str, str],
    metagraph_lookup: MetagraphLookup,
    now_ns: int | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    require_permit: bool = False,
) -> HotkeyClaim:
    """Everything that needs no body: headers well-formed -> nonce window -> registered ->
    validator permit (writes). Raises HotkeyAuthError(401|403, detail)."""
    from bittensor.sp_core import Keypair

    hotkey = _header(headers, HEADER_HOTKEY)
    nonce_text = _header(headers, HEADER_NONCE)
    signature_text = _header(headers, HEADER_SIGNATURE)
    if not hotkey or not nonce_text or not signature_text:
        raise HotkeyAuthError(401, "Missing hotkey signature headers")
    hotkey, nonce_text, signature_text = hotkey.strip(), nonce_text.strip(), signature_text.strip()
    if not _SS58_PATTERN.match(hotkey):
        raise HotkeyAuthError(401, "Malformed X-Validator-Hotkey")
    if not _NONCE_PATTERN.match(nonce_text):
        raise HotkeyAuthError(401, "Malformed X-Validator-Nonce")
    if not _SIGNATURE_PATTERN.match(signature_text):
        raise HotkeyAuthError(401, "Malformed X-Validator-Signature")
    try:
        verifier = Keypair(ss58_address=hotkey)
    except ValueError as exc:
        raise HotkeyAuthError(401, "Malformed X-Validator-Hotkey") from exc

    nonce = int(nonce_text)
    now = time.time_ns() if now_ns is None else now_ns
    if abs(now - nonce) > window_s * 1e9:
        raise HotkeyAuthError(401, f"Stale nonce: must be within {int(window_s)} s of server time")

    neuron = metagraph_lookup(hotkey)
    if neuron is None:
        raise HotkeyAuthError(403, "Hotkey is not registered on the subnet")
    # Before the signature: a permit is public chain state, and refusing here means a write
    # from a hotkey without one never costs us its body.
    if require_permit and not neuron.validator_permit:
        raise HotkeyAuthError(403, "Hotkey has no validator permit")
    signature = bytes.fromhex(signature_text.removeprefix("0x"))
    return HotkeyClaim(hotkey, nonce, nonce_text, signature, verifier)


def verify_hotkey_signature(
    claim: HotkeyClaim, method: str, path: str, digest: str, nonce_store: NonceStore
) -> str:
    """Check the signature over `digest` (`body_hash` of the body, or the hash the body must
    have), then spend the nonce; return the hotkey or raise HotkeyAuthError(401, detail)."""
    message = f"{claim.nonce_text}.{claim.hotkey}.{method.upper()}.{path}.{digest}".encode()
    try:
        valid = claim.verifier.verify(message, claim.signature)
    except ValueError:
        valid = False
    if not valid:
        raise HotkeyAuthError(401, "Invalid signature")
    if not nonce_store.check_and_store(claim.hotkey, claim.nonce):
        raise HotkeyAuthError(401, "Nonce already used")
    return claim.hotkey


def verify_hotkey_headers(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    metagraph_lookup: MetagraphLookup,
    nonce_store: NonceStore,
    now_ns: int | None = None,
    window_s: float = DEFAULT_WINDOW_S,
    require_permit: bool = False,
) -> str:
    """Return the caller's hotkey, or raise HotkeyAuthError(401|403, detail)."""
    claim = check_hotkey_headers(headers, metagraph_lookup, now_ns, window_s, require_permit)
    return verify_hotkey_signature(claim, method, path, body_hash(body), nonce_store)
