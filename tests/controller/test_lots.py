"""Lots and kinds of holds: the lifecycle's transitions and refusals, the status a lot had
at a device time, holds making a lot held and a full release returning it, four-eyes
release of quarantine holds, and the audit rebuilding lots, lot_events, holds and
approvals from their ledger decisions (real SQLite stores)."""

from __future__ import annotations

from typing import Any

import pytest

from controller import audit, lots
from controller import holds as holds_mod
from controller.errors import Conflict, InvalidInput, NotFound
from controller.ledger import entries
from controller.storage import Store, ledger_log, read_snapshot

FIELDS: dict[str, Any] = {
    "lot_id": "LOT-2026-0042", "declaration_no": "CN-DL-2026-118733", "commodity": "wheat",
    "hs_code": "100199", "origin_country": "UA", "vessel": "MV Star Pisces",
    "declared_kg": 52_000_000, "kind": "grain"}
T0 = 1_796_000_000_000


def _declare(db: Store, lot_id: str = "LOT-2026-0042", at: int = T0) -> dict[str, Any]:
    return lots.declare(db, {**FIELDS, "lot_id": lot_id}, actor="cli:alice", at_ms=at)


def _move(db: Store, lot_id: str, status: str, at: int) -> dict[str, Any]:
    with db.transaction() as conn:
        return lots.set_status(conn, lot_id, status, reason=f"to {status}", actor="cli:bob",
                               time_ms=at)


