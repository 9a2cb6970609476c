"""Every truck weighed exactly once through power cuts, freezes and a full outbox; the gate
fails closed.

Real parts: Mosquitto, the controller and its SQLite file, the pymodbus weighbridge
emulator, the firmware under ``micropython -X heapsize=96K``. The truth is the emulator's
own log of visits (plate, exact weights, and what happened to the exit barrier while each
truck was on the deck), never the agent's view. Each test drives one fault:

1. a power cut (SIGKILL) while the weighed truck still stands on the deck;
2. the agent frozen (SIGSTOP) while truck 1 leaves and truck 2 drives on and settles;
3. the outbox full (broker down, a 3 KiB outbox), more trucks, a power cut, the broker back.

The first assertion of each is the failure it reproduces (edge/FAILURES.md, Weighbridge:
exactly once through reboots, freezes and a full outbox); the barrier's checks follow.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from typing import Any

from delivery import start_weighbridge
from tools.procs import WaitTimeout, wait_until
from tools.rig import Agent, Rig

Visit = dict[str, Any]


def _emulator(agent: Agent) -> Any:
    assert agent.emulator is not None
    return agent.emulator.client


def _weighings(rig: Rig, device_id: str) -> list[dict[str, Any]]:
    stored: list[dict[str, Any]] = rig.get("/api/v1/weighings", device_id=device_id, limit=1000)
    return stored


def _key(w: dict[str, Any]) -> tuple[str, int, int, int]:
    return (w["plate"], w["gross_kg"], w["tare_kg"], w["net_kg"])


def _alarms(rig: Rig, device_id: str) -> list[str]:
    return [a["alarm"] for a in rig.get("/api/v1/alarms", device_id=device_id, limit=1000)
            if a["state"] == "raised"]


def _each_visit_weighed_once(rig: Rig, device_id: str, visits: list[Visit]) -> None:
    """The controller holds one weighing per visit, with its exact weights, and no other."""
    with contextlib.suppress(WaitTimeout):  # the comparison below says which visit has none
        wait_until(lambda: len(_weighings(rig, device_id)) >= len(visits), 30,
                   what=f"{len(visits)} weighings stored")
    got = sorted(_key(w) for w in _weighings(rig, device_id))
    want = sorted(_key(v) for v in visits)
    assert got == want, f"weighings stored {got} != visits the weighbridge logged {want}"


def _seqs_complete(rig: Rig, device_id: str) -> None:
    """Seqs 1..N stored with no gap nor duplicate, and all acknowledged."""
    with sqlite3.connect(rig.db_path) as conn:
        seqs = [s for (s,) in conn.execute(
            "SELECT seq FROM messages WHERE device_id=? ORDER BY seq", (device_id,))]
    assert seqs == list(range(1, len(seqs) + 1)), "gap or duplicate in stored seqs"
    wait_until(lambda: rig.device(device_id)["committed_seq"] >= len(seqs), 30,
               what="the watermark to cover every stored event")


def _let_out_after_stored(visit: Visit, weighing: dict[str, Any]) -> None:
    """The barrier opened for this truck, and not before its weighing was sealed."""
    opened = visit["barrier_opened_ts"]
    assert opened is not None, f"the barrier never opened for {visit['plate']}"
    assert opened * 1000 >= weighing["device_ts"], (visit, weighing)


def _by_plate(rig: Rig, device_id: str) -> dict[str, dict[str, Any]]:
    return {w["plate"]: w for w in _weighings(rig, device_id)}


def _polls(agent: Agent) -> int:
    requests: int = _emulator(agent).status()["requests"]
    return requests


def test_power_cut_with_the_weighed_truck_on_the_deck_weighs_it_once(rig: Rig) -> None:
    agent = start_weighbridge(rig)
    emu = _emulator(agent)
    emu.timing(stable_s=8.0)  # it stands on the deck through the cut and the reboot
    emu.truck("辽B31001", 15_000, 30_000)
    wait_until(lambda: _weighings(rig, "wb-1"), 30, what="truck 1's weighing stored")
    assert emu.status()["phase"] == "stable"
    rig.kill_agent("wb-1")  # power cut with the weighed truck on the deck
    emu.timing(stable_s=0.8)
    rig.start_agent("wb-1")
    polled = _polls(agent)
    wait_until(lambda: _polls(agent) >= polled + 5, 30, what="the rebooted agent to poll")
    assert emu.status()["phase"] == "stable", "the truck left before the agent came back"
    emu.truck("辽B31002", 16_000, 31_000, gap_s=0.5)
    visits = emu.wait_visits(2, timeout=60)

    _each_visit_weighed_once(rig, "wb-1", visits)
    _seqs_complete(rig, "wb-1")
    assert "left_unweighed" not in _alarms(rig, "wb-1")
    stored = _by_plate(rig, "wb-1")
    for visit in visits:
        _let_out_after_stored(visit, stored[visit["plate"]])


def test_agent_frozen_while_one_truck_leaves_and_the_next_settles_weighs_both(
        rig: Rig) -> None:
    agent = start_weighbridge(rig)
    emu = _emulator(agent)
    emu.timing(stable_s=3.0)
    emu.truck("辽B32001", 15_000, 30_000)
    wait_until(lambda: emu.status()["truck"], 10, what="truck 1 on the deck")
    emu.timing(stable_s=6.0)
    emu.truck("辽B32002", 17_000, 34_000, gap_s=0.2)
    wait_until(lambda: _weighings(rig, "wb-1"), 30, what="truck 1's weighing stored")
    assert agent.proc is not None
    os.kill(agent.proc.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_until(lambda: (s := emu.status())["visits"] == 1 and s["phase"] == "stable", 30,
                   what="truck 1 gone and truck 2 settled while the agent is frozen")
        wait_until(lambda: time.monotonic() - stopped >= 2.5, 10, what="a freeze of 2.5 s")
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    visits = emu.wait_visits(2, timeout=60)

    _each_visit_weighed_once(rig, "wb-1", visits)
    _seqs_complete(rig, "wb-1")
    alarms = _alarms(rig, "wb-1")
    assert "weight_changed" not in alarms and "left_unweighed" not in alarms, alarms
    stored = _by_plate(rig, "wb-1")
    first, second = visits
    _let_out_after_stored(first, stored[first["plate"]])
    # the frozen agent could not shut the barrier behind truck 1, so it was still open when
    # truck 2 arrived; thawed, the agent shut it, then opened it once truck 2 was stored
    assert [on for _, on in second["barrier_writes"]][:2] == [False, True], second
    assert second["barrier_writes"][1][0] * 1000 >= stored[second["plate"]]["device_ts"]
    wait_until(lambda: not emu.status()["barrier"]["open"], 10, what="the barrier shut")


def _refused_events(rig: Rig, device_id: str) -> int:
    count: int = rig.device(device_id).get("refused_events", 0)
    return count


def test_full_outbox_then_a_power_cut_loses_nothing_silently_and_keeps_the_gate_shut(
        rig: Rig) -> None:
    agent = start_weighbridge(rig, extra={"outbox_max_bytes": 3072})
    emu = _emulator(agent)
    # the barrier shuts when the agent sees the deck empty: FAST leaves it empty for 0.2 s,
    # less than a stall of this agent while it signs and writes a full outbox on a loaded
    # 2-core machine (seen once in CI); a stall longer than the empty deck is the limit
    # edge/FAILURES.md states ("Agent frozen or dead with the barrier open"), and a real deck
    # is empty for seconds
    emu.timing(gap_s=0.6)
    rig.broker.stop()  # nothing is acknowledged: the outbox fills
    for i in range(9):  # 3 KiB hold about 7 weighings
        emu.truck(f"辽B{33001 + i}", 14_000 + 20 * i, 30_000 + 40 * i)
    emu.wait_visits(8, timeout=60)
    emu.timing(stable_s=8.0)
    emu.truck("辽B33010", 15_000, 32_000)  # refused too; still on the deck at the cut
    wait_until(lambda: (s := emu.status())["visits"] == 9 and s["phase"] == "stable", 30,
               what="the last truck stable on the deck")
    stable_at = time.monotonic()
    wait_until(lambda: time.monotonic() - stable_at >= 1.5, 5, what="time to weigh it")
    rig.kill_agent("wb-1")  # power cut: what the outbox refused must not vanish unnoticed
    rig.start_agent("wb-1")
    polled = _polls(agent)
    wait_until(lambda: _polls(agent) >= polled + 5, 30, what="the rebooted agent to poll")
    rig.broker.start()
    visits = emu.wait_visits(10, timeout=60)
    wait_until(lambda: (rig.device("wb-1")["health"] or {}).get("backlog") == 0, 60,
               what="the agent's backlog delivered")

    stored = _by_plate(rig, "wb-1")
    unweighed = [v for v in visits if v["plate"] not in stored]
    assert unweighed, "the outbox never refused a weighing: the test did not fill it"
    with contextlib.suppress(WaitTimeout):  # the assertion below says what is missing
        wait_until(lambda: _refused_events(rig, "wb-1") >= len(unweighed), 30,
                   what="the refused-events notice")
    refused = _refused_events(rig, "wb-1")
    assert refused >= len(unweighed), (
        f"{len(unweighed)} trucks left without a stored weighing "
        f"({[v['plate'] for v in unweighed]}) but the device reported {refused} refused events")
    for v in unweighed:  # the gate failed closed for each of them
        assert v["barrier_opened_ts"] is None, f"barrier opened for unstored {v['plate']}"
    weighed = [v for v in visits if v["plate"] in stored]
    _each_visit_weighed_once(rig, "wb-1", weighed)
    for v in weighed:
        _let_out_after_stored(v, stored[v["plate"]])
    _seqs_complete(rig, "wb-1")
    with sqlite3.connect(rig.db_path) as conn:
        notices = conn.execute("SELECT count(*) FROM messages WHERE device_id=? AND kind="
                               "'refused'", ("wb-1",)).fetchone()[0]
    assert notices >= 1
    assert rig.device("wb-1")["boot"] == 2
