"""One exception root; each kind of refusal has one HTTP status, set in one place."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller import errors
from controller.api.app import create_app
from controller.api.errors import status_of
from controller.errors import ControllerError
from controller.ledger.errors import LedgerError, WitnessRefused
from controller.storage import open_store
from ctl_helpers import SITE


@pytest.mark.parametrize(("exc", "code"), [
    (errors.UnknownDevice("x"), 404), (errors.UnknownToken("x"), 404),
    (errors.DeviceExists("x"), 409), (errors.DeviceDecommissioned("x"), 409),
    (errors.InvalidInput("x"), 422), (errors.ConfigError("x"), 422),
    (errors.StoreNotFound("x"), 503), (LedgerError("x"), 409), (WitnessRefused("x"), 409),
    (ControllerError("x"), 400),
])
def test_each_error_kind_maps_to_one_status(exc: ControllerError, code: int) -> None:
    assert status_of(exc) == code


def test_every_controller_exception_has_the_one_root() -> None:
    for name in dir(errors):
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, ControllerError), name
    assert issubclass(LedgerError, ControllerError)


def test_a_missing_store_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "pw.db"
    with pytest.raises(errors.StoreNotFound, match="portwatch init"):
        open_store(path)
    assert not path.parent.exists()  # nothing created on the way
    client = TestClient(create_app(db_path=path, site=SITE))
    r = client.get("/api/v1/devices", headers={"Authorization": "Bearer pwt_x"})
    assert r.status_code == 503 and "no store at" in r.json()["detail"]


def test_a_store_from_a_newer_portwatch_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path / "pw.db", create=True)
    store.conn.execute("PRAGMA user_version=999")
    store.close()
    with pytest.raises(errors.StoreError, match="newer than this portwatch"):
        open_store(tmp_path / "pw.db")
