"""Fixtures for controller unit tests: a real SQLite store in a temp dir, a provisioned device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller import registry
from controller.storage import Store, open_store

SITE = "test-site"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pw.db"


@pytest.fixture
def db(db_path: Path) -> Store:
    return open_store(db_path, create=True)


@pytest.fixture
def device(db: Store) -> dict[str, Any]:
    return registry.provision(db, device_id="wb-1", site=SITE, kind="weighbridge",
                              driver={})
