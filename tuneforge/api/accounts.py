"""Accounts and API keys: creation, credits, revocation and key lookup.

Keys are `tf_` + 43 url-safe random characters (256 bits). Only their SHA-256 is stored: a leaked
database does not leak usable keys, and a plain hash is enough because the keys are random.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from tuneforge.api.db import Database, changed
from tuneforge.api.models import Account, ApiKey, utcnow
from tuneforge.api.settings import PLAN_RATE_LIMITS
from tuneforge.core.errors import TuneForgeError

KEY_PREFIX = "tf_"
KEY_PATTERN = re.compile(r"^tf_[A-Za-z0-9_\-]{32,128}$")
_EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


class AccountError(TuneForgeError):
    status = 400
    code = "account"


@dataclass(frozen=True)
class KeyIdentity:
    key_id: str
    account_id: str
    plan: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def create_account(db: Database, email: str, plan: str = "free", credits: int = 0) -> Account:
    if plan not in PLAN_RATE_LIMITS:
        raise AccountError(f"unknown plan {plan!r}; choose one of {', '.join(PLAN_RATE_LIMITS)}")
    if not _EMAIL_PATTERN.match(email):
        raise AccountError(f"invalid email {email!r}")
    if credits < 0:
        raise AccountError("credits must be >= 0")
    with db.write() as session:
        if session.scalar(select(Account.id).where(Account.email == email)):
            raise AccountError(f"an account with email {email} already exists")
        account = Account(
            id=new_id("acc"), email=email, plan=plan, credits=credits, created_at=utcnow()
        )
        session.add(account)
    return account


def create_key(db: Database, account_id: str) -> tuple[ApiKey, str]:
    """Return the stored key row and the plaintext key (shown once, never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        if session.get(Account, account_id) is None:
            raise AccountError(f"no account {account_id}")
        row = ApiKey(
            id=new_id("key"),
            account_id=account_id,
            key_hash=hash_key(key),
            prefix=key[:10],
            created_at=utcnow(),
        )
        session.add(row)
    return row, key


def add_credits(db: Database, account_id: str, amount: int) -> int:
    """Add (or with a negative amount, remove) credits; returns the new balance."""
    with db.write() as session:
        updated = changed(
            session,
            update(Account)
            .where(Account.id == account_id, Account.credits + amount >= 0)
            .values(credits=Account.credits + amount),
        )
        if updated != 1:
            if session.get(Account, account_id) is None:
                raise AccountError(f"no account {account_id}")
            raise AccountError("the balance cannot go below zero")
        return int(session.scalar(select(Account.credits).where(Account.id == account_id)) or 0)


def revoke_key(db: Database, key_id: str) -> datetime:
    with db.write() as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise AccountError(f"no key {key_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return row.revoked_at


def list_accounts(db: Database) -> list[dict[str, object]]:
    with db.read() as session:
        accounts = session.scalars(select(Account).order_by(Account.created_at)).all()
        keys = session.scalars(select(ApiKey)).all()
    by_account: dict[str, list[dict[str, object]]] = {}
    for key in keys:
        by_account.setdefault(key.account_id, []).append(
            {"key_id": key.id, "prefix": key.prefix, "revoked": key.revoked_at is not None}
        )
    return [
        {
            "account_id": a.id,
            "email": a.email,
            "plan": a.plan,
            "credits": a.credits,
            "created_at": a.created_at.isoformat() + "Z",
            "keys": by_account.get(a.id, []),
        }
        for a in accounts
    ]


def authenticate_key(db: Database, key: str) -> KeyIdentity | None:
    """The active key's identity, or None for malformed, unknown or revoked keys."""
    if not KEY_PATTERN.match(key):
        return None
    with db.read() as session:
        row = session.execute(
            select(ApiKey.id, ApiKey.account_id, Account.plan)
            .join(Account, Account.id == ApiKey.account_id)
            .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        ).first()
    if row is None:
        return None
    return KeyIdentity(key_id=row[0], account_id=row[1], plan=row[2])
