"""IngestService's bounded queue: a full queue drops, counts and logs instead of growing.

No broker: offer() is what the MQTT reader calls for each message, so it is driven directly
against a real store in a temp dir.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.ingest.service import BrokerSettings, IngestService
from controller.ingest.verify import Received
from controller.storage import open_store

SITE = "test-site"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[IngestService]:
    db_path = tmp_path / "pw.db"
    open_store(db_path, create=True).close()
    svc = IngestService(db_path=db_path, site=SITE, broker=BrokerSettings(), queue_max=3)
    try:
        yield svc
    finally:
        svc.close()


def _msg(i: int) -> Received:
    return Received(f"pw/v1/{SITE}/wb-1/evt", f"message {i}".encode(), 1_764_072_000_000 + i)


def _queue_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "portwatch.ingest" and r.levelno == logging.WARNING
            and "ingest queue full" in r.getMessage()]


def test_full_queue_accepts_three_drops_two_counts_and_warns(
        service: IngestService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="portwatch.ingest")
    accepted = [service.offer(_msg(i)) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    s = service.stats
    assert (s.queue_max, s.queue_depth, s.queue_peak, s.overflow_dropped) == (3, 3, 3, 2)
    warnings = _queue_warnings(caplog)
    assert warnings, "a dropped message must be logged"
    text = warnings[-1].getMessage()
    assert "(3 messages)" in text and "dropped 2 so far" in text
    assert f"pw/v1/{SITE}/wb-1/evt" in text  # where the latest dropped one came from
    # the three kept are the first three, in order: nothing was overwritten
    kept = [service._queue.get_nowait() for _ in range(3)]
    assert [m.payload for m in kept] == [b"message 0", b"message 1", b"message 2"]


def test_drops_are_counted_each_but_logged_at_powers_of_two(
        service: IngestService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="portwatch.ingest")
    for i in range(3 + 100):
        service.offer(_msg(i))
    assert service.stats.overflow_dropped == 100
    logged = [r.getMessage() for r in _queue_warnings(caplog)]
    assert [f"dropped {n} so far" in m for n, m in zip((1, 2, 4, 8, 16, 32, 64), logged,
                                                          strict=True)] == [True] * 7


def test_room_made_by_the_writer_is_used_again(service: IngestService) -> None:
    for i in range(4):
        service.offer(_msg(i))
    service._queue.get_nowait()  # the batcher took one
    assert service.offer(_msg(9)) is True
    assert service.stats.overflow_dropped == 1 and service.stats.queue_peak == 3


def test_ingest_a_failing_batch_is_logged_counted_and_ingest_goes_on(
        service: IngestService, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from controller.ingest import service as service_mod

    calls = 0

    async def session() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a rule's bug")
        raise asyncio.CancelledError  # the second round: the test is over

    monkeypatch.setattr(service, "_session", session)
    monkeypatch.setattr(service_mod, "RECONNECT_MIN_S", 0.0)
    with caplog.at_level(logging.ERROR, logger="portwatch.ingest"), \
            pytest.raises(asyncio.CancelledError):
        asyncio.run(service._run())
    assert calls == 2  # it went on after the failure
    assert service.stats.batch_failures == 1 and "a rule's bug" in service.stats.last_error
    assert any("a batch failed" in r.getMessage() for r in caplog.records)
