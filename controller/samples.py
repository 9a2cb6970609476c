"""Tie each lab sample to its lot, in the transaction that stores it.

The analyzer does not know which lot it samples: the controller decides it as the lot
whose status was ``unloading`` at the sampling time (``controller.lots.lot_unloading_at``)
and whether the analyzer's calibration covered that time
(``controller.calibration.valid_at``; null for an analyzer with no certificate on file,
which is not judged). Each decision is a ``sample_lot`` ledger entry
and a ``sample_lots`` row; a sample with no lot raises ``sample_without_lot``. A result
the device sent again under a new seq (a power cut between storing it and remembering
it) is marked ``duplicate_of_seq`` and judged by no rule.

``attach`` returns the facts with these decisions added to the sample bodies (``lot_id``,
``commodity``, ``calibration_valid``, ``duplicate``), so the lab rules stay pure.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import Any

from controller.facts import Fact
from controller.storage import ledger_log
from controller.storage import samples as rows
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert

DECISION = "sample_lot"
ALERT_RULE = "samples"


def attach(conn: sqlite3.Connection, facts: Sequence[Fact]) -> list[Fact]:
    """Decide the lot of every ``sample`` fact in ``facts`` (other facts pass as they are)."""
    return [_attach(conn, f) if f.kind == "sample" else f for f in facts]


def _attach(conn: sqlite3.Connection, fact: Fact) -> Fact:
    from controller import calibration, lots  # built alongside: imported at use

    b = fact.body
    sid, sampled = str(b["sample_id"]), int(b["sampled_ts"])
    dup = rows.first_seq(conn, fact.device_id, sid, fact.seq)
    lot_id = lots.lot_unloading_at(conn, sampled)
    lot = lots.get_lot(conn, lot_id) if lot_id is not None else None
    # an analyzer with no certificate on file is not judged (None), as a weighbridge
    # without one is not (controller/calibration.py status_at)
    valid = calibration.valid_at(conn, fact.device_id, sampled)
    judged = valid or calibration.status_at(conn, fact.device_id, sampled) != "untracked"
    decided: dict[str, Any] = {"device_id": fact.device_id, "seq": fact.seq,
                               "sample_id": sid, "lot_id": lot_id,
                               "calibration_valid": int(valid) if judged else None,
                               "duplicate_of_seq": dup,
                               "decided_ms": fact.received_ms}
    rows.insert_lot(conn, decided)
    ledger_log.append_decision(conn, DECISION, "controller",
                               {**decided, "sampled_ts": sampled}, fact.received_ms)
    if lot_id is None and dup is None:
        apply_alert(conn, ALERT_RULE, Alert(
            code="sample_without_lot", device_id=fact.device_id, active=True,
            severity="warning", subject=sid,
            detail={"sample_id": sid, "sampled_ts": sampled,
                    "what_to_do": "no lot was unloading at the sampling time: set the "
                                  "lot's status to unloading (portwatch lot status)"}),
            device_ts=fact.device_ts, received_ms=fact.received_ms, seq=fact.seq,
            cause={"device_id": fact.device_id, "seq": fact.seq})
    if lot_id is not None and dup is None:
        from controller import recall  # a failing result of a lot released before its test
        recall.on_sample(conn, lot_id, b, device_id=fact.device_id, device_ts=fact.device_ts,
                         received_ms=fact.received_ms, seq=fact.seq)
    body = {**b, "lot_id": lot_id, "commodity": lot["commodity"] if lot else None,
            "calibration_valid": valid if judged else None, "duplicate": dup is not None}
    return dataclasses.replace(fact, body=body)


def list_samples(conn: sqlite3.Connection, *, lot: str | None = None,
                 device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Samples newest first, each with its lot and findings decoded (the API's shape)."""
    import json

    out = []
    for r in rows.list_samples(conn, lot=lot, device_id=device_id, limit=limit):
        r["findings"] = json.loads(r.pop("findings_json"))
        r["outlier"] = bool(r["outlier"])
        cv = r["calibration_valid"]
        r["calibration_valid"] = None if cv is None else bool(cv)
        out.append(r)
    return out
