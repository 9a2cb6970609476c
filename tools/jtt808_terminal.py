"""An emulated JT/T 808 terminal: an asyncio TCP client that behaves like a truck's tracker.

It registers (0x0100), authenticates (0x0102) with the code it was given, sends a
heartbeat (0x0002) when it has nothing else to say, and reports each fix as a location
report (0x0200). While out of coverage (``coverage`` cleared) it drops the link and keeps
its fixes, and when coverage is back it sends them as blind-area batches (0x0704 type 1).
A report whose platform answer (0x8001) does not come within ``answer_timeout_s`` is sent
again, and again, until one does (the gateway recognises a resend and does not number it
twice). Fixes are ``(ts_ms, lat_e6, lon_e6, speed_dkmh, course_deg, alarm_bits,
status_bits)`` from any iterable or async iterator::

    stats = await run_terminal("127.0.0.1", 7808, "13800138000", fixes, plate="辽B12345",
                               stop=stop_event)

tools/gps_emulator.py drives it with routes; ``portwatch jtt808 terminal`` from a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from protocols import jtt808

log = logging.getLogger(__name__)
Fix = tuple[int, int, int, int, int, int, int]
BATCH_MAX = 30  # 30 items of 30 bytes: a 0x0704 under the 1023-byte body limit


class TerminalRefused(RuntimeError):
    """The platform refused the registration (0x8100 result other than 0)."""

    def __init__(self, result: int) -> None:
        super().__init__(f"registration refused with result {result} (4: terminal not in "
                         "database: provision it with `portwatch jtt808 add-terminal`)")
        self.result = result


@dataclass
class TerminalStats:
    """What the terminal did: counts per message, resends, answers."""

    connects: int = 0
    registered: int = 0
    authenticated: int = 0
    reports: int = 0  # 0x0200 sent (resends included)
    batches: int = 0  # 0x0704 sent (resends included)
    resends: int = 0
    heartbeats: int = 0
    answered_fixes: int = 0  # fixes whose report got 0x8001 ok
    answers: dict[int, int] = field(default_factory=dict)  # 0x8001 results seen
    unsent: int = 0  # fixes still held when stopped
    auth_code: bytes = b""


class Terminal:
    """One emulated tracker; see the module's doc."""

    def __init__(self, host: str, port: int, phone: str, *, plate: str = "辽B12345",
                 version: int | None = None, heartbeat_s: float = 30.0,
                 answer_timeout_s: float = 5.0, reconnect_s: float = 0.5,
                 coverage: asyncio.Event | None = None, batch_max: int = BATCH_MAX) -> None:
        self.host, self.port, self.phone = host, port, phone
        self.plate = plate
        self.version = version
        self.heartbeat_s = heartbeat_s
        self.answer_timeout_s = answer_timeout_s
        self.reconnect_s = reconnect_s
        self.coverage = coverage
        self.batch_max = batch_max
        self.stats = TerminalStats()
        self.held: deque[Fix] = deque()  # fixes not yet answered, oldest first
        self.blind: list[Fix] = []  # fixes kept while out of coverage
        self._serial = 0
        self._writer: asyncio.StreamWriter | None = None
        self._answers: dict[tuple[int, int], asyncio.Future[dict[str, object]]] = {}
        self._reader_task: asyncio.Task[None] | None = None

    # -- link -------------------------------------------------------------------------

    def _linked(self) -> bool:
        return (self._writer is not None and self._reader_task is not None
                and not self._reader_task.done())

    def _covered(self) -> bool:
        return self.coverage is None or self.coverage.is_set()

    async def _send(self, msg_id: int, body: bytes) -> int:
        assert self._writer is not None
        self._serial = (self._serial + 1) & 0xFFFF
        self._writer.write(jtt808.encode_frame(msg_id, self.phone, self._serial, body,
                                               self.version))
        await self._writer.drain()
        return self._serial

    async def _request(self, msg_id: int, body: bytes, answer_id: int) -> dict[str, object]:
        """Send and wait for the answer to that serial; TimeoutError when none comes."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, object]] = loop.create_future()
        serial = (self._serial + 1) & 0xFFFF
        self._answers[(answer_id, serial)] = fut
        try:
            await self._send(msg_id, body)
            return await asyncio.wait_for(fut, self.answer_timeout_s)
        finally:
            self._answers.pop((answer_id, serial), None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        splitter = jtt808.Splitter()
        while True:
            data = await reader.read(4096)
            if not data:
                break
            for item in splitter.feed(data):
                if isinstance(item, jtt808.JT808Error):
                    log.warning("terminal %s: bad frame from the platform: %s", self.phone, item)
                    continue
                try:
                    if item.msg_id == jtt808.PLATFORM_ANSWER:
                        answer = jtt808.decode_answer(item.body)
                        key = (jtt808.PLATFORM_ANSWER, int(answer["answer_serial"]))
                    elif item.msg_id == jtt808.REGISTER_ANSWER:
                        answer = jtt808.decode_register_answer(item.body)
                        key = (jtt808.REGISTER_ANSWER, int(answer["answer_serial"]))
                    else:
                        continue
                except jtt808.JT808Error as exc:
                    log.warning("terminal %s: unreadable answer: %s", self.phone, exc)
                    continue
                fut = self._answers.get(key)
                if fut is not None and not fut.done():
                    fut.set_result(answer)
        for fut in self._answers.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the platform closed the connection"))

    async def _connect(self) -> None:
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self.stats.connects += 1
        self._reader_task = asyncio.create_task(self._read(reader))
        if not self.stats.auth_code:
            await self._register()
        answer = await self._request(jtt808.AUTHENTICATE, jtt808.encode_auth(
            self.stats.auth_code, self.version, b"860000000000001", b"pw-emu-1"),
            jtt808.PLATFORM_ANSWER)
        if answer["result"] != jtt808.OK:
            # a code from before a key rotation: register again, then authenticate
            self.stats.auth_code = b""
            await self._register()
            answer = await self._request(jtt808.AUTHENTICATE, jtt808.encode_auth(
                self.stats.auth_code, self.version, b"860000000000001", b"pw-emu-1"),
                jtt808.PLATFORM_ANSWER)
            if answer["result"] != jtt808.OK:
                raise ConnectionError(f"authentication failed with result {answer['result']}")
        self.stats.authenticated += 1

    async def _register(self) -> None:
        body = jtt808.encode_register({
            "province": 21, "city": 200, "maker": "PWEMU", "model": "PW-808",
            "terminal_id": self.phone[-7:], "plate_color": 2,
            "plate": self.plate.encode("gbk")}, self.version)
        answer = await self._request(jtt808.REGISTER, body, jtt808.REGISTER_ANSWER)
        if answer["result"] != jtt808.REG_OK:
            raise TerminalRefused(int(str(answer["result"])))
        self.stats.registered += 1
        code = answer["auth_code"]
        assert isinstance(code, bytes)
        self.stats.auth_code = code

    async def _disconnect(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await self._reader_task
        self._reader_task = None

    # -- reports ----------------------------------------------------------------------

    @staticmethod
    def _body(fix: Fix) -> bytes:
        ts, lat, lon, speed, course, alarm, status = fix
        return jtt808.encode_location({"alarm": alarm, "status": status, "lat_e6": lat,
                                       "lon_e6": lon, "speed_dkmh": speed, "course": course,
                                       "ts_ms": ts})

    async def _deliver(self, msg_id: int, body: bytes, count: int, stop: asyncio.Event) -> bool:
        """Send one report until it is answered ok (True) or the link or coverage is
        lost or ``stop`` is set (False: the caller keeps the fixes)."""
        first = True
        while not stop.is_set() and self._covered() and self._linked():
            if not first:
                self.stats.resends += 1
            first = False
            if msg_id == jtt808.BATCH:
                self.stats.batches += 1
            else:
                self.stats.reports += 1
            try:
                answer = await self._request(msg_id, body, jtt808.PLATFORM_ANSWER)
            except TimeoutError:
                continue  # no answer: the same report again
            except (ConnectionError, OSError) as exc:
                log.info("terminal %s: link lost (%s)", self.phone, exc)
                await self._disconnect()
                return False
            result = int(str(answer["result"]))
            self.stats.answers[result] = self.stats.answers.get(result, 0) + 1
            if result == jtt808.OK:
                self.stats.answered_fixes += count
                return True
            if result in (jtt808.BAD_MESSAGE, jtt808.UNSUPPORTED):
                log.warning("terminal %s: report refused with result %d: dropped", self.phone,
                            result)
                return True
            await asyncio.sleep(self.answer_timeout_s)  # fail: try again later
        return False

    async def _flush(self, stop: asyncio.Event) -> None:
        """Send what is held: blind-area fixes as 0x0704 type 1, the rest one by one."""
        while self.blind and self._writer is not None:
            chunk = self.blind[:self.batch_max]
            body = jtt808.encode_batch([self._body(f) for f in chunk], jtt808.BATCH_BLIND_AREA)
            if not await self._deliver(jtt808.BATCH, body, len(chunk), stop):
                return
            del self.blind[:len(chunk)]
        while self.held and self._writer is not None:
            if not await self._deliver(jtt808.LOCATION, self._body(self.held[0]), 1, stop):
                return
            self.held.popleft()

    async def run(self, fixes: AsyncIterator[Fix] | Iterable[Fix],
                  stop: asyncio.Event | None = None) -> TerminalStats:
        """Report every fix of ``fixes``; return when all are answered or ``stop`` is set
        (``stats.unsent``: fixes not delivered). TerminalRefused when not provisioned."""
        stop = stop if stop is not None else asyncio.Event()
        source = _aiter(fixes)
        exhausted = False
        next_fix: asyncio.Task[Fix] | None = None
        try:
            while not stop.is_set():
                if not self._covered():
                    await self._disconnect()
                    self.blind.extend(self.held)
                    self.held.clear()
                elif self._writer is None:
                    try:
                        await self._connect()
                    except (ConnectionError, OSError, TimeoutError) as exc:
                        log.info("terminal %s: connect failed (%s)", self.phone, exc)
                        await self._disconnect()
                        await _wait(stop, self.reconnect_s)
                        continue
                if self._writer is not None and not self._linked():
                    await self._disconnect()  # the platform closed the link
                    continue
                if self._writer is not None:
                    await self._flush(stop)
                    if self._writer is not None and (self.blind or self.held) \
                            and self._covered():
                        # an undelivered report: the link went away under it
                        await self._disconnect()
                        continue
                if exhausted and not self.blind and not self.held:
                    break
                if exhausted:
                    await _wait(stop, self.reconnect_s)
                    continue
                if next_fix is None:
                    next_fix = asyncio.ensure_future(anext(source))
                done, _ = await asyncio.wait({next_fix}, timeout=self.heartbeat_s)
                if not done:
                    if self._writer is not None and self._covered():
                        self.stats.heartbeats += 1
                        try:
                            await self._request(jtt808.HEARTBEAT, b"", jtt808.PLATFORM_ANSWER)
                        except (TimeoutError, ConnectionError, OSError):
                            await self._disconnect()
                    continue
                try:
                    fix = next_fix.result()
                except StopAsyncIteration:
                    exhausted = True
                else:
                    (self.held if self._covered() else self.blind).append(fix)
                next_fix = None
        finally:
            if next_fix is not None:
                next_fix.cancel()
            await self._disconnect()
        self.stats.unsent = len(self.held) + len(self.blind)
        return self.stats


async def _aiter(fixes: AsyncIterator[Fix] | Iterable[Fix]) -> AsyncIterator[Fix]:
    if isinstance(fixes, AsyncIterator):
        async for fix in fixes:
            yield fix
    else:
        for fix in fixes:
            yield fix


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def run_terminal(host: str, port: int, phone: str,
                       fixes: AsyncIterator[Fix] | Iterable[Fix], *, plate: str = "辽B12345",
                       stop: asyncio.Event | None = None, coverage: asyncio.Event | None = None,
                       version: int | None = None, heartbeat_s: float = 30.0,
                       answer_timeout_s: float = 5.0) -> TerminalStats:
    """Run one emulated terminal over ``fixes`` (see the module's doc); return its stats.

    ``coverage``: cleared means out of coverage (fixes kept, sent later as a blind-area
    batch); ``version`` None speaks 2013 headers, 1 the 2019 ones.
    """
    terminal = Terminal(host, port, phone, plate=plate, version=version,
                        heartbeat_s=heartbeat_s, answer_timeout_s=answer_timeout_s,
                        coverage=coverage)
    return await terminal.run(fixes, stop)
