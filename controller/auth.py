"""API tokens with roles. Only a SHA-256 of each token is stored.

Roles: ``operator`` reads and acknowledges alerts; ``auditor`` reads everything and
exports; ``admin`` also provisions devices, rotates keys and manages tokens. A token is
named (who holds it), listed by its id (the first 12 hex of its digest, never the token)
and can be revoked; creating and revoking one are ledger decisions.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from controller.errors import Conflict, InvalidInput, UnknownToken
from controller.storage import Store, ledger_log, now_ms
from controller.storage import tokens as rows

ROLES = ("operator", "auditor", "admin")
READERS = frozenset(ROLES)
ADMINS = frozenset({"admin"})
AUDITORS = frozenset({"auditor", "admin"})  # the ledger's proofs, checkpoints and exports
TOKEN_PREFIX = "pwt_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(token: str) -> str:
    """The id a token is listed and revoked by (never the token itself)."""
    return _digest(token)[:rows.ID_CHARS]


def create_token(store: Store, *, name: str, role: str, actor: str = "cli") -> str:
    """Create a token for ``role`` and return it (it is shown once and not stored)."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if not name.strip() or len(name) > 100:
        raise InvalidInput("a token's name says who holds it: 1 to 100 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = _digest(token)
    with store.transaction() as conn:
        rows.insert(conn, digest, name, role, now_ms())
        ledger_log.append_decision(conn, "token_created", actor, {
            "token_id": digest[:rows.ID_CHARS], "name": name, "role": role}, now_ms())
    return token


def role_of(store: Store, token: str) -> str | None:
    """The role of a live token, or None when it is unknown or revoked."""
    who = identity(store, token)
    return who[1] if who else None


def identity(store: Store, token: str) -> tuple[str, str] | None:
    """(name, role) of a live token, or None: who did what, for the records."""
    return rows.identity(store, _digest(token))


def list_tokens(store: Store, *, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Tokens by id, name and role (never the token itself)."""
    return rows.all_rows(store, include_revoked=include_revoked)


def revoke_token(store: Store, id_or_name: str, *, actor: str) -> dict[str, Any]:
    """Revoke the one live token with this id (or id prefix of 6+ hex) or name."""
    with store.transaction() as conn:
        found = rows.matching(conn, id_or_name)
        if not found:
            raise UnknownToken(f"no live token with id or name {id_or_name!r}: see "
                               "`portwatch token list`")
        if len(found) > 1:
            raise Conflict(f"{len(found)} live tokens match {id_or_name!r}: give the token id "
                           "from `portwatch token list`")
        digest, name = found[0]
        rows.revoke(conn, digest, now_ms(), actor)
        ledger_log.append_decision(conn, "token_revoked", actor, {
            "token_id": digest[:rows.ID_CHARS], "name": name}, now_ms())
    return next(t for t in list_tokens(store, include_revoked=True)
                if t["token_id"] == digest[:rows.ID_CHARS])
