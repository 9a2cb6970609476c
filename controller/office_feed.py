"""The destination office's trip feed: what the controller owes each office, and its acks.

The trips code calls :func:`note_trip_change` inside the transaction of each trip decision
(departed, a trip event, an alert raised or cleared on the trip, arrival). It builds the
trip record as the store holds it in that transaction and queues one row per office that
receives trips to the trip's destination (``office_outbox``), so a record exists exactly
when its trip decision committed. The publisher (controller/office_publisher.py) signs and
sends due rows after commit and re-sends unacked ones with back-off (:func:`retry_delay_ms`);
an office acks ``(trip_id, version)`` and that covers every earlier version of the trip for
it (each version holds everything before it). An ack is a ledger decision ``office_ack``:
evidence that the office had the record, with the hash of what it had.

Offices are provisioned with :func:`add_office` (CLI ``portwatch office add``), a ledger
decision ``office``; their broker logins come from controller/office_accounts.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from controller.errors import Conflict, InvalidInput, NotFound
from controller.office_record import record_text
from controller.registry import mosquitto_hash
from controller.storage import Store, ledger_log, transaction
from controller.storage import offices as rows
from controller.storage import trip_records as reads
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert
from protocols import topics

log = logging.getLogger("portwatch.office_feed")
RULE = "office_feed"
UNREACHABLE = "office_unreachable"
EVENTS_MAX = 64  # the latest events carried whole; older ones are in the trip's API


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Re-send back-off (first retry after ``retry_first_ms``, doubling up to
    ``retry_max_ms``) and how old an unacked record may get before ``office_unreachable``."""

    retry_first_ms: int = 2_000
    retry_max_ms: int = 60_000
    unreachable_after_ms: int = 300_000
    poll_ms: int = 250


def feed_settings_from_env() -> FeedSettings:
    """FeedSettings with ``PORTWATCH_OFFICE_RETRY_MS``, ``PORTWATCH_OFFICE_RETRY_MAX_MS`` and
    ``PORTWATCH_OFFICE_UNREACHABLE_MS`` applied when set (InvalidInput for a bad number)."""
    values = {}
    for name, env in (("retry_first_ms", "PORTWATCH_OFFICE_RETRY_MS"),
                      ("retry_max_ms", "PORTWATCH_OFFICE_RETRY_MAX_MS"),
                      ("unreachable_after_ms", "PORTWATCH_OFFICE_UNREACHABLE_MS")):
        raw = os.environ.get(env)
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise InvalidInput(f"{env}={raw!r}: give a whole number of milliseconds")
            values[name] = int(raw)
    return FeedSettings(**values)


def retry_delay_ms(attempts: int, settings: FeedSettings) -> int:
    """How long after its ``attempts``-th send (1 = the first) a record is sent again."""
    if attempts < 1:
        return 0
    return min(settings.retry_first_ms << min(attempts - 1, 30), settings.retry_max_ms)


# -- records ----------------------------------------------------------------------------


def note_trip_change(conn: sqlite3.Connection, trip_id: str, time_ms: int) -> list[str]:
    """Queue the trip's current record for every office of its destination; return their
    ids. Call inside the transaction of the trip decision (joins it, or runs its own).

    A trip whose destination no office receives queues nothing (an empty list).
    """
    with transaction(conn):
        trip = reads.trip(conn, trip_id) or {}
        order = reads.order(conn, trip_id) or {}
        destination = str(trip.get("destination") or order.get("destination") or "")
        offices = rows.offices_for(conn, destination) if destination else []
        if not offices:
            return []
        version = rows.next_trip_version(conn, trip_id)
        try:
            base = build_record(conn, trip_id, trip, order, version, time_ms)
        except (ValueError, KeyError, TypeError) as exc:
            # a malformed row must not undo the trip decision, nor keep the office blind:
            # it gets what is sure, and the log says what to repair
            log.error("trip %s: record incomplete (%r); the office gets its id and status",
                      trip_id, exc)
            base = {"trip_id": trip_id, "version": version, "made_ms": time_ms,
                    "status": trip.get("status"), "incomplete": repr(exc)[:200]}
        for office_id in offices:
            seq = rows.next_office_seq(conn, office_id)
            text = record_text({**base, "office": office_id, "office_seq": seq})
            rows.queue(conn, office_id=office_id, office_seq=seq, trip_id=trip_id,
                       version=version, record=text, time_ms=time_ms)
        return offices


def build_record(conn: sqlite3.Connection, trip_id: str, trip: dict[str, Any],
                 order: dict[str, Any], version: int, time_ms: int) -> dict[str, Any]:
    """The trip record, without the office and its seq."""
    departed = trip.get("departed_ms")
    departure = None
    if trip.get("gate_device") and trip.get("weighing_seq") is not None:
        w = reads.weighing(conn, str(trip["gate_device"]), int(trip["weighing_seq"]))
        departure = {"device": trip["gate_device"], "seq": trip["weighing_seq"],
                     "net_kg": trip.get("net_kg"), "time_ms": departed}
        if w is not None:
            departure.update({k: w[k] for k in ("gross_kg", "tare_kg", "net_kg", "device_ts",
                                                  "ledger_index", "entry_hash")})
    tracker = trip.get("tracker_id") or order.get("tracker_id")
    route: dict[str, Any] = {"track": f"/api/v1/trips/{trip_id}/track"}
    if tracker and departed is not None:
        route.update(reads.route(conn, str(tracker), int(departed)))
    events = reads.events(conn, trip_id)
    cp = reads.latest_checkpoint(conn)
    return {
        "trip_id": trip_id, "version": version, "made_ms": time_ms,
        "status": trip.get("status") or order.get("status"),
        "order": {k: order.get(k, trip.get(k)) for k in (
            "lot", "plate", "tracker_id", "destination", "corridor", "window_start_ms",
            "window_end_ms", "expected_net_kg")},
        "trip": {k: trip.get(k) for k in ("departed_ms", "arrived_ts", "closed_ms",
                                          "end_reason")},
        "departure": departure, "route": route,
        "events": events[-EVENTS_MAX:], "events_total": len(events),
        "checkpoint": None if cp is None else {
            "size": cp[0], "root": base64.b64encode(cp[1]).decode(), "created_ms": cp[2],
            "origin": reads.origin(conn)},
    }


