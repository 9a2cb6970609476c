"""The weighbridge agent signs its custody events with its own key and keeps polling.

A real agent under ``micropython -X heapsize=96K`` from the firmware image, its emulated
indicator polled at 10 Hz: a burst of weighings and alarms is signed (ECDSA P-256,
protocols/p256.py) while the emulator logs the time of every register read, and no gap
between two reads is longer than two poll periods. Every custody event the controller
stored carries an es256 line that OpenSSL verifies under the public key of the key file the
agent made at its first boot, and the birth announced that key.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from delivery import FAST, send_trucks
from protocols import envelope, p256
from tools.devsig_vectors import openssl_verify
from tools.procs import wait_until
from tools.rig import Rig

POLL_MS = 100  # the weighbridge's 10 Hz


def _ledger_wires(rig: Rig, device_id: str, subkind: str) -> list[tuple[str, bytes]]:
    """(topic, exact wire bytes) of every ``subkind`` message the controller logged."""
    from controller.ledger import entries

    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT entry FROM ledger_entries WHERE device_id = ? AND "
                            "subkind = ? ORDER BY idx", (device_id, subkind)).fetchall()
    out = []
    for (data,) in rows:
        e = entries.decode(data)
        assert isinstance(e, entries.DeviceMessage)
        out.append((e.topic, e.wire))
    return out


def _fields(wire: bytes) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(wire[:wire.find(b"\n")])
    return fields


def test_weighbridge_keeps_10hz_polling_while_it_signs_a_burst_of_events(rig: Rig) -> None:
    agent = rig.add_weighbridge("wb-1", emulator_args=FAST, stable_s=0.4, poll_ms=POLL_MS)
    rig.start_agent("wb-1")
    wait_until(lambda: rig.device("wb-1")["status"] == "online", 30, what="wb-1 online")
    emu = agent.emulator
    assert emu is not None
    started = time.time()
    send_trucks(agent, 0, 6)
    # and alarms in between: three refused reads raise indicator_unreachable, the next
    # good one clears it
    emu.client.fault("exception", count=3)
    emu.client.wait_visits(6, timeout=120)

    def stored() -> int:
        return len([1 for _, w in _ledger_wires(rig, "wb-1", "evt")
                    if _fields(w)["kind"] in ("weighing", "alarm")])

    wait_until(lambda: stored() >= 8, 60, what="6 weighings and 2 alarms stored")
    ended = time.time()
    reads = emu.client.reads(since=started)
    gaps = [b - a for a, b in itertools.pairwise(reads)]
    print({"reads": len(reads), "seconds": round(ended - started, 1),
           "max_gap_ms": round(1000 * max(gaps)), "median_gap_ms":
           round(1000 * sorted(gaps)[len(gaps) // 2])})
    assert len(reads) >= (ended - started) * 1000 / POLL_MS * 0.8, "not polling at 10 Hz"
    assert max(gaps) <= 2 * POLL_MS / 1000, f"a poll gap of {max(gaps):.3f} s"

    # every custody event carries the device's signature, under the key it made at boot
    raw = (Path(agent.config["data_dir"]) / "device_key").read_bytes()
    assert len(raw) == 40 and raw[:4] == b"PWdk"  # magic, the scalar, its CRC
    d = p256.scalar(raw[4:36])
    assert d is not None
    pub = p256.public(d)
    births = [_fields(w) for _, w in _ledger_wires(rig, "wb-1", "state")]
    assert any(b["kind"] == "birth" and b["body"].get("pub") == pub for b in births), births
    evts = _ledger_wires(rig, "wb-1", "evt")
    kinds = [_fields(w)["kind"] for _, w in evts]
    assert kinds.count("weighing") >= 6 and kinds.count("alarm") >= 2, kinds
    for topic, wire in evts:
        signed, _, _ = envelope.split_signed(wire)
        json_bytes, es = envelope.device_line(signed)
        assert es is not None, wire
        assert openssl_verify(pub, envelope.device_signed_bytes(topic, json_bytes),
                              bytes.fromhex(es)), wire
    health = agent.log_text()
    assert "DEVICE KEY UNREADABLE" not in health and "out of memory" not in health
