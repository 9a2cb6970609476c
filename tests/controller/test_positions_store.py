"""The positions store: one row per fix projected from ``positions`` events, a resent
batch stored once, reads by device time, and the audit rebuilding several rows per seq
(controller/projections/positions.py, controller/storage/positions.py)."""

from __future__ import annotations

from typing import Any

from controller import audit, registry
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import commit_batch
from controller.storage import Store, positions, read_snapshot
from ctl_helpers import SITE, signed

T0 = 1764072000000


def fixes(start: int, n: int, *, step_ms: int = 5000) -> list[list[int]]:
    return [[start + i * step_ms, 38_900_000 + i * 100, 121_600_000 + i * 100, 400, 90, 9, 8]
            for i in range(n)]


def positions_msg(dev: dict[str, Any], seq: int, fx: list[list[int]]) -> Received:
    return signed(dev, seq=seq, kind="positions", ts=fx[-1][0],
                  body={"fixes": fx, "ign": True, "ext_power": True, "tamper": False,
                        "src": "nmea"})


def _commit(db: Store, *msgs: Received) -> None:
    keys = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs])


def _tracker(db: Store) -> dict[str, Any]:
    return registry.provision(db, device_id="gps-1", site=SITE, kind="gps", driver={})


def test_positions_each_fix_is_a_row_and_a_resent_batch_is_stored_once(db: Store) -> None:
    dev = _tracker(db)
    _commit(db, positions_msg(dev, 1, fixes(T0, 3)))
    _commit(db, positions_msg(dev, 1, fixes(T0, 3)), positions_msg(dev, 2, fixes(T0 + 15000, 2)))
    rows = db.conn.execute("SELECT seq, idx, ts_ms FROM positions ORDER BY seq, idx").fetchall()
    assert rows == [(1, 0, T0), (1, 1, T0 + 5000), (1, 2, T0 + 10000),
                    (2, 0, T0 + 15000), (2, 1, T0 + 20000)]


def test_positions_fixes_between_orders_by_device_time_not_arrival(db: Store) -> None:
    dev = _tracker(db)
    # live fixes first, then a backlog from before them (a coverage gap flushed late)
    _commit(db, positions_msg(dev, 2, fixes(T0 + 60_000, 2)))
    _commit(db, positions_msg(dev, 1, fixes(T0, 3)))
    got = positions.fixes_between(db.conn, "gps-1", T0 + 5000, T0 + 60_000)
    assert [t for t, _, _ in got] == [T0 + 5000, T0 + 10000, T0 + 60_000]
    assert got[0] == (T0 + 5000, 38_900_100, 121_600_100)
    assert positions.fixes_between(db.conn, "other", T0, T0 + 10**6) == []
    track = positions.track(db.conn, "gps-1", T0, None)
    assert [r["ts_ms"] for r in track] == [T0, T0 + 5000, T0 + 10000, T0 + 60_000,
                                           T0 + 65_000]
    assert track[0]["speed_dkmh"] == 400


def _audit(db: Store) -> audit.AuditReport:
    with read_snapshot(db.path) as conn:
        return audit.audit_store(conn, chunk=2)


def test_positions_audit_rebuilds_several_rows_per_seq_clean(db: Store) -> None:
    dev = _tracker(db)
    _commit(db, *(positions_msg(dev, s, fixes(T0 + s * 60_000, 4)) for s in range(1, 6)))
    report = _audit(db)
    assert report.clean, [m.as_json() for m in report.mismatches]
    assert report.tables["positions"].checked == 20


def test_positions_audit_names_an_edited_a_deleted_and_an_added_fix(db: Store) -> None:
    dev = _tracker(db)
    _commit(db, *(positions_msg(dev, s, fixes(T0 + s * 60_000, 4)) for s in range(1, 4)))
    db.conn.execute("UPDATE positions SET lat_e6 = lat_e6 + 5000 WHERE seq=2 AND idx=1")
    db.conn.execute("DELETE FROM positions WHERE seq=3 AND idx=3")
    db.conn.execute("INSERT INTO positions (device_id, seq, idx, ts_ms, lat_e6, lon_e6) "
                    "VALUES ('gps-1', 1, 7, 1, 1, 1)")
    found = {(m.table, m.key, m.problem) for m in _audit(db).mismatches}
    assert found == {("positions", "gps-1/2/1", "edited"), ("positions", "gps-1/3/3", "deleted"),
                     ("positions", "gps-1/1/7", "added")}
    with read_snapshot(db.path) as conn:
        new, _ = audit.audit_new(conn, 0, audit.Replay.load(conn))
    assert {(m.key, m.problem) for m in new.mismatches} == {
        ("gps-1/2/1", "edited"), ("gps-1/3/3", "deleted"), ("gps-1/1/7", "added")}
