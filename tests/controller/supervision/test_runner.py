"""The supervision runner against a real SQLite store: state, alerts and ledger in the
batch's transaction; a failing rule isolated."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from controller.facts import Fact
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.ledger import entries
from controller.storage import Store, ledger_log, transaction
from controller.supervision.findings import Alert
from controller.supervision.rules import RULES, Rule
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed


def _alarm(device: dict[str, Any], seq: int, code: str, state: str) -> Any:
    return signed(device, seq=seq, kind="alarm", body={"alarm": code, "state": state},
                  received_ms=1764072000500 + seq)


def _commit(db: Store, runner: Runner, *msgs: Any) -> Any:
    keys = {d: {k: v for k, v in ks.items()} for d, ks in _ring(db).items()}
    return commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs],
                        supervise=runner)


def _ring(db: Store) -> Mapping[str, Any]:
    from controller import registry
    return registry.secrets_by_device(db)


def _decisions(db: Store, kind: str) -> list[dict[str, Any]]:
    out = []
    for _, data, _h in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == kind:
            out.append(e.body)
    return out


def test_runner_stores_alerts_state_and_ledger_decisions(db: Store,
                                                         device: dict[str, Any]) -> None:
    runner = Runner()
    result = _commit(db, runner, _alarm(device, 1, "overload", "raised"),
                     signed(device, seq=2))
    assert result.findings == 1
    [alert] = list(db.db["alerts"].rows)
    assert (alert["code"], alert["rule"], alert["severity"], alert["cleared_ms"]) == (
        "overload", "device_alarms", "critical", None)
    assert alert["raised_seq"] == 1
    states = {r["rule"]: json.loads(r["state_json"]) for r in db.db["rule_state"].rows}
    assert states["device_alarms"] == {"active": {"overload": 1}}
    assert [w["seq"] for w in states["one_ticket_per_visit"]["recent"]] == [2]
    _commit(db, runner, _alarm(device, 3, "overload", "cleared"))
    [alert] = list(db.db["alerts"].rows)
    assert alert["cleared_seq"] == 3 and alert["cleared_by"] == "rule:device_alarms"
    assert [d["action"] for d in _decisions(db, "alert")] == ["raise", "clear"]
    assert runner.stats.findings == 2 and runner.stats.facts == 3


def test_runner_state_survives_a_new_runner(db: Store, device: dict[str, Any]) -> None:
    _commit(db, Runner(), _alarm(device, 1, "setup_mode", "raised"))
    # a restarted controller: a fresh runner reads the rule's state from the store
    assert _commit(db, Runner(), _alarm(device, 2, "setup_mode", "raised")).findings == 0
    assert _commit(db, Runner(), _alarm(device, 3, "setup_mode", "cleared")).findings == 1


def test_runner_duplicate_event_is_not_supervised_twice(db: Store,
                                                        device: dict[str, Any]) -> None:
    msg = _alarm(device, 1, "left_unweighed", "raised")
    _commit(db, Runner(), msg)
    _commit(db, Runner(), msg)  # QoS 1 redelivery: a duplicate, not a new fact
    assert db.db["alerts"].count == 1


def _boom(state: dict[str, Any], fact: Fact,
          config: Mapping[str, Any]) -> tuple[dict[str, Any], list[Alert]]:
    raise KeyError("a bug in a rule")


def test_runner_failing_rule_is_logged_and_the_others_go_on(
        db: Store, device: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    broken = Rule(name="broken", kinds=frozenset({"alarm", "weighing"}), defaults={},
                  scope=lambda f: f.device_id, update=_boom)
    runner = Runner(rules=(broken, *RULES))
    with caplog.at_level(logging.ERROR, "portwatch.supervision"):
        result = _commit(db, runner, _alarm(device, 1, "overload", "raised"),
                         signed(device, seq=2))
    assert result.stored == 2 and result.findings == 1  # the facts and the other rule's alert
    assert runner.stats.failures == {"broken": 2}
    assert "KeyError" in runner.stats.last_failure
    assert "rule broken failed on wb-1 seq 1" in caplog.text
    assert db.db["alerts"].count == 1


def test_runner_rolls_back_with_the_batch(db: Store, device: dict[str, Any]) -> None:
    class Crash(Exception):
        pass

    def crash_after(conn: Any, facts: Any) -> list[Alert]:
        Runner()(conn, facts)
        raise Crash  # e.g. the process dies between supervision and commit

    msg = _alarm(device, 1, "overload", "raised")
    keys = _ring(db)
    with pytest.raises(Crash):
        commit_batch(db.conn, [check_message(msg, site=SITE, keys=keys)], supervise=crash_after)
    assert (db.db["alerts"].count, db.db["rule_state"].count, db.db["messages"].count) == (0, 0, 0)
    assert _decisions(db, "alert") == []


def test_runner_refuses_to_run_outside_a_transaction(db: Store) -> None:
    with pytest.raises(RuntimeError, match="inside the batch's transaction"):
        Runner()(db.conn, [])
    with transaction(db.conn) as conn:
        assert Runner()(conn, []) == []


def test_runner_rejects_config_for_unknown_rules() -> None:
    with pytest.raises(ValueError, match="unknown rules"):
        Runner(config={"no_such_rule": {}})
    runner = Runner(config={"device_alarms": {"critical": ("zero_drift",)}})
    assert runner.config["device_alarms"]["critical"] == ("zero_drift",)
