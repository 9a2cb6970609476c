"""Release before test and the recall list.

An ore lot may be released before its lab result (the lot's ``released_before_test``). If
a later sample of it fails (``failures``: the commodity's limits, or a result the lab
marked an outlier, or a lab rule's ``lab_limits`` / ``quarantine`` alert), ``on_failed_result``
makes the recall: the list of every truck trip and rail car that carried the lot or a blend
containing it (``recall_list``), a ``recall`` hold on the lot and its blends, a critical
``recall_required`` alert and a ``recall`` ledger decision with the list's hash, all in the
caller's transaction.

Limits are per commodity and configurable (a YAML file named by $PORTWATCH_RECALL_LIMITS,
``Limits.from_yaml``); values are the sample
body's per-mille fields (protocols/bodies.py ``sample``: ``moisture_pm``, and for ore
``fe_pm``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from controller import blends
from controller.errors import InvalidInput, NotFound
from controller.holds import check_lot
from controller.storage import Store, ledger_log
from controller.storage import recall as reads
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert
from controller.supervision.rules import lab_limits

log = logging.getLogger("portwatch.recall")
RULE = "recall"
ALERT_CODE = "recall_required"
LAB_FAILURE_CODES = ("lab_limits", "quarantine")  # the lab rules' alerts that fail a lot


class Bound(BaseModel):
    """A limit on one sample field (per mille): below ``min`` or above ``max`` fails."""

    min: float | None = None
    max: float | None = None


class Limits(BaseModel):
    """Limits by commodity (lower-case, as lots name it) and sample field."""

    commodities: dict[str, dict[str, Bound]] = Field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: Path) -> Limits:
        """Limits from a YAML file ``{commodities: {iron ore: {fe_pm: {min: 620}}}}``;
        InvalidInput naming the file and the field when it does not fit."""
        try:
            return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise InvalidInput(f"recall limits {path}: {exc}; fix the file (see "
                               "controller/recall.py DEFAULT_LIMITS)") from exc

    def for_commodity(self, commodity: str) -> dict[str, Bound]:
        """The bounds of ``commodity`` ({} when it has none)."""
        return self.commodities.get(commodity.strip().lower(), {})


def _lab_limits() -> dict[str, dict[str, Bound]]:
    """The lab_limits rule's grain limits (moisture, impurity: per mille, a maximum)."""
    table = lab_limits.DEFAULTS["limits"]
    return {name: {f: Bound(max=v) for f, v in limits.items()}
            for name, limits in table.items() if name != "default"}


# ore: contract figures a port would start from, iron ore fines at 62 % Fe and 9 %
# moisture; grain: what the lab_limits rule judges, so both say "fails" alike
DEFAULT_LIMITS = Limits(commodities={
    **_lab_limits(),
    "iron ore": {"fe_pm": Bound(min=620), "moisture_pm": Bound(max=90)},
})


LIMITS_ENV = "PORTWATCH_RECALL_LIMITS"
_loaded: dict[tuple[str, int, int], Limits] = {}


def current_limits() -> Limits:
    """The limits of the YAML file named by $PORTWATCH_RECALL_LIMITS (read again when it
    changes), else DEFAULT_LIMITS. A file that cannot be read or does not fit is logged
    as an error naming it and the defaults judge meanwhile: a sample is never refused for
    the controller's own configuration."""
    path = os.environ.get(LIMITS_ENV)
    if not path:
        return DEFAULT_LIMITS
    try:
        st = Path(path).stat()
        key = (path, st.st_mtime_ns, st.st_size)  # mtime ticks coarsely: size as well
        if key not in _loaded:
            _loaded.clear()
            _loaded[key] = Limits.from_yaml(Path(path))
        return _loaded[key]
    except (OSError, InvalidInput) as exc:
        log.error("%s=%s: %s; judging samples by the default recall limits", LIMITS_ENV,
                  path, exc)
        return DEFAULT_LIMITS


