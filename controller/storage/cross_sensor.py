"""The cross-sensor check's rows: its pending checks and the order a plate travels under.

Pending checks are kept per tracker in ``rule_state`` (rule ``cross_sensor``, scope the
tracker's device id, state ``{"pending": [...]}``), written in the transaction of the batch
or tick that changes them, like every rule's state.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

RULE = "cross_sensor"


def pending(conn: sqlite3.Connection, tracker_id: str | None = None
            ) -> dict[str, list[dict[str, Any]]]:
    """{tracker id: its pending checks} of one tracker, or of all when None."""
    sql, args = "SELECT scope, state_json FROM rule_state WHERE rule=?", [RULE]
    if tracker_id is not None:
        sql += " AND scope=?"
        args.append(tracker_id)
    out: dict[str, list[dict[str, Any]]] = {}
    for scope, state in conn.execute(sql, args):
        checks = json.loads(state).get("pending", [])
        if checks:
            out[str(scope)] = list(checks)
    return out


def save_pending(conn: sqlite3.Connection, tracker_id: str, checks: list[dict[str, Any]],
                 now_ms: int) -> None:
    """Store a tracker's pending checks; none left removes its row."""
    if not checks:
        conn.execute("DELETE FROM rule_state WHERE rule=? AND scope=?", (RULE, tracker_id))
        return
    conn.execute("INSERT OR REPLACE INTO rule_state (rule, scope, state_json, updated_ms) "
                 "VALUES (?,?,?,?)", (RULE, tracker_id, json.dumps(
                     {"pending": checks}, ensure_ascii=False, sort_keys=True), now_ms))


def order_for_plate(conn: sqlite3.Connection, plate: str, at_ms: int) -> dict[str, Any] | None:
    """The open or departed transfer order of a plate whose window holds ``at_ms`` (open
    first: the out-gate's decision may already have made it departed), or None."""
    cur = conn.execute(
        "SELECT order_id, tracker_id, status FROM orders WHERE plate=? AND status IN "
        "('open', 'departed') AND window_start_ms<=? AND window_end_ms>=? "
        "ORDER BY status='open' DESC, window_start_ms, order_id LIMIT 1", (plate, at_ms, at_ms))
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row,
                                             strict=True))


@contextmanager
def isolated(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A savepoint inside the caller's transaction: what the block wrote is undone when it
    raises (and the error goes on), the rest of the transaction is kept."""
    conn.execute("SAVEPOINT cross_sensor")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK TO cross_sensor")
        conn.execute("RELEASE cross_sensor")
        raise
    conn.execute("RELEASE cross_sensor")
