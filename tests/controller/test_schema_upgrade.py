"""A store that reached schema 9 while its steps were still landing gets every one of them."""

from __future__ import annotations

from pathlib import Path

from controller.storage import open_store
from controller.storage.schema import SCHEMA_VERSION


def test_schema_9_store_missing_later_steps_gets_them_at_10(tmp_path: Path) -> None:
    path = tmp_path / "pw.db"
    store = open_store(path, create=True)
    # as a store migrated to 9 before the lots, samples, rail and calibration steps landed
    for table in ("lot_events", "lots", "calibrations", "draft_surveys", "trains",
                  "train_cars", "blends", "blend_inputs"):
        store.conn.execute(f"DROP TABLE IF EXISTS {table}")
    store.conn.execute("PRAGMA user_version=9")
    store.conn.commit()
    store.close()
    again = open_store(path)
    names = set(again.db.table_names())
    assert {"lots", "lot_events", "calibrations", "draft_surveys", "trains",
            "blends"} <= names
    assert again.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
