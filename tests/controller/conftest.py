"""Fixtures for controller unit tests: a real SQLite store in a temp dir, a provisioned device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from controller import registry, store

SITE = "test-site"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pw.db"


@pytest.fixture
def db(db_path: Path) -> sqlite_utils.Database:
    return store.connect(db_path)


@pytest.fixture
def device(db: sqlite_utils.Database) -> dict[str, Any]:
    return registry.provision(db, device_id="wb-1", site=SITE, kind="weighbridge",
                              driver={"map": "portwatch-sim"})
