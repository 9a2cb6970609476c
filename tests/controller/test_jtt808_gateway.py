"""The JT/T 808 gateway in this process against real parts: a real Mosquitto (logins and
the ACL generated from the registry), a real SQLite store and state file, the emulated
terminal over real TCP. The test stands in for the controller: it reads the terminals'
``evt`` topics with the controller's rights and checks each message's HMAC with the
device's key from the store. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controller import registry
from controller.gateways import accounts
from controller.gateways.jtt808 import Gateway
from controller.gateways.jtt808_uplink import Uplink
from controller.ingest.service import BrokerSettings
from controller.storage import open_store
from protocols import envelope, jtt808, topics
from tools.jtt808_terminal import Terminal, TerminalRefused, run_terminal
from tools.procs import wait_until
from tools.rig import Rig

PHONE = "13800138000"
DEVICE = "jt-" + PHONE
T0 = 1_796_083_200_000  # 2026-12-01 00:00 UTC


@dataclass
class Observed:
    """Messages the broker delivered on the terminals' topics, as (topic, payload)."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribed: threading.Event = field(default_factory=threading.Event)  # SUBACK seen

    def evts(self, device_id: str = DEVICE) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t.endswith(f"/{device_id}/evt")]


@dataclass
class Site:
    rig: Rig
    observed: Observed
    state_path: Path
    observer: Any

    def secret(self, device_id: str = DEVICE) -> dict[str, bytes]:
        store = open_store(self.rig.db_path)
        try:
            return {k: v.secret for k, v in registry.secrets_by_device(store)[device_id].items()}
        finally:
            store.close()

    def opened(self, device_id: str = DEVICE) -> list[dict[str, Any]]:
        """Every evt of the device, its HMAC checked with the device's key, by seq (the
        order the broker delivered them in is not the gateway's business)."""
        keys = self.secret(device_id)
        topic = topics.topic(self.rig.site, device_id, "evt")
        return sorted((envelope.open_message(keys.get, topic, wire)[0]
                       for wire in self.observed.evts(device_id)), key=lambda m: m["seq"])

    def uplink(self, **kw: Any) -> Uplink:
        store = open_store(self.rig.db_path)
        user, password = accounts.credentials(store)
        store.close()
        return Uplink(store_path=self.rig.db_path, state_path=self.state_path,
                      site=self.rig.site, broker=BrokerSettings(
                          host="127.0.0.1", port=self.rig.broker.port, username=user,
                          password=password), **kw)

    def ack(self, device_id: str, upto: int, resync: bool = False) -> None:
        """Publish the controller's signed ack, retained, as the controller does."""
        key_id, secret = max(self.secret(device_id).items())
        topic = topics.topic(self.rig.site, device_id, "ack")
        wire = envelope.seal(secret, key_id, topic, envelope.make(
            device_id, 0, upto, int(time.time() * 1000), "ack",
            {"upto": upto, "resync": resync}))
        self.observer.publish(topic, wire, qos=1, retain=True).wait_for_publish(5)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    rig = Rig(tmp_path / "site", tls=False)
    rig.broker.start()
    try:
        rig.provision(DEVICE, kind="gps")
        store = open_store(rig.db_path)
        login = accounts.credentials(store)
        store.close()
        rig.refresh_broker(probe=login)
        observed = Observed()
        client = rig.mqtt_client("jt-test-observer", rig.observer_account())

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            with observed.lock:
                observed.messages.append((msg.topic, bytes(msg.payload)))

        def on_connect(c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
            # a clean session: subscribe again after every (re)connect
            observed.subscribed.clear()
            c.subscribe([(topics.uplink_filter(rig.site, "evt"), 1),
                         (topics.uplink_filter(rig.site, "state"), 1)])

        def on_subscribe(_c: Any, _u: Any, _m: Any, _rc: Any, _p: Any) -> None:
            observed.subscribed.set()

        client.on_message = on_message
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = lambda *_: observed.subscribed.clear()
        client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        client.connect("127.0.0.1", rig.broker.port)
        client.loop_start()
        assert observed.subscribed.wait(10), "the observer did not subscribe"
        yield Site(rig, observed, tmp_path / "gw" / "gateway.db", client)
        client.loop_stop()
        client.disconnect()
    finally:
        rig.broker.stop()


@contextlib.asynccontextmanager
async def running(site: Site, **kw: Any) -> AsyncIterator[tuple[Gateway, int, Uplink]]:
    """The gateway in this event loop, connected to the broker; closed on exit."""
    uplink = site.uplink(**kw)
    gateway = Gateway(uplink, site=site.rig.site, idle_s=5.0)
    port = await gateway.start("127.0.0.1", 0)
    task = asyncio.create_task(uplink.run())
    try:
        await until(lambda: uplink.stats.connected, 10, "the gateway to reach the broker")
        yield gateway, port, uplink
    finally:
        await gateway.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        uplink.close()


async def until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def fixes(n: int, start: int = 0, *, alarm: int = 0, status: int = 3
          ) -> list[tuple[int, int, int, int, int, int, int]]:
    return [(T0 + (start + i) * 1000, 38930000 + i * 50, 121650000 - i * 40, 360, 315,
             alarm, status) for i in range(n)]


def test_gateway_location_reports_become_signed_positions_with_monotonic_seqs(site: Site):
    async def main() -> Any:
        async with running(site) as (gateway, port, _):
            stats = await run_terminal("127.0.0.1", port, PHONE, fixes(3))
            await until(lambda: len(site.observed.evts()) >= 3, 10, "3 evts")
            return stats, gateway.stats

    stats, gw = asyncio.run(main())
    assert stats.answered_fixes == 3 and stats.unsent == 0 and stats.registered == 1
    opened = site.opened()
    assert [m["seq"] for m in opened] == [1, 2, 3]
    assert {m["kind"] for m in opened} == {"positions"}
    first = opened[0]["body"]
    assert first["fixes"] == [[T0, 38930000, 121650000, 360, 315, 0, 0]]
    assert first["src"] == "jtt808" and first["ign"] is True and first["ext_power"] is True
    assert first["status_bits"] == [3] and first["alarm_bits"] == [0]
    assert gw.answered == 3 and gw.bad_frames == {}


def test_gateway_unknown_terminal_registration_is_refused(site: Site):
    async def main() -> Any:
        async with running(site) as (gateway, port, _):
            with pytest.raises(TerminalRefused) as refused:
                await run_terminal("127.0.0.1", port, "13900000000", fixes(1))
            return refused.value.result, gateway.stats

    result, gw = asyncio.run(main())
    assert result == jtt808.REG_NO_TERMINAL
    assert gw.registrations_refused == 1
    assert site.observed.evts("jt-13900000000") == []


def test_gateway_wrong_auth_code_fails_and_reports_are_refused(site: Site):
    async def main() -> list[dict[str, Any]]:
        async with running(site) as (_, port, _u):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(jtt808.encode_frame(jtt808.AUTHENTICATE, PHONE, 1, b"not-the-code"))
            writer.write(jtt808.encode_frame(jtt808.LOCATION, PHONE, 2, jtt808.encode_location(
                {"alarm": 0, "status": 3, "lat_e6": 1, "lon_e6": 1, "speed_dkmh": 0,
                 "course": 0, "ts_ms": T0})))
            await writer.drain()
            answers = await read_answers(reader, 2)
            writer.close()
            return answers

    answers = asyncio.run(main())
    assert [(a["answer_id"], a["result"]) for a in answers] == [
        (jtt808.AUTHENTICATE, jtt808.FAIL), (jtt808.LOCATION, jtt808.FAIL)]
    assert site.observed.evts() == []


async def read_answers(reader: asyncio.StreamReader, n: int) -> list[dict[str, Any]]:
    splitter, out = jtt808.Splitter(), []
    while len(out) < n:
        data = await asyncio.wait_for(reader.read(4096), 5)
        assert data, "the gateway closed the connection"
        for item in splitter.feed(data):
            assert isinstance(item, jtt808.Frame)
            if item.msg_id == jtt808.PLATFORM_ANSWER:
                out.append(jtt808.decode_answer(item.body))
            elif item.msg_id == jtt808.REGISTER_ANSWER:
                out.append({"answer_id": jtt808.REGISTER,
                            **jtt808.decode_register_answer(item.body)})
    return out


def test_gateway_blind_area_fixes_arrive_as_one_sorted_positions_event(site: Site):
    async def main() -> Any:
        coverage = asyncio.Event()  # out of coverage for the first 5 fixes
        sent = 0

        async def source() -> AsyncIterator[tuple[int, int, int, int, int, int, int]]:
            nonlocal sent
            for fix in fixes(7):
                if sent == 5:
                    coverage.set()
                sent += 1
                yield fix

        async with running(site) as (gateway, port, _):
            terminal = Terminal("127.0.0.1", port, PHONE, coverage=coverage)
            stats = await terminal.run(source())
            await until(lambda: len(site.observed.evts()) >= 3, 10, "3 evts")
            return stats, gateway.stats

    stats, gw = asyncio.run(main())
    assert stats.batches == 1 and stats.answered_fixes == 7
    opened = site.opened()
    assert [m["seq"] for m in opened] == [1, 2, 3]
    blind = opened[0]["body"]["fixes"]
    assert [f[0] for f in blind] == [T0 + i * 1000 for i in range(5)]
    assert gw.frames.get("0x0704") == 1


def test_gateway_batch_is_split_where_ignition_changes_and_alarms_follow(site: Site):
    items = [jtt808.encode_location({"alarm": a, "status": s, "lat_e6": -33868800,
                                     "lon_e6": -151209300 + i, "speed_dkmh": 0, "course": 0,
                                     "ts_ms": T0 + i * 1000})
             for i, (a, s) in enumerate([(0, 3), (0x100, 3), (0x100, 2), (0, 2)])]
    body = jtt808.encode_batch(list(reversed(items)), jtt808.BATCH_NORMAL)

    async def main() -> list[dict[str, Any]]:
        async with running(site) as (_, port, _u):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(jtt808.encode_frame(jtt808.REGISTER, PHONE, 1, jtt808.encode_register(
                {"province": 21, "city": 200, "maker": "X", "model": "Y", "terminal_id": "Z",
                 "plate_color": 2, "plate": "辽B12345".encode("gbk")})))
            await writer.drain()
            code = (await read_answers(reader, 1))[0]["auth_code"]
            writer.write(jtt808.encode_frame(jtt808.AUTHENTICATE, PHONE, 2, code))
            writer.write(jtt808.encode_frame(jtt808.BATCH, PHONE, 3, body))
            await writer.drain()
            answers = await read_answers(reader, 2)
            await until(lambda: len(site.observed.evts()) >= 4, 10, "4 evts")
            writer.close()
            return answers

    answers = asyncio.run(main())
    assert [a["result"] for a in answers] == [jtt808.OK, jtt808.OK]
    opened = site.opened()
    kinds = [(m["kind"], m["body"].get("ign"), m["body"].get("alarm"), m["body"].get("state"))
             for m in opened]
    assert kinds == [("positions", True, None, None), ("positions", False, None, None),
                     ("alarm", None, "ext_power_lost", "raised"),
                     ("alarm", None, "ext_power_lost", "cleared")]
    assert [f[0] for f in opened[0]["body"]["fixes"]] == [T0, T0 + 1000]
    assert opened[0]["body"]["fixes"][0][1:3] == [-33868800, -151209300]
    assert opened[1]["body"]["ext_power"] is True
    assert [m["seq"] for m in opened] == [1, 2, 3, 4]


def test_gateway_garbage_and_torn_frames_on_a_live_connection_are_counted(site: Site):
    hb = jtt808.encode_frame(jtt808.HEARTBEAT, PHONE, 9, b"")
    bad_check = hb[:-2] + bytes([hb[-2] ^ 0xFF]) + b"\x7e"

    async def main() -> Any:
        async with running(site) as (gateway, port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # garbage, a frame with a bad check code, then a heartbeat torn in three reads
            writer.write(b"AT+CGATT?\r\n" + bad_check + hb[:4])
            await writer.drain()
            await until(lambda: gateway.stats.bad_frames.get("bad_check") == 1, 5, "bad check")
            writer.write(hb[4:9])
            await writer.drain()
            writer.write(hb[9:])
            await writer.drain()
            answers = await read_answers(reader, 1)  # the connection goes on
            # 16 bad frames in a row: the gateway closes the connection cleanly
            writer.write(bad_check * 16)
            await writer.drain()
            rest = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return answers, rest, gateway.stats

    answers, rest, gw = asyncio.run(main())
    assert answers[0]["answer_id"] == jtt808.HEARTBEAT and answers[0]["result"] == jtt808.FAIL
    assert rest == b""  # EOF: closed by the gateway
    assert gw.bad_frames == {"garbage": 1, "bad_check": 17}
    assert gw.closed_bad == 1 and gw.dropped_bytes > 0


def test_gateway_restart_keeps_seqs_monotonic_and_resends_what_no_ack_covers(site: Site):
    async def phase(first: int, n: int, total: int) -> Any:
        async with running(site) as (_, port, uplink):
            await run_terminal("127.0.0.1", port, PHONE, fixes(n, first))
            await until(lambda: len(site.observed.evts()) >= total, 10, f"{total} evts")
            return uplink.boot, uplink.backlog()

    boot1, backlog1 = asyncio.run(phase(0, 3, 3))
    assert backlog1 == 3  # nothing acknowledged yet: all kept
    site.ack(DEVICE, 2)
    boot2, backlog2 = asyncio.run(phase(3, 2, 6))
    seqs = [m["seq"] for m in site.opened()]
    assert boot2 == boot1 + 1
    # seqs 1-3, then 3 again (resent after the restart: not acknowledged), then 4 and 5
    assert sorted(set(seqs)) == [1, 2, 3, 4, 5]
    assert seqs.count(3) >= 2 and seqs.count(4) == 1 and seqs.count(5) == 1
    assert backlog2 == 3  # 3, 4 and 5 wait for the controller's ack
    by_seq = {m["seq"]: m for m in site.opened()}
    assert [by_seq[s]["body"]["fixes"][0][0] for s in range(1, 6)] == [
        T0 + i * 1000 for i in range(5)]


def test_gateway_resent_report_is_not_numbered_twice(site: Site):
    loc = jtt808.encode_location({"alarm": 0, "status": 3, "lat_e6": 38930000,
                                  "lon_e6": 121650000, "speed_dkmh": 0, "course": 0,
                                  "ts_ms": T0})

    async def main() -> Any:
        async with running(site) as (_, port, uplink):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(jtt808.encode_frame(jtt808.REGISTER, PHONE, 1, jtt808.encode_register(
                {"province": 21, "city": 200, "maker": "X", "model": "Y", "terminal_id": "Z",
                 "plate_color": 2, "plate": b"B1"})))
            await writer.drain()
            code = (await read_answers(reader, 1))[0]["auth_code"]
            writer.write(jtt808.encode_frame(jtt808.AUTHENTICATE, PHONE, 2, code))
            writer.write(jtt808.encode_frame(jtt808.LOCATION, PHONE, 3, loc))
            writer.write(jtt808.encode_frame(jtt808.LOCATION, PHONE, 4, loc))  # a resend
            await writer.drain()
            answers = await read_answers(reader, 3)
            await until(lambda: len(site.observed.evts()) >= 1, 10, "the event")
            writer.close()
            return answers, uplink.next_seq(DEVICE), uplink.stats.duplicate_reports

    answers, next_seq, duplicates = asyncio.run(main())
    assert [a["result"] for a in answers] == [0, 0, 0]
    assert next_seq == 2 and duplicates == 1  # the resend made no second event
    assert {m["seq"] for m in site.opened()} == {1}


def test_gateway_status_file_carries_the_counters(site: Site, tmp_path: Path):
    async def main() -> dict[str, Any]:
        uplink = site.uplink()
        gateway = Gateway(uplink, site=site.rig.site, status_path=tmp_path / "status.json")
        await gateway.start("127.0.0.1", 0)
        gateway.stats.bad("garbage")
        gateway.write_status()
        await gateway.stop()
        uplink.close()
        doc: dict[str, Any] = json.loads((tmp_path / "status.json").read_text())
        return doc

    doc = asyncio.run(main())
    assert doc["terminal_side"]["bad_frames"] == {"garbage": 1}
    assert doc["outbox"] == 0 and doc["site"] == site.rig.site


def test_gateway_acl_lets_it_publish_only_for_its_terminals(site: Site):
    rig = site.rig
    rig.provision("wb-other")  # a weighbridge: not the gateway's
    store = open_store(rig.db_path)
    user, password = accounts.credentials(store)
    store.close()
    acl = (rig.workdir / "broker" / "acl").read_text()
    block = acl.split(f"user {user}\n")[1].split("\nuser ")[0]
    assert f"topic write pw/v1/{rig.site}/{DEVICE}/evt" in block
    assert f"topic read pw/v1/{rig.site}/{DEVICE}/ack" in block
    assert "wb-other" not in block and "#" not in block and "+" not in block
    wait_until(lambda: rig.login_accepted(user, password), 10, what="the gateway's login")


def test_gateway_2019_terminal_is_answered_in_2019_headers(site: Site):
    async def main() -> Any:
        async with running(site) as (gateway, port, _):
            stats = await run_terminal("127.0.0.1", port, "013800138000", fixes(2), version=1)
            await until(lambda: len(site.observed.evts()) >= 2, 10, "2 evts")
            return stats, gateway.stats

    stats, gw = asyncio.run(main())
    assert stats.answered_fixes == 2 and stats.registered == 1
    assert [m["seq"] for m in site.opened()] == [1, 2]  # BCD[10] phone -> the same jt- device
    assert gw.frames["0x0100"] == 1 and gw.bad_frames == {}


def test_gateway_subpackaged_batch_is_reassembled_and_each_packet_answered(site: Site):
    items = [jtt808.encode_location({"alarm": 0, "status": 3, "lat_e6": 38930000 + i,
                                     "lon_e6": 121650000, "speed_dkmh": 0, "course": 0,
                                     "ts_ms": T0 + i * 1000}) for i in range(40)]
    body = jtt808.encode_batch(items, jtt808.BATCH_BLIND_AREA)  # 1203 bytes: over 1023
    assert len(body) > jtt808.MAX_BODY

    async def main() -> Any:
        async with running(site) as (gateway, port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(jtt808.encode_frame(jtt808.REGISTER, PHONE, 1, jtt808.encode_register(
                {"province": 21, "city": 200, "maker": "X", "model": "Y", "terminal_id": "Z",
                 "plate_color": 2, "plate": b"B1"})))
            await writer.drain()
            code = (await read_answers(reader, 1))[0]["auth_code"]
            writer.write(jtt808.encode_frame(jtt808.AUTHENTICATE, PHONE, 2, code))
            # packet 0 of 2 cannot be; then the two real packets, serials 3 and 4
            writer.write(jtt808.encode_frame(jtt808.BATCH, PHONE, 9, b"", packages=(2, 0)))
            writer.write(jtt808.encode_frame(jtt808.BATCH, PHONE, 3, body[:1000],
                                             packages=(2, 1)))
            writer.write(jtt808.encode_frame(jtt808.BATCH, PHONE, 4, body[1000:],
                                             packages=(2, 2)))
            writer.write(jtt808.encode_frame(0x0900, PHONE, 5, b"\x01"))  # data uplink
            await writer.drain()
            answers = await read_answers(reader, 5)
            await until(lambda: len(site.observed.evts()) >= 1, 10, "the batch's event")
            writer.close()
            return answers, gateway.stats

    answers, gw = asyncio.run(main())
    assert [(a["answer_serial"], a["answer_id"], a["result"]) for a in answers] == [
        (2, jtt808.AUTHENTICATE, jtt808.OK), (9, jtt808.BATCH, jtt808.BAD_MESSAGE),
        (3, jtt808.BATCH, jtt808.OK), (4, jtt808.BATCH, jtt808.OK),
        (5, 0x0900, jtt808.UNSUPPORTED)]
    opened = site.opened()
    assert [m["seq"] for m in opened] == [1]
    assert [f[1] for f in opened[0]["body"]["fixes"]] == [38930000 + i for i in range(40)]
    assert gw.bad_frames == {"subpackage": 1, "unsupported": 1}


def test_gateway_closes_a_connection_idle_past_its_limit(site: Site):
    async def main() -> Any:
        async with running(site) as (gateway, port, _):
            gateway.idle_s = 0.3
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            rest = await asyncio.wait_for(reader.read(), 5)  # EOF from the gateway
            writer.close()
            return rest, gateway.stats

    rest, gw = asyncio.run(main())
    assert rest == b"" and gw.closed_idle == 1


def test_gateway_answers_nothing_while_the_broker_is_down_and_numbers_the_resend_once(
        site: Site):
    async def main() -> Any:
        async with running(site, answer_timeout_s=0.5) as (gateway, port, uplink):
            site.rig.broker.stop()
            await until(lambda: not uplink.stats.connected, 10, "the broker link to drop")
            stop = asyncio.Event()
            terminal = Terminal("127.0.0.1", port, PHONE, answer_timeout_s=0.5)
            run = asyncio.create_task(terminal.run(fixes(1), stop))
            await until(lambda: gateway.stats.unanswered >= 2, 10, "two unanswered tries")
            assert uplink.backlog() == 1 and uplink.next_seq(DEVICE) == 2
            site.rig.broker.start()
            stats = await asyncio.wait_for(run, 20)
            await until(site.observed.subscribed.is_set, 10, "the observer's resubscription")
            site.ack(DEVICE, 0, resync=True)  # as the controller does on its reconnect
            await until(lambda: len(site.observed.evts()) >= 1, 10, "the event")
            return stats, gateway.stats, uplink.stats, uplink.next_seq(DEVICE)

    stats, gw, up, next_seq = asyncio.run(main())
    assert stats.answered_fixes == 1 and stats.resends >= 2
    assert gw.unanswered >= 2 and up.duplicate_reports >= 2
    assert next_seq == 2  # one report, one seq, however often it was sent
    assert {m["seq"] for m in site.opened()} == {1}


def test_gateway_batch_with_an_unreadable_item_keeps_the_others_and_counts_it(site: Site):
    good = jtt808.encode_location({"alarm": 0, "status": 3, "lat_e6": 38930000,
                                   "lon_e6": 121650000, "speed_dkmh": 0, "course": 0,
                                   "ts_ms": T0})
    bad = good[:22] + bytes.fromhex("261301000000")  # month 13
    mixed = jtt808.encode_batch([bad, good], jtt808.BATCH_BLIND_AREA)
    all_bad = jtt808.encode_batch([bad], jtt808.BATCH_BLIND_AREA)

    async def main() -> Any:
        async with running(site) as (gateway, port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(jtt808.encode_frame(jtt808.REGISTER, PHONE, 1, jtt808.encode_register(
                {"province": 21, "city": 200, "maker": "X", "model": "Y", "terminal_id": "Z",
                 "plate_color": 2, "plate": b"B1"})))
            await writer.drain()
            code = (await read_answers(reader, 1))[0]["auth_code"]
            writer.write(jtt808.encode_frame(jtt808.AUTHENTICATE, PHONE, 2, code))
            writer.write(jtt808.encode_frame(jtt808.BATCH, PHONE, 3, mixed))
            writer.write(jtt808.encode_frame(jtt808.BATCH, PHONE, 4, all_bad))
            await writer.drain()
            answers = await read_answers(reader, 3)
            await until(lambda: len(site.observed.evts()) >= 1, 10, "the event")
            writer.close()
            return answers, gateway.stats

    answers, gw = asyncio.run(main())
    assert [(a["answer_serial"], a["result"]) for a in answers] == [
        (2, jtt808.OK), (3, jtt808.OK), (4, jtt808.BAD_MESSAGE)]
    opened = site.opened()
    assert [m["seq"] for m in opened] == [1]
    assert opened[0]["body"]["fixes"] == [[T0, 38930000, 121650000, 0, 0, 0, 0]]
    assert gw.bad_items == 2 and gw.bad_frames == {"bad_body": 1}


def test_gateway_resends_a_window_when_acks_stall_and_stops_once_acknowledged(site: Site):
    async def main() -> Any:
        async with running(site, resend_after_s=1.0) as (_, port, uplink):
            await run_terminal("127.0.0.1", port, PHONE, fixes(10))
            # no controller: no ack; after 1 s the first 8 unacknowledged go out again
            await until(lambda: len(site.observed.evts()) >= 18, 10, "a resent window")
            resent = sorted(m["seq"] for m in site.opened())
            site.ack(DEVICE, 10)
            await until(lambda: uplink.backlog() == 0, 10, "the ack to drain the outbox")
            return resent, uplink.stats.resends

    resent, resends = asyncio.run(main())
    assert resends >= 1
    assert resent.count(1) >= 2 and resent.count(8) >= 2
    # each resend is a window of 8 (seqs 1-8), never the 9th and 10th again
    assert resent.count(9) == 1 and resent.count(10) == 1
