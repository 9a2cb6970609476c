"""Destination customs offices and the trip records queued for them (the office feed).

``offices``        one row per office: the destinations (zone ids) it receives trips for, its
                   broker login's hash (the password is shown once, at creation), removal.
``office_outbox``  one row per trip record per office, keyed (office_id, office_seq): the
                   record text as built inside the trip's transaction, the signed note once
                   first sent (re-sent byte for byte), attempts, next try and the ack.

The feed's own broker login (``role='office_feed'``) lives in ``broker_accounts`` beside the
controller's: the publisher is a second MQTT client, and a portwatch broker makes each login
its client id, so it cannot share the controller's login.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from controller.storage.database import Store

FEED_ROLE = "office_feed"


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# -- offices ----------------------------------------------------------------------------


def add_office(conn: sqlite3.Connection, *, office_id: str, name: str, destinations: list[str],
               password_hash: str, actor: str, time_ms: int) -> None:
    """Insert an office (sqlite3.IntegrityError when the id is taken, removed ones too)."""
    conn.execute("INSERT INTO offices (office_id, name, destinations_json, password_hash, "
                 "created_ms, created_by) VALUES (?,?,?,?,?,?)",
                 [office_id, name, json.dumps(sorted(destinations)), password_hash, time_ms,
                  actor])


def remove_office(conn: sqlite3.Connection, office_id: str, *, actor: str, time_ms: int) -> bool:
    """Mark an office removed (its login goes at the next broker files); False if none live."""
    cur = conn.execute("UPDATE offices SET removed_ms=?, removed_by=? WHERE office_id=? AND "
                       "removed_ms IS NULL", [time_ms, actor, office_id])
    return cur.rowcount == 1


def get_office(conn: sqlite3.Connection, office_id: str) -> dict[str, Any] | None:
    """One office, removed or not, or None."""
    found = _rows(conn.execute("SELECT * FROM offices WHERE office_id=?", [office_id]))
    return _decoded(found[0]) if found else None


def live_offices(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every office not removed, by id."""
    return [_decoded(r) for r in _rows(conn.execute(
        "SELECT * FROM offices WHERE removed_ms IS NULL ORDER BY office_id"))]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    row["destinations"] = json.loads(row.pop("destinations_json") or "[]")
    return row


def offices_for(conn: sqlite3.Connection, destination: str) -> list[str]:
    """Ids of the live offices that receive trips to ``destination`` ("*": every one)."""
    return [o["office_id"] for o in live_offices(conn)
            if destination in o["destinations"] or "*" in o["destinations"]]


# -- the outbox -------------------------------------------------------------------------


def next_office_seq(conn: sqlite3.Connection, office_id: str) -> int:
    row = conn.execute("SELECT max(office_seq) FROM office_outbox WHERE office_id=?",
                       [office_id]).fetchone()
    return 1 if row[0] is None else int(row[0]) + 1


def next_trip_version(conn: sqlite3.Connection, trip_id: str) -> int:
    row = conn.execute("SELECT max(version) FROM office_outbox WHERE trip_id=?",
                       [trip_id]).fetchone()
    return 1 if row[0] is None else int(row[0]) + 1


def queue(conn: sqlite3.Connection, *, office_id: str, office_seq: int, trip_id: str,
          version: int, record: str, time_ms: int) -> None:
    """Queue one record for one office, due at once."""
    conn.execute("INSERT INTO office_outbox (office_id, office_seq, trip_id, version, record, "
                 "created_ms, attempts, next_ms) VALUES (?,?,?,?,?,?,0,?)",
                 [office_id, office_seq, trip_id, version, record, time_ms, time_ms])


def due(conn: sqlite3.Connection, now_ms: int, limit: int = 200) -> list[dict[str, Any]]:
    """Unacked records of live offices whose next try is due, oldest first."""
    return _rows(conn.execute(
        "SELECT o.* FROM office_outbox o JOIN offices f USING (office_id) "
        "WHERE o.acked_ms IS NULL AND o.next_ms <= ? AND f.removed_ms IS NULL "
        "ORDER BY o.office_id, o.office_seq LIMIT ?", [now_ms, limit]))


def set_signed(conn: sqlite3.Connection, office_id: str, office_seq: int, signed: str) -> None:
    """Keep the signed note of a record (only the first time: re-sends repeat it)."""
    conn.execute("UPDATE office_outbox SET signed=? WHERE office_id=? AND office_seq=? AND "
                 "signed IS NULL", [signed, office_id, office_seq])


