"""The destination office's trip feed end to end: real Mosquitto (TLS, the generated ACL),
the controller process, the office's reference receiver (tools/office_client.py).

A trip change is committed to the store by the trips code (``trips.record_trip``: the
``trip`` decision, which calls ``office_feed.note_trip_change`` in its transaction); the
controller's feed publisher finds it after the commit, signs it with the log key and sends
it. Nothing is mocked. What the broker drops is proven absent by a marker: the same
publisher's next, allowed message reaches the receiver, and Mosquitto forwards one client's
messages in order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller import office_feed, trips
from controller.ledger import checkpoint
from controller.office_record import Verified
from controller.storage import now_ms, open_store
from tools.office_client import OfficeConfig, OfficeListener
from tools.procs import wait_until
from tools.rig import Rig

OFFICE = "cn-inland"


@dataclass
class Site:
    rig: Rig
    office: OfficeConfig


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """Broker + controller with one office provisioned (read by the broker at its start);
    re-sends every 0.3-0.6 s and office_unreachable after 2.5 s, for a test's pace."""
    monkeypatch.setenv("PORTWATCH_OFFICE_RETRY_MS", "300")
    monkeypatch.setenv("PORTWATCH_OFFICE_RETRY_MAX_MS", "600")
    monkeypatch.setenv("PORTWATCH_OFFICE_UNREACHABLE_MS", "2500")
    rig = Rig(tmp_path / "site")
    with open_store(rig.db_path) as store:
        password = office_feed.add_office(store, office_id=OFFICE, name="inland customs",
                                          destinations=["dest-a"], actor="hil",
                                          time_ms=now_ms())
    rig.refresh_broker()  # the broker is not running yet: it reads the files at start
    vkey = checkpoint.log_signer(rig.db_path, checkpoint.origin_for(rig.site)).verifier.vkey
    config = OfficeConfig(OFFICE, rig.site, "127.0.0.1", rig.broker.port, password, vkey,
                          str(rig.ca))
    try:
        rig.start()
        yield Site(rig, config)
    finally:
        rig.stop()
        if rig.controller_log.exists():
            print(f"--- controller log ---\n{rig.controller_log.read_text()[-4000:]}")


def _trip_change(rig: Rig, trip_id: str, event: str, **detail: Any) -> None:
    """Commit a trip decision as the trips code does (it notes the trip for the feed in
    the same transaction)."""
    t = now_ms()
    body = {"trip_id": trip_id, "event": event, "ts": t, **detail}
    if event == "departed":
        body.update({"tracker_id": "trk-1", "plate": "辽B12345", "lot": "LOT-7",
                     "destination": "dest-a", "corridor": "cor-a", "gate_device": "wb-out",
                     "weighing_seq": 1, "net_kg": 30240})
    with open_store(rig.db_path) as store, store.transaction() as conn:
        trips.record_trip(conn, body, "hil", t)


class Inbox:
    """What the reference receiver verified, in arrival order."""

    def __init__(self) -> None:
        self.records: list[Verified] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()

    def add(self, record: Verified) -> None:
        with self._lock:
            self.records.append(record)

    def versions(self, trip_id: str) -> list[int]:
        with self._lock:
            return [r.version for r in self.records if r.trip_id == trip_id]


def _listen(site: Site) -> tuple[OfficeListener, Inbox]:
    inbox = Inbox()
    listener = OfficeListener(site.office, inbox.add, inbox.refused.append)
    listener.start()
    assert listener.connected.wait(10), f"office login refused: {listener.stats.errors}"
    return listener, inbox


