"""Completion callbacks: a durable queue in the API database, signed POSTs, retries, a log.

When a job ends (completed or failed) the transaction that ends it inserts a delivery row, so a
crash between "job done" and "callback sent" loses nothing. A background thread sends due rows:
the body is the job's status (API.md), signed `HMAC-SHA256(secret, f"{timestamp}.{body}")` with
the account's webhook secret. A non-2xx answer or a network error is retried with exponential
backoff until `webhook_max_attempts`; the rows are the delivery log customers read.

Callback URLs are hostile: https only, and every address the host resolves to must be public
(no loopback, private, link-local, multicast or reserved ranges), checked when the job is
accepted and again at each send; the connection goes to the address that was checked (the host
name travels in `Host` and TLS SNI), so a DNS answer that changes in between cannot redirect it.
Redirects are not followed, the answer body is never read, and each attempt has a time limit.
`webhook_allow_private` (localnet and tests only) also admits http and loopback/private targets.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tuneforge.api.accounts import new_id
from tuneforge.api.db import Database, changed
from tuneforge.api.jobs.views import status_view
from tuneforge.api.models import (
    DELIVERY_DELIVERED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    JOB_COMPLETED,
    Account,
    GenerationRequest,
    Track,
    WebhookDelivery,
    utcnow,
)
from tuneforge.api.stored import iso
from tuneforge.core.errors import TuneForgeError

SECRET_PREFIX = "whsec_"
HEADER_TIMESTAMP = "X-TuneForge-Timestamp"
HEADER_SIGNATURE = "X-TuneForge-Signature"
HEADER_EVENT = "X-TuneForge-Event"
HEADER_DELIVERY = "X-TuneForge-Delivery"
MAX_ERROR_CHARS = 300
# A claimed row is not picked again for this long (another worker may be sending it).
SEND_LEASE = timedelta(minutes=2)


class BadCallback(TuneForgeError, ValueError):
    """A callback URL the API refuses to call (shown to the customer as a 400)."""

    status = 400
    code = "bad_callback"


@dataclass(frozen=True)
class WebhookPolicy:
    allow_private: bool
    timeout_s: float
    max_attempts: int
    retry_base_s: float
    retry_max_s: float


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `f"{timestamp}.{body}"` with the account's secret."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(secret: str, headers: Any, body: bytes, tolerance_s: float = 300.0) -> bool:
    """What a receiver does: the signature matches and the timestamp is fresh."""
    try:
        timestamp = int(headers[HEADER_TIMESTAMP])
        signature = str(headers[HEADER_SIGNATURE]).removeprefix("v1=")
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _allowed_address(address: str, allow_private: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_multicast or ip.is_unspecified:
        return False
    if allow_private:
        return True
    return ip.is_global and not (ip.is_reserved or ip.is_link_local or ip.is_loopback)


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the one DNS seam: tests replace it)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_callback(url: str, allow_private: bool) -> tuple[str, str, int]:
    """(host, checked address, port) of a callback URL, or BadCallback with the reason."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadCallback(f"callback_url is not a valid URL: {exc}") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise BadCallback("callback_url must be an https:// URL")
    if parts.username or parts.password:
        raise BadCallback("callback_url must not carry credentials")
    host = parts.hostname
    if not host:
        raise BadCallback("callback_url has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve_host(host, port)
    except (OSError, UnicodeError):
        raise BadCallback(f"callback_url host {host} does not resolve") from None
    # Every address must pass: a host that also resolves to an internal one is refused.
    if not addresses or not all(_allowed_address(a, allow_private) for a in addresses):
        raise BadCallback(
            f"callback_url host {host} resolves to a private, loopback, link-local or "
            "reserved address"
        )
    return host, addresses[0], port


def check_callback(url: str, allow_private: bool) -> None:
    resolve_callback(url, allow_private)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def rotate_secret(db: Database, account_id: str) -> str:
    """A fresh webhook secret for the account (the old one stops signing at once)."""
    secret = new_secret()
    with db.write() as session:
        session.execute(
            update(Account).where(Account.id == account_id).values(webhook_secret=secret)
        )
    return secret


def has_secret(db: Database, account_id: str) -> bool:
    with db.read() as session:
        return bool(session.scalar(select(Account.webhook_secret).where(Account.id == account_id)))


def enqueue(session: Session, job_id: str, status: str, now: datetime) -> None:
    """Queue the job's callback inside the transaction that ends it (no-op without one)."""
    row = session.execute(
        select(GenerationRequest.account_id, GenerationRequest.callback_url).where(
            GenerationRequest.id == job_id
        )
    ).first()
    if row is None or not row[1]:
        return
    event = "job.completed" if status == JOB_COMPLETED else "job.failed"
    session.add(
        WebhookDelivery(
            id=new_id("whd"),
            account_id=row[0],
            request_id=job_id,
            event=event,
            url=row[1],
            status=DELIVERY_PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def delivery_view(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "delivery_id": row.id,
        "request_id": row.request_id,
        "event": row.event,
        "url": row.url,
        "status": row.status,
        "attempts": row.attempts,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "next_attempt_at": iso(row.next_attempt_at) if row.status == DELIVERY_PENDING else None,
        "created_at": iso(row.created_at),
        "delivered_at": iso(row.delivered_at),
    }


def backoff_s(attempts: int, policy: WebhookPolicy) -> float:
    """Seconds before attempt `attempts + 1`: base, 2x base, 4x base ... capped."""
    return float(min(policy.retry_max_s, policy.retry_base_s * 2 ** max(0, attempts - 1)))


class WebhookSender:
    """Sends due deliveries; `run_once` is one pass (the API runs it in a thread)."""

    def __init__(self, db: Database, policy: WebhookPolicy) -> None:
        self.db = db
        self.policy = policy

    def deliveries(
        self, account_id: str, request_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        query = select(WebhookDelivery).where(WebhookDelivery.account_id == account_id)
        if request_id is not None:
            query = query.where(WebhookDelivery.request_id == request_id)
        with self.db.read() as session:
            rows = session.scalars(
                query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit)
            ).all()
        return [delivery_view(r) for r in rows]

    def _claim(self, now: datetime, limit: int) -> list[str]:
        with self.db.read() as session:
            due = session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == DELIVERY_PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            ).all()
        claimed = []
        for delivery_id in due:
            with self.db.write() as session:
                took = changed(
                    session,
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.status == DELIVERY_PENDING,
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .values(next_attempt_at=now + SEND_LEASE),
                )
            if took == 1:
                claimed.append(delivery_id)
        return claimed

    def _payload(self, delivery_id: str) -> tuple[WebhookDelivery, bytes, str | None]:
        with self.db.read() as session:
            row = session.get(WebhookDelivery, delivery_id)
            assert row is not None
            job = session.get(GenerationRequest, row.request_id)
            assert job is not None
            tracks = session.scalars(select(Track).where(Track.request_id == job.id)).all()
            secret = session.scalar(
                select(Account.webhook_secret).where(Account.id == row.account_id)
            )
        body = json.dumps(status_view(job, tracks), separators=(",", ":")).encode()
        return row, body, secret

    def _post(self, row: WebhookDelivery, body: bytes, secret: str) -> int:
        """POST to the checked address; the HTTP status (the body is never read)."""
        host, address, port = resolve_callback(row.url, self.policy.allow_private)
        parts = urlsplit(row.url)
        literal = f"[{address}]" if ":" in address else address
        target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        timestamp = int(time.time())
        default_port = 443 if parts.scheme == "https" else 80
        headers = {
            "Host": host if port == default_port else f"{host}:{port}",
            "Content-Type": "application/json",
            "User-Agent": "TuneForge-Webhooks/1",
            HEADER_EVENT: row.event,
            HEADER_DELIVERY: row.id,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_SIGNATURE: "v1=" + sign(secret, timestamp, body),
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        with (
            httpx.Client(timeout=self.policy.timeout_s, follow_redirects=False) as client,
            client.stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            return response.status_code

    def send(self, delivery_id: str) -> str:
        """One attempt; records the outcome and returns the delivery's new status."""
        row, body, secret = self._payload(delivery_id)
        code: int | None = None
        error: str | None = None
        if not secret:
            error = "the account has no webhook secret"
        else:
            try:
                code = self._post(row, body, secret)
                if not 200 <= code < 300:
                    error = f"HTTP {code}"
            except BadCallback as exc:
                error = str(exc)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        now = utcnow()
        attempts = row.attempts + 1
        if error is None:
            values: dict[str, Any] = {"status": DELIVERY_DELIVERED, "delivered_at": now}
        elif attempts >= self.policy.max_attempts:
            values = {"status": DELIVERY_FAILED}
        else:
            values = {"next_attempt_at": now + timedelta(seconds=backoff_s(attempts, self.policy))}
        values.update(
            attempts=attempts,
            last_status_code=code,
            last_error=(error or None) and error[:MAX_ERROR_CHARS],
        )
        with self.db.write() as session:
            session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
            )
        status = str(values.get("status", DELIVERY_PENDING))
        logger.info(
            "webhook {} for {} attempt {}: {}", delivery_id, row.request_id, attempts, error or "ok"
        )
        return status

    def run_once(self, now: datetime | None = None, limit: int = 32) -> int:
        claimed = self._claim(now or utcnow(), limit)
        for delivery_id in claimed:
            self.send(delivery_id)
        return len(claimed)

    def loop(self, stop: threading.Event, interval_s: float) -> None:
        while not stop.wait(interval_s):
            try:
                self.run_once()
            except Exception:  # a failed pass is retried next period; the loop must live on
                logger.exception("webhook pass failed")
