"""calibration_expired (once per device and certificate, from readings through the real
ingest writer) and calibration_due (a tick), on a real store."""

from __future__ import annotations

from typing import Any

import pytest

from controller import calibration, calibration_watch, registry
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.storage import Store, transaction
from ctl_helpers import SITE, signed, weighing_body

TS = 1764072000000
DAY = 86_400_000


def _certify(db: Store, cert: str, issued: int, expires: int) -> None:
    calibration.add(db, "wb-1", certificate_id=cert, accuracy_class="III", e_kg=20,
                    issued_ms=issued, expires_ms=expires, issuer="metrology office",
                    actor="test")


def _weigh(db: Store, device: dict[str, Any], seq: int, ts: int) -> None:
    commit_batch(db.conn, [check_message(signed(device, seq=seq, ts=ts, body=weighing_body(),
                                                received_ms=ts + 500),
                                         site=SITE, keys=registry.secrets_by_device(db))],
                 supervise=calibration_watch.supervise)


def _alerts(db: Store, code: str) -> list[tuple[str, str, bool]]:
    return [(str(d), str(s), c is None) for d, s, c in db.conn.execute(
        "SELECT device_id, subject, cleared_ms FROM alerts WHERE code=? ORDER BY id", [code])]


def test_calibration_expired_raised_once_per_certificate_cleared_by_renewal(
        db: Store, device: dict[str, Any]) -> None:
    _weigh(db, device, 1, TS)  # untracked device: nothing
    _certify(db, "C-1", TS - 10 * DAY, TS + DAY)
    _weigh(db, device, 2, TS + DAY - 1)
    assert _alerts(db, "calibration_expired") == []
    _weigh(db, device, 3, TS + DAY)
    assert _alerts(db, "calibration_expired") == [("wb-1", "C-1", True)]
    db.conn.execute("UPDATE alerts SET cleared_ms=1 WHERE code='calibration_expired'")
    _weigh(db, device, 4, TS + DAY + 1)  # resolved by hand: not raised again
    assert len(_alerts(db, "calibration_expired")) == 1
    db.conn.execute("UPDATE alerts SET cleared_ms=NULL WHERE code='calibration_expired'")
    _certify(db, "C-2", TS + 2 * DAY, TS + 400 * DAY)
    _weigh(db, device, 5, TS + 2 * DAY)  # under the renewal: the alert clears
    assert _alerts(db, "calibration_expired") == [("wb-1", "C-1", False)]


def test_calibration_due_tick_raises_within_days_and_clears_on_renewal(
        db: Store, device: dict[str, Any]) -> None:
    _certify(db, "C-1", TS - 300 * DAY, TS + 20 * DAY)
    with transaction(db.conn) as conn:
        assert calibration_watch.tick_due(conn, now=TS, within_days=19.9) == []
        raised = calibration_watch.tick_due(conn, now=TS, within_days=20.1)
        assert [(a.code, a.subject, a.active) for a in raised] == [
            ("calibration_due", "C-1", True)]
        assert calibration_watch.tick_due(conn, now=TS, within_days=30) == []  # already
    _certify(db, "C-2", TS, TS + 365 * DAY)
    with transaction(db.conn) as conn:
        calibration_watch.tick_due(conn, now=TS, within_days=30)
    assert _alerts(db, "calibration_due") == [("wb-1", "C-1", False)]


def test_calibration_due_days_env_bad_value_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(calibration_watch.ENV_DUE_DAYS, "soon")
    with pytest.raises(ValueError, match="0-3660 days"):
        calibration_watch.due_days_from_env()
    monkeypatch.setenv(calibration_watch.ENV_DUE_DAYS, "7")
    assert calibration_watch.due_days_from_env() == 7


def test_calibration_due_tick_once_on_the_store_file(db_path: Any, db: Store,
                                                     device: dict[str, Any]) -> None:
    from controller.storage import now_ms

    _certify(db, "C-1", now_ms() - DAY, now_ms() + 5 * DAY)
    assert calibration_watch.tick_once(db_path, 30) == 1  # raised
    assert calibration_watch.tick_once(db_path, 30) == 0  # already raised: nothing new
    assert _alerts(db, "calibration_due") == [("wb-1", "C-1", True)]