def _deliveries(rig: Rig, trip_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = rig.get(f"/api/v1/trips/{trip_id}/deliveries")
    return result


def _office(rig: Rig) -> dict[str, Any]:
    [office] = rig.get("/api/v1/offices")
    assert office["office_id"] == OFFICE
    return dict(office)


def _unreachable(rig: Rig) -> list[dict[str, Any]]:
    return [a for a in rig.get("/api/v1/alerts") if a["code"] == "office_unreachable"
            and a["device_id"] == OFFICE]


def test_destination_office_receives_verifies_and_acks_each_trip_update(site: Site) -> None:
    listener, inbox = _listen(site)
    try:
        _trip_change(site.rig, "ORD-1", "departed")
        wait_until(lambda: inbox.versions("ORD-1") == [1], 15, what="the departure record")
        record = inbox.records[0].record
        assert record["order"]["plate"] == "辽B12345" and record["office_seq"] == 1
        assert record["departure"]["net_kg"] == 30240
        wait_until(lambda: [d["state"] for d in _deliveries(site.rig, "ORD-1")] == ["acked"],
                   10, what="the departure's ack at the controller")
        _trip_change(site.rig, "ORD-1", "corridor_deviation", distance_m=850)
        wait_until(lambda: 2 in inbox.versions("ORD-1"), 15, what="the deviation record")
        second = next(r for r in inbox.records if r.version == 2).record
        assert [e["event"] for e in second["events"]] == ["departed", "corridor_deviation"]
        wait_until(lambda: _office(site.rig)["acked"] == 2, 10, what="both records acked")
        office = _office(site.rig)
        assert (office["sent"], office["pending"], office["oldest_pending_age_ms"]) == \
            (2, 0, None)
        assert inbox.refused == [] and _unreachable(site.rig) == []
    finally:
        listener.stop()


def test_destination_office_down_gets_the_update_retried_shown_pending_then_delivered(
        site: Site) -> None:
    _trip_change(site.rig, "ORD-2", "departed")
    wait_until(lambda: _deliveries(site.rig, "ORD-2")[0]["attempts"] >= 3, 15,
               what="the record sent again while the office is away")
    [pending] = _deliveries(site.rig, "ORD-2")
    assert pending["state"] == "sent" and pending["acked_ms"] is None
    office = _office(site.rig)
    assert office["pending"] == 1 and office["oldest_pending_age_ms"] > 0
    [alert] = wait_until(lambda: _unreachable(site.rig), 15, what="office_unreachable")
    assert alert["active"] is True and alert["detail"]["pending"] == 1

    listener, inbox = _listen(site)  # the office comes back
    try:
        wait_until(lambda: 1 in inbox.versions("ORD-2"), 15, what="the retried record")
        wait_until(lambda: _deliveries(site.rig, "ORD-2")[0]["state"] == "acked", 10,
                   what="the ack of the retried record")
        wait_until(lambda: _unreachable(site.rig) == [], 10, what="office_unreachable cleared")
        assert _office(site.rig)["pending"] == 0 and inbox.refused == []
    finally:
        listener.stop()


class Client:
    """A paho client under one login that records what it receives."""

    def __init__(self, rig: Rig, login: tuple[str, str]) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subacks: list[int] = []
        self.c = rig.mqtt_client(login[0], login)
        self.c.on_message = lambda _c, _u, m: self._add(m.topic, bytes(m.payload))
        self.c.on_subscribe = lambda _c, _u, mid, _rc, _p: self._subacks.append(mid)
        self.c.connect("127.0.0.1", rig.broker.port)
        self.c.loop_start()

    def _add(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.received.append((topic, payload))

    def subscribe(self, topic_filter: str) -> None:
        _, mid = self.c.subscribe(topic_filter, qos=1)
        wait_until(lambda: mid in self._subacks, 5, what=f"SUBACK for {topic_filter}")

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _ in self.received]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_destination_office_login_cannot_read_or_write_device_topics(site: Site) -> None:
    rig = site.rig
    rig.provision("wb-acl")
    prefix = f"pw/v1/{rig.site}"
    device_topics = [f"{prefix}/wb-acl/{c}" for c in ("evt", "tele", "state", "cmdack",
                                                      "ack", "cmd")]
    tester = Client(rig, rig.test_account())
    office = Client(rig, (OFFICE, site.office.password))
    try:
        tester.subscribe(f"{prefix}/#")
        for topic_filter in (f"{prefix}/#", f"{prefix}/wb-acl/#", "#"):
            office.subscribe(topic_filter)
        # reads: a device's traffic never reaches the office; the marker on its own trip
        # topic, sent after it by the same publisher, does
        for topic in device_topics:
            tester.publish(topic, b"device traffic")
        marker = f"{prefix}/{OFFICE}/trip"
        tester.publish(marker, b"marker")
        wait_until(lambda: marker in office.topics(), 10, what="the marker at the office")
        assert set(office.topics()) == {marker}
        # writes: the office's publishes on device topics are dropped by the broker; its
        # ack topic, published after them, gets through
        for topic in device_topics:
            office.publish(topic, b"office forgery")
        ack_topic = f"{prefix}/{OFFICE}/tripack"
        office.publish(ack_topic, b'{"trip_id":"none","version":1}')
        wait_until(lambda: ack_topic in tester.topics(), 10, what="the office's ack")
        assert not [t for t, p in tester.received if p == b"office forgery"]
        assert [t for t in tester.topics() if t == ack_topic] == [ack_topic]
    finally:
        office.close()
        tester.close()
