"""Commands and out-gate decisions on a real store: issue, wire, acknowledgement through the
ingest writer, expiry with its alert, the decision inside the batch and its resumption."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from controller import commands, holds, registry
from controller.errors import InvalidInput
from controller.gate_service import GateControl
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.ledger import entries
from controller.storage import Store, ledger_log, now_ms, transaction
from controller.storage import commands as rows
from ctl_helpers import SITE, signed, weighing_body
from protocols import envelope

NOW = 1_764_072_001_000  # just after ctl_helpers' received_ms


def _decisions(db: Store, kind: str) -> list[dict[str, Any]]:
    out = []
    for _, data, _ in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == kind:
            out.append(dict(e.body))
    return out


def _issue(db: Store, device_id: str = "wb-1", ttl_ms: int = 60_000) -> dict[str, Any]:
    with transaction(db.conn) as conn:
        return commands.issue(conn, device_id=device_id, kind="barrier", now_ms=NOW,
                              device_offset_ms=-500, ttl_ms=ttl_ms,
                              body={"action": "open", "weighing_seq": 7, "reason": "cleared"})


def _ack(device: dict[str, Any], cid: str, result: str = "done", detail: str = "",
         seq: int = 1) -> Any:
    return signed(device, seq=seq, channel="cmdack", kind="cmdack",
                  body={"id": cid, "result": result, "detail": detail})


def test_command_issue_stores_pending_with_ledger_decision(db: Store,
                                                           device: dict[str, Any]) -> None:
    row = _issue(db)
    assert row["state"] == "pending" and row["expires_ms"] == NOW + 60_000
    body = json.loads(row["body_json"])
    assert body["expires_ts"] == NOW + 60_000 - 500  # in the device's clock
    assert _decisions(db, "command")[0]["command_id"] == row["id"]


def test_command_issue_bad_body_is_refused(db: Store, device: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="action"), transaction(db.conn) as conn:
        commands.issue(conn, device_id="wb-1", kind="barrier", now_ms=NOW, device_offset_ms=0,
                       body={"action": "lift", "weighing_seq": 1, "reason": ""})
    assert rows.list_commands(db.conn) == []


def test_command_wire_verifies_under_the_device_key_on_cmd_only(
        db: Store, device: dict[str, Any]) -> None:
    row = _issue(db)
    secret = bytes.fromhex(device["secret_hex"])
    topic, wire = commands.wire(SITE, row, device["key_id"], secret, NOW)
    assert topic.endswith("/wb-1/cmd")
    fields, _ = envelope.open_message(lambda k: secret, topic, wire)
    assert fields["kind"] == "barrier" and fields["body"]["id"] == row["id"]
    with pytest.raises(envelope.EnvelopeError, match="bad_signature"):  # not an ack
        envelope.open_message(lambda k: secret, topic[:-3] + "ack", wire)


def test_cmdack_done_acks_the_command_and_goes_to_the_ledger(
        db: Store, device: dict[str, Any]) -> None:
    row = _issue(db)
    keys = registry.secrets_by_device(db)
    result = commit_batch(db.conn, [check_message(_ack(device, row["id"]), site=SITE,
                                                  keys=keys)])
    assert result.rejected == {}
    got = rows.get(db.conn, row["id"])
    assert got is not None and got["state"] == "acked"
    assert json.loads(got["ack_json"])["result"] == "done"
    assert ledger_log.count_messages(db.conn, "cmdack") == 1
    # the same bytes again: a duplicate, refused; a duplicate-result ack keeps it acked
    again = commit_batch(db.conn, [check_message(_ack(device, row["id"]), site=SITE,
                                                 keys=keys)])
    assert again.rejected == {"duplicate": 1}


@pytest.mark.parametrize(("result", "detail", "state"), [
    ("refused", "weighing 7 is not on the deck", "failed"),
    ("expired", "", "failed"),
    ("duplicate", "done", "acked"),
    ("duplicate", "refused", "failed"),
])
def test_cmdack_results_settle_the_command(db: Store, device: dict[str, Any], result: str,
                                           detail: str, state: str) -> None:
    row = _issue(db)
    commit_batch(db.conn, [check_message(_ack(device, row["id"], result, detail), site=SITE,
                                         keys=registry.secrets_by_device(db))])
    got = rows.get(db.conn, row["id"])
    assert got is not None and got["state"] == state


def test_cmdack_for_unknown_or_other_device_command_is_rejected(
        db: Store, device: dict[str, Any]) -> None:
    registry.provision(db, device_id="wb-2", site=SITE, kind="weighbridge", driver={})
    row = _issue(db, device_id="wb-2")
    keys = registry.secrets_by_device(db)
    result = commit_batch(db.conn, [
        check_message(_ack(device, "c-nope"), site=SITE, keys=keys),
        check_message(_ack(device, row["id"], seq=2), site=SITE, keys=keys)])
    assert result.rejected == {"unknown_command": 2}
    got = rows.get(db.conn, row["id"])
    assert got is not None and got["state"] == "pending"


def test_cmdack_bad_body_is_rejected(db: Store, device: dict[str, Any]) -> None:
    msg = signed(device, seq=1, channel="cmdack", kind="cmdack",
                 body={"id": "c-1", "result": "maybe"})
    v = check_message(msg, site=SITE, keys=registry.secrets_by_device(db))
    assert getattr(v, "reason", None) == "bad_body"


def test_command_due_resend_then_expire_raises_critical_alert(
        db: Store, device: dict[str, Any]) -> None:
    row = _issue(db, ttl_ms=10_000)
    assert [r["id"] for r in commands.due(db.conn, NOW)] == [row["id"]]
    with transaction(db.conn) as conn:
        rows.mark_sent(conn, row["id"], NOW)
    assert commands.due(db.conn, NOW + 2_999) == []
    assert len(commands.due(db.conn, NOW + 3_000)) == 1  # re-sent every 3 s
    with transaction(db.conn) as conn:
        assert commands.expire_due(conn, NOW + 9_999) == []
        assert [r["id"] for r in commands.expire_due(conn, NOW + 10_000)] == [row["id"]]
    got = rows.get(db.conn, row["id"])
    assert got is not None and got["state"] == "expired"
    alerts = [a for a in _decisions(db, "alert") if a["code"] == "command_unacknowledged"]
    assert alerts and alerts[0]["severity"] == "critical"
    assert alerts[0]["detail"]["attempts"] == 1
    assert commands.due(db.conn, NOW + 20_000) == []


# -- out-gate decisions ----------------------------------------------------------------------


def _orders_table_order(conn: sqlite3.Connection, plate: str, at_ms: int) -> dict[str, Any] | None:
    """The trips work's open_order_for_plate, as a test double over the same table."""
    cur = conn.execute("SELECT * FROM orders WHERE plate=? AND status='open' AND "
                       "window_start_ms<=? AND window_end_ms>=?", (plate, at_ms, at_ms))
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def _put_order(db: Store, expected: int = 30240, lot: str = "LOT-1") -> None:
    with transaction(db.conn) as conn:
        conn.execute("INSERT INTO orders (order_id, lot, plate, tracker_id, destination, "
                     "corridor, window_start_ms, window_end_ms, expected_net_kg, status) "
                     "VALUES ('o-1', ?, '辽B12345', 'trk-1', 'dest-a', 'cor-a', 0, ?, ?, "
                     "'open')", (lot, NOW * 2, expected))