def _decisions(db: Store, kind: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for _, data, _ in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == kind:
            out.append((e.actor, dict(e.body)))
    return out


def _audit(db: Store) -> audit.AuditReport:
    with read_snapshot(db.path) as conn:
        return audit.audit_store(conn, chunk=100)


def test_lot_lifecycle_declared_to_departed_each_step_a_ledger_decision(db: Store) -> None:
    _declare(db)
    path = ["anchorage_quarantine", "unloading", "stored", "released", "departed"]
    for i, status in enumerate(path, 1):
        row = _move(db, "LOT-2026-0042", status, T0 + i * 1000)
        assert row["status"] == status and row["updated_ms"] == T0 + i * 1000
    history = lots.show(db, "LOT-2026-0042")["history"]
    assert [h["status"] for h in history] == ["declared", *path]
    assert [b["status"] for _, b in _decisions(db, "lot")[1:]] == path
    assert lots.show(db, "LOT-2026-0042")["next"] == []


def test_lot_status_impossible_transition_is_conflict_naming_the_possible(db: Store) -> None:
    _declare(db)
    with pytest.raises(Conflict, match="cannot become stored: possible: "
                                       "anchorage_quarantine, unloading"):
        _move(db, "LOT-2026-0042", "stored", T0 + 1)
    with pytest.raises(Conflict, match="place a hold instead"):
        _move(db, "LOT-2026-0042", "held", T0 + 1)
    with pytest.raises(InvalidInput, match="use one of"):
        _move(db, "LOT-2026-0042", "sunk", T0 + 1)
    with pytest.raises(NotFound, match="declare it first"):
        _move(db, "LOT-9", "unloading", T0 + 1)
    assert len(_decisions(db, "lot")) == 1  # the refusals wrote nothing


@pytest.mark.parametrize(("field", "value", "message"), [
    ("hs_code", "1001", "6-10 digit"), ("hs_code", "10019912345", "6-10 digit"),
    ("origin_country", "ZZ", "alpha-2"), ("origin_country", "ua", "alpha-2"),
    ("declared_kg", 0, "whole number"), ("declared_kg", True, "whole number"),
    ("kind", "coal", "grain, ore, other"), ("vessel", "  ", "printable"),
    ("commodity", "a\x00b", "printable"), ("lot_id", "LOT 1", "letters, digits")])
def test_lot_declare_bad_field_is_invalid_input(db: Store, field: str, value: Any,
                                                message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        lots.declare(db, {**FIELDS, field: value}, actor="a", at_ms=T0)
    assert lots.get_lot(db.conn, FIELDS["lot_id"]) is None


def test_lot_declare_twice_is_conflict(db: Store) -> None:
    _declare(db)
    with pytest.raises(Conflict, match="already declared"):
        _declare(db, at=T0 + 5)


def test_lot_unloading_at_device_time_picks_the_latest_to_start(db: Store) -> None:
    _declare(db, "LOT-A")
    _declare(db, "LOT-B")
    _move(db, "LOT-A", "unloading", T0 + 1000)
    _move(db, "LOT-B", "unloading", T0 + 5000)
    _move(db, "LOT-B", "stored", T0 + 9000)
    conn = db.conn
    assert lots.lot_unloading_at(conn, T0 + 999) is None
    assert lots.lot_unloading_at(conn, T0 + 1000) == "LOT-A"
    assert lots.lot_unloading_at(conn, T0 + 6000) == "LOT-B"  # both unloading: the later
    assert lots.lot_unloading_at(conn, T0 + 9000) == "LOT-A"  # B stored by then
    _move(db, "LOT-A", "stored", T0 + 12000)
    assert lots.lot_unloading_at(conn, T0 + 13000) is None
    assert lots.lot_unloading_at(conn, T0 + 7000) == "LOT-B"  # history, not the present


def test_hold_makes_lot_held_and_full_release_restores_its_status(db: Store) -> None:
    _declare(db)
    _move(db, "LOT-2026-0042", "unloading", T0 + 1000)
    holds_mod.hold(db, "LOT-2026-0042", reason="inspection", actor="op", at_ms=T0 + 2000)
    holds_mod.hold(db, "LOT-2026-0042", reason="recall 7", actor="op", at_ms=T0 + 3000,
                   kind="recall")
    lot = lots.get_lot(db.conn, "LOT-2026-0042")
    assert lot is not None and lot["status"] == "held" and lot["held_from"] == "unloading"
    # held while it unloads: still on the unloading line, its later samples are its own
    assert lots.lot_unloading_at(db.conn, T0 + 2500) == "LOT-2026-0042"
    with pytest.raises(Conflict, match="release its holds first"):
        _move(db, "LOT-2026-0042", "stored", T0 + 3500)
    with pytest.raises(Conflict, match="2 active holds"):
        holds_mod.release(db, "LOT-2026-0042", reason="ok", actor="adm", at_ms=T0 + 4000)
    holds_mod.release(db, "LOT-2026-0042", reason="ok", actor="adm", at_ms=T0 + 4000,
                      kind="manual")
    assert lots.get_lot(db.conn, "LOT-2026-0042")["status"] == "held"  # type: ignore[index]
    holds_mod.release(db, "LOT-2026-0042", reason="recall closed", actor="adm",
                      at_ms=T0 + 5000)
    lot = lots.get_lot(db.conn, "LOT-2026-0042")
    assert lot is not None and lot["status"] == "unloading" and lot["held_from"] is None
    assert [h["status"] for h in lots.show(db, "LOT-2026-0042")["history"]] == [
        "declared", "unloading", "held", "unloading"]


def test_place_hold_is_idempotent_per_kind_inside_a_transaction(db: Store) -> None:
    _declare(db)
    with db.transaction() as conn:
        first = holds_mod.place_hold(conn, "LOT-2026-0042", kind="quarantine",
                                     reason="lab: aflatoxin", actor="rule:lab", time_ms=T0 + 1)
        again = holds_mod.place_hold(conn, "LOT-2026-0042", kind="quarantine",
                                     reason="lab: aflatoxin", actor="rule:lab", time_ms=T0 + 2)
        other = holds_mod.place_hold(conn, "LOT-2026-0042", kind="manual",
                                     reason="officer", actor="op", time_ms=T0 + 3)
    assert first == again != other
    assert [b["kind"] for _, b in _decisions(db, "hold")] == ["quarantine", "manual"]
    assert [b["status"] for _, b in _decisions(db, "lot")[1:]] == ["held"]  # held once
    with pytest.raises(InvalidInput, match="hold kind"), db.transaction() as conn:
        holds_mod.place_hold(conn, "LOT-2026-0042", kind="whim", reason="x", actor="a",
                             time_ms=T0 + 4)


def test_quarantine_release_needs_two_different_release_officers(db: Store) -> None:
    _declare(db)
    _move(db, "LOT-2026-0042", "unloading", T0 + 1000)
    h = holds_mod.hold(db, "LOT-2026-0042", reason="phyto", actor="op", at_ms=T0 + 2000,
                       kind="quarantine")
    with pytest.raises(Conflict, match="2 different release officers"):
        holds_mod.release(db, "LOT-2026-0042", reason="admin alone", actor="adm",
                          at_ms=T0 + 2500)
    first = holds_mod.approve_release(db, h["id"], reason="lab clean", officer="ro:ann",
                                      at_ms=T0 + 3000)
    assert first["released_ms"] is None and first["needed"] == 1
    assert lots.get_lot(db.conn, "LOT-2026-0042")["status"] == "held"  # type: ignore[index]
    with pytest.raises(Conflict, match="different release officer"):
        holds_mod.approve_release(db, h["id"], reason="again", officer="ro:ann",
                                  at_ms=T0 + 3500)
    second = holds_mod.approve_release(db, h["id"], reason="cert 551", officer="ro:ben",
                                       at_ms=T0 + 4000)
    assert second["released_ms"] == T0 + 4000 and second["needed"] == 0
    assert second["approvals"] == ["ro:ann", "ro:ben"]
    assert [(a, b["approval"]) for a, b in _decisions(db, "release_approval")] == [
        ("ro:ann", 1), ("ro:ben", 2)]
    (actor, release), = _decisions(db, "release")
    assert actor == "ro:ben" and release["approved_by"] == ["ro:ann", "ro:ben"]
    assert lots.get_lot(db.conn, "LOT-2026-0042")["status"] == "unloading"  # type: ignore[index]
    with pytest.raises(Conflict, match="nothing to approve"):
        holds_mod.approve_release(db, h["id"], reason="late", officer="ro:cid", at_ms=T0 + 5000)


def test_approve_release_of_a_manual_hold_or_unknown_hold_is_refused(db: Store) -> None:
    h = holds_mod.hold(db, "LOT-X", reason="x", actor="op", at_ms=T0)
    with pytest.raises(Conflict, match="an admin releases it"):
        holds_mod.approve_release(db, h["id"], reason="x", officer="ro:ann", at_ms=T0 + 1)
    with pytest.raises(NotFound, match="no hold 99"):
        holds_mod.approve_release(db, 99, reason="x", officer="ro:ann", at_ms=T0 + 1)


def test_hold_on_undeclared_lot_keeps_today_behaviour(db: Store) -> None:
    h = holds_mod.hold(db, "LOT-UNDECLARED", reason="x", actor="op", at_ms=T0)
    assert h["kind"] == "manual" and lots.get_lot(db.conn, "LOT-UNDECLARED") is None
    assert _decisions(db, "lot") == []


def test_audit_lots_and_holds_clean_then_edited_deleted_added_named(db: Store) -> None:
    _declare(db)
    _move(db, "LOT-2026-0042", "unloading", T0 + 1000)
    h = holds_mod.hold(db, "LOT-2026-0042", reason="phyto", actor="op", at_ms=T0 + 2000,
                       kind="quarantine")
    holds_mod.approve_release(db, h["id"], reason="ok", officer="ro:ann", at_ms=T0 + 3000)
    holds_mod.approve_release(db, h["id"], reason="ok", officer="ro:ben", at_ms=T0 + 4000)
    _declare(db, "LOT-B", at=T0 + 5000)
    report = _audit(db)
    assert report.clean, report.mismatches
    assert report.count("lots").checked == 2 and report.count("lot_events").checked == 5
    assert report.count("hold_approvals").checked == 2
    with db.transaction() as conn:
        conn.execute("UPDATE lots SET declared_kg=1 WHERE lot_id='LOT-2026-0042'")
        conn.execute("DELETE FROM lot_events WHERE status='held'")
        conn.execute("UPDATE holds SET kind='manual'")
        conn.execute("DELETE FROM hold_approvals WHERE officer='ro:ann'")
        conn.execute("INSERT INTO lots (lot_id, declaration_no, commodity, hs_code, "
                     "origin_country, vessel, declared_kg, kind, status, created_ms, "
                     "updated_ms) VALUES ('LOT-FAKE','d','c','100199','UA','v',1,'grain',"
                     "'released',1,1)")
    found = {(m.table, m.key, m.problem) for m in _audit(db).mismatches}
    assert ("lots", "LOT-2026-0042", "edited") in found
    assert ("lots", "LOT-FAKE", "added") in found
    assert ("holds", str(h["id"]), "edited") in found
    assert ("hold_approvals", f"{h['id']}/ro:ann", "deleted") in found
    assert any(t == "lot_events" and k == "deleted" for t, _, k in found)


def test_audit_new_checks_the_event_row_of_each_new_lot_decision(db: Store) -> None:
    _declare(db)
    start = ledger_log.size(db.conn)
    _move(db, "LOT-2026-0042", "unloading", T0 + 1000)
    report, _ = audit.audit_new(db.conn, start, audit.Replay.load(db.conn))
    assert report.clean and report.count("lot_events").checked == 1
    with db.transaction() as conn:
        conn.execute("UPDATE lot_events SET reason='edited' WHERE status='unloading'")
    report, _ = audit.audit_new(db.conn, start, audit.Replay.load(db.conn))
    assert [(m.table, m.problem) for m in report.mismatches] == [("lot_events", "edited")]


def test_quarantine_hold_on_blend_input_holds_blend_until_four_eyes_release(
        db: Store) -> None:
    from controller import blends
    _declare(db, "ORE-A")
    _declare(db, "ORE-B")
    for lot in ("ORE-A", "ORE-B"):
        _move(db, lot, "unloading", T0 + 100)
        _move(db, lot, "stored", T0 + 200)
    blends.create(db, "BL-1", [blends.BlendInput("ORE-A", 600), blends.BlendInput("ORE-B", 400)],
                  reason="stockpile 3", actor="op", time_ms=T0 + 300)
    _move(db, "BL-1", "unloading", T0 + 350)
    h = holds_mod.hold(db, "ORE-A", reason="lab: cadmium", actor="op", at_ms=T0 + 400,
                       kind="quarantine")
    blend_hold = holds_mod.list_holds(db, lot="BL-1")
    assert [x["kind"] for x in blend_hold] == ["blend_input"]
    assert lots.get_lot(db.conn, "BL-1")["status"] == "held"  # type: ignore[index]
    holds_mod.approve_release(db, h["id"], reason="retest ok", officer="ro:ann", at_ms=T0 + 500)
    assert holds_mod.list_holds(db, lot="BL-1")  # one approval: both still held
    holds_mod.approve_release(db, h["id"], reason="cert", officer="ro:ben", at_ms=T0 + 600)
    assert holds_mod.list_holds(db, lot="BL-1") == []
    assert lots.get_lot(db.conn, "BL-1")["status"] == "unloading"  # type: ignore[index]
    assert lots.get_lot(db.conn, "ORE-A")["status"] == "stored"  # type: ignore[index]
    report = _audit(db)
    assert report.clean, report.mismatches


def test_lots_schema_step_runs_again_safely_and_old_holds_are_manual(db: Store) -> None:
    from controller.storage import open_store
    # a hold written the way the code before kinds wrote it (no kind column given)
    db.conn.execute("INSERT INTO holds (lot, reason, actor, held_ms) VALUES "
                    "('LOT-OLD','x','op',1)")
    _declare(db)
    db.conn.execute("PRAGMA user_version=8")  # makes the next open migrate again
    db.close()
    again = open_store(db.path)
    assert holds_mod.list_holds(again)[0]["kind"] == "manual"
    assert lots.get_lot(again.conn, "LOT-2026-0042") is not None
    indexes = {r[1] for r in again.conn.execute("PRAGMA index_list(holds)")}
    assert "holds_active_kind" in indexes and "holds_active" not in indexes


def test_lot_declared_while_its_id_is_on_hold_starts_held(db: Store) -> None:
    holds_mod.hold(db, "LOT-2026-0042", reason="tip-off", actor="op", at_ms=T0 - 10)
    row = _declare(db)
    assert row["status"] == "held" and row["held_from"] == "declared"
    holds_mod.release(db, "LOT-2026-0042", reason="cleared", actor="adm", at_ms=T0 + 10)
    assert lots.get_lot(db.conn, "LOT-2026-0042")["status"] == "declared"  # type: ignore[index]
    assert _audit(db).clean


def test_lot_storage_and_projection_agree_on_columns() -> None:
    from controller.projections import lots as projected
    from controller.storage import lots as stored

    assert stored.LOT_COLUMNS == projected.LOT_COLUMNS
    assert stored.EVENT_COLUMNS == projected.EVENT_COLUMNS
