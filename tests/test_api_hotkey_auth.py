"""Hotkey-signature verification (API.md "Method 2"), checked directly against real sr25519 keys."""

from __future__ import annotations

import hashlib
import time

import pytest
from bittensor.sp_core import Keypair

from tuneforge.auth.hotkey import (
    HotkeyAuthError,
    sign_hotkey_headers,
    signing_message,
    verify_hotkey_headers,
)
from tuneforge.auth.nonces import MemoryNonceStore
from tuneforge.chain.base import Metagraph, Neuron

PATH = "/api/v1/scores/best"
VALIDATOR = Keypair.create_from_uri("//AuthValidator")
READER = Keypair.create_from_uri("//AuthReader")
STRANGER = Keypair.create_from_uri("//AuthStranger")
METAGRAPH = Metagraph(
    netuid=234,
    block=10,
    neurons=(
        Neuron(0, VALIDATOR.ss58_address, "", 1000.0, True, None, 0),
        Neuron(1, READER.ss58_address, "", 0.0, False, "127.0.0.1:1", 0),
    ),
)


def verify(
    headers: dict[str, str],
    method: str = "GET",
    path: str = PATH,
    body: bytes = b"",
    store: MemoryNonceStore | None = None,
    **kwargs: object,
) -> str:
    return verify_hotkey_headers(
        headers, method, path, body, METAGRAPH.by_hotkey, store or MemoryNonceStore(), **kwargs
    )


def test_seed_recipe_from_the_public_docs_is_accepted() -> None:
    # The documentation's Python example, verbatim in substance: hex without 0x, "empty" body.
    nonce = str(time.time_ns())
    hotkey = READER.ss58_address
    message = f"{nonce}.{hotkey}.GET./api/v1/scores/best.empty"
    signature = READER.sign(message.encode()).hex()
    headers = {
        "X-Validator-Hotkey": hotkey,
        "X-Validator-Nonce": nonce,
        "X-Validator-Signature": signature,
    }
    assert verify(headers) == hotkey


def test_signed_headers_sign_the_documented_message_with_body_hash() -> None:
    body = b'{"x": 1}'
    headers = sign_hotkey_headers(VALIDATOR, "post", "/api/v1/scores", body, nonce_ns=123)
    expected = (
        f"123.{VALIDATOR.ss58_address}.POST./api/v1/scores.{hashlib.sha256(body).hexdigest()}"
    )
    assert signing_message(123, VALIDATOR.ss58_address, "post", "/api/v1/scores", body) == expected
    signature = bytes.fromhex(headers["X-Validator-Signature"].removeprefix("0x"))
    assert VALIDATOR.verify(expected.encode(), signature)


def test_stale_and_future_nonces_are_refused_with_401() -> None:
    for offset_s in (-301, 301):
        nonce = time.time_ns() + offset_s * 10**9
        with pytest.raises(HotkeyAuthError) as info:
            verify(sign_hotkey_headers(READER, "GET", PATH, nonce_ns=nonce))
        assert info.value.status == 401 and "Stale" in info.value.detail


def test_replayed_nonce_is_refused_with_401() -> None:
    store = MemoryNonceStore()
    headers = sign_hotkey_headers(READER, "GET", PATH)
    assert verify(headers, store=store) == READER.ss58_address
    with pytest.raises(HotkeyAuthError) as info:
        verify(headers, store=store)
    assert info.value.status == 401 and "already used" in info.value.detail


def test_tampered_body_and_wrong_path_and_wrong_method_are_refused_with_401() -> None:
    headers = sign_hotkey_headers(VALIDATOR, "POST", "/api/v1/scores", b'{"a": 1}')
    for method, path, body in [
        ("POST", "/api/v1/scores", b'{"a": 2}'),
        ("POST", "/api/v1/validator/jobs/claim", b'{"a": 1}'),
        ("PUT", "/api/v1/scores", b'{"a": 1}'),
    ]:
        with pytest.raises(HotkeyAuthError) as info:
            verify(headers, method=method, path=path, body=body)
        assert info.value.status == 401 and info.value.detail == "Invalid signature"


def test_unregistered_hotkey_is_refused_with_403_and_its_nonce_is_not_burned() -> None:
    store = MemoryNonceStore()
    headers = sign_hotkey_headers(STRANGER, "GET", PATH)
    with pytest.raises(HotkeyAuthError) as info:
        verify(headers, store=store)
    assert info.value.status == 403
    assert store.check_and_store(STRANGER.ss58_address, int(headers["X-Validator-Nonce"]))


def test_write_needs_a_validator_permit_but_reading_does_not() -> None:
    assert verify(sign_hotkey_headers(READER, "GET", PATH)) == READER.ss58_address
    with pytest.raises(HotkeyAuthError) as info:
        verify(sign_hotkey_headers(READER, "GET", PATH), require_permit=True)
    assert info.value.status == 403 and "permit" in info.value.detail
    assert verify(sign_hotkey_headers(VALIDATOR, "GET", PATH), require_permit=True)


def test_checks_run_in_the_documented_order() -> None:
    # stale + unregistered -> the window check (401) comes first
    stale = sign_hotkey_headers(STRANGER, "GET", PATH, nonce_ns=time.time_ns() - 10**12)
    with pytest.raises(HotkeyAuthError) as info:
        verify(stale)
    assert info.value.status == 401
    # unregistered + bad signature -> registration (403) comes before the signature
    forged = sign_hotkey_headers(READER, "GET", PATH)
    forged["X-Validator-Hotkey"] = STRANGER.ss58_address
    with pytest.raises(HotkeyAuthError) as info:
        verify(forged)
    assert info.value.status == 403
    # a bad signature does not consume the nonce (replay check comes after the signature)
    store = MemoryNonceStore()
    good = sign_hotkey_headers(READER, "GET", PATH)
    bad = dict(good, **{"X-Validator-Signature": "0x" + "00" * 64})
    with pytest.raises(HotkeyAuthError):
        verify(bad, store=store)
    assert verify(good, store=store) == READER.ss58_address


@pytest.mark.parametrize(
    "header, value",
    [
        ("X-Validator-Hotkey", "not-a-hotkey"),
        ("X-Validator-Nonce", "12ab"),
        ("X-Validator-Signature", "xyz"),
    ],
)
def test_malformed_headers_are_refused_with_401(header: str, value: str) -> None:
    headers = sign_hotkey_headers(READER, "GET", PATH)
    headers[header] = value
    with pytest.raises(HotkeyAuthError) as info:
        verify(headers)
    assert info.value.status == 401 and "Malformed" in info.value.detail


def test_missing_headers_are_refused_with_401() -> None:
    with pytest.raises(HotkeyAuthError) as info:
        verify({})
    assert info.value.status == 401


def test_httpx_hook_signs_path_without_query_and_the_sent_body() -> None:
    import httpx

    from tuneforge.auth.hotkey import HotkeyAuth

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    transport = httpx.MockTransport(answer)
    with httpx.Client(transport=transport, auth=HotkeyAuth(VALIDATOR)) as client:
        client.post("http://127.0.0.1:1/api/v1/scores?page=2", content=b'{"a": 1}')
    request = seen[0]
    signed = verify(request.headers, "POST", "/api/v1/scores", request.content)
    assert signed == VALIDATOR.ss58_address
    with pytest.raises(HotkeyAuthError):
        verify(request.headers, "POST", "/api/v1/scores", b'{"a": 2}')