class Departures:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, conn: sqlite3.Connection, order_id: str, **kw: Any) -> None:
        assert conn.in_transaction  # with the decision, not after it
        self.calls.append((order_id, kw))


def _gate(departures: Departures) -> GateControl:
    return GateControl(gates=lambda: frozenset({"wb-1"}), find_order=_orders_table_order,
                       depart=departures)


def _weigh(db: Store, device: dict[str, Any], gate: GateControl, seq: int = 1) -> None:
    commit_batch(db.conn, [check_message(signed(device, seq=seq, body=weighing_body(45240)),
                                         site=SITE, keys=registry.secrets_by_device(db))],
                 supervise=gate.supervise)


def test_gate_open_order_within_tolerance_opens_and_departs(
        db: Store, device: dict[str, Any]) -> None:
    _put_order(db, expected=30260)  # net 30240: 20 kg off, MPE 40 kg
    dep = Departures()
    _weigh(db, device, _gate(dep))
    (cmd,) = rows.list_commands(db.conn)
    body = json.loads(cmd["body_json"])
    assert (body["action"], body["weighing_seq"]) == ("open", 1)
    assert dep.calls == [("o-1", {"gate_device": "wb-1", "weighing_seq": 1, "net_kg": 30240,
                                  "time_ms": dep.calls[0][1]["time_ms"]})]
    (gate,) = _decisions(db, "gate")
    assert gate["action"] == "open" and gate["order_id"] == "o-1"
    assert rows.gate_decision(db.conn, "wb-1", 1) is not None