def failures(commodity: str, sample: Mapping[str, Any],
             limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """Why ``sample`` fails for ``commodity`` (empty: it passes). A field the sample lacks
    is not judged; an outlier always fails (the result cannot clear the lot), as does a
    quarantine pest (the quarantine rule's finding)."""
    out = []
    if sample.get("outlier") is True:
        out.append("outlier result")
    pests = sorted({str(f[0]) for f in sample.get("findings") or []
                    if isinstance(f, list | tuple) and len(f) == 3
                    and isinstance(f[1], int) and f[1] > 0})
    if pests:
        out.append(f"quarantine pest {', '.join(pests)}")
    for name, bound in sorted(limits.for_commodity(commodity).items()):
        value = sample.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if bound.min is not None and value < bound.min:
            out.append(f"{name} {value} below {bound.min:g}")
        if bound.max is not None and value > bound.max:
            out.append(f"{name} {value} above {bound.max:g}")
    return out


def _trip(t: Mapping[str, Any], via: str, fraction: float) -> dict[str, Any]:
    return {"trip_id": t["trip_id"], "plate": t["plate"], "lot": t["lot"], "via": via,
            "fraction": fraction, "destination": t["destination"],
            "departed_ms": t["departed_ms"], "net_kg": t["net_kg"], "status": t["status"],
            "arrived_ts": t["arrived_ts"]}


def _car(c: Mapping[str, Any], fraction: float) -> dict[str, Any]:
    return {"train": c["train_id"], "initial": c["initial"], "number": c["number"],
            "lot": c["lot"], "via": c["lot"], "fraction": fraction,
            "destination": c["destination"], "train_status": c["train_status"],
            # released: dispatched; else when the reader saw it pass (None: not yet)
            "time_ms": c["released_ms"] if c["released_ms"] is not None else c["passed_ts"],
            # the in-motion weight measured on the rail, else the manifest's
            "weight_kg": c["measured_kg"] if c["measured_kg"] is not None
            else c["declared_kg"],
            "weighed": c["measured_kg"] is not None}


def recall_list(conn: Any, lot: str) -> dict[str, Any]:
    """The recall list of ``lot``: its trips and rail cars, and those of every blend that
    contains it (``via`` the blend's lot, ``fraction`` of it that is ``lot``), in time
    order, and the list's sha256 over its canonical JSON (``hash``)."""
    check_lot(lot)
    lineage = [{"lot": lot, "fraction": 1.0, "depth": 0}, *blends.blends_of(conn, lot)]
    share = {x["lot"]: float(x["fraction"]) for x in lineage}
    lots = list(share)
    trips = [_trip(t, t["lot"], share[t["lot"]]) for t in reads.trips_of_lots(conn, lots)]
    cars = [_car(c, share[str(c["lot"])]) for c in reads.cars_of_lots(conn, lots)]
    body = {"lot": lot, "blends": lineage[1:], "trips": trips, "cars": cars,
            "kg": {"trucks": sum(t["net_kg"] or 0 for t in trips),
                   "rail": sum(c["weight_kg"] or 0 for c in cars)}}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()
    return {**body, "hash": digest}


def get_recall_list(store: Store, lot: str) -> dict[str, Any]:
    """``recall_list`` of a known lot; NotFound when no lot, trip or blend names it."""
    conn = store.conn
    check_lot(lot)
    found = recall_list(conn, lot)
    if reads.lot(conn, lot) is None and not found["trips"] and not found["cars"] \
            and not blends.inputs_of(conn, lot) and not found["blends"]:
        raise NotFound(f"no lot {lot!r}: list lots with `portwatch lot list`")
    return found


def on_failed_result(conn: Any, lot: str, reasons: list[str], *, device_id: str,
                     device_ts: int | None, received_ms: int,
                     seq: int | None = None) -> dict[str, Any] | None:
    """Make the recall when ``lot`` was released before its test and ``reasons`` (why the
    result fails) is not empty, inside the caller's transaction: the recall list, a
    ``recall`` hold on the lot and on each blend containing it, the critical alert
    ``recall_required`` and the ``recall`` decision. Returns the list, or None when no
    recall is due (result passes, lot not released before test, recall already open)."""
    row = reads.lot(conn, lot)
    if not reasons or row is None or not row.get("released_before_test"):
        return None
    try:
        found = recall_list(conn, lot)
    except sqlite3.Error as exc:
        # the holds and the alert matter more than the list: make them, say the list failed
        log.error("recall of %s: the recall list could not be read: %s", lot, exc)
        found = {"lot": lot, "blends": blends.blends_of(conn, lot), "trips": [], "cars": [],
                 "hash": None, "list_error": f"{exc}: fix the store, then run "
                                             f"`portwatch lot recall {lot}`"}
    detail = {"lot": lot, "reasons": reasons, "hash": found["hash"],
              "trips": len(found["trips"]), "cars": len(found["cars"]),
              "blends": [b["lot"] for b in found["blends"]]}
    if "list_error" in found:
        detail["list_error"] = found["list_error"]
    alert = Alert(code=ALERT_CODE, device_id=device_id, active=True, severity="critical",
                  subject=lot, detail=detail)
    if not apply_alert(conn, RULE, alert, device_ts=device_ts, received_ms=received_ms,
                       seq=seq, cause={"device_id": device_id, "seq": seq}):
        return None  # this lot's recall is open already: one list, one hold
    time_ms = received_ms
    reason = f"recall: result failed after release before test ({'; '.join(reasons)})"
    for target in [lot, *detail["blends"]]:
        _place_recall_hold(conn, target, reason[:500], time_ms)
    ledger_log.append_decision(conn, "recall", f"rule:{RULE}", detail, time_ms)
    return found


def on_sample(conn: Any, lot: str, sample: Mapping[str, Any], *, device_id: str,
              device_ts: int | None, received_ms: int, seq: int | None = None,
              limits: Limits | None = None) -> dict[str, Any] | None:
    """Judge a ``sample`` body of ``lot`` against its commodity's limits (``limits``, else
    ``current_limits()``) and make the recall if it fails after a release before test
    (see ``on_failed_result``)."""
    row = reads.lot(conn, lot)
    if row is None:
        return None
    why = failures(str(row.get("commodity") or ""), sample, limits or current_limits())
    return on_failed_result(conn, lot, why, device_id=device_id, device_ts=device_ts,
                            received_ms=received_ms, seq=seq)


def _place_recall_hold(conn: Any, lot: str, reason: str, time_ms: int) -> None:
    from controller import holds as holds_mod  # holds calls blends, which this imports
    holds_mod.place_hold(conn, lot, kind="recall", reason=reason, actor=f"rule:{RULE}",
                         time_ms=time_ms)
