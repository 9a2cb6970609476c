"""Ledger fixtures: a real store and its log key; helpers in ledger_helpers.py."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from controller.ledger import checkpoint, note
from controller.storage import Store

sys.path.insert(0, str(Path(__file__).parent))  # for `import ledger_helpers`

from ledger_helpers import ORIGIN


@pytest.fixture
def conn(db: Store) -> sqlite3.Connection:
    return db.conn


@pytest.fixture
def signer(db_path: Path) -> note.Signer:
    return checkpoint.log_signer(db_path, ORIGIN)