def test_gate_lot_on_hold_denies_with_alert(db: Store, device: dict[str, Any]) -> None:
    _put_order(db)
    holds.hold(db, "LOT-1", reason="fumigation", actor="test")
    dep = Departures()
    _weigh(db, device, _gate(dep))
    (cmd,) = rows.list_commands(db.conn)
    body = json.loads(cmd["body_json"])
    assert body["action"] == "deny" and "fumigation" in body["reason"]
    assert body["display"].startswith("STOP: lot on hold")
    assert dep.calls == []
    denied = [a for a in _decisions(db, "alert") if a["code"] == "gate_denied"]
    assert denied[0]["detail"]["reasons"][0]["code"] == "lot_on_hold"


def test_gate_other_devices_and_kinds_are_not_decided(db: Store,
                                                     device: dict[str, Any]) -> None:
    gate = GateControl(gates=lambda: frozenset({"wb-out"}), find_order=_orders_table_order)
    _weigh(db, device, gate)
    assert rows.list_commands(db.conn) == [] and _decisions(db, "gate") == []


def test_gate_failing_decision_leaves_batch_committed_and_resume_decides(
        db: Store, device: dict[str, Any]) -> None:
    _put_order(db)

    def broken(conn: sqlite3.Connection, plate: str, at_ms: int) -> None:
        raise RuntimeError("orders module crashed")

    gate = GateControl(gates=lambda: frozenset({"wb-1"}), find_order=broken)
    _weigh(db, device, gate)
    assert gate.failures == 1
    assert db.conn.execute("SELECT count(*) FROM weighings").fetchone()[0] == 1
    assert rows.list_commands(db.conn) == []
    # the controller restarts with a working orders module: the weighing is decided
    dep = Departures()
    fixed = _gate(dep)
    received = db.conn.execute("SELECT received_ms FROM weighings").fetchone()[0]
    assert fixed.resume(db.conn, at_ms=received + 1000) == 1
    assert fixed.resume(db.conn, at_ms=received + 1000) == 0  # once
    assert len(rows.list_commands(db.conn)) == 1 and len(dep.calls) == 1


def test_gate_resume_leaves_old_weighings_alone(db: Store, device: dict[str, Any]) -> None:
    gate = GateControl(gates=lambda: frozenset(), find_order=_orders_table_order)
    _weigh(db, device, gate)  # not an out-gate then
    received = db.conn.execute("SELECT received_ms FROM weighings").fetchone()[0]
    later = _gate(Departures())
    assert later.resume(db.conn, at_ms=received + later.ttl_ms + 1) == 0


def test_driver_barrier_mode_is_validated() -> None:
    from controller.drivers import validate_driver

    base = {"type": "weighbridge", "map": "portwatch-sim", "host": "10.0.0.5", "port": 502}
    for mode in ("local", "controller"):
        assert validate_driver("weighbridge", {**base, "barrier": mode})["barrier"] == mode
    with pytest.raises(ValueError, match="barrier must be one of"):
        validate_driver("weighbridge", {**base, "barrier": "remote"})


