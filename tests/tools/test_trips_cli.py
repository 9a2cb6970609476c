"""`portwatch order` and `portwatch trip` on a real store: create (ISO-8601 and ms times),
list, show, cancel, a clear error for an order that does not fit the site, and a trip's
show and track after a departure; every command's help has an example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller import registry, trips
from controller.site import set_site
from controller.storage import open_store
from tools.cli import app

runner = CliRunner()
T0 = 1_764_072_000_000


@pytest.fixture
def db(tmp_path: Path) -> Path:
    set_site(None)
    path = tmp_path / "pw.db"
    with open_store(path, create=True) as store:
        registry.provision(store, device_id="gps-1", site="test-site", kind="gps", driver={})
    return path


def _create(db: Path, *extra: str) -> object:
    return runner.invoke(app, ["order", "create", "--lot", "LOT-7", "--plate", "AB1234",
                               "--tracker", "gps-1", "--destination", "dest-feed-mill",
                               "--corridor", "c-feed-mill", "--window-start",
                               "2025-11-25T11:00:00Z", "--window-end", str(T0 + 3_600_000),
                               "--expected-net-kg", "30000", "--db", str(db), *extra])


def test_trips_cli_order_create_list_show_cancel(db: Path) -> None:
    r = _create(db)
    assert r.exit_code == 0, r.output
    [listed] = json.loads(runner.invoke(app, ["order", "list", "--json", "--db", str(db)]).output)
    assert listed["window_start_ms"] == T0 - 3_600_000 and listed["status"] == "open"
    shown = runner.invoke(app, ["order", "show", listed["order_id"], "--db", str(db)])
    assert json.loads(shown.output)["created_by"].startswith("cli:")
    r = runner.invoke(app, ["order", "cancel", listed["order_id"], "-m", "no truck",
                            "--db", str(db)])
    assert r.exit_code == 0 and "cancelled" in r.output
    r = runner.invoke(app, ["order", "cancel", listed["order_id"], "-m", "again",
                            "--db", str(db)])
    assert r.exit_code == 1 and "only an open or departed" in r.output


def test_trips_cli_order_that_does_not_fit_the_site_exits_1_saying_why(db: Path) -> None:
    r = _create(db, "--corridor", "c-grain-depot")
    assert r.exit_code == 1 and "does not lead to dest-feed-mill" in r.output
    r = runner.invoke(app, ["order", "create", "--lot", "L", "--plate", "P", "--tracker",
                            "gps-1", "--destination", "dest-feed-mill", "--corridor",
                            "c-feed-mill", "--window-start", "2025-11-25 11:00",
                            "--window-end", "1", "--expected-net-kg", "1", "--db", str(db)])
    assert r.exit_code == 1 and "has no zone" in r.output


def test_trips_cli_trip_list_show_and_track(db: Path) -> None:
    assert _create(db).exit_code == 0
    with open_store(db) as store:
        [order] = json.loads(runner.invoke(app, ["order", "list", "--json", "--db",
                                                 str(db)]).output)
        with store.transaction() as conn:
            trips.depart(conn, order["order_id"], gate_device="wb-out", weighing_seq=3,
                         net_kg=30100, time_ms=T0)
    r = runner.invoke(app, ["trip", "list", "--db", str(db)], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "in_transit" in r.output
    shown = json.loads(runner.invoke(app, ["trip", "show", order["order_id"], "--db",
                                           str(db)]).output)
    assert [e["event"] for e in shown["events"]] == ["departed"]
    track = runner.invoke(app, ["trip", "track", order["order_id"], "--json", "--db", str(db)])
    assert track.exit_code == 0 and json.loads(track.output) == []
    r = runner.invoke(app, ["trip", "show", "o-none", "--db", str(db)])
    assert r.exit_code == 1 and "portwatch trip list" in r.output


@pytest.mark.parametrize("command", [["order", "create"], ["order", "list"], ["order", "show"],
                                     ["order", "cancel"], ["trip", "list"], ["trip", "show"],
                                     ["trip", "track"]])
def test_trips_cli_help_has_an_example(command: list[str]) -> None:
    r = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "Example: portwatch " + " ".join(command) in r.output
