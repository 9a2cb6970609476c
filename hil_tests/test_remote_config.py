"""Remote configuration and restart end to end: a weighbridge agent under MicroPython (96 KiB
heap), real Mosquitto over TLS, the controller process sending the signed commands from its
SQLite store, the API issuing them.

A config change is applied at once (health comes faster), written to the agent's config
settings slot and kept across a restart command (the agent exits 75, the rig starts it again, as
`portwatch agent` does); a value outside the device's range is refused by the device
itself (sent past the controller's check, as by a controller with an older allow-list);
a forged command is ignored and counted.
"""

from __future__ import annotations

import json
import os
import sqlite3
from itertools import pairwise
from typing import Any

import httpx
import pytest

from controller.storage import commands as rows
from controller.storage import now_ms, open_store
from delivery import publish
from protocols import envelope, topics
from tools.firmware import DEFAULT_HEAP
from tools.procs import wait_until
from tools.rig import Rig

DEV = "wb-cfg"
# a measured limit, not a flake to retry (edge/FAILURES.md, Remote config): at 96 KiB an idle
# weighbridge agent has ~9.8 KB free but no 640 B in one piece, so a command's module does not
# load (MemoryError; the command is re-sent, then expires as command_unacknowledged). Passes
# with PW_AGENT_HEAP=128K. Shown as xfail until the agent's heap has the room again.
AT_96K = os.environ.get("PW_AGENT_HEAP", DEFAULT_HEAP) == "96K"
HEAP_LIMIT = ("96 KiB weighbridge agent: no 640 B in one piece to load a command's module "
              "(passes at 128K)")


