"""Projections: registered once, each writing exactly the columns of its table."""

from __future__ import annotations

from typing import Any

from controller.facts import Fact
from controller.projections import PROJECTIONS, project
from controller.storage import Store
from controller.storage.custody import PROJECTED_COLUMNS
from protocols import bodies

T0 = 1_764_072_000_000
SAMPLES: dict[str, dict[str, Any]] = {
    "weighing": {"plate": "辽B12345", "gross_kg": 45240, "tare_kg": 15000, "net_kg": 30240,
                 "division_kg": 20, "stable_ms": 3000, "arrived_ts": T0, "model": "sim"},
    "alarm": {"alarm": "overload", "state": "raised", "detail": {"gross_kg": 160000}},
    "gap": {"reason": "unreadable"},
    "refused": {"count": 3, "kinds": {"weighing": 2, "alarm": 1}, "since_ts": T0 - 60_000,
                "until_ts": T0 - 1000, "reason": "outbox_full"},
    "positions": {"fixes": [[T0, 38_900_000, 121_600_000, 400, 90, 9, 8]], "ign": True,
                  "ext_power": True, "tamper": False, "src": "nmea"},
    "sample": {"sample_id": "S-1", "sampled_ts": T0, "moisture_pm": 135, "basis": "wet",
               "protein_pm": 350, "impurity_pm": 9, "test_weight_g_per_l": 720,
               "calibration_id": "CAL-1", "outlier": False,
               "findings": [["Avena sterilis", 2, 1000]]},
}

# a passage without tags makes one row (role none); with tags, one per tag read
SAMPLES["passage"] = {"direction": "out", "started_ts": T0, "ended_ts": T0 + 60_000,
                      "speed_dkmh": 150, "axles": 0, "cars": []}


def test_every_custody_event_kind_has_one_projection() -> None:
    assert set(PROJECTIONS) == set(bodies.KINDS["evt"]) == set(SAMPLES)


def test_each_projection_writes_its_tables_columns(db: Store) -> None:
    for kind, body in SAMPLES.items():
        p = PROJECTIONS[kind]
        [row] = p.rows(Fact("wb-1", 3, 1, kind, T0, T0 + 5, body))
        table_columns = set(db.db[p.table].columns_dict)
        assert set(row) == set(PROJECTED_COLUMNS[p.table]), kind
        # every column the projection fills exists in the table (ids and defaults aside)
        assert set(row) <= table_columns, kind


def test_project_gives_rows_per_table_and_nothing_for_unknown_kinds() -> None:
    fact = Fact("wb-1", 7, 2, "gap", T0, T0 + 5, {"reason": "crc"})
    assert project(fact) == [("lost_ranges", {"device_id": "wb-1", "first_seq": 7,
                                              "last_seq": 7, "reason": "crc",
                                              "declared_by": "wb-1", "declared_ms": T0 + 5})]
    assert project(Fact("wb-1", 8, 2, "telemetry_blip", T0, T0, {})) == []
