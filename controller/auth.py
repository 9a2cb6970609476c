"""API tokens with roles. Only a SHA-256 of each token is stored.

Roles: ``operator`` reads and acknowledges alerts; ``auditor`` reads everything and
exports; ``admin`` also provisions devices and rotates keys.
"""

from __future__ import annotations

import hashlib
import secrets

import sqlite_utils

from controller.store import now_ms

ROLES = ("operator", "auditor", "admin")
READERS = frozenset(ROLES)
ADMINS = frozenset({"admin"})
AUDITORS = frozenset({"auditor", "admin"})  # the ledger's proofs, checkpoints and exports
TOKEN_PREFIX = "pwt_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: sqlite_utils.Database, *, name: str, role: str) -> str:
    """Create a token for ``role`` and return it (it is shown once and not stored)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.table("api_tokens").insert(
        {"token_sha256": _digest(token), "name": name, "role": role, "created_ms": now_ms()}
    )
    return token


def role_of(db: sqlite_utils.Database, token: str) -> str | None:
    """The role of a token, or None when it is unknown."""
    row = db.execute(
        "SELECT role FROM api_tokens WHERE token_sha256=?", [_digest(token)]
    ).fetchone()
    return str(row[0]) if row else None


def identity(db: sqlite_utils.Database, token: str) -> tuple[str, str] | None:
    """(name, role) of a token, or None when it is unknown: who did what, for the records."""
    row = db.execute(
        "SELECT name, role FROM api_tokens WHERE token_sha256=?", [_digest(token)]
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None