def attempts(conn: sqlite3.Connection, office_id: str, office_seq: int) -> int:
    """How many times a record was sent."""
    row = conn.execute("SELECT attempts FROM office_outbox WHERE office_id=? AND office_seq=?",
                       [office_id, office_seq]).fetchone()
    return 0 if row is None else int(row[0])


def mark_sent(conn: sqlite3.Connection, office_id: str, office_seq: int, *, sent_ms: int,
              next_ms: int) -> None:
    conn.execute("UPDATE office_outbox SET attempts=attempts+1, last_sent_ms=?, next_ms=? "
                 "WHERE office_id=? AND office_seq=?", [sent_ms, next_ms, office_id,
                                                        office_seq])


def mark_acked(conn: sqlite3.Connection, office_id: str, trip_id: str, version: int,
               acked_ms: int) -> list[dict[str, Any]]:
    """Ack every record of ``trip_id`` up to ``version`` for the office (a later version
    holds all an earlier one did); return the rows that this ack changed."""
    changed = _rows(conn.execute(
        "SELECT office_seq, version, record FROM office_outbox WHERE office_id=? AND "
        "trip_id=? AND version<=? AND acked_ms IS NULL AND attempts>0 ORDER BY office_seq",
        [office_id, trip_id, version]))
    conn.execute("UPDATE office_outbox SET acked_ms=? WHERE office_id=? AND trip_id=? AND "
                 "version<=? AND acked_ms IS NULL AND attempts>0",
                 [acked_ms, office_id, trip_id, version])
    return changed


def deliveries(conn: sqlite3.Connection, trip_id: str) -> list[dict[str, Any]]:
    """Every record of a trip, per office, with its delivery state."""
    return _rows(conn.execute(
        "SELECT office_id, office_seq, trip_id, version, created_ms, attempts, last_sent_ms, "
        "next_ms, acked_ms FROM office_outbox WHERE trip_id=? ORDER BY office_id, office_seq",
        [trip_id]))


def summary(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per live office: records queued, sent at least once, acked, pending; oldest pending
    record's creation time; last ack."""
    return _rows(conn.execute(
        "SELECT f.office_id, f.name, f.destinations_json, f.created_ms, "
        "count(o.office_seq) AS queued, "
        "coalesce(sum(o.attempts > 0), 0) AS sent, "
        "coalesce(sum(o.acked_ms IS NOT NULL), 0) AS acked, "
        "coalesce(sum(o.office_seq IS NOT NULL AND o.acked_ms IS NULL), 0) AS pending, "
        "min(CASE WHEN o.acked_ms IS NULL THEN o.created_ms END) AS oldest_pending_ms, "
        "max(o.acked_ms) AS last_ack_ms "
        "FROM offices f LEFT JOIN office_outbox o USING (office_id) "
        "WHERE f.removed_ms IS NULL GROUP BY f.office_id ORDER BY f.office_id"))


# -- the feed's broker login ------------------------------------------------------------


def feed_login(store: Store) -> tuple[str, str] | None:
    """The feed publisher's broker (user, password), or None before one was created."""
    row = store.conn.execute("SELECT user, password FROM broker_accounts WHERE role=? "
                             "ORDER BY created_ms LIMIT 1", [FEED_ROLE]).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def add_feed_login(store: Store, user: str, password: str, password_hash: str,
                   created_ms: int) -> None:
    store.conn.execute("INSERT OR IGNORE INTO broker_accounts (user, role, password, "
                       "password_hash, created_ms) VALUES (?, ?, ?, ?, ?)",
                       [user, FEED_ROLE, password, password_hash, created_ms])


def feed_hashes(store: Store) -> list[tuple[str, str]]:
    """(user, password hash) of the feed publisher's login."""
    return [(str(r[0]), str(r[1])) for r in store.conn.execute(
        "SELECT user, password_hash FROM broker_accounts WHERE role=? ORDER BY user",
        [FEED_ROLE])]


def login_taken(conn: sqlite3.Connection, name: str) -> str | None:
    """What already uses ``name`` as a broker login (a device, an account, an office)."""
    if conn.execute("SELECT 1 FROM devices WHERE device_id=?", [name]).fetchone():
        return "a device"
    if conn.execute("SELECT 1 FROM broker_accounts WHERE user=?", [name]).fetchone():
        return "a portwatch account"
    if conn.execute("SELECT 1 FROM offices WHERE office_id=?", [name]).fetchone():
        return "an office (removed ones keep their id: records name it)"
    return None


def broker_logins(store: Store) -> list[tuple[str, str]]:
    """(office id, password hash) of every live office."""
    return [(str(r[0]), str(r[1])) for r in store.conn.execute(
        "SELECT office_id, password_hash FROM offices WHERE removed_ms IS NULL "
        "ORDER BY office_id")]
