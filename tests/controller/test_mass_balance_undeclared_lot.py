"""Mass balance after an out-gate weighing whose trip's order names a lot nobody declared
(orders came before lots: the demo's and the trucks scenario's lots are never declared)."""

from __future__ import annotations

from controller import mass_balance, registry
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.storage import Store, transaction
from ctl_helpers import SITE, signed

T0 = 1_780_000_000_000


def test_mass_balance_supervise_undeclared_lot_departure_is_skipped(db: Store) -> None:
    out_gate = registry.provision(db, device_id="wb-out", site=SITE, kind="weighbridge",
                                  driver={})
    with transaction(db.conn) as conn:  # the gate made trip t-1 of an undeclared lot
        conn.execute("INSERT INTO trips (trip_id, tracker_id, plate, lot, gate_device, "
                     "weighing_seq, net_kg, departed_ms, status) VALUES ('t-1', 'trk', 'p', "
                     "'LOT-NEVER-DECLARED', 'wb-out', 1, 30000, ?, 'in_transit')", [T0])
    seen: list[str] = []
    body = {"plate": "辽B12345", "gross_kg": 45000, "tare_kg": 15000, "net_kg": 30000,
            "division_kg": 20, "stable_ms": 3000, "arrived_ts": T0, "model": "sim"}
    result = commit_batch(db.conn, [check_message(
        signed(out_gate, seq=1, ts=T0, body=body, received_ms=T0 + 500), site=SITE,
        keys=registry.secrets_by_device(db))],
        supervise=lambda conn, facts: seen.extend(mass_balance.supervise(conn, facts)) or [])
    assert result.stored == 1 and seen == []  # no balance, and no NotFound for the batch
    assert db.conn.execute("SELECT count(*) FROM alerts WHERE code=?",
                           [mass_balance.CODE]).fetchone()[0] == 0
