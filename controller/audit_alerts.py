"""The audit of ``alerts``: every row rebuilt from the log's ``alert`` decisions.

Each transition of an alert (controller/alerts.py) is one ``alert`` decision naming its
``alert_id``: ``raise`` makes the row, ``acknowledge`` sets ``acked_*``, ``clear`` (the
rule) and ``resolve`` (an operator) set ``cleared_*``, each column set once. So the full
audit replays them all and compares row by row (``edited``, ``deleted``, ``added``,
keyed by the alert's id), and the incremental one checks, for each new decision, exactly
the columns it set.

Older decisions carry less: a raise or clear made before its body held ``ts`` and
``seq`` leaves those columns unchecked (never guessed), and an ``acknowledge`` with a
``note`` (before the lifecycle) closed the alert, as it did then.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controller.audit import AuditReport, Mismatch
from controller.ledger import entries as entry_mod
from controller.ledger import tree
from controller.ledger.errors import EntryFormatError
from controller.storage import supervision as alert_rows

TABLE = "alerts"
CHUNK = 5000
# store_tampered alerts (controller/audit_watch.py) made before they had an alert decision
LEGACY_ALERT = ("audit", "store_tampered")
LEGACY_DECISION = "audit_mismatch"
Row = dict[str, Any]


def _seq(body: Mapping[str, Any]) -> Any:
    if "seq" in body:
        return body["seq"]
    fact = body.get("fact")
    return fact.get("seq") if isinstance(fact, dict) else None


def columns_set(decision: entry_mod.Decision) -> tuple[int, Row] | None:
    """(alert_id, the columns this decision sets) or None when it names no alert."""
    b = decision.body
    alert_id = b.get("alert_id")
    if not isinstance(alert_id, int) or isinstance(alert_id, bool):
        return None
    action = b.get("action")
    actor, at = decision.actor, decision.time_ms
    if action == "raise":
        rule = b.get("rule") or actor.removeprefix("rule:")
        row: Row = {"id": alert_id, "rule": rule, "code": b.get("code"),
                    "device_id": b.get("device_id"), "subject": b.get("subject"),
                    "severity": b.get("severity"), "detail_json": b.get("detail", {}),
                    "raised_ms": at}
        if "ts" in b:
            row["raised_ts"] = b["ts"]
        if "seq" in b or "fact" in b or not actor.startswith("rule:"):
            row["raised_seq"] = _seq(b)
        return alert_id, row
    if action == "clear":
        row = {"cleared_ms": at, "cleared_by": actor}
        if "ts" in b:
            row["cleared_ts"] = b["ts"]
        if "seq" in b or "fact" in b:
            row["cleared_seq"] = _seq(b)
        return alert_id, row
    if action == "acknowledge" and "comment" in b:
        return alert_id, {"acked_ms": at, "acked_by": actor, "ack_comment": b["comment"]}
    if action == "acknowledge":  # before the lifecycle: an operator's ack closed it
        return alert_id, {"cleared_ms": at, "cleared_by": actor, "cleared_ts": None,
                          "cleared_seq": None}
    if action == "resolve":
        return alert_id, {"cleared_ms": at, "cleared_by": actor, "cleared_ts": None,
                          "cleared_seq": None, "resolve_comment": b.get("comment")}
    return None


def _same(column: str, stored: Any, expected: Any) -> bool:
    if column == "detail_json":
        try:
            return bool(json.loads(stored or "{}") == expected)
        except ValueError:
            return False
    return bool(stored == expected)


def _diff(stored: Row, expected: Row) -> tuple[tuple[str, Any, Any], ...]:
    return tuple((c, stored.get(c), v) for c, v in expected.items()
                 if c != "id" and not _same(c, stored.get(c), v))


def _decisions(conn: Any, after_idx: int, report: AuditReport
               ) -> tuple[list[tuple[int, entry_mod.Decision]], int, bool]:
    """One chunk of decoded ``alert`` decisions past ``after_idx``: (decisions, the last
    index read, whether more may follow)."""
    raw = alert_rows.alert_decisions(conn, after_idx, CHUNK)
    out = []
    for idx, data, leaf in raw:
        if tree.leaf_hash(data) != leaf:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail="the entry's bytes do not hash to its recorded leaf "
                                "hash: run `portwatch ledger verify` on an export"))
            continue
        try:
            e = entry_mod.decode(data)
        except EntryFormatError as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"the alert decision does not decode: {exc}"))
            continue
        if isinstance(e, entry_mod.Decision):
            out.append((idx, e))
    return out, raw[-1][0] if raw else after_idx, len(raw) == CHUNK


def rebuild(conn: Any, report: AuditReport) -> dict[int, Row]:
    """Every alert row the log's ``alert`` decisions make (only the columns they fix)."""
    rows: dict[int, Row] = {}
    after, more = -1, True
    while more:
        batch, after, more = _decisions(conn, after, report)
        for idx, e in batch:
            found = columns_set(e)
            if found is None:
                continue
            alert_id, cols = found
            if e.body.get("action") == "raise":
                rows[alert_id] = cols
            elif alert_id in rows:
                rows[alert_id].update(cols)
            else:
                report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                    detail=f"an alert decision for alert {alert_id}, which "
                                    "no earlier decision raised"))
    return rows


