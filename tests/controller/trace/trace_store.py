"""A scripted store for the trace tests: a lot, a weighing at the out-gate, an order and
its trip, a hold, optionally a blend, and a signed checkpoint, all through the real
controller modules (no UART or network is involved, nothing is mocked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller import holds, orders, registry, trips
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.ledger import checkpoint
from controller.site import set_site
from controller.storage import Store, trace_reads
from ctl_helpers import SITE, weighing_body
from devsig_helpers import DevKey, evt

T0 = 1_764_072_000_000
MIN = 60_000
ORIGIN = "portwatch/trace-test"


def lots_built(db: Store) -> bool:
    """Whether the LOTS engineer's tables are in this tree's schema."""
    return trace_reads.has_table(db.conn, "lots")


def declare(db: Store, lot: str, *, vessel: str, kg: int, start_min: int = 90) -> None:
    """A lot declared, unloaded and stored through controller/lots.py (each status a
    ``lot`` decision: the ledger entries the trace proves it with)."""
    from controller import lots
    lots.declare(db, {"lot_id": lot, "declaration_no": f"DEC-{lot}", "commodity": "soybeans",
                      "hs_code": "120190", "origin_country": "BR", "vessel": vessel,
                      "declared_kg": kg, "kind": "grain"},
                 actor="cli:officer", at_ms=T0 - start_min * MIN)
    for i, status in enumerate(("unloading", "stored"), start=1):
        with db.transaction() as conn:
            lots.set_status(conn, lot, status, reason="scripted", actor="cli:officer",
                            time_ms=T0 - (start_min - 10 * i) * MIN)


def blend(db: Store, out: str, inputs: list[tuple[str, int]]) -> None:
    """A blend row and its inputs, with the ``blend`` decision."""
    from controller.storage import ledger_log
    total = sum(kg for _, kg in inputs)
    with db.transaction() as conn:
        ledger_log.append_decision(conn, "blend", "cli:officer", {
            "blend_lot": out, "inputs": [{"lot": lot, "kg": kg} for lot, kg in inputs]},
            T0 - 40 * MIN)
        conn.execute("INSERT INTO blends (blend_lot, commodity, origin, origins_json, "
                     "total_kg, reason, actor, created_ms) VALUES (?,?,?,?,?,?,?,?)",
                     (out, "iron ore", "mixed", "[]", total, "grade", "cli:officer",
                      T0 - 40 * MIN))
        for lot, kg in inputs:
            conn.execute("INSERT INTO blend_inputs (blend_lot, input_lot, kg, fraction) "
                         "VALUES (?,?,?,?)", (out, lot, kg, kg / total))


def truck_out(db: Store, dev: dict[str, Any], lot: str, *, seq: int, plate: str,
              net_kg: int, destination: str = "dest-feed-mill",
              dkey: DevKey | None = None, trip_kg: int | None = None) -> str:
    """A weighing at wb-out (a real signed custody event through the ingest's writer), an
    order for ``lot`` and its trip departing on that weighing; returns the trip id."""
    body = weighing_body(gross=net_kg + 15000, plate=plate)
    keys = registry.secrets_by_device(db)
    msg = evt(dev, seq=seq, dkey=dkey, body=body, ts=T0 + seq, received_ms=T0 + seq)
    commit_batch(db.conn, [check_message(msg, site=SITE, keys=keys)])
    order = orders.create(db, orders.NewOrder(
        lot=lot, plate=plate, tracker_id="gps-1", destination=destination,
        corridor="c-feed-mill", window_start_ms=T0 - 60 * MIN, window_end_ms=T0 + 180 * MIN,
        expected_net_kg=net_kg), actor="op-1", time_ms=T0 - 30 * MIN)
    with db.transaction() as conn:
        trips.depart(conn, order["order_id"], gate_device="wb-out", weighing_seq=seq,
                     net_kg=net_kg if trip_kg is None else trip_kg, time_ms=T0 + seq)
    return str(order["order_id"])


def scripted(db: Store, db_path: Path) -> dict[str, Any]:
    """The whole story: LOT-A (and LOT-B, blended into LOT-AB when blends exist) off the
    vessel, two trucks out with LOT-A, a released hold on it, a checkpoint signed."""
    set_site(None)  # the bundled demo site
    dev = registry.provision(db, device_id="wb-out", site=SITE, kind="weighbridge", driver={})
    dkey = DevKey(d=0x5EED)  # wb-out signs its custody events with its own key
    registry.set_device_key(db, "wb-out", dkey.pub, actor="cli:admin", now=T0 - 100 * MIN)
    registry.provision(db, device_id="gps-1", site=SITE, kind="gps", driver={})
    built = lots_built(db)
    if built:
        declare(db, "LOT-A", vessel="MV Ocean Star", kg=60000)
        declare(db, "LOT-B", vessel="MV Cape Hope", kg=20000, start_min=60)
    has_blends = trace_reads.has_table(db.conn, "blend_inputs")
    if has_blends:
        blend(db, "LOT-AB", [("LOT-A", 30000), ("LOT-B", 10000)])
    holds.hold(db, "LOT-A", reason="fumigation check", actor="cli:alice", at_ms=T0 - 50 * MIN)
    holds.release(db, "LOT-A", reason="passed", actor="cli:bob", at_ms=T0 - 45 * MIN)
    t1 = truck_out(db, dev, "LOT-A", seq=1, plate="辽B12345", net_kg=30120,
                   dkey=dkey)
    t2 = truck_out(db, dev, "LOT-A", seq=2, plate="辽B67890", net_kg=29880,
                   dkey=dkey)
    t3 = truck_out(db, dev, "LOT-AB", seq=3, plate="辽B11111", net_kg=25000,
                   dkey=dkey) if has_blends else None
    rail = trace_reads.has_table(db.conn, "train_cars")
    if rail:  # a train manifest with one car of LOT-A (no passage matched: manifest kg)
        from controller import trains
        registry.provision(db, device_id="rail-1", site=SITE, kind="rail_reader", driver={})
        trains.declare(db, {"train_id": "T-1", "reader": "rail-1", "direction": "out",
                            "cars": [{"initial": "DLCX", "number": 1234, "lot": "LOT-A",
                                      "destination": "dest-feed-mill",
                                      "declared_kg": 61000}]},
                       actor="cli:yard", at_ms=T0 + 5 * MIN)
    checkpoint.create(db.conn, checkpoint.log_signer(db_path, ORIGIN), T0 + 10 * MIN)
    return {"trips": [t1, t2], "blend_trip": t3, "lots_built": built,
            "blends_built": has_blends, "rail_built": rail, "wb_out": dev, "dkey": dkey}
