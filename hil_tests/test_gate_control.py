"""Gate control end to end: the out-gate weighbridge agent under MicroPython (96 KiB heap) in
``barrier: "controller"`` mode, the pymodbus indicator emulator with its barrier coil, real
Mosquitto over TLS and the controller process deciding on its SQLite store.

The device id ``wb-out`` is the demo site's out-gate weighbridge (role ``out``), which is
the site the controller runs with here. Transfer orders are made with controller.orders on
the same store file (the API does the same), for a registered GPS tracker.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from controller import holds, registry
from controller.orders import NewOrder, create
from controller.site import current_site
from controller.storage import now_ms, open_store
from delivery import publish
from protocols import envelope, topics
from tools.procs import wait_until
from tools.rig import Rig

# long enough standing still on the deck for the decision to come back (the emulator's
# trucks leave on their timeline whatever the barrier does)
STAY = ("--ramp-s", "0.3", "--settle-s", "0.3", "--stable-s", "6", "--leave-s", "0.3",
        "--gap-s", "0.6")
TARE, NET = 15000, 30000


def _order(rig: Rig, plate: str, lot: str, expected_net_kg: int = NET) -> dict[str, Any]:
    site = current_site()
    dest = site.zones_of_kind("destination")[0].id
    corridor = next(c.id for c in site.corridors.values() if c.to_zone == dest)
    with open_store(rig.db_path) as db:
        if "trk-1" not in registry.secrets_by_device(db):
            registry.provision(db, device_id="trk-1", site=rig.site, kind="gps", driver={})
        now = now_ms()
        return create(db, NewOrder(lot=lot, plate=plate, tracker_id="trk-1", destination=dest,
                                   corridor=corridor, window_start_ms=now - 60_000,
                                   window_end_ms=now + 3_600_000,
                                   expected_net_kg=expected_net_kg), actor="hil")


def _out_gate(rig: Rig) -> Any:
    agent = rig.add_weighbridge("wb-out", emulator_args=STAY, stable_s=0.4, poll_ms=50)
    agent.config["driver"]["barrier"] = "controller"
    rig.write_config(agent)
    return agent


def _command_for(rig: Rig, seq: int) -> dict[str, Any] | None:
    for c in rig.get("/api/v1/commands", device_id="wb-out"):
        if c["body"]["weighing_seq"] == seq and c["state"] != "pending":
            return dict(c)
    return None


def _weighing_seq(rig: Rig, plate: str) -> int | None:
    found = [w["seq"] for w in rig.get("/api/v1/weighings", device_id="wb-out", plate=plate)]
    return found[0] if found else None


def _ledger_cmdacks(rig: Rig) -> int:
    with sqlite3.connect(rig.db_path) as conn:
        return int(conn.execute("SELECT count(*) FROM ledger_entries WHERE subkind = 'cmdack' "
                                "AND device_id = 'wb-out'").fetchone()[0])


def test_gate_control_cleared_truck_opens_and_held_lot_is_denied(rig: Rig) -> None:
    if "wb-out" not in current_site().devices:
        pytest.skip("the demo site has no wb-out")
    agent = _out_gate(rig)
    rig.start_agent("wb-out")
    wait_until(lambda: rig.device("wb-out")["status"] == "online", 30, what="wb-out online")
    assert agent.emulator is not None
    emu = agent.emulator.client
    _order(rig, "辽B10001", "LOT-A")
    emu.truck("辽B10001", TARE, NET + 20)  # 20 kg off: within the 40 kg in-service MPE
    seq = wait_until(lambda: _weighing_seq(rig, "辽B10001"), 30, what="the first weighing")
    cmd = wait_until(lambda: _command_for(rig, seq), 20, what="the open command answered")
    assert (cmd["body"]["action"], cmd["state"], cmd["ack"]["result"]) == ("open", "acked",
                                                                          "done")
    [visit] = emu.wait_visits(1, timeout=30)
    assert visit["barrier_opened_ts"] is not None  # the coil opened while it stood there
    assert _ledger_cmdacks(rig) >= 1  # the device's answer is in the ledger as sent
    trips = rig.get("/api/v1/trips")
    assert [t["plate"] for t in trips] == ["辽B10001"]  # the order departed

    # a truck of a lot on hold: denied, the coil stays shut, an alert says why
    _order(rig, "辽B10002", "LOT-B")
    with open_store(rig.db_path) as db:
        holds.hold(db, "LOT-B", reason="phytosanitary inspection", actor="hil")
    emu.truck("辽B10002", TARE, NET)
    seq2 = wait_until(lambda: _weighing_seq(rig, "辽B10002"), 30, what="the second weighing")
    cmd2 = wait_until(lambda: _command_for(rig, seq2), 20, what="the deny command answered")
    assert (cmd2["body"]["action"], cmd2["state"]) == ("deny", "acked")
    assert "phytosanitary inspection" in cmd2["body"]["reason"]
    visits = emu.wait_visits(2, timeout=30)
    assert visits[1]["plate"] == "辽B10002" and visits[1]["barrier_opened_ts"] is None
    assert all(on is False for _, on in visits[1].get("barrier_writes", []))
    alerts = [a for a in rig.get("/api/v1/alerts") if a["code"] == "gate_denied"]
    assert len(alerts) == 1 and alerts[0]["severity"] == "warning"
    assert alerts[0]["detail"]["reasons"][0]["code"] == "lot_on_hold"
    health = rig.device("wb-out")["health"] or {}
    assert health.get("bad_commands") == 0 and health.get("mem_errors") == 0


def test_gate_control_unanswered_command_is_resent_then_alerted(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The out-gate agent is never started (as if killed before the command): the weighing
    is published with its key by the test, as the agent would have sent it."""
    if "wb-out" not in current_site().devices:
        pytest.skip("the demo site has no wb-out")
    rig.stop_controller()
    monkeypatch.setenv("PORTWATCH_COMMAND_TTL_S", "8")
    rig.start_controller()
    agent = _out_gate(rig)
    _order(rig, "辽B10003", "LOT-C")
    evt = topics.topic(rig.site, "wb-out", "evt")
    fields = envelope.make("wb-out", 1, 1, now_ms(), "weighing", {
        "plate": "辽B10003", "gross_kg": TARE + NET, "tare_kg": TARE, "net_kg": NET,
        "division_kg": 20, "stable_ms": 3000, "arrived_ts": now_ms() - 5000})
    publish(rig.broker.port, [(evt, envelope.seal(bytes.fromhex(agent.config["secret_hex"]),
                                                  agent.config["key_id"], evt, fields))],
            login=rig.test_account(), ca=rig.ca)

    def expired() -> dict[str, Any] | None:
        found = rig.get("/api/v1/commands", device_id="wb-out", state="expired")
        return found[0] if found else None

    cmd = wait_until(expired, 30, what="the open command to expire unanswered")
    assert cmd["body"]["action"] == "open" and cmd["ack"] is None
    assert cmd["attempts"] >= 2  # sent, then sent again every 3 s while unanswered
    alerts = [a for a in rig.get("/api/v1/alerts") if a["code"] == "command_unacknowledged"]
    assert len(alerts) == 1 and alerts[0]["severity"] == "critical"
    assert alerts[0]["detail"]["command_id"] == cmd["id"]


