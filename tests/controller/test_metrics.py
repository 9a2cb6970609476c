"""GET /metrics: Prometheus metrics from the running ingest and the store.

Real parts: a SQLite store in a temp dir, the IngestService's own queue and batcher (what
the MQTT reader feeds: ``offer``), the FastAPI app the controller serves, and the scrape
parsed by prometheus_client's own parser. The figures are checked against the store and
the API, which compute them their own way.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from controller import auth, registry
from controller.api.app import create_app
from controller.ingest.service import BrokerSettings, IngestService
from controller.ingest.verify import Received
from controller.ledger import checkpoint
from controller.ledger.witness import Witness
from controller.metrics import figures
from controller.storage import ledger_log, now_ms, open_store
from ctl_helpers import SITE, signed

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "docs" / "grafana" / "portwatch.json"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _feed(rig: dict[str, Any], msgs: list[Received], timeout_s: float = 20.0) -> None:
    """Offer ``msgs`` as the MQTT reader does and run the batcher until all are committed
    (in the rig's one event loop: the ingest queue belongs to it)."""
    service: IngestService = rig["service"]

    async def run() -> None:
        batcher = asyncio.create_task(service._batches())
        s = service.stats
        # every message accounted for after its batch's commit (stats.received moves before)
        done = lambda: s.stored + s.telemetry + sum(s.rejected.values())  # noqa: E731
        target = done() + len(msgs)
        for m in msgs:
            assert service.offer(m)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while done() < target:  # a condition, with a deadline
                if batcher.done():
                    batcher.result()  # raise what stopped it
                assert loop.time() < deadline, f"ingest processed {done()} of {target}"
                await asyncio.sleep(0.01)
        finally:
            batcher.cancel()
            await asyncio.gather(batcher, return_exceptions=True)

    rig["loop"].run_until_complete(run())


def _scrape(client: TestClient, token: str | None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A store with two devices and one token per role, its ingest and its app."""
    db_path = tmp_path / "pw.db"
    with open_store(db_path, create=True) as db:
        wb = registry.provision(db, device_id="wb-1", site=SITE, kind="weighbridge")
        registry.provision(db, device_id="wb-2", site=SITE, kind="weighbridge")  # never seen
        tokens = {role: auth.create_token(db, name=role, role=role) for role in auth.ROLES}
    service = IngestService(db_path=db_path, site=SITE, broker=BrokerSettings())
    app = create_app(db_path=db_path, site=SITE, ingest_stats=service.stats,
                     ingest_metrics=service.metrics)
    loop = asyncio.new_event_loop()
    try:
        yield {"db_path": db_path, "wb": wb, "tokens": tokens, "service": service,
               "client": TestClient(app), "app": app, "loop": loop}
    finally:
        loop.close()
        service.close()


def _messages(wb: dict[str, Any]) -> list[Received]:
    now = now_ms()  # received now: the device is online, not stale
    return [
        signed(wb, seq=1, received_ms=now),  # a weighing
        signed(wb, seq=2, kind="alarm", body={"alarm": "overload", "state": "raised",
                                              "detail": {"kg": 61000}},
               received_ms=now),  # raises a critical alert
        signed(wb, seq=1, channel="tele", kind="health", received_ms=now,
               body={"fw": "0.1.0", "uptime_s": 5, "mem_free": 40000, "backlog": 0}),
        signed(wb, seq=1, received_ms=now),  # the same bytes again: duplicate
        signed(wb, seq=3, secret=b"\x00" * 32, received_ms=now),  # not its key
    ]


def test_metrics_move_with_ingest_and_match_the_store_and_the_api(
        rig: dict[str, Any]) -> None:
    client, token = rig["client"], rig["tokens"]["operator"]
    before = _scrape(client, token)
    assert _value(before, "portwatch_ingest_received_messages_total") == 0
    assert _value(before, "portwatch_devices", state="never") == 2

    msgs = _messages(rig["wb"])
    _feed(rig, msgs)
    after = _scrape(client, token)

    # rates: every message received, stored ones by kind, bytes
    assert _value(after, "portwatch_ingest_received_messages_total") == len(msgs)
    assert _value(after, "portwatch_ingest_received_bytes_total") == sum(
        len(m.payload) for m in msgs)
    for kind in ("weighing", "alarm", "health"):
        assert _value(after, "portwatch_ingest_stored_messages_total", kind=kind) == 1, kind
    # rejections by reason: the bad message and the duplicate
    assert _value(after, "portwatch_ingest_rejected_messages_total",
                  reason="bad_signature") == 1
    assert _value(after, "portwatch_ingest_rejected_messages_total", reason="duplicate") == 1
    # latencies: each batch observed once; each supervision step once per batch with facts
    batches = _value(after, "portwatch_ingest_batches_total")
    assert batches >= 1
    assert _value(after, "portwatch_ingest_commit_duration_seconds_count") == batches
    assert _value(after, "portwatch_ingest_commit_duration_seconds_sum") > 0
    assert _value(after, "portwatch_ingest_commit_duration_seconds_bucket", le="+Inf") == batches
    assert _value(after, "portwatch_supervision_duration_seconds_count", step="rules") >= 1
    assert _value(after, "portwatch_ingest_queue_depth_messages") == 0
    assert _value(after, "portwatch_ingest_queue_capacity_messages") > 0

    # devices by state, as the API shows them
    headers = {"Authorization": f"Bearer {token}"}
    by_api: dict[str, int] = {}
    for d in client.get("/api/v1/devices", headers=headers).json():
        by_api[d["status"]] = by_api.get(d["status"], 0) + 1
    assert by_api == {"online": 1, "never": 1}
    for state in figures.DEVICE_STATES:
        assert _value(after, "portwatch_devices", state=state) == by_api.get(state, 0), state

    # active alerts (the overload alarm's, critical, among them), as GET /api/v1/alerts
    # lists them
    def by_api_alerts() -> dict[tuple[str, str], float]:
        listed: dict[tuple[str, str], float] = {}
        for a in client.get("/api/v1/alerts", headers=headers).json():
            listed[(a["severity"], a["state"])] = listed.get((a["severity"], a["state"]), 0) + 1
        return listed

    def by_metrics(samples: Samples) -> dict[tuple[str, str], float]:
        return {(dict(k[1])["severity"], dict(k[1])["state"]): v for k, v in samples.items()
                if k[0] == "portwatch_alerts_active"}

    assert by_metrics(after) == by_api_alerts()
    assert by_metrics(after)[("critical", "open")] == 1
    overload = next(a for a in client.get("/api/v1/alerts", headers=headers).json()
                    if a["code"] == "overload")
    ack = client.post(f"/api/v1/alerts/{overload['id']}/ack", headers=headers,
                      json={"comment": "on it"})
    assert ack.status_code == 200, ack.text
    acked = by_metrics(_scrape(client, token))
    assert acked == by_api_alerts() and acked[("critical", "acknowledged")] == 1

    # the ledger: its size, and no checkpoint series before the first checkpoint
    with open_store(rig["db_path"]) as db:
        size = ledger_log.size(db.conn)
    now = _scrape(client, token)  # the acknowledgement above is an entry too
    assert _value(now, "portwatch_ledger_entries") == size > len(msgs)
    assert not any(k[0].startswith("portwatch_ledger_checkpoint") for k in now)


def _checkpoint(db_path: Path, signed_ms: int, witness_dir: Path | None = None) -> int:
    """Sign a checkpoint at ``signed_ms``, cosigned by a new witness when given a directory;
    return its size."""
    with open_store(db_path) as db:
        signer = checkpoint.log_signer(db_path, checkpoint.origin_for(SITE))
        cp = checkpoint.create(db.conn, signer, signed_ms)
        if witness_dir is not None:
            w = Witness.init(witness_dir, "customs.example/w1", signer.verifier)
            checkpoint.add_cosignature(db.conn, cp.id, w.cosign(cp.note, [], 1_700_000_000),
                                       w.verifier, signed_ms)
        return cp.size


def test_checkpoint_ages_and_entries_past_it(rig: dict[str, Any], tmp_path: Path) -> None:
    _feed(rig, _messages(rig["wb"])[:1])
    size = _checkpoint(rig["db_path"], 1_000)  # signed long ago (1970)
    samples = _scrape(rig["client"], rig["tokens"]["auditor"])
    assert _value(samples, "portwatch_ledger_checkpoint_age_seconds") > 50 * 365 * 86400
    assert _value(samples, "portwatch_ledger_uncheckpointed_entries") == \
        _value(samples, "portwatch_ledger_entries") - size == 0
    assert ("portwatch_ledger_cosigned_checkpoint_age_seconds", ()) not in samples

    _feed(rig, _messages(rig["wb"])[1:2])  # the ledger grows past it
    samples = _scrape(rig["client"], rig["tokens"]["auditor"])
    assert _value(samples, "portwatch_ledger_uncheckpointed_entries") >= 1
    _checkpoint(rig["db_path"], now_ms() - 30_000, tmp_path / "w1")  # 30 s ago, cosigned
    samples = _scrape(rig["client"], rig["tokens"]["auditor"])
    for name in ("portwatch_ledger_checkpoint_age_seconds",
                 "portwatch_ledger_cosigned_checkpoint_age_seconds"):
        assert 30 <= _value(samples, name) < 300, name
    assert _value(samples, "portwatch_ledger_uncheckpointed_entries") == 0


def test_metrics_need_a_token_of_any_role_unless_served_openly(rig: dict[str, Any]) -> None:
    client = rig["client"]
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics",
                      headers={"Authorization": "Bearer pwt_not-a-token"}).status_code == 401
    for role, token in rig["tokens"].items():
        assert "portwatch_devices" in client.get(
            "/metrics", headers={"Authorization": f"Bearer {token}"}).text, role
    rig["app"].state.metrics_public = True  # `portwatch controller --metrics-public`
    assert _value(_scrape(client, None), "portwatch_devices", state="never") == 2
    # /api/ is not opened with it
    assert client.get("/api/v1/devices").status_code == 401


def test_metrics_of_a_missing_store_are_503_not_a_500(tmp_path: Path) -> None:
    app = create_app(db_path=tmp_path / "gone.db", site=SITE, metrics_public=True)
    r = TestClient(app, raise_server_exceptions=False).get("/metrics")
    assert r.status_code == 503 and "portwatch init" in r.json()["detail"]


def test_devices_by_state_counts_stale_and_decommissioned() -> None:
    now = 10_000_000
    rows = [{"status": "online", "last_seen_ms": now - 1000},
            {"status": "online", "last_seen_ms": now - 120_000},  # silent 2 min: stale
            {"status": "offline", "last_seen_ms": now},
            {"status": "online", "last_seen_ms": now, "decommissioned_ms": 5}]
    assert figures.devices_by_state(rows, now) == {
        "online": 1, "offline": 1, "stale": 1, "never": 0, "decommissioned": 1}
    assert figures.age_s(None, now) is None and figures.age_s(now + 5, now) == 0.0


# -- the sample Grafana dashboard ------------------------------------------------------

METRIC = re.compile(r"\b(portwatch_[a-z0-9_]+|process_[a-z0-9_]+)\b")


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_grafana_dashboard_is_importable_and_asks_only_for_exported_metrics(
        rig: dict[str, Any], tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    # what Grafana's import needs: a title, a schema version, panels each with an id, a
    # type, a position and Prometheus targets with a refId and an expr
    assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for p in dashboard["panels"]:
        assert p["type"] in {"stat", "timeseries", "gauge", "table"}, p["title"]
        assert set(p["gridPos"]) == {"x", "y", "w", "h"}, p["title"]
        assert p["targets"] and all(t["refId"] and t["expr"] for t in p["targets"]), p["title"]

    _feed(rig, _messages(rig["wb"]))
    _checkpoint(rig["db_path"], now_ms(), tmp_path / "w1")  # the checkpoint series need one
    exported = {name for name, _ in _scrape(rig["client"], rig["tokens"]["admin"])}
    asked = {m for e in _exprs(dashboard) for m in METRIC.findall(e)}
    assert len(asked) >= 15
    assert asked <= exported, f"the dashboard asks for metrics never exported: {asked - exported}"


def test_the_dashboard_check_can_fail() -> None:
    assert METRIC.findall('rate(portwatch_no_such_total{job="$job"}[5m])') == [
        "portwatch_no_such_total"]
