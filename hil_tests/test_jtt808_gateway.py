"""JT/T 808 end to end with real processes: the emulated terminal (TCP) -> the gateway
(``portwatch jtt808 serve``, its own process) -> Mosquitto over TLS with the generated
logins and ACL -> the controller, which verifies each terminal's HMAC, stores the
positions messages and projects their fixes. Then the gateway is SIGKILLed mid-stream
and restarted: seqs go on from where they stopped, nothing is lost or stored twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any

from controller.storage import open_store
from controller.storage import positions as position_rows
from protocols import jtt808
from tools.jtt808_rig import add_terminal, start_gateway
from tools.jtt808_terminal import Terminal, TerminalStats
from tools.procs import wait_until
from tools.rig import Rig

PHONE = "13800138000"


def _fixes(n: int, t0: int) -> list[tuple[int, int, int, int, int, int, int]]:
    return [(t0 + i * 1000, 38930000 + i * 60, 121650000 - i * 50, 360, 315, 0, 3)
            for i in range(n)]


def _track(rig: Rig, device_id: str) -> list[dict[str, Any]]:
    store = open_store(rig.db_path, migrate=False)
    try:
        return position_rows.track(store.conn, device_id, 0, None)
    finally:
        store.close()


def _run_terminal(port: int, fixes: list[Any], sent: list[int],
                  out: list[TerminalStats], errors: list[str]) -> None:
    async def source() -> AsyncIterator[Any]:
        for fix in fixes:
            sent.append(fix[0])
            yield fix
            await asyncio.sleep(0.05)

    terminal = Terminal("127.0.0.1", port, PHONE, answer_timeout_s=2.0, reconnect_s=0.2)
    try:
        out.append(asyncio.run(terminal.run(source())))
    except BaseException:  # shown by the test: a thread's exception is otherwise lost
        errors.append(traceback.format_exc())


def test_jtt808_terminal_positions_reach_the_controller_through_a_gateway_restart(rig: Rig):
    device_id = add_terminal(rig, PHONE)
    gateway = start_gateway(rig, answer_timeout_s=5.0)
    try:
        t0 = (int(time.time()) - 120) * 1000
        fixes = _fixes(40, t0)
        sent: list[int] = []
        stats: list[TerminalStats] = []
        errors: list[str] = []
        thread = threading.Thread(target=_run_terminal,
                                  args=(gateway.port, fixes, sent, stats, errors))
        thread.start()
        wait_until(lambda: len(sent) >= 12, 30, what="12 fixes sent")
        boot1 = gateway.status()["boot"]
        gateway.kill()  # mid-stream: a report may be stored and unanswered, or neither
        gateway.start()
        thread.join(timeout=90)
        assert not thread.is_alive(), "the terminal did not finish"
        assert not errors, errors[0]
        assert stats[0].unsent == 0 and stats[0].answered_fixes == 40
        assert stats[0].connects >= 2  # it reconnected to the restarted gateway
        assert gateway.status()["boot"] == boot1 + 1

        wait_until(lambda: rig.device(device_id)["committed_seq"] == 40, 30,
                   what="the controller to commit seqs 1..40 of the terminal")
        device = rig.device(device_id)
        assert device["missing"] == []
        track = _track(rig, device_id)
        # every fix exactly once, under seqs 1..40 with no gap and no duplicate
        assert [row["ts_ms"] for row in track] == [f[0] for f in fixes]
        assert sorted(row["seq"] for row in track) == list(range(1, 41))
        assert [(row["lat_e6"], row["lon_e6"]) for row in track] == [
            (f[1], f[2]) for f in fixes]
        # the controller acknowledged everything: the gateway's outbox drains
        wait_until(lambda: gateway.status().get("outbox") == 0, 15,
                   what="the gateway's outbox to drain after the controller's acks")
        assert gateway.status()["terminal_side"]["bad_frames"] == {}
    finally:
        gateway.stop()
        print(f"--- gateway log ---\n{gateway.log_text()[-4000:]}")


def test_jtt808_power_cut_and_case_alarm_bits_become_alerts_raised_then_cleared(rig: Rig):
    device_id = add_terminal(rig, PHONE)
    gateway = start_gateway(rig)
    try:
        t0 = (int(time.time()) - 60) * 1000
        cut, moved = jtt808.ALARM_POWER_CUT, jtt808.ALARM_ILLEGAL_DISPLACEMENT
        bits = [0, cut, cut | moved, moved, 0]
        fixes = [(t0 + i * 1000, 38930000, 121650000, 0, 0, b, 3) for i, b in enumerate(bits)]
        stats = asyncio.run(Terminal("127.0.0.1", gateway.port, PHONE).run(fixes))
        assert stats.answered_fixes == 5

        def alerts() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = rig.get("/api/v1/alerts", all="true",
                                                  device_id=device_id)
            return rows

        # two alerts of device_alarms, each raised and then cleared (resolved)
        wait_until(lambda: {(a["code"], a["active"]) for a in alerts()
                            if a["rule"] == "device_alarms"} == {
                       ("ext_power_lost", False), ("case_tamper", False)}, 30,
                   what="ext_power_lost and case_tamper raised then cleared")
        alarms = rig.get("/api/v1/alarms", device_id=device_id)
        codes = sorted((a["alarm"], a["state"]) for a in alarms)
        assert codes == [("case_tamper", "cleared"), ("case_tamper", "raised"),
                         ("ext_power_lost", "cleared"), ("ext_power_lost", "raised")]
        assert rig.device(device_id)["committed_seq"] == 5 + 4  # 5 positions, 4 alarms
    finally:
        gateway.stop()
        print(f"--- gateway log ---\n{gateway.log_text()[-4000:]}")
