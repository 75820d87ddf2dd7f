"""btauth/1 signing of miner <-> validator HTTP, over `bittensor.http_auth` (DESIGN.md §2-3).

Requests are signed by the caller's hotkey and bound to the receiver's hotkey
(`X-Bittensor-Receiver`), so a request captured on its way to one miner cannot be replayed to
another. Responses are signed by the miner's hotkey and bound to the caller, so the validator
knows which hotkey produced the audio.

Response convention: the signed payload uses the method `RESPONSE` and the path
`"<request method> <request path>"` (e.g. `RESPONSE` + `POST /v1/generate`). Neither can occur in
a request — `RESPONSE` is no HTTP method a server routes and a request target cannot contain a
space — so a request signature can never pass as a response signature or the other way round
(domain separation), even when the signer and the bytes are the same. Responses are not checked
against a replay store: a response is only ever accepted by the one caller it is bound to, on
the connection that carried its request, within the freshness window.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Final, TypeAlias

import bittensor as bt
import httpx
from bittensor import http_auth
from bittensor.sp_core import Keypair
from loguru import logger

from tuneforge.auth.nonces import MemoryNonceStore, NonceStore
from tuneforge.core.errors import TuneForgeError

# What may sign: a Wallet (its hotkey is read from disk on every signature) or an unlocked hotkey
# Keypair such as `wallet.hotkey`, which signs without touching the key file.
SigningKey: TypeAlias = bt.Wallet | Keypair

RESPONSE_METHOD: Final = "RESPONSE"
# Forward clock drift tolerated between two hosts; NTP keeps honest hosts well inside it.
ALLOWED_SKEW_S: Final = 5.0
# A response is signed when its body is complete; this covers transferring up to the
# 32 MiB response cap over a slow link.
RESPONSE_MAX_AGE_S: Final = 120.0

_REASONS: Final[dict[type[http_auth.AuthError], str]] = {
    http_auth.MalformedAuth: "malformed",
    http_auth.WrongReceiver: "wrong_receiver",
    http_auth.StaleRequest: "stale",
    http_auth.ReplayedRequest: "replayed",
    http_auth.BadSignature: "bad_signature",
}


class AuthFailure(TuneForgeError):
    """A signature check failed. `kind` is a stable short code, `reason` a safe message.

    Messages never echo signatures or payloads, so they may be returned to the caller.
    """

    def __init__(self, reason: str, kind: str = "malformed", status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.code = kind
        self.status = status


def _failure(exc: http_auth.AuthError, what: str) -> AuthFailure:
    kind = next((k for cls, k in _REASONS.items() if isinstance(exc, cls)), "malformed")
    return AuthFailure(f"{what} authentication failed ({kind}): {exc}", kind=kind)


def _response_path(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def sign_request(
    wallet: SigningKey, method: str, path: str, body: bytes, receiver_ss58: str
) -> dict[str, str]:
    """btauth/1 headers for a request from `wallet`'s hotkey (or a hotkey Keypair) to the hotkey
    `receiver_ss58`.

    `path` must be the request target exactly as sent (including any query string).
    """
    return http_auth.sign(wallet, method=method, path=path, body=body, receiver_ss58=receiver_ss58)


class BtAuth(httpx.Auth):
    """btauth/1 as an httpx auth hook: signs each request from `signer` to `receiver_ss58`
    over the exact bytes and request target httpx sends, so no caller merges headers by hand."""

    requires_request_body = True  # the signature covers the body

    def __init__(self, signer: SigningKey, receiver_ss58: str) -> None:
        self.signer = signer
        self.receiver_ss58 = receiver_ss58

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")  # path and query, as sent
        request.headers.update(
            sign_request(self.signer, request.method, target, request.content, self.receiver_ss58)
        )
        yield request


def verify_request(
    headers: Mapping[str, str],
    body: bytes,
    method: str,
    path: str,
    self_hotkey_ss58: str,
    nonce_store: NonceStore,
    max_age_s: float = 30.0,
) -> str:
    """Authenticate a request addressed to `self_hotkey_ss58`; returns the caller's hotkey.

    `body` must be the raw received bytes. Raises AuthFailure (401) on any failure: missing or
    malformed headers, another receiver, a stale or future nonce, a bad signature, or a
    replayed nonce (recorded in `nonce_store` only after the signature verified).
    """
    retention = getattr(nonce_store, "retention_seconds", None)
    if retention is not None and retention < max_age_s + ALLOWED_SKEW_S:
        # A nonce forgotten while still fresh could be replayed: a configuration error.
        raise ValueError(
            f"nonce store keeps nonces {retention:g}s, less than the "
            f"{max_age_s + ALLOWED_SKEW_S:g}s freshness window"
        )
    try:
        caller = http_auth.verify(
            headers,
            body,
            method=method,
            path=path,
            self_hotkey_ss58=self_hotkey_ss58,
            max_age=max_age_s,
            allowed_skew=ALLOWED_SKEW_S,
            nonce_store=nonce_store,
        )
    except http_auth.AuthError as exc:
        failure = _failure(exc, "request")
        logger.debug("refused {} {}: {}", method, path, failure.reason)
        raise failure from None
    return caller.hotkey_ss58


def sign_response(
    wallet: SigningKey, method: str, path: str, body: bytes, receiver_ss58: str
) -> dict[str, str]:
    """btauth/1 headers proving `wallet`'s hotkey (or a hotkey Keypair) produced `body` for the
    caller `receiver_ss58`.

    `method` and `path` are those of the request being answered (see the module docstring).
    """
    return http_auth.sign(
        wallet,
        method=RESPONSE_METHOD,
        path=_response_path(method, path),
        body=body,
        receiver_ss58=receiver_ss58,
    )


def verify_response(
    headers: Mapping[str, str],
    body: bytes,
    method: str,
    path: str,
    expected_signer_ss58: str,
    self_hotkey_ss58: str,
) -> None:
    """Check that `body` was signed by `expected_signer_ss58` for us, recently.

    Raises AuthFailure on a missing/malformed signature, another signer (`wrong_signer`), a
    response bound to another caller, a stale response or a bad signature.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    signer = lowered.get(http_auth.HEADER_HOTKEY.lower())
    if signer is not None and signer != expected_signer_ss58:
        raise AuthFailure(
            "response authentication failed (wrong_signer): signed by another hotkey than "
            "the one queried",
            kind="wrong_signer",
        )
    try:
        http_auth.verify(
            headers,
            body,
            method=RESPONSE_METHOD,
            path=_response_path(method, path),
            self_hotkey_ss58=self_hotkey_ss58,
            max_age=RESPONSE_MAX_AGE_S,
            allowed_skew=ALLOWED_SKEW_S,
            # Each response is checked once by its one caller; no shared replay state needed.
            nonce_store=MemoryNonceStore(retention_seconds=RESPONSE_MAX_AGE_S + ALLOWED_SKEW_S),
        )
    except http_auth.AuthError as exc:
        raise _failure(exc, "response") from None
