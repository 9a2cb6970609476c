"""API tokens' rows: only a SHA-256 of each token is stored; its first 12 hex are its id."""

from __future__ import annotations

import sqlite3
from typing import Any

from controller.storage.database import Store

ID_CHARS = 12


def insert(conn: sqlite3.Connection, digest: str, name: str, role: str, created_ms: int,
           expires_ms: int | None = None) -> None:
    conn.execute("INSERT INTO api_tokens (token_sha256, name, role, created_ms, expires_ms) "
                 "VALUES (?,?,?,?,?)", [digest, name, role, created_ms, expires_ms])


def lookup(store: Store, digest: str) -> dict[str, Any] | None:
    """name, role, revoked_ms and expires_ms of a token by its digest, live or not."""
    row = store.conn.execute("SELECT name, role, revoked_ms, expires_ms FROM api_tokens "
                             "WHERE token_sha256=?", [digest]).fetchone()
    return (None if row is None else
            {"name": row[0], "role": row[1], "revoked_ms": row[2], "expires_ms": row[3]})


def identity(store: Store, digest: str, now_ms: int) -> tuple[str, str] | None:
    """(name, role) of a live (not revoked, not expired) token, by its digest."""
    row = store.conn.execute("SELECT name, role FROM api_tokens WHERE token_sha256=? AND "
                             "revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?)",
                             [digest, now_ms]).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def all_rows(store: Store, *, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Every token (id, name, role, created_ms, expires_ms, revoked_ms, revoked_by), oldest
    first."""
    where = "" if include_revoked else " WHERE revoked_ms IS NULL"
    return list(store.db.query(
        f"SELECT substr(token_sha256, 1, {ID_CHARS}) AS token_id, name, role, created_ms, "
        f"expires_ms, revoked_ms, revoked_by FROM api_tokens{where} "
        "ORDER BY created_ms, token_sha256"))


def matching(conn: sqlite3.Connection, id_or_name: str) -> list[tuple[str, str, str]]:
    """(digest, name, role) of the unrevoked tokens whose id starts with, or whose name is,
    the value."""
    return [(str(r[0]), str(r[1]), str(r[2])) for r in conn.execute(
        "SELECT token_sha256, name, role FROM api_tokens WHERE revoked_ms IS NULL AND "
        # a prefix compare, not LIKE: '%' or '_' in the value must not match every token
        "(name = ? OR (length(?) >= 6 AND substr(token_sha256, 1, length(?)) = ?))",
        [id_or_name, id_or_name, id_or_name, id_or_name.lower()])]


def live_with_role(conn: sqlite3.Connection, role: str, now_ms: int) -> list[str]:
    """Digests of the live (not revoked, not expired) tokens of ``role``."""
    return [str(r[0]) for r in conn.execute(
        "SELECT token_sha256 FROM api_tokens WHERE role=? AND revoked_ms IS NULL AND "
        "(expires_ms IS NULL OR expires_ms > ?)", [role, now_ms])]


def revoke(conn: sqlite3.Connection, digest: str, now_ms: int, actor: str) -> None:
    conn.execute("UPDATE api_tokens SET revoked_ms=?, revoked_by=? WHERE token_sha256=?",
                 [now_ms, actor, digest])
