"""btauth/1 request and response signing between real temporary wallets."""

from __future__ import annotations

import time
from pathlib import Path

import bittensor as bt
import pytest
from bittensor import http_auth

from tests.helpers.wallets import make_wallet
from tuneforge.auth.btauth import (
    AuthFailure,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)
from tuneforge.auth.nonces import MemoryNonceStore
from tuneforge.core.protocol import GENERATE_PATH
from tuneforge.core.wallets import WalletError, create_wallet, load_wallet

BODY = b'{"challenge_id": "ch_00", "prompt": "calm piano"}'
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)


@pytest.fixture(scope="module")
def wallets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bt.Wallet]:
    root = tmp_path_factory.mktemp("auth")
    return {name: make_wallet(root, name) for name in ("validator", "miner", "other")}


def _ss58(wallet: bt.Wallet) -> str:
    return wallet.hotkey.ss58_address


def _verify(headers: dict[str, str], body: bytes, receiver: str, store=None, **kw) -> str:
    return verify_request(
        headers, body, "POST", GENERATE_PATH, receiver, store or MemoryNonceStore(), **kw
    )


def test_signed_request_verifies_and_names_the_caller(wallets: dict[str, bt.Wallet]) -> None:
    miner = _ss58(wallets["miner"])
    headers = sign_request(wallets["validator"], "POST", GENERATE_PATH, BODY, miner)
    assert headers[http_auth.HEADER_RECEIVER] == miner
    assert _verify(headers, BODY, miner) == _ss58(wallets["validator"])


def test_header_names_are_case_insensitive(wallets: dict[str, bt.Wallet]) -> None:
    miner = _ss58(wallets["miner"])
    headers = sign_request(wallets["validator"], "POST", GENERATE_PATH, BODY, miner)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert _verify(lowered, BODY, miner) == _ss58(wallets["validator"])


def _expect(kind: str, call) -> AuthFailure:
    with pytest.raises(AuthFailure) as info:
        call()
    assert info.value.kind == kind, info.value.reason
    assert info.value.status == 401
    assert info.value.reason
    return info.value


def test_missing_headers_are_malformed(wallets: dict[str, bt.Wallet]) -> None:
    miner = _ss58(wallets["miner"])
    _expect("malformed", lambda: _verify({}, BODY, miner))
    headers = sign_request(wallets["validator"], "POST", GENERATE_PATH, BODY, miner)
    headers[http_auth.HEADER_SIGNATURE] = "0xzz"
    _expect("malformed", lambda: _verify(headers, BODY, miner))


def test_tampered_body_is_a_bad_signature(wallets: dict[str, bt.Wallet]) -> None:
    miner = _ss58(wallets["miner"])
    headers = sign_request(wallets["validator"], "POST", GENERATE_PATH, BODY, miner)
    _expect("bad_signature", lambda: _verify(headers, BODY + b" ", miner))


def test_claiming_another_hotkey_is_a_bad_signature(wallets: dict[str, bt.Wallet]) -> None:
    miner = _ss58(wallets["miner"])
    headers = sign_request(wallets["other"], "POST", GENERATE_PATH, BODY, miner)
    headers[http_auth.HEADER_HOTKEY] = _ss58(wallets["validator"])
    _expect("bad_signature", lambda: _verify(headers, BODY, miner))


def test_request_for_another_miner_is_refused(wallets: dict[str, bt.Wallet]) -> None:
    headers = sign_request(
        wallets["validator"], "POST", GENERATE_PATH, BODY, _ss58(wallets["other"])
    )
    _expect("wrong_receiver", lambda: _verify(headers, BODY, _ss58(wallets["miner"])))


def test_stale_and_future_requests_are_refused(wallets: dict[str, bt.Wallet]) -> None:
    miner = _ss58(wallets["miner"])
    old = http_auth.sign(
        wallets["validator"],
        method="POST",
        path=GENERATE_PATH,
        body=BODY,
        receiver_ss58=miner,
        nonce_ns=time.time_ns() - 31 * 10**9,
    )
    _expect("stale", lambda: _verify(old, BODY, miner))
    assert _verify(old, BODY, miner, max_age_s=60.0) == _ss58(wallets["validator"])
    future = http_auth.sign(
        wallets["validator"],
        method="POST",
        path=GENERATE_PATH,
        body=BODY,
        receiver_ss58=miner,
        nonce_ns=time.time_ns() + 60 * 10**9,
    )
    _expect("stale", lambda: _verify(future, BODY, miner))


def test_replayed_request_is_refused(wallets: dict[str, bt.Wallet]) -> None:
    miner = _ss58(wallets["miner"])
    store = MemoryNonceStore()
    headers = sign_request(wallets["validator"], "POST", GENERATE_PATH, BODY, miner)
    _verify(headers, BODY, miner, store)
    _expect("replayed", lambda: _verify(headers, BODY, miner, store))


def test_nonce_store_shorter_than_the_window_is_a_config_error(
    wallets: dict[str, bt.Wallet],
) -> None:
    miner = _ss58(wallets["miner"])
    headers = sign_request(wallets["validator"], "POST", GENERATE_PATH, BODY, miner)
    with pytest.raises(ValueError):
        _verify(headers, BODY, miner, MemoryNonceStore(retention_seconds=5.0))