def _post(rig: Rig, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(rig.api_url + path, json=body, timeout=10,
                   headers={"Authorization": f"Bearer {rig.admin_token}"})
    assert r.status_code == 202, r.text
    out: dict[str, Any] = r.json()
    return out


def _answered(rig: Rig, command_id: str) -> dict[str, Any] | None:
    for c in rig.get("/api/v1/commands", device_id=DEV):
        if c["id"] == command_id and c["state"] != "pending":
            return dict(c)
    return None


def _health(rig: Rig, after_ms: int) -> list[dict[str, Any]]:
    """Health samples received after ``after_ms``, oldest first."""
    return [h for h in reversed(rig.get(f"/api/v1/devices/{DEV}/health", limit=50))
            if h["received_ms"] > after_ms]


def _gaps_s(samples: list[dict[str, Any]]) -> list[float]:
    return [(b["device_ts"] - a["device_ts"]) / 1000 for a, b in pairwise(samples)]


def _ledger_cmdacks(rig: Rig) -> int:
    with sqlite3.connect(rig.db_path) as conn:
        return int(conn.execute("SELECT count(*) FROM ledger_entries WHERE subkind = 'cmdack' "
                                "AND device_id = ?", (DEV,)).fetchone()[0])


@pytest.mark.skip(reason="the device's config and restart handlers are out of the firmware "
                  "until they fit a 96 KiB agent beside the gate's barrier commands (README, "
                  "Remote configuration and restart)")
def test_config_applied_kept_across_a_restart_refused_out_of_range_forged_ignored(
        rig: Rig) -> None:
    agent = rig.add_weighbridge(DEV, health_interval_s=10)
    rig.start_agent(DEV)
    wait_until(lambda: rig.device(DEV)["status"] == "online", 30, what=f"{DEV} online")
    boot = rig.device(DEV)["boot"]

    # applied at once: health every 2 s instead of 10
    cmd = _post(rig, f"/api/v1/devices/{DEV}/config", {"set": {"health_interval_s": 2}})
    done = wait_until(lambda: _answered(rig, cmd["id"]), 30, what="the config answered")
    assert done["state"] == "acked" and done["ack"]["result"] == "applied", done
    assert done["ack"]["values"] == {"health_interval_s": 2} and done["ack"]["restart"] is False
    since = done["acked_ms"]
    fast = wait_until(lambda: (lambda s: s if len(s) >= 4 else None)(_health(rig, since)), 30,
                      what="four health samples after the change")
    assert max(_gaps_s(fast)) < 4, _gaps_s(fast)  # was 10 s
    assert json.loads(agent.config_path.read_text()) == agent.config  # keys file untouched
    assert b'"health_interval_s": 2' in (agent.config_path.parent / DEV / "settings").read_bytes()

    # one for the next boot: applied, restart needed
    cmd = _post(rig, f"/api/v1/devices/{DEV}/config", {"set": {"driver.stable_s": 0.4}})
    done = wait_until(lambda: _answered(rig, cmd["id"]), 30, what="the second config answered")
    assert done["ack"]["result"] == "applied" and done["ack"]["restart"] is True
    view = rig.get(f"/api/v1/devices/{DEV}/config")
    assert view["applied"] == {"health_interval_s": 2, "driver.stable_s": 0.4}
    assert view["restart_needed"] is True and view["pending"] == []

    # the controller refuses out of range; so does the device, when one gets past
    r = httpx.post(rig.api_url + f"/api/v1/devices/{DEV}/config", timeout=10,
                   json={"set": {"health_interval_s": 1}},
                   headers={"Authorization": f"Bearer {rig.admin_token}"})
    assert r.status_code == 422 and "between 2 and 3600" in r.text
    with open_store(rig.db_path) as db, db.transaction() as conn:
        rows.insert(conn, "c-out-of-range", DEV, "config",
                    {"driver": "weighbridge", "set": {"health_interval_s": 1},
                     "id": "c-out-of-range", "expires_ts": now_ms() + 60_000},
                    now_ms(), now_ms() + 60_000)
    done = wait_until(lambda: _answered(rig, "c-out-of-range"), 30, what="the device's refusal")
    assert done["state"] == "failed" and done["ack"]["result"] == "refused"
    assert "between 2 and 3600" in done["ack"]["detail"]

    # forged: another key on the device's cmd topic; ignored, counted, never answered
    t_cmd = topics.topic(rig.site, DEV, "cmd")
    fields = envelope.make(DEV, 0, 0, now_ms(), "config", {
        "id": "c-forged", "expires_ts": now_ms() + 60_000, "driver": "weighbridge",
        "set": {"health_interval_s": 3600}})
    publish(rig.broker.port, [(t_cmd, envelope.seal(b"\x99" * 32, agent.config["key_id"],
                                                    t_cmd, fields))],
            login=rig.test_account(), ca=rig.ca)
    wait_until(lambda: (rig.device(DEV)["health"] or {}).get("bad_commands") == 2, 30,
               what="bad_commands 2 (the refused one and the forged one)")

    # restart: answered, the agent comes back (exit 75, started again) with what it applied
    acks = _ledger_cmdacks(rig)
    cmd = _post(rig, f"/api/v1/devices/{DEV}/restart", {"reason": "stable_s"})
    done = wait_until(lambda: _answered(rig, cmd["id"]), 30, what="the restart answered")
    assert done["state"] == "acked" and done["ack"]["result"] == "restarting"
    wait_until(lambda: agent.restarts == 1, 30, what="the rig to start the agent again")
    wait_until(lambda: rig.device(DEV)["boot"] > boot, 30, what="the new boot's birth")
    since = now_ms()
    again = wait_until(lambda: (lambda s: s if len(s) >= 3 else None)(_health(rig, since)), 30,
                       what="health from the new boot")
    assert max(_gaps_s(again)) < 4, _gaps_s(again)  # still 2 s after the restart
    assert rig.get(f"/api/v1/devices/{DEV}/config")["restart_needed"] is False
    assert _ledger_cmdacks(rig) >= acks + 1  # the restart's answer is in the ledger
    health = rig.device(DEV)["health"] or {}
    assert health.get("mem_errors") == 0 and health.get("bad_commands") == 0  # a new boot
    assert "config" in agent.log_text() and "restart asked by the controller" in agent.log_text()
