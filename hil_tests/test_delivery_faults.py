"""Nothing lost, nothing duplicated: real processes killed, restarted and cut mid-stream.

Each test streams weighings from the firmware (micropython -X heapsize=96K) through a real
Mosquitto into the controller, drives one fault, and compares what the emulated weighbridge
produced with what the controller stored, message by message.
"""

from __future__ import annotations

import time
from pathlib import Path

from delivery import (
    assert_exactly_once,
    assert_ledger_verifies,
    assert_store_audits_clean,
    publish,
    send_trucks,
    start_weighbridge,
    wait_weighings,
    weighings,
)
from tools.netem import LinkProxy
from tools.procs import wait_until
from tools.rig import Rig


def test_broker_restarted_mid_stream_loses_and_duplicates_nothing(rig: Rig) -> None:
    agent = start_weighbridge(rig)
    send_trucks(agent, 0, 10)
    wait_weighings(rig, "wb-1", 3)
    rig.broker.restart()
    assert_exactly_once(rig, agent, 10)


def test_broker_down_for_30_s_loses_and_duplicates_nothing(rig: Rig) -> None:
    agent = start_weighbridge(rig)
    send_trucks(agent, 0, 4)
    wait_weighings(rig, "wb-1", 1)
    rig.broker.stop()
    down_at = time.monotonic()
    send_trucks(agent, 4, 4)
    assert agent.emulator is not None
    agent.emulator.client.wait_visits(6, timeout=60)  # weighed while the broker is away
    wait_until(lambda: time.monotonic() - down_at >= 30, 40, what="30 s of broker outage")
    rig.broker.start()
    assert_exactly_once(rig, agent, 8)
    wait_until(lambda: rig.device("wb-1")["health"]["connects"] >= 2, 30,
               what="the agent to report its reconnect")


def test_controller_killed_mid_batch_then_restarted(rig: Rig, tmp_path: Path) -> None:
    agent = start_weighbridge(rig)
    rig.stop_controller()
    send_trucks(agent, 0, 8)
    assert agent.emulator is not None
    agent.emulator.client.wait_visits(8, timeout=60)  # a backlog for the controller's restart
    rig.start_controller()
    rig.kill_controller()  # SIGKILL while it works through the backlog
    rig.start_controller()
    send_trucks(agent, 8, 2)
    assert_exactly_once(rig, agent, 10)
    assert_ledger_verifies(rig, tmp_path)  # killed mid-append: still valid, no gap
    assert_store_audits_clean(rig)  # and the rows are what its entries make


def _tail_segment(data_dir: Path) -> Path:
    segs = sorted((data_dir / "outbox").glob("*.seg"))
    assert segs, "the outbox has no segment"
    return segs[-1]


def test_agent_power_cut_with_backlog_and_torn_write(rig: Rig) -> None:
    agent = start_weighbridge(rig)
    rig.stop_controller()  # no acks: the outbox keeps a backlog
    send_trucks(agent, 0, 5)
    assert agent.emulator is not None
    agent.emulator.client.wait_visits(5, timeout=60)
    wait_until(lambda: "weighing seq 5" in agent.log_text(), 10, what="5 weighings in outbox")
    rig.kill_agent("wb-1")  # power cut
    tail = _tail_segment(Path(agent.config["data_dir"]))
    with open(tail, "ab") as f:  # and a write it was in the middle of
        f.write(b"PWR1\x06\x00\x00\x00\x90\x01")
    rig.start_agent("wb-1")
    rig.start_controller()
    send_trucks(agent, 5, 3)
    assert_exactly_once(rig, agent, 8)
    health = rig.device("wb-1")["health"]
    assert health["outbox_recovered"] == 1  # the torn record was found and cut
    assert rig.device("wb-1")["boot"] == 2


