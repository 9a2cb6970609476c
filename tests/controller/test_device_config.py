"""Remote configuration and restart on the controller's side (controller/device_config.py):
the allow-list checked before a command is stored, the command and its ledger decision,
the device's answers turned into its applied configuration; the CLI's NAME=NUMBER."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller import commands, device_config, registry
from controller.errors import InvalidInput
from controller.storage import Store
from controller.storage import commands as rows
from protocols import bodies

T0 = 1_764_072_000_000


def _wb(db: Store) -> dict[str, Any]:
    return registry.provision(db, device_id="wb-cfg", site="dl", kind="weighbridge",
                              driver={"type": "weighbridge", "map": "portwatch-sim",
                                      "host": "127.0.0.1", "port": 5020})


def _decisions(db: Store) -> list[dict[str, Any]]:
    """The ``command`` ledger decisions' bodies, oldest first."""
    from controller.ledger import entries

    out = []
    for (data,) in db.conn.execute("SELECT entry FROM ledger_entries WHERE subkind='command' "
                                   "ORDER BY idx"):
        e = entries.decode(bytes(data))
        assert isinstance(e, entries.Decision)
        out.append(e.body)
    return out


def _ack(db: Store, row: dict[str, Any], body: dict[str, Any]) -> None:
    with db.transaction() as conn:
        assert bodies.check("cmdack", "cmdack", {"id": row["id"], **body}) is None
        assert commands.take_ack(conn, row["device_id"], {"id": row["id"], **body}, T0) is None


def test_config_is_checked_against_the_driver_allow_list_before_it_is_stored(db: Store) -> None:
    _wb(db)
    for bad in ({"health_interval_s": 1}, {"driver.moving_s": 5}, {"secret_hex": 1},
                {"health_interval_s": True}, {}):
        with pytest.raises(InvalidInput):
            device_config.issue_config(db, "wb-cfg", bad, actor="t", now=T0)
    assert rows.list_commands(db.conn, device_id="wb-cfg") == []
    row = device_config.issue_config(db, "wb-cfg", {"driver.poll_ms": 100,
                                                    "health_interval_s": 5}, actor="t", now=T0)
    body = json.loads(row["body_json"])
    assert row["kind"] == "config" and row["state"] == "pending"
    assert body["driver"] == "weighbridge" and body["set"]["driver.poll_ms"] == 100
    assert bodies.check_command("config", body) is None


def test_config_and_restart_answers_make_the_applied_view(db: Store) -> None:
    _wb(db)
    a = device_config.issue_config(db, "wb-cfg", {"health_interval_s": 5}, actor="t", now=T0)
    b = device_config.issue_config(db, "wb-cfg", {"driver.stable_s": 0.5}, actor="t",
                                   now=T0 + 1)
    v = device_config.view(db, "wb-cfg")
    assert v["applied"] == {} and [p["id"] for p in v["pending"]] == [b["id"], a["id"]]
    _ack(db, a, {"result": "applied", "detail": "", "values": {"health_interval_s": 5},
                 "restart": False})
    _ack(db, b, {"result": "applied", "detail": "restart needed for driver.stable_s",
                 "values": {"driver.stable_s": 0.5}, "restart": True})
    v = device_config.view(db, "wb-cfg")
    assert v["applied"] == {"health_interval_s": 5, "driver.stable_s": 0.5}
    assert v["restart_needed"] is True and v["pending"] == []
    assert rows.get(db.conn, a["id"])["state"] == "acked"  # type: ignore[index]
    r = device_config.issue_restart(db, "wb-cfg", reason="stable_s", actor="t", now=T0 + 2)
    _ack(db, r, {"result": "restarting", "detail": "after this answer is sent"})
    assert device_config.view(db, "wb-cfg")["restart_needed"] is False
    kinds = [d["kind"] for d in _decisions(db)]
    assert kinds.count("config") == 2 and kinds.count("restart") == 1, kinds


def test_a_refused_config_changes_nothing_in_the_view(db: Store) -> None:
    _wb(db)
    a = device_config.issue_config(db, "wb-cfg", {"health_interval_s": 5}, actor="t", now=T0)
    _ack(db, a, {"result": "refused", "detail": "health_interval_s must be between 2 and 3600"})
    v = device_config.view(db, "wb-cfg")
    assert v["applied"] == {} and v["recent"][0]["state"] == "failed"


def test_assignments_parse_numbers_and_refuse_the_rest() -> None:
    assert device_config.parse_assignments(["health_interval_s=5", "driver.stable_s=0.5"]) == \
        {"health_interval_s": 5, "driver.stable_s": 0.5}
    for bad in ("health_interval_s", "x=abc", "=5", "a=1=2"):
        with pytest.raises(InvalidInput):
            device_config.parse_assignments([bad])
