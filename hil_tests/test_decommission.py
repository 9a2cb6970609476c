"""Decommissioning a running weighbridge: refused from then on, history kept, login gone.

Real parts: Mosquitto with the generated password file and ACL, the controller process,
the pymodbus indicator emulator and the firmware under ``micropython`` (tools/rig.py).
"""

from __future__ import annotations

import json
import sqlite3

import httpx

from controller import broker_auth
from controller.ledger import entries
from controller.storage import open_store
from delivery import send_trucks, start_weighbridge, wait_weighings, weighings
from tools.procs import wait_until
from tools.rig import Rig

REASON = "gate 1 rebuilt"


def _decommission(rig: Rig, device_id: str) -> httpx.Response:
    return httpx.post(f"{rig.api_url}/api/v1/devices/{device_id}/decommission",
                      json={"reason": REASON}, timeout=10,
                      headers={"Authorization": f"Bearer {rig.admin_token}"})


def _refused(rig: Rig, device_id: str) -> list[dict[str, object]]:
    return [r for r in rig.get("/api/v1/ingest/rejections", reason="decommissioned")
            if r["device_id"] == device_id]


def test_decommissioned_device_is_refused_keeps_its_history_and_loses_its_login(
        rig: Rig) -> None:
    agent = start_weighbridge(rig, "wb-old")
    send_trucks(agent, 0, 2)
    wait_weighings(rig, "wb-old", 2, timeout=60)
    history = weighings(rig, "wb-old")
    assert rig.get("/api/v1/ingest/rejections", reason="decommissioned") == []
    user, password = rig.credentials("wb-old")
    # its login works: the agent is online with it (a probe would throw the agent off,
    # the broker making the login the client id)
    assert rig.device("wb-old")["status"] == "online"

    r = _decommission(rig, "wb-old")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "decommissioned"

    # the agent, still running and still logged in, goes on sending: a third truck
    # (an event) and its health (telemetry); the controller refuses all of it by name
    send_trucks(agent, 2, 1)
    assert agent.emulator is not None
    agent.emulator.client.wait_visits(3, timeout=60)
    refused = wait_until(lambda: _refused(rig, "wb-old"), 30,
                         what="a message of wb-old refused as decommissioned")
    assert all("/wb-old/" in str(x["topic"]) and "decommissioned" in str(x["detail"])
               for x in refused)
    wait_until(lambda: any(str(x["topic"]).endswith("/evt") for x in _refused(rig, "wb-old")),
               30, what="wb-old's third weighing refused as decommissioned")
    assert rig.get("/api/v1/ingest/stats")["rejected_by_reason"]["decommissioned"] >= 1

    # its history stays: the store and the API still serve the two weighings, and only them
    assert weighings(rig, "wb-old") == history
    served = rig.get("/api/v1/weighings", device_id="wb-old")
    assert sorted((w["plate"], w["gross_kg"], w["tare_kg"], w["net_kg"]) for w in served) \
        == history
    assert rig.device("wb-old")["status"] == "decommissioned"

    # no broker account in the files generated from now on; once the broker has them, the
    # login is refused (the controller's is not)
    store = open_store(rig.db_path)
    try:
        users = [a.user for a in broker_auth.accounts(store, site=rig.site)]
    finally:
        store.close()
    assert "wb-old" not in users and rig.controller_credentials[0] in users
    rig.refresh_broker()
    wait_until(lambda: not rig.login_accepted(user, password), 10,
               what="the broker to refuse wb-old after its reload")
    # the controller is still on the broker (a probe with its login would throw it off)
    assert rig.get("/healthz")["broker_connected"]
    # the running agent itself is off the broker: Mosquitto drops its session on the
    # reload and refuses its reconnects
    wait_until(lambda: "CONNACK refused: not authorized" in agent.log_text(), 30,
               what="wb-old's own reconnect refused by the broker")

    # the ledger says who took it out of service and why
    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT entry FROM ledger_entries WHERE kind=? AND subkind=?",
                            ["decision", "decommissioning"]).fetchall()
    decisions = [entries.decode(bytes(row[0])) for row in rows]
    assert len(decisions) == 1
    d = decisions[0]
    assert isinstance(d, entries.Decision)
    assert d.body == {"device_id": "wb-old", "reason": REASON}
    assert "rig-admin" in d.actor, d.actor
    assert json.dumps(d.body)  # plain JSON, as exported in a bundle


def test_decommissioning_twice_is_refused(rig: Rig) -> None:
    rig.provision("wb-gone")
    assert _decommission(rig, "wb-gone").status_code == 200
    again = _decommission(rig, "wb-gone")
    assert again.status_code == 409, again.text
    assert "decommissioned" in again.text
