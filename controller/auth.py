"""API tokens with roles. Only a SHA-256 of each token is stored.

Roles: ``operator`` reads and acknowledges alerts; ``auditor`` reads everything and
exports; ``admin`` also provisions devices, rotates keys and manages tokens;
``release_officer`` reads and approves the release of quarantine holds (two different
ones release it: controller/holds.py). A token is
named (who holds it), listed by its id (the first 12 hex of its digest, never the token),
may expire (``expires_ms``) and can be revoked; creating and revoking one are ledger
decisions. Revoking the last live admin token needs ``force``: otherwise the API has no
admin left (the way back is then ``portwatch token create --role admin`` on the store).
"""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets
from typing import Any

from controller.errors import Conflict, InvalidInput, NotAuthenticated, UnknownToken
from controller.storage import Store, ledger_log, now_ms
from controller.storage import tokens as rows

ROLES = ("operator", "auditor", "admin", "release_officer")
READERS = frozenset(ROLES)
ADMINS = frozenset({"admin"})
AUDITORS = frozenset({"auditor", "admin"})  # the ledger's proofs, checkpoints and exports
TOKEN_PREFIX = "pwt_"
NAME_MAX = 100
# printable (no control characters) and not only spaces; the API's schema states the same
NAME_PATTERN = r"^[^\x00-\x1f\x7f]{0,99}[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]{0,99}$"
# a token lives at most this long when it is given an expiry: a forgotten long-lived
# token is what expiry is for
EXPIRES_IN_MAX_S = 5 * 366 * 86400
EXPIRES_IN_MIN_S = 60


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(token: str) -> str:
    """The id a token is listed and revoked by (never the token itself)."""
    return _digest(token)[:rows.ID_CHARS]


def create_token(store: Store, *, name: str, role: str, actor: str = "cli",
                 expires_in_s: int | None = None) -> str:
    """Create a token for ``role`` and return it (it is shown once and not stored).

    ``expires_in_s``: the token answers 401 this many seconds from now (1 minute to 5
    years). None: it lives until revoked.
    """
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if len(name) > NAME_MAX or not re.fullmatch(NAME_PATTERN, name):
        raise InvalidInput(f"a token's name says who holds it: 1 to {NAME_MAX} characters, "
                           "no control characters, not only spaces")
    created = now_ms()
    if expires_in_s is not None and not EXPIRES_IN_MIN_S <= expires_in_s <= EXPIRES_IN_MAX_S:
        raise InvalidInput(f"a token expires 1 minute to 5 years from now, not {expires_in_s} s")
    expires_ms = None if expires_in_s is None else created + expires_in_s * 1000
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = _digest(token)
    with store.transaction() as conn:
        rows.insert(conn, digest, name, role, created, expires_ms)
        ledger_log.append_decision(conn, "token_created", actor, {
            "token_id": digest[:rows.ID_CHARS], "name": name, "role": role,
            **({"expires_ms": expires_ms} if expires_ms is not None else {})}, created)
    return token


def _when(ms: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime(
            "%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms"


def authenticate(store: Store, token: str) -> tuple[str, str]:
    """(name, role) of a live token; NotAuthenticated saying why not (unknown, revoked,
    expired) otherwise."""
    found = rows.lookup(store, _digest(token))
    if found is None:
        raise NotAuthenticated("unknown token: check the Authorization header, or ask an "
                               "admin for one (`portwatch token create`)")
    if found["revoked_ms"] is not None:
        raise NotAuthenticated(f"this token was revoked at {_when(found['revoked_ms'])}: "
                               "ask an admin for a new one")
    if found["expires_ms"] is not None and found["expires_ms"] <= now_ms():
        raise NotAuthenticated(f"this token expired at {_when(found['expires_ms'])}: ask an "
                               "admin for a new one")
    return str(found["name"]), str(found["role"])


def role_of(store: Store, token: str) -> str | None:
    """The role of a live token, or None when it is unknown or revoked."""
    who = identity(store, token)
    return who[1] if who else None


def identity(store: Store, token: str) -> tuple[str, str] | None:
    """(name, role) of a live token, or None: who did what, for the records."""
    return rows.identity(store, _digest(token), now_ms())


def list_tokens(store: Store, *, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Tokens by id, name, role and expiry, with ``state`` live, expired or revoked (never
    the token itself)."""
    now = now_ms()
    return [{**t, "state": "revoked" if t["revoked_ms"] is not None else
             "expired" if t["expires_ms"] is not None and t["expires_ms"] <= now else "live"}
            for t in rows.all_rows(store, include_revoked=include_revoked)]


def revoke_token(store: Store, id_or_name: str, *, actor: str,
                 force: bool = False) -> dict[str, Any]:
    """Revoke the one unrevoked token with this id (or id prefix of 6+ hex) or name.

    The last live admin token is revoked only with ``force``: without it nobody could
    manage tokens through the API any more (``portwatch token create --role admin`` on the
    store's host is the way back).
    """
    with store.transaction() as conn:
        found = rows.matching(conn, id_or_name)
        if not found:
            raise UnknownToken(f"no live token with id or name {id_or_name!r}: see "
                               "`portwatch token list`")
        if len(found) > 1:
            raise Conflict(f"{len(found)} live tokens match {id_or_name!r}: give the token id "
                           "from `portwatch token list`")
        digest, name, role = found[0]
        admins = rows.live_with_role(conn, "admin", now_ms())
        if role == "admin" and admins == [digest] and not force:
            raise Conflict(f"{name!r} is the last live admin token: revoking it leaves the API "
                           "without an admin. Create another first, or pass force (API: "
                           "?force=true, CLI: --force); `portwatch token create --role admin` "
                           "on the store's host makes a new one")
        rows.revoke(conn, digest, now_ms(), actor)
        ledger_log.append_decision(conn, "token_revoked", actor, {
            "token_id": digest[:rows.ID_CHARS], "name": name}, now_ms())
    return next(t for t in list_tokens(store, include_revoked=True)
                if t["token_id"] == digest[:rows.ID_CHARS])