def test_gate_control_truck_weighed_while_controller_down_opens_when_it_is_back(
        rig: Rig) -> None:
    """The controller is killed (SIGKILL) before the truck drives on; the agent keeps the
    weighing in its outbox; the controller restarted decides it and the barrier opens
    while the truck still waits on the deck."""
    if "wb-out" not in current_site().devices:
        pytest.skip("the demo site has no wb-out")
    agent = rig.add_weighbridge("wb-out", emulator_args=(
        "--ramp-s", "0.3", "--settle-s", "0.3", "--stable-s", "25", "--leave-s", "0.3",
        "--gap-s", "0.6"), stable_s=0.4, poll_ms=50)
    agent.config["driver"]["barrier"] = "controller"
    rig.write_config(agent)
    rig.start_agent("wb-out")
    wait_until(lambda: rig.device("wb-out")["status"] == "online", 30, what="wb-out online")
    _order(rig, "辽B10004", "LOT-D")
    rig.kill_controller()
    assert agent.emulator is not None
    emu = agent.emulator.client
    emu.truck("辽B10004", TARE, NET)
    wait_until(lambda: "weighing seq" in agent.log_text(), 30, what="the agent's weighing")
    rig.start_controller()
    seq = wait_until(lambda: _weighing_seq(rig, "辽B10004"), 30, what="the weighing stored")
    cmd = wait_until(lambda: _command_for(rig, seq), 30, what="the open command answered")
    assert (cmd["body"]["action"], cmd["state"]) == ("open", "acked")
    [visit] = emu.wait_visits(1, timeout=40)
    assert visit["barrier_opened_ts"] is not None