def _legacy_tampered(conn: Any) -> set[tuple[str, int]]:
    """(subject, time) of each ``audit_mismatch`` decision: before ``store_tampered``
    alerts had their own ``alert`` decision, that decision was their only record."""
    out: set[tuple[str, int]] = set()
    for data in alert_rows.decisions_of(conn, LEGACY_DECISION):
        try:
            e = entry_mod.decode(data)
        except EntryFormatError:
            continue  # the audit of ledger entries names it
        if isinstance(e, entry_mod.Decision):
            out.add((f"{e.body.get('table')} {e.body.get('key')}", e.time_ms))
    return out


def audit_alerts(conn: Any, report: AuditReport) -> None:
    """Compare every stored ``alerts`` row with the one the log makes."""
    expected = rebuild(conn, report)
    count = report.count(TABLE)
    seen: set[int] = set()
    legacy: set[tuple[str, int]] | None = None
    for row in alert_rows.all_alert_rows(conn):
        alert_id = int(row["id"])
        seen.add(alert_id)
        count.checked += 1
        want = expected.get(alert_id)
        if want is None and (row.get("rule"), row.get("code")) == LEGACY_ALERT:
            if legacy is None:
                legacy = _legacy_tampered(conn)
            if (row.get("subject"), row.get("raised_ms")) in legacy:
                continue  # raised before its alert decision existed: its audit_mismatch
        if want is None:
            report.add(Mismatch(TABLE, str(alert_id), "added",
                                detail=f"{row.get('code')} on {row.get('device_id')!r}: no "
                                "ledger decision raised this alert"))
            continue
        # a column no decision set must be empty (acked_* on an alert never acknowledged)
        full = {**{c: None for c in _LIFECYCLE if c not in want}, **want}
        diffs = _diff(row, full)
        if diffs:
            report.add(Mismatch(TABLE, str(alert_id), "edited", diffs))
    for alert_id in sorted(set(expected) - seen):
        report.add(Mismatch(TABLE, str(alert_id), "deleted",
                            detail="the ledger raised this alert; the store lacks it"))


# the columns transitions set: NULL until theirs happens
_LIFECYCLE = ("acked_ms", "acked_by", "ack_comment", "cleared_ms", "cleared_by",
              "resolve_comment")


def check_decision(conn: Any, idx: int, decision: entry_mod.Decision,
                   report: AuditReport) -> None:
    """The incremental audit: the row holds what one new ``alert`` decision set."""
    found = columns_set(decision)
    if found is None:
        return
    alert_id, cols = found
    row = alert_rows.alert_in(conn, alert_id)
    report.count(TABLE).checked += 1
    if row is None:
        report.add(Mismatch(TABLE, str(alert_id), "deleted",
                            detail=f"ledger entry {idx} ({decision.body.get('action')}) names "
                            "this alert; the store lacks it"))
        return
    diffs = _diff(row, cols)
    if diffs:
        report.add(Mismatch(TABLE, str(alert_id), "edited", diffs))
