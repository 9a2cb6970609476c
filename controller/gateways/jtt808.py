"""The JT/T 808 gateway: an asyncio TCP server that speaks to vehicle trackers.

Started by ``portwatch jtt808 serve`` as its own process beside the controller (and by
the rig for tests). Each TCP connection is one terminal:

- registration 0x0100: only a terminal provisioned as device ``jt-<phone>`` (kind gps, at
  this site, in service) is accepted, answered 0x8100 result 0 with its authentication
  code; any other gets result 4, "terminal not in database";
- authentication 0x0102 with that code: 0x8001 ok, and the device's ``birth`` goes out;
  a wrong code: 0x8001 fail;
- heartbeat 0x0002: 0x8001 ok;
- location 0x0200 and batch 0x0704 (normal or blind-area supplement): turned into
  ``positions`` (and ``alarm``) events and answered 0x8001 ok only once they are safely
  handed on (``jtt808_uplink``: in the gateway's outbox on disk and PUBACKed by the
  broker). A report that cannot be read is answered 0x8001 "bad message" (2), one from
  a terminal not authenticated "fail" (1), other message ids "unsupported" (3);
- a subpackaged message is reassembled (``jtt808_parts``) and each of its packets gets
  the answer of the whole.

Bad bytes never end the server: every bad frame is counted per reason (``stats``, the
status file, the log) and the connection goes on; after ``MAX_BAD_IN_A_ROW`` bad frames
with no good one between, or no frame within ``idle_s``, the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controller.gateways import jtt808_events as events
from controller.gateways.jtt808_parts import Reassembler
from controller.gateways.jtt808_uplink import Uplink
from protocols import jtt808

log = logging.getLogger(__name__)
MAX_BAD_IN_A_ROW = 16
READ_SIZE = 4096


@dataclass
class GatewayStats:
    """What the terminal side saw (the status file and the log show it)."""

    connections: int = 0
    online: int = 0
    frames: dict[str, int] = field(default_factory=dict)  # per message id, "0x0200"
    bad_frames: dict[str, int] = field(default_factory=dict)  # per reason
    dropped_bytes: int = 0
    registrations: int = 0
    registrations_refused: int = 0
    authentications_failed: int = 0
    reports: int = 0
    fixes: int = 0
    bad_items: int = 0
    answered: int = 0
    unanswered: int = 0  # reports the broker did not confirm in time: the terminal resends
    closed_bad: int = 0
    closed_idle: int = 0

    def bad(self, reason: str) -> None:
        self.bad_frames[reason] = self.bad_frames.get(reason, 0) + 1
        n = sum(self.bad_frames.values())
        if n & (n - 1) == 0:  # 1, 2, 4, 8, ...: a flood is visible without flooding the log
            log.warning("%d bad frames so far: %s", n, self.bad_frames)


class Session:
    """One terminal's TCP connection."""

    def __init__(self, gateway: Gateway, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.gw = gateway
        self.reader = reader
        self.writer = writer
        self.splitter = jtt808.Splitter()
        self.peer = str(writer.get_extra_info("peername"))
        self.device_id: str | None = None
        self.authed = False
        self.serial = 0
        self.bad_in_a_row = 0
        self.parts = Reassembler()
        self._serials: list[int] | None = None  # the packets of the message being handled

    async def run(self) -> None:
        stats = self.gw.stats
        try:
            while True:
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_SIZE), self.gw.idle_s)
                except TimeoutError:
                    stats.closed_idle += 1
                    log.info("%s (%s): nothing for %.0f s, closing", self.peer,
                             self.device_id, self.gw.idle_s)
                    return
                if not data:
                    return
                dropped = self.splitter.dropped_bytes
                for item in self.splitter.feed(data):
                    if isinstance(item, jtt808.JT808Error):
                        self._bad(item.reason, item.detail)
                    else:
                        await self._frame(item)
                stats.dropped_bytes += self.splitter.dropped_bytes - dropped
                if self.bad_in_a_row >= MAX_BAD_IN_A_ROW:
                    stats.closed_bad += 1
                    log.warning("%s (%s): %d bad frames in a row, closing the connection",
                                self.peer, self.device_id, self.bad_in_a_row)
                    return
        except (ConnectionError, OSError) as exc:
            log.info("%s (%s): connection lost (%s)", self.peer, self.device_id, exc)

    def _bad(self, reason: str, detail: str) -> None:
        self.bad_in_a_row += 1
        self.gw.stats.bad(reason)
        log.info("%s (%s): bad frame, %s: %s", self.peer, self.device_id, reason, detail)

    async def _send(self, frame: jtt808.Frame, msg_id: int, body: bytes) -> None:
        self.serial = (self.serial + 1) & 0xFFFF
        self.writer.write(jtt808.encode_frame(msg_id, frame.phone, self.serial, body,
                                              frame.version))
        await self.writer.drain()

    async def _answer(self, frame: jtt808.Frame, result: int) -> None:
        # a reassembled message: each of its packets gets the answer (section 7.12 allows
        # one for all or one each; one each satisfies a terminal waiting for either)
        for serial in self._serials or [frame.serial]:
            await self._send(frame, jtt808.PLATFORM_ANSWER,
                             jtt808.encode_answer(serial, frame.msg_id, result))

    async def _frame(self, frame: jtt808.Frame) -> None:
        stats = self.gw.stats
        name = f"0x{frame.msg_id:04X}"
        stats.frames[name] = stats.frames.get(name, 0) + 1
        device_id = events.device_id(frame.phone)
        if self.device_id is not None and device_id != self.device_id:
            self._bad("phone_mismatch", f"{device_id} on the connection of {self.device_id}")
            await self._answer(frame, jtt808.FAIL)
            return
        self.bad_in_a_row = 0
        if frame.packages is not None:
            now = time.monotonic()
            for _ in range(self.parts.expire(now)):
                self._bad("subpackage_incomplete", "a subpackaged message stayed incomplete")
            try:
                whole = self.parts.add(frame, now)
            except jtt808.JT808Error as exc:
                self._bad(exc.reason, exc.detail)
                await self._answer(frame, jtt808.BAD_MESSAGE)
                return
            if whole is None:
                return  # answered with the whole message
            frame, self._serials = whole.frame, whole.serials
        try:
            await self._dispatch(frame, device_id, name)
        finally:
            self._serials = None

    async def _dispatch(self, frame: jtt808.Frame, device_id: str, name: str) -> None:
        try:
            if frame.msg_id == jtt808.REGISTER:
                await self._register(frame, device_id)
            elif frame.msg_id == jtt808.AUTHENTICATE:
                await self._authenticate(frame, device_id)
            elif frame.msg_id == jtt808.HEARTBEAT:
                await self._answer(frame, jtt808.OK if self.authed else jtt808.FAIL)
            elif frame.msg_id in (jtt808.LOCATION, jtt808.BATCH):
                await self._report(frame)
            elif frame.msg_id == jtt808.TERMINAL_ANSWER:
                pass  # answers to platform messages; the gateway sends none that need one
            else:
                self._bad("unsupported", name)
                await self._answer(frame, jtt808.UNSUPPORTED)
        except jtt808.JT808Error as exc:
            self._bad(exc.reason, f"{name}: {exc.detail}; body {frame.body.hex()}")
            await self._answer(frame, jtt808.BAD_MESSAGE)
        except LookupError as exc:  # decommissioned (its keys ended) while connected
            log.warning("%s (%s): %s; authentication withdrawn", self.peer, self.device_id, exc)
            self.authed = False
            self.gw.online.discard(device_id)
            await self._answer(frame, jtt808.FAIL)

    async def _register(self, frame: jtt808.Frame, device_id: str) -> None:
        reg = jtt808.decode_register(frame.body, frame.version)
        plate = events.plate_text(reg["plate"])
        found = self.gw.uplink.key(device_id) if self.gw.uplink.provisioned(device_id) else None
        if found is None:
            self.gw.stats.registrations_refused += 1
            log.warning("%s: registration of terminal %s (plate %s) refused: no device %s "
                        "of kind gps at site %s; provision it: portwatch jtt808 add-terminal "
                        "%s", self.peer, frame.phone, plate, device_id, self.gw.site,
                        jtt808.normal_phone(frame.phone))
            await self._send(frame, jtt808.REGISTER_ANSWER, jtt808.encode_register_answer(
                frame.serial, jtt808.REG_NO_TERMINAL))
            return
        self.gw.stats.registrations += 1
        self.device_id = device_id
        log.info("%s: terminal %s registered as %s (plate %s, model %s)", self.peer,
                 frame.phone, device_id, plate, reg["model"].decode("ascii", "replace"))
        code = events.auth_code(found[1].secret, device_id)
        await self._send(frame, jtt808.REGISTER_ANSWER,
                         jtt808.encode_register_answer(frame.serial, jtt808.REG_OK, code))

    async def _authenticate(self, frame: jtt808.Frame, device_id: str) -> None:
        code = jtt808.decode_auth(frame.body, frame.version)["auth_code"]
        found = self.gw.uplink.key(device_id) if self.gw.uplink.provisioned(device_id) else None
        if found is None or not hmac.compare_digest(code, events.auth_code(found[1].secret,
                                                                            device_id)):
            self.gw.stats.authentications_failed += 1
            log.warning("%s: authentication of %s failed (%s)", self.peer, device_id,
                        "not provisioned" if found is None else "wrong code")
            await self._answer(frame, jtt808.FAIL)
            return
        first = not self.authed
        self.device_id, self.authed = device_id, True
        await self._answer(frame, jtt808.OK)
        if first:
            self.gw.online.add(device_id)
            await self.gw.uplink.announce(device_id, "birth")

    async def _report(self, frame: jtt808.Frame) -> None:
        if not self.authed or self.device_id is None:
            self._bad("not_authenticated", "a report before authentication")
            await self._answer(frame, jtt808.FAIL)
            return
        if frame.msg_id == jtt808.LOCATION:
            locations = [jtt808.decode_location(frame.body)]
        else:
            kind, items = jtt808.decode_batch(frame.body)
            locations = []
            for i, item in enumerate(items):
                if isinstance(item, jtt808.JT808Error):
                    self.gw.stats.bad_items += 1
                    log.warning("%s: item %d of a 0x0704 (type %d) dropped: %s", self.device_id,
                                i, kind, item)
                else:
                    locations.append(item)
            if len(locations) < len(items):  # the evidence of what was dropped, whole
                log.warning("%s: that 0x0704 (serial %d) was %s", self.device_id, frame.serial,
                            frame.body.hex())
            if not locations:
                raise jtt808.JT808Error("bad_body", "no readable item in the batch")
        uplink, device_id = self.gw.uplink, self.device_id
        digest = events.report_digest(frame.msg_id, frame.body)
        if uplink.seen(device_id, digest) is not None:
            evts: list[events.Event] = []
            bits = uplink.alarm_bits(device_id)
        else:
            alarms, bits = events.alarm_events(uplink.alarm_bits(device_id), locations)
            evts = events.positions_events(locations) + alarms
        self.gw.stats.reports += 1
        self.gw.stats.fixes += len(locations)
        if await uplink.submit(device_id, evts, digest=digest, alarm_bits=bits):
            self.gw.stats.answered += 1
            await self._answer(frame, jtt808.OK)
        else:
            self.gw.stats.unanswered += 1
            log.warning("%s: report serial %d not answered: the broker did not confirm "
                        "within %.1f s; it is in the outbox and the terminal will resend",
                        device_id, frame.serial, uplink.answer_timeout_s)

    async def close(self) -> None:
        if self.authed and self.device_id is not None:
            self.gw.online.discard(self.device_id)
            if not any(s.device_id == self.device_id and s is not self for s in
                       self.gw.sessions):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.gw.uplink.announce(self.device_id, "death"),
                                           2.0)
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class Gateway:
    """The TCP server and its status file."""

    def __init__(self, uplink: Uplink, *, site: str, idle_s: float = 180.0,
                 status_path: Path | None = None) -> None:
        self.uplink = uplink
        self.site = site
        self.idle_s = idle_s  # three of the standard's default 60 s heartbeats
        self.status_path = status_path
        self.stats = GatewayStats()
        self.online: set[str] = set()
        self.sessions: set[Session] = set()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self.sessions.add(session)
        self.stats.connections += 1
        self.stats.online = len(self.sessions)
        try:
            await session.run()
        except Exception:  # one terminal's surprise must not end the server
            log.exception("%s (%s): session failed", session.peer, session.device_id)
            self.stats.bad("session_error")
        finally:
            self.sessions.discard(session)
            self.stats.online = len(self.sessions)
            await session.close()

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); return the port."""
        self._server = await asyncio.start_server(self._handle, host, port)
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    def status(self) -> dict[str, Any]:
        """Counters of both sides, for the status file and ``portwatch jtt808 status``."""
        return {"site": self.site, "boot": self.uplink.boot, "pid": os.getpid(),
                "terminals_online": sorted(self.online), "outbox": self.uplink.backlog(),
                "terminal_side": asdict(self.stats), "broker_side": asdict(self.uplink.stats)}

    def write_status(self) -> None:
        if self.status_path is None:
            return
        tmp = self.status_path.with_name(self.status_path.name + ".tmp")
        tmp.write_text(json.dumps(self.status(), indent=1, sort_keys=True))
        os.replace(tmp, self.status_path)

    async def report_status(self, every_s: float = 2.0, log_every_s: float = 60.0) -> None:
        """Write the status file every ``every_s`` and log the counters every
        ``log_every_s`` (when they changed)."""
        last_logged, since = "", 0.0
        while True:
            self.write_status()
            since += every_s
            if since >= log_every_s:
                since = 0.0
                text = json.dumps({"terminal": asdict(self.stats),
                                   "broker": asdict(self.uplink.stats)}, sort_keys=True)
                if text != last_logged:
                    log.info("status: %s", text)
                    last_logged = text
            await asyncio.sleep(every_s)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, close every terminal's connection (their deaths go out while
        the broker link still runs: stop the gateway before the uplink)."""
        if self._server is not None:
            self._server.close()
            for session in list(self.sessions):
                session.writer.close()
            tasks = list(self._handlers)
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)
        self.write_status()


async def serve(uplink: Uplink, *, host: str, port: int, site: str,
                status_path: Path | None = None, idle_s: float = 180.0,
                started: asyncio.Event | None = None) -> None:
    """Run the gateway until cancelled: the MQTT side, the TCP server, the status file."""
    gateway = Gateway(uplink, site=site, idle_s=idle_s, status_path=status_path)
    bound = await gateway.start(host, port)
    log.info("JT/T 808 gateway listening on %s:%d for site %s", host, bound, site)
    tasks = [asyncio.create_task(uplink.run()), asyncio.create_task(gateway.report_status())]
    if started is not None:
        started.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        await gateway.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
