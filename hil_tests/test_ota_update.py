"""Over-the-air updates under the real MicroPython (96 KiB heap), a real broker and the
controller: a good update, a corrupted file, a bad signature, a version that crashes on
boot. The agent runs under tools/agent_supervisor.py, which restarts it like a board's
reset. Trial and healthy times are accelerated (seconds, not minutes)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller import firmware_rollout
from controller.storage import now_ms, open_store, transaction
from protocols import p256
from tools import fw_bundle
from tools.firmware import REPO, mpy_cross_binary
from tools.procs import wait_until
from tools.rig import Rig

# The device's side (edge/ota.py, fwboot, fwtrial, net/http) is out of the firmware: loaded
# beside a 96 KiB agent it could not handle a single command, and the command dispatch it
# came with left no room for the gate's barrier commands either (README, Update over the
# air). The controller's side stays; these run again once the device's side fits.
pytestmark = pytest.mark.skip(reason="OTA's device side is out of the firmware until it "
                              "fits a 96 KiB agent (README, Update over the air)")

KEY_D = int.from_bytes(secrets.token_bytes(31), "big") + 1


def _start(rig: Rig, tmp: Path) -> Any:
    agent = rig.add_weighbridge("wb-ota", extra={"fw_pub": p256.public(KEY_D)})
    with open(agent.log_path, "ab") as log:
        agent.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.agent_supervisor", str(agent.config_path),
             "--heap", rig.heap, "--pidfile", str(tmp / "fw.pid")],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: rig.device("wb-ota").get("fw_version") == "0.1.0", 60,
               what="the agent's birth")
    return agent


def _rollout(rig: Rig, bundle: Path, version: str) -> int:
    store = open_store(rig.db_path)
    try:
        with transaction(store.conn):
            firmware_rollout.publish(store.conn, bundle, actor="test", now_ms=now_ms())
            r = firmware_rollout.start(store.conn, kind="weighbridge", version=version,
                                       url=rig.api_url, devices=["wb-ota"], percent=None,
                                       healthy_s=3, trial_s=4, actor="test", now_ms=now_ms())
        return int(r["id"])
    finally:
        store.close()


def _view(rig: Rig, rid: int) -> dict[str, Any]:
    result: dict[str, Any] = rig.get(f"/api/v1/firmware/rollouts/{rid}")
    return result


def _state(rig: Rig, rid: int) -> str:
    return str(_view(rig, rid)["devices"][0]["state"])


def test_good_update_comes_back_reporting_the_new_version(rig: Rig, tmp_path: Path) -> None:
    agent = _start(rig, tmp_path)
    b = fw_bundle.build("weighbridge", "0.2.0", key_d=KEY_D, key_id="fw-test",
                        out_root=tmp_path / "bundles")
    rid = _rollout(rig, b, "0.2.0")
    wait_until(lambda: rig.device("wb-ota").get("fw_version") == "0.2.0", 90,
               what="the agent to come back reporting 0.2.0")
    wait_until(lambda: _state(rig, rid) == "healthy", 60, what="the rollout to see it healthy")
    assert _view(rig, rid)["state"] == "done"
    wait_until(lambda: "firmware confirmed after its trial" in agent.log_text(), 30,
               what="the trial to be confirmed")
    assert not (Path(agent.config["data_dir"]) / "fw" / "trial").exists()
    text = agent.log_text()
    assert "files verified; switching" in text and "fw 0.2.0" in text


def test_corrupted_file_is_refused_and_the_old_version_runs(rig: Rig, tmp_path: Path) -> None:
    agent = _start(rig, tmp_path)
    b = fw_bundle.build("weighbridge", "0.2.1", key_d=KEY_D, key_id="fw-test",
                        out_root=tmp_path / "bundles")
    rid = _rollout(rig, b, "0.2.1")
    f = b / "edge" / "uplink.mpy"
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF  # flipped on the server after publishing
    f.write_bytes(bytes(data))
    wait_until(lambda: _state(rig, rid) == "failed", 90, what="the device to refuse it")
    v = _view(rig, rid)
    assert "edge/uplink.mpy" in v["devices"][0]["detail"] and v["state"] == "stopped"
    assert rig.device("wb-ota")["fw_version"] == "0.1.0"
    assert not (Path(agent.config["data_dir"]) / "fw" / "0.2.1").exists()
    assert agent.running


def test_bad_signature_is_refused(rig: Rig, tmp_path: Path) -> None:
    _start(rig, tmp_path)
    b = fw_bundle.build("weighbridge", "0.2.2", key_d=KEY_D + 1, key_id="fw-other",
                        out_root=tmp_path / "bundles")
    rid = _rollout(rig, b, "0.2.2")
    wait_until(lambda: _state(rig, rid) == "failed", 90, what="the device to refuse it")
    assert "bad signature" in _view(rig, rid)["devices"][0]["detail"]
    assert rig.device("wb-ota")["fw_version"] == "0.1.0"


def test_version_crashing_on_boot_rolls_back_by_itself(rig: Rig, tmp_path: Path) -> None:
    agent = _start(rig, tmp_path)
    src = tmp_path / "agent.py"
    src.write_text("raise RuntimeError('broken build')\n")
    out = tmp_path / "agent.mpy"
    subprocess.run([mpy_cross_binary(), "-s", "edge/agent.py", "-o", str(out), str(src)],
                   check=True)
    b = fw_bundle.build("weighbridge", "0.3.0", key_d=KEY_D, key_id="fw-test",
                        out_root=tmp_path / "bundles",
                        replace={"edge/agent.mpy": out.read_bytes()})
    rid = _rollout(rig, b, "0.3.0")
    wait_until(lambda: _state(rig, rid) == "rolled_back", 120,
               what="the device to roll back and say so")
    assert _view(rig, rid)["state"] == "stopped"
    assert rig.device("wb-ota")["fw_version"] == "0.1.0"
    assert "did not confirm on trial: rolling back" in agent.log_text()
    alerts = rig.get("/api/v1/alerts")
    assert any(a.get("code") == "firmware_rollout_stopped" for a in
               (alerts if isinstance(alerts, list) else alerts.get("alerts", [])))