def test_network_partition_longer_than_keepalive_fills_outbox_refuses_the_rest_closed(
        rig: Rig) -> None:
    """A black-hole partition: the link is declared dead after 1.5 x keepalive, the 4 KiB
    outbox fills, and every later weighing is refused with the gate kept shut for its truck,
    counted on flash and reported by a signed notice once the link is back. Every truck is
    then either stored once, exactly, or never let out; none is stored silently twice."""
    proxy = LinkProxy(target_port=rig.broker.port).start()
    try:
        agent = rig.add_weighbridge("wb-1", emulator_args=("--ramp-s", "0.3", "--settle-s", "0.3",
                                                           "--stable-s", "0.8", "--leave-s", "0.3",
                                                           "--gap-s", "0.2"),
                                    stable_s=0.4, poll_ms=50,
                                    extra={"outbox_max_bytes": 4096})
        agent.config["mqtt"]["port"] = proxy.port
        rig.write_config(agent)
        rig.start_agent("wb-1")
        wait_until(lambda: rig.device("wb-1")["status"] == "online", 30, what="online")
        send_trucks(agent, 0, 2)
        wait_weighings(rig, "wb-1", 2)
        proxy.set_mode("blackhole")  # no FIN, no RST: only the keepalive can tell
        cut_at = time.monotonic()
        send_trucks(agent, 2, 12)
        assert agent.emulator is not None
        visits = agent.emulator.client.wait_visits(14, timeout=90)
        wait_until(lambda: time.monotonic() - cut_at > 20, 30, what="> 1.5 x keepalive")
        assert "uplink down" in agent.log_text()
        proxy.set_mode("pass")
        wait_until(lambda: (rig.device("wb-1")["health"] or {}).get("backlog") == 0
                   and rig.device("wb-1")["refused_events"] > 0, 60,
                   what="the backlog delivered and the refused-events notice stored")
        stored = {w[0]: w for w in weighings(rig, "wb-1")}
        assert len(stored) == len(weighings(rig, "wb-1")), "a truck stored twice"
        unweighed = [v for v in visits if v["plate"] not in stored]
        assert unweighed, "the 4 KiB outbox never filled: the test did not test the bound"
        for v in visits:
            if v["plate"] in stored:
                assert stored[v["plate"]][1:] == (v["gross_kg"], v["tare_kg"], v["net_kg"])
            else:
                assert v["barrier_opened_ts"] is None, f"barrier opened for {v['plate']}"
        device = rig.device("wb-1")
        assert device["refused_events"] >= len(unweighed)
        assert device["missing"] == [] and device["health"]["outbox_full"] >= len(unweighed)
        assert_store_audits_clean(rig)  # refused notices included
    finally:
        proxy.stop()


def test_device_clock_hours_off_is_stored_with_both_times_and_flagged(rig: Rig) -> None:
    skew = -3 * 3600 * 1000
    agent = start_weighbridge(rig, extra={"clock_skew_ms": skew})
    send_trucks(agent, 0, 2)
    assert_exactly_once(rig, agent, 2)
    for w in rig.get("/api/v1/weighings"):
        assert abs((w["received_ms"] - w["device_ts"]) + skew) < 60_000
    wait_until(lambda: rig.device("wb-1")["clock_offset_ms"] is not None, 20, what="health")
    dev = rig.device("wb-1")
    assert abs(dev["clock_offset_ms"] - skew) < 60_000
    assert dev["clock_suspect"] is True
    assert_store_audits_clean(rig)  # the clock flags replay from the recorded limits


def test_unreadable_outbox_record_is_declared_lost_and_the_rest_delivered(rig: Rig) -> None:
    agent = start_weighbridge(rig)
    rig.broker.stop()  # nothing leaves the device: the outbox holds the only copy
    send_trucks(agent, 0, 4)
    assert agent.emulator is not None
    agent.emulator.client.wait_visits(4, timeout=60)
    wait_until(lambda: "weighing seq 4" in agent.log_text(), 10, what="4 weighings in outbox")
    rig.kill_agent("wb-1")
    tail = _tail_segment(Path(agent.config["data_dir"]))
    data = bytearray(tail.read_bytes())
    second = data.find(b"PWR1", 4)  # flash rot inside the second record's body
    data[second + 60] ^= 0xFF
    tail.write_bytes(bytes(data))
    rig.broker.start()
    rig.start_agent("wb-1")
    wait_until(lambda: rig.device("wb-1")["committed_seq"] >= 4, 60, what="watermark past 4")
    dev = rig.device("wb-1")
    assert dev["lost"] == [[2, 2]] and dev["missing"] == []
    stored = {w["seq"] for w in rig.get("/api/v1/weighings")}
    assert stored == {1, 3, 4}
    assert_store_audits_clean(rig)  # the device's gap is a lost range the ledger makes


def test_replayed_and_redelivered_messages_are_stored_once(rig: Rig) -> None:
    import sqlite3


    agent = start_weighbridge(rig)
    send_trucks(agent, 0, 3)
    assert_exactly_once(rig, agent, 3)
    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT topic, payload FROM messages ORDER BY seq").fetchall()
    rig.kill_agent(agent.device_id)  # its login is the client id: the replayer would
    publish(rig.broker.port, rows * 3, client_id="replayer", ca=rig.ca,  # throw it off
            login=(agent.config["mqtt"]["user"], agent.config["mqtt"]["password"]))
    wait_until(lambda: rig.get("/api/v1/ingest/stats")["rejected_by_reason"].get(
        "duplicate", 0) >= 9, 20, what="9 duplicates counted")
    assert_exactly_once(rig, agent, 3)