def test_gate_store_audits_clean_after_open_deny_ack_and_expiry(
        db: Store, device: dict[str, Any]) -> None:
    """The real orders and trips (controller/orders.py, trips.depart): a cleared truck
    departs, a held lot's truck is denied, both commands answered or expired; the audit
    that rebuilds served rows from the ledger finds nothing amiss."""
    from controller.audit import audit_store
    from controller.orders import NewOrder, create
    from controller.site import current_site

    site = current_site()
    dest = site.zones_of_kind("destination")[0].id
    corridor = next(c.id for c in site.corridors.values() if c.to_zone == dest)
    registry.provision(db, device_id="trk-1", site=SITE, kind="gps", driver={})
    for plate, lot in (("辽B12345", "LOT-1"), ("辽B54321", "LOT-2")):
        create(db, NewOrder(lot=lot, plate=plate, tracker_id="trk-1", destination=dest,
                            corridor=corridor, window_start_ms=0, window_end_ms=NOW * 2,
                            expected_net_kg=30240), actor="test")
    holds.hold(db, "LOT-2", reason="x", actor="test")
    gate = GateControl(gates=lambda: frozenset({"wb-1"}))
    keys = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(signed(device, seq=1), site=SITE, keys=keys),
                           check_message(signed(device, seq=2, body=weighing_body(
                               45240, plate="辽B54321")), site=SITE, keys=keys)],
                 supervise=gate.supervise)
    cmds = sorted(rows.list_commands(db.conn), key=lambda r: r["issued_ms"])
    assert [json.loads(c["body_json"])["action"] for c in cmds] == ["open", "deny"]
    commit_batch(db.conn, [check_message(_ack(device, cmds[0]["id"]), site=SITE, keys=keys)])
    with transaction(db.conn) as conn:
        commands.expire_due(conn, cmds[1]["expires_ms"])
    report = audit_store(db.conn)
    assert report.mismatches == []
    assert db.conn.execute("SELECT plate FROM trips").fetchall() == [("辽B12345",)]
    assert {t: report.count(t).checked for t in ("holds", "gate_decisions", "commands")} == {
        "holds": 1, "gate_decisions": 2, "commands": 2}
    # a tamperer releases the hold, turns the deny into an open and deletes a command
    with transaction(db.conn) as conn:
        conn.execute("UPDATE holds SET released_ms = 1, released_by = 'x'")
        conn.execute("UPDATE gate_decisions SET action = 'open' WHERE weighing_seq = 2")
        conn.execute("DELETE FROM commands WHERE id = ?", [cmds[0]["id"]])
    found = {(m.table, m.problem) for m in audit_store(db.conn).mismatches}
    assert found == {("holds", "edited"), ("gate_decisions", "edited"),
                     ("commands", "deleted")}


def test_gate_sender_survives_a_failed_publish_and_resends(db: Store,
                                                          device: dict[str, Any]) -> None:
    """The sender loop with a publish that fails once (the link lost mid-publish), on the
    store's own connection and a one-thread executor, as the ingest runs it."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import aiomqtt

    with transaction(db.conn) as conn:
        row = commands.issue(conn, device_id="wb-1", kind="barrier", now_ms=now_ms(),
                             device_offset_ms=0, ttl_ms=60_000,
                             body={"action": "deny", "weighing_seq": 3, "reason": "x"})
    sent: list[str] = []

    async def send(r: dict[str, Any]) -> bool:
        if not sent:
            sent.append("lost")
            raise aiomqtt.MqttError("link lost")
        sent.append(r["id"])
        return True

    async def go() -> None:
        gate = GateControl(gates=lambda: frozenset(), resend_ms=100)
        with ThreadPoolExecutor(max_workers=1) as ex:
            task = asyncio.create_task(gate.run(db.conn, ex, send))

            async def attempts() -> int:
                # on the sender's own thread: the store's connection is not shared
                got = await asyncio.get_running_loop().run_in_executor(
                    ex, rows.get, db.conn, row["id"])
                return int(got["attempts"]) if got else 0

            try:
                async with asyncio.timeout(10):
                    # sent, then sent again (no ack came), and the second attempt recorded:
                    # the record is written after the publish returns
                    while sent.count(row["id"]) < 2 or await attempts() < 2:
                        await asyncio.sleep(0.05)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
    assert sent[0] == "lost"
    got = rows.get(db.conn, row["id"])
    assert got is not None and got["attempts"] >= 2 and got["state"] == "pending"
