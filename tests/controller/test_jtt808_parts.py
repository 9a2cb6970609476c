"""Reassembly of subpackaged JT/T 808 messages: order, serials, bounds and expiry."""

from __future__ import annotations

import pytest

from controller.gateways.jtt808_parts import EXPIRE_S, MAX_OPEN, Reassembler
from protocols import jtt808


def packet(serial: int, total: int, index: int, body: bytes,
           msg_id: int = jtt808.BATCH) -> jtt808.Frame:
    return jtt808.Frame(msg_id, "013800138000", serial, body, None, (total, index))


def test_parts_out_of_order_packets_make_the_message_in_index_order():
    parts = Reassembler()
    assert parts.add(packet(12, 3, 3, b"cc"), 0.0) is None
    assert parts.add(packet(10, 3, 1, b"aa"), 0.1) is None
    whole = parts.add(packet(11, 3, 2, b"bb"), 0.2)
    assert whole is not None
    assert whole.frame.body == b"aabbcc" and whole.frame.serial == 10
    assert whole.frame.packages is None and whole.serials == [10, 11, 12]


def test_parts_serials_wrapping_past_65535_still_belong_together():
    parts = Reassembler()
    assert parts.add(packet(0xFFFF, 2, 1, b"a"), 0.0) is None
    whole = parts.add(packet(0, 2, 2, b"b"), 0.0)
    assert whole is not None and whole.serials == [0xFFFF, 0]


def test_parts_impossible_indexes_and_too_many_open_messages_are_refused():
    parts = Reassembler()
    for bad in (packet(1, 2, 0, b""), packet(1, 2, 3, b""), packet(1, 65, 1, b"")):
        with pytest.raises(jtt808.JT808Error) as exc:
            parts.add(bad, 0.0)
        assert exc.value.reason == "subpackage"
    for i in range(MAX_OPEN):
        parts.add(packet(100 * i + 1, 2, 1, b"x"), 0.0)
    with pytest.raises(jtt808.JT808Error):
        parts.add(packet(9001, 2, 1, b"x"), 0.0)


def test_parts_incomplete_message_expires_and_frees_its_place():
    parts = Reassembler()
    parts.add(packet(1, 2, 1, b"a"), 0.0)
    assert parts.expire(EXPIRE_S - 1) == 0
    assert parts.expire(EXPIRE_S + 1) == 1
    assert parts.add(packet(2, 2, 2, b"b"), EXPIRE_S + 2) is None  # its first half is gone
