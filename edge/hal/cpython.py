"""MicroPython's tick and sleep functions for CPython, so edge code runs in both."""

import asyncio
import time


def ticks_ms():
    return time.monotonic_ns() // 1000000


def ticks_diff(a, b):
    return a - b


def ticks_add(a, b):
    return a + b


async def sleep_ms(ms):
    await asyncio.sleep(ms / 1000)