# -- acks and reachability --------------------------------------------------------------


def record_ack(conn: sqlite3.Connection, office_id: str, trip_id: str, version: int,
               time_ms: int) -> int:
    """Mark the office's records of the trip up to ``version`` acked and log the ack in the
    ledger; return how many records it covered (0: a repeat, or nothing sent: no entry)."""
    with transaction(conn):
        changed = rows.mark_acked(conn, office_id, trip_id, version, time_ms)
        if changed:
            last = changed[-1]
            ledger_log.append_decision(conn, "office_ack", f"office:{office_id}", {
                "office_id": office_id, "trip_id": trip_id, "version": version,
                "office_seqs": [r["office_seq"] for r in changed],
                "record_sha256": hashlib.sha256(str(last["record"]).encode()).hexdigest()},
                time_ms)
        return len(changed)


def check_reachability(conn: sqlite3.Connection, now_ms: int,
                       settings: FeedSettings) -> list[Alert]:
    """Raise ``office_unreachable`` for each office with a record unacked longer than
    ``unreachable_after_ms``, clear it for the others; return the alerts that changed."""
    changed: list[Alert] = []
    if not rows.live_offices(conn):
        return changed  # no write lock taken every second on a site without offices
    with transaction(conn):
        for s in rows.summary(conn):
            oldest = s["oldest_pending_ms"]
            late = oldest is not None and now_ms - int(oldest) > settings.unreachable_after_ms
            alert = Alert(code=UNREACHABLE, device_id=str(s["office_id"]), active=late,
                          severity="warning",
                          detail={"pending": s["pending"], "oldest_pending_ms": oldest,
                                  "after_ms": settings.unreachable_after_ms} if late else {})
            if apply_alert(conn, RULE, alert, device_ts=None, received_ms=now_ms):
                changed.append(alert)
    return changed


# -- provisioning -----------------------------------------------------------------------


def add_office(store: Store, *, office_id: str, name: str, destinations: list[str],
               actor: str, time_ms: int) -> str:
    """Provision an office; return its broker password (shown once, only its hash is kept).

    InvalidInput for an id that cannot be a broker login or no destination; Conflict when
    the id is a device's, an account's or an office's already.
    """
    try:
        topics.check_id(office_id, "office id")
    except topics.TopicError as exc:
        raise InvalidInput(f"{exc}; pick another office id") from exc
    if not destinations or any(not d for d in destinations):
        raise InvalidInput("name at least one destination zone id (or '*' for every one) "
                           "the office receives trips for")
    password = secrets.token_urlsafe(24)
    with store.transaction() as conn:
        used = rows.login_taken(conn, office_id)
        if used is not None or office_id.startswith("portwatch-"):
            raise Conflict(f"{office_id!r} is already the broker login of "
                           f"{used or 'portwatch itself'}: pick another office id")
        rows.add_office(conn, office_id=office_id, name=name, destinations=destinations,
                        password_hash=mosquitto_hash(password), actor=actor, time_ms=time_ms)
        ledger_log.append_decision(conn, "office", actor, {
            "action": "add", "office_id": office_id, "name": name,
            "destinations": sorted(destinations)}, time_ms)
    return password


def remove_office(store: Store, office_id: str, *, actor: str, reason: str,
                  time_ms: int) -> None:
    """Remove an office: nothing more is sent to it; its login goes at the next broker
    files. NotFound when no live office has that id."""
    with store.transaction() as conn:
        if not rows.remove_office(conn, office_id, actor=actor, time_ms=time_ms):
            raise NotFound(f"no office {office_id!r} in service: `portwatch office list` "
                           "shows them")
        ledger_log.append_decision(conn, "office", actor, {
            "action": "remove", "office_id": office_id, "reason": reason}, time_ms)
        # nothing is owed to it any more: an office_unreachable it had is over
        apply_alert(conn, RULE, Alert(code=UNREACHABLE, device_id=office_id, active=False),
                    device_ts=None, received_ms=time_ms)


def office_status(conn: sqlite3.Connection, now_ms: int) -> list[dict[str, Any]]:
    """Per live office: destinations, records sent, acked, pending and the oldest pending
    record's age (what ``GET /api/v1/offices`` and ``portwatch office list`` show)."""
    out = []
    for s in rows.summary(conn):
        oldest = s.pop("oldest_pending_ms")
        s["destinations"] = sorted(json.loads(s.pop("destinations_json")))
        s["oldest_pending_age_ms"] = None if oldest is None else max(0, now_ms - int(oldest))
        out.append(s)
    return out


def trip_deliveries(conn: sqlite3.Connection, trip_id: str) -> list[dict[str, Any]]:
    """Each record of the trip per office, with ``state``: queued (never sent), sent
    (awaiting its ack) or acked."""
    out = rows.deliveries(conn, trip_id)
    for r in out:
        r["state"] = ("acked" if r["acked_ms"] is not None
                      else "sent" if r["attempts"] else "queued")
    return out
