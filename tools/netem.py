"""A TCP proxy that can cut or black-hole a link: network faults between real processes.

Put it between an agent and the broker (the agent's config points at the proxy)
and switch it while they run: ``pass`` forwards bytes, ``blackhole`` keeps every
connection open but forwards nothing (a partition: no FIN, no RST, so only the
keepalive can notice), ``cut`` closes every connection and refuses new ones.
It runs in a thread with its own asyncio loop so a synchronous test can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Literal

Mode = Literal["pass", "blackhole", "cut"]


class LinkProxy:
    """Forward 127.0.0.1:``port`` to ``target_port``, with a switchable fault mode."""

    def __init__(self, *, target_port: int, port: int = 0, record: bool = False) -> None:
        self.target_port = target_port
        self.port = port
        self.mode: Mode = "pass"
        self.connections = 0
        # with ``record``: every byte forwarded either way, as a listener on the path sees it
        self.seen: bytearray | None = bytearray() if record else None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> LinkProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def set_mode(self, mode: Mode) -> None:
        """Switch the fault mode; ``cut`` also closes every open connection."""
        self.mode = mode
        if mode == "cut":
            asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=5)

    async def _close_all(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self._writers.update((writer, up_w))
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "pass":
                    if self.seen is not None:
                        self.seen += data
                    writer.write(data)
                    await writer.drain()
                # blackhole: read and drop, so neither side sees a closed socket
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self._writers.discard(writer)

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._close_all()
            if self._server is not None:
                self._server.close()
            me = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not me]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