def test_signed_response_verifies_for_its_caller(wallets: dict[str, bt.Wallet]) -> None:
    validator, miner = _ss58(wallets["validator"]), _ss58(wallets["miner"])
    headers = sign_response(wallets["miner"], "POST", GENERATE_PATH, WAV, validator)
    verify_response(headers, WAV, "POST", GENERATE_PATH, miner, validator)


def test_response_failures_are_each_reported(wallets: dict[str, bt.Wallet]) -> None:
    validator, miner = _ss58(wallets["validator"]), _ss58(wallets["miner"])
    headers = sign_response(wallets["miner"], "POST", GENERATE_PATH, WAV, validator)
    _expect(
        "wrong_signer",
        lambda: verify_response(
            headers, WAV, "POST", GENERATE_PATH, _ss58(wallets["other"]), validator
        ),
    )
    _expect(
        "bad_signature",
        lambda: verify_response(headers, WAV[:-1], "POST", GENERATE_PATH, miner, validator),
    )
    _expect(
        "wrong_receiver",
        lambda: verify_response(
            headers, WAV, "POST", GENERATE_PATH, miner, _ss58(wallets["other"])
        ),
    )
    _expect("malformed", lambda: verify_response({}, WAV, "POST", GENERATE_PATH, miner, validator))
    stale = http_auth.sign(
        wallets["miner"],
        method="RESPONSE",
        path=f"POST {GENERATE_PATH}",
        body=WAV,
        receiver_ss58=validator,
        nonce_ns=time.time_ns() - 3600 * 10**9,
    )
    _expect("stale", lambda: verify_response(stale, WAV, "POST", GENERATE_PATH, miner, validator))


def test_a_hotkey_keypair_signs_requests_and_responses_like_its_wallet(
    wallets: dict[str, bt.Wallet],
) -> None:
    validator, miner = _ss58(wallets["validator"]), _ss58(wallets["miner"])
    request = sign_request(wallets["validator"].hotkey, "POST", GENERATE_PATH, BODY, miner)
    assert request[http_auth.HEADER_HOTKEY] == validator
    assert _verify(request, BODY, miner) == validator
    response = sign_response(wallets["miner"].hotkey, "POST", GENERATE_PATH, WAV, validator)
    verify_response(response, WAV, "POST", GENERATE_PATH, miner, validator)
    # The keypair's signature is bound to the body exactly as the wallet's is.
    _expect(
        "bad_signature",
        lambda: verify_response(response, WAV + b"\x00", "POST", GENERATE_PATH, miner, validator),
    )


def test_request_and_response_signatures_cannot_stand_in_for_each_other(
    wallets: dict[str, bt.Wallet],
) -> None:
    validator, miner = _ss58(wallets["validator"]), _ss58(wallets["miner"])
    # The miner signs a *request* to the validator over the same bytes...
    as_request = sign_request(wallets["miner"], "POST", GENERATE_PATH, WAV, validator)
    _expect(
        "bad_signature",
        lambda: verify_response(as_request, WAV, "POST", GENERATE_PATH, miner, validator),
    )
    # ...and a response signature is no valid request.
    as_response = sign_response(wallets["miner"], "POST", GENERATE_PATH, WAV, validator)
    _expect("bad_signature", lambda: _verify(as_response, WAV, validator))


def test_load_wallet_opens_a_created_wallet_and_explains_a_missing_one(tmp_path: Path) -> None:
    path = str(tmp_path / "w")
    created = create_wallet("cold", "hot", path)
    assert create_wallet("cold", "hot", path).hotkey.ss58_address == created.hotkey.ss58_address
    loaded = load_wallet("cold", "hot", path)
    assert loaded.hotkey.ss58_address == created.hotkey.ss58_address
    with pytest.raises(WalletError, match="not found") as info:
        load_wallet("cold", "missing", path)
    assert "btcli wallet new-hotkey" in str(info.value)


def test_load_wallet_refuses_a_password_protected_hotkey(tmp_path: Path) -> None:
    path = str(tmp_path / "w")
    wallet = bt.Wallet(name="locked", hotkey="hot", path=path)
    wallet.create_new_coldkey(use_password=False, suppress=True)
    wallet.create_new_hotkey(suppress=True, hotkey_password="correct horse battery")
    with pytest.raises(WalletError, match="password"):
        load_wallet("locked", "hot", path)


def test_btauth_hook_signs_the_body_and_target_httpx_sends(wallets: dict[str, bt.Wallet]) -> None:
    import httpx

    from tuneforge.auth.btauth import BtAuth

    miner = _ss58(wallets["miner"])
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    auth = BtAuth(wallets["validator"], miner)
    with httpx.Client(transport=httpx.MockTransport(answer), auth=auth) as client:
        client.post("http://127.0.0.1:1/v1/info?x=1", content=BODY)
    request = seen[0]
    caller = verify_request(
        request.headers, request.content, "POST", "/v1/info?x=1", miner, MemoryNonceStore()
    )
    assert caller == _ss58(wallets["validator"])
    _expect(  # the signature covers the query string: another target does not verify
        "bad_signature",
        lambda: verify_request(
            request.headers, request.content, "POST", "/v1/info", miner, MemoryNonceStore()
        ),
    )
