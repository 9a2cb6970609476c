"""The unix HAL's clock and log stamp; runs under pytest and MicroPython."""

from edge.hal import unix


def test_hal_stamp_is_utc_iso_with_milliseconds():
    assert unix.stamp(1764072000000) == "2025-11-25T12:00:00.000Z"
    assert unix.stamp(1796062501123) == "2026-11-30T18:15:01.123Z"
    assert unix.stamp(1709251199999) == "2024-02-29T23:59:59.999Z"  # leap day, last ms


def test_hal_now_ms_is_epoch_ms_and_moves_with_the_clock_skew():
    before = unix.now_ms()
    unix.set_clock_skew(-3600000)
    try:
        assert -3600000 - 1000 < unix.now_ms() - before < -3600000 + 1000
    finally:
        unix.set_clock_skew(0)
    assert unix.now_ms() > 1704067200000  # after 2024-01-01: ms, not s, since 1970
