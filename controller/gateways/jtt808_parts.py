"""Reassembly of subpackaged JT/T 808 messages (JT/T 808-2013 section 7.12).

The packets of one message carry consecutive serials and (total, index) in their headers;
the message is their bodies in index order. Held in memory per connection, bounded: at
most ``MAX_PACKAGES`` packets per message and ``MAX_OPEN`` messages open at once; a message
not complete within ``EXPIRE_S`` of its last packet is dropped (counted): the terminal,
never answered, sends it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols import jtt808

MAX_PACKAGES = 64
MAX_OPEN = 4
EXPIRE_S = 60.0


@dataclass
class Whole:
    """A reassembled message: ``frame`` (serial: the first packet's) and every packet's
    serial, each of which gets the platform's answer."""

    frame: jtt808.Frame
    serials: list[int]


@dataclass
class _Open:
    bodies: dict[int, bytes] = field(default_factory=dict)
    serials: dict[int, int] = field(default_factory=dict)
    last_s: float = 0.0


class Reassembler:
    """Collect packets until their message is whole (see the module's doc)."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, int, int], _Open] = {}

    def add(self, frame: jtt808.Frame, now_s: float) -> Whole | None:
        """Take one packet; the whole message once its last packet is in, else None.
        JT808Error ``subpackage`` for a packet that cannot belong to a message."""
        assert frame.packages is not None
        total, index = frame.packages
        if not 1 <= index <= total or total > MAX_PACKAGES:
            raise jtt808.JT808Error("subpackage", f"packet {index} of {total} (at most "
                                    f"{MAX_PACKAGES} packets, numbered from 1)")
        first = (frame.serial - index + 1) & 0xFFFF
        key = (frame.msg_id, total, first)
        parts = self._open.get(key)
        if parts is None:
            if len(self._open) >= MAX_OPEN:
                raise jtt808.JT808Error("subpackage", f"more than {MAX_OPEN} subpackaged "
                                        "messages open at once")
            parts = self._open[key] = _Open()
        parts.bodies[index] = frame.body
        parts.serials[index] = frame.serial
        parts.last_s = now_s
        if len(parts.bodies) < total:
            return None
        del self._open[key]
        body = b"".join(parts.bodies[i] for i in range(1, total + 1))
        whole = jtt808.Frame(frame.msg_id, frame.phone, first, body, frame.version)
        return Whole(whole, [parts.serials[i] for i in range(1, total + 1)])

    def expire(self, now_s: float) -> int:
        """Drop messages whose last packet is older than ``EXPIRE_S``; return how many."""
        old = [k for k, p in self._open.items() if now_s - p.last_s > EXPIRE_S]
        for key in old:
            del self._open[key]
        return len(old)
