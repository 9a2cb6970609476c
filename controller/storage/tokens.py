"""API tokens' rows: only a SHA-256 of each token is stored; its first 12 hex are its id."""

from __future__ import annotations

import sqlite3
from typing import Any

from controller.storage.database import Store

ID_CHARS = 12


def insert(conn: sqlite3.Connection, digest: str, name: str, role: str, created_ms: int) -> None:
    conn.execute("INSERT INTO api_tokens (token_sha256, name, role, created_ms) "
                 "VALUES (?,?,?,?)", [digest, name, role, created_ms])


def identity(store: Store, digest: str) -> tuple[str, str] | None:
    """(name, role) of a live (not revoked) token, by its digest."""
    row = store.conn.execute("SELECT name, role FROM api_tokens WHERE token_sha256=? AND "
                             "revoked_ms IS NULL", [digest]).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def all_rows(store: Store, *, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Every token (id, name, role, created_ms, revoked_ms, revoked_by), oldest first."""
    where = "" if include_revoked else " WHERE revoked_ms IS NULL"
    return list(store.db.query(
        f"SELECT substr(token_sha256, 1, {ID_CHARS}) AS token_id, name, role, created_ms, "
        f"revoked_ms, revoked_by FROM api_tokens{where} ORDER BY created_ms, token_sha256"))


def matching(conn: sqlite3.Connection, id_or_name: str) -> list[tuple[str, str]]:
    """(digest, name) of the live tokens whose id starts with, or whose name is, the value."""
    return [(str(r[0]), str(r[1])) for r in conn.execute(
        "SELECT token_sha256, name FROM api_tokens WHERE revoked_ms IS NULL AND "
        "(name = ? OR (length(?) >= 6 AND token_sha256 LIKE ? || '%'))",
        [id_or_name, id_or_name, id_or_name.lower()])]


def revoke(conn: sqlite3.Connection, digest: str, now_ms: int, actor: str) -> None:
    conn.execute("UPDATE api_tokens SET revoked_ms=?, revoked_by=? WHERE token_sha256=?",
                 [now_ms, actor, digest])
