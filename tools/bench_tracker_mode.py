"""``portwatch bench-trackers``: positions at port scale through the real controller ingest.

One run starts its own Mosquitto and measures, one phase after the other on that broker:

1. the **raw baseline** (``tools.bench_pipelines.RawBaseline``): a bare paho subscriber
   inserting the same tracker messages in batches, the machine's ceiling;
2. the **ingest, saturating**: every tracker's ``messages`` positions batches as fast as the
   connections' windows allow, through ``IngestService`` (HMAC, dedupe, the positions
   projection, the supervision rules, the ledger), until the controller's signed ack covers
   every seq: sustained positions/s; then the store's cost per positions message;
3. the **ingest, paced** at the trackers' own rate times ``speed`` (a batch of
   ``fixes_per_msg`` fixes every ``fixes_per_msg * fix_every_s`` s each), with every
   ``alarm_every``-th tracker raising ``ext_power_lost`` mid-stream: the alarm's alert is
   committed in the same transaction as the alarm (the supervision runner runs in the
   batch), so its ack latency is the latency from the tracker to a committed alert.

The emulated trackers (``tools.bench_trackers``) run in child processes. The ledger's growth
per truck-day is (ledger bytes per positions message) x (messages per truck-day: 86,400 s /
(fixes_per_msg x fix_every_s)).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from controller import registry
from controller.storage import growth, open_store
from tools.bench import BrokerMonitor, _proc_cpu_s, machine_facts
from tools.bench_pipelines import (
    BASELINE,
    BenchError,
    IngestPipeline,
    PhaseContext,
    Pipeline,
    PipelineFactory,
)
from tools.bench_trackers import merge
from tools.broker import BrokerError, MosquittoProcess
from tools.procs import free_port, stop_process

REPO = Path(__file__).resolve().parent.parent
DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """What to run. The defaults take about a minute on 2 cores."""

    trackers: int = 2_000
    messages: int = 10  # positions messages per tracker in the saturating phase
    fixes_per_msg: int = 10
    fix_every_s: float = 10.0
    paced_s: float = 20.0  # length of the paced phase
    speed: float = 10.0  # the paced phase runs the trackers' clocks this much faster
    alarm_every: int = 20  # every n-th tracker raises an alarm in the paced phase
    procs: int = 2  # child processes the trackers are spread over
    clients: int = 4  # MQTT connections per child process
    window: int = 64  # QoS 1 publishes in flight per connection
    batch_max: int = 500
    batch_wait_s: float = 0.02
    stall_s: float = 60.0
    sys_wait_s: float = 11.0
    site: str = "bench"

    def check(self) -> None:
        if min(self.trackers, self.messages, self.fixes_per_msg, self.procs, self.clients,
               self.window) < 1 or self.fix_every_s <= 0 or self.speed <= 0:
            raise BenchError("trackers, messages, fixes per message, processes, clients and "
                             "window must be >= 1; fix interval and speed > 0")
        if self.fixes_per_msg > 64:
            raise BenchError("a positions message holds at most 64 fixes")

    @property
    def real_rate(self) -> float:
        """Positions messages/s the fleet sends at its own pace."""
        return self.trackers / (self.fixes_per_msg * self.fix_every_s)


def provision_trackers(db_path: Path, site: str, prefix: str, n: int) -> list[dict[str, str]]:
    """Register ``n`` GPS trackers; return the keys the emulated trackers sign with."""
    with open_store(db_path, create=True) as db:
        rows = [registry.provision(db, device_id=f"{prefix}-{i:05d}", site=site, kind="gps")
                for i in range(1, n + 1)]
    return [{k: r[k] for k in ("device_id", "key_id", "secret_hex")} for r in rows]


async def run_phase(name: str, factory: PipelineFactory, p: TrackerParams,
                    broker: MosquittoProcess, workdir: Path, *, messages: int, rate: float,
                    alarm_every: int) -> dict[str, Any]:
    """One stream of every tracker's messages through one pipeline; its figures."""
    phase_dir = workdir / name
    phase_dir.mkdir(parents=True, exist_ok=True)
    ctx = PhaseContext(name=name, broker_port=broker.port, site=p.site,
                       db_path=phase_dir / "portwatch.db", devices=p.trackers,
                       batch_max=p.batch_max, batch_wait_s=p.batch_wait_s)
    devices = provision_trackers(ctx.db_path, p.site, name, p.trackers)
    pipeline: Pipeline = factory(ctx)
    broker_pid = broker.proc.pid if broker.proc is not None else 0
    cpu0 = (time.process_time(), _proc_cpu_s(broker_pid))
    children: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        await pipeline.start()
        for i in range(min(p.procs, len(devices))):
            spec = {"host": "127.0.0.1", "port": broker.port, "site": p.site,
                    "devices": devices[i::p.procs], "messages": messages,
                    "fixes_per_msg": p.fixes_per_msg, "fix_every_s": p.fix_every_s,
                    "alarm_every": alarm_every, "rate": rate / p.procs, "window": p.window,
                    "clients": p.clients, "wait_acks": pipeline.acks,
                    "result": str(phase_dir / f"trackers-{i}.json"), "stall_s": p.stall_s}
            (phase_dir / f"trackers-{i}-spec.json").write_text(json.dumps(spec))
            with open(phase_dir / f"trackers-{i}.log", "wb") as log:
                children.append((subprocess.Popen(
                    [sys.executable, "-m", "tools.bench_trackers",
                     str(phase_dir / f"trackers-{i}-spec.json")], cwd=REPO, stdout=log,
                    stderr=subprocess.STDOUT), phase_dir / f"trackers-{i}.json"))
        while any(proc.poll() is None for proc, _ in children):
            await asyncio.sleep(0.1)
        if any(proc.returncode != 0 or not path.exists() for proc, path in children):
            raise BenchError(f"the emulated trackers failed; see {phase_dir}/trackers-*.log")
        fleet = merge([json.loads(path.read_text()) for _, path in children])
        deadline = time.monotonic() + p.stall_s
        while pipeline.stored() < fleet["sent"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        for proc, _ in children:
            stop_process(proc)
        counts = await pipeline.stop()
    end = fleet["last_ack"] if pipeline.acks else counts.last_commit
    span = (end or 0.0) - fleet["first_publish"]
    positions = fleet["positions_msgs"] * p.fixes_per_msg
    return {
        "pipeline": pipeline.name, "span_s": round(span, 3),
        "stored_msgs_per_s": round(counts.stored / span, 1) if span > 0 else 0.0,
        "positions_per_s": round(positions / span, 1) if span > 0 else 0.0,
        "latency_ms": fleet["latency_ms"] if pipeline.acks else None,
        "counts": {"sent": fleet["sent"], "stored": counts.stored,
                   "positions_msgs": fleet["positions_msgs"], "fixes": positions,
                   "alarms": fleet["alarms"], "duplicates": counts.duplicates,
                   "lost": fleet["sent"] - counts.stored, "rejected": counts.rejected,
                   "resends": fleet["resends"]},
        "wire_bytes_mean": round(fleet["bytes_sent"] / max(1, fleet["sent"]), 1),
        "cpu_s": {"trackers": fleet["cpu_s"],
                  "pipeline": round(time.process_time() - cpu0[0], 2),
                  "broker": round(_proc_cpu_s(broker_pid) - cpu0[1], 2)},
        "store": ctx.db_path if pipeline.acks else None,
    }


def store_cost(db_path: Path, p: TrackerParams) -> dict[str, Any]:
    """The store's cost per positions message and per truck-day, from its rows."""
    with open_store(db_path) as db:
        cost = growth.kind_cost(db.conn, "positions")
        fixes = growth.rows(db.conn, "positions")
        used = growth.page_bytes(db.conn)
    n = max(1, cost["messages"])
    per_day = DAY_S / (p.fixes_per_msg * p.fix_every_s)
    ledger_per_msg = cost["ledger_bytes"] / n
    return {"positions_messages": cost["messages"], "position_rows": fixes,
            "wire_bytes_per_msg": round(cost["wire_bytes"] / n, 1),
            "ledger_bytes_per_msg": round(ledger_per_msg, 1),
            "messages_per_truck_day": round(per_day, 1),
            "ledger_bytes_per_truck_day": round(ledger_per_msg * per_day),
            "store_bytes_per_msg_upper_bound": round(used / n, 1),
            "store_bytes_per_truck_day_upper_bound": round(used / n * per_day),
            "how": "ledger: canonical entry bytes + leaf hash + ~1 subtree hash row (40 B) per "
                   "positions message; store: used pages / positions messages (every table "
                   "and index of the phase's store, provisioning included)"}


async def _run(p: TrackerParams, workdir: Path, console: Console | None) -> dict[str, Any]:
    started = time.time()
    broker = MosquittoProcess(port=free_port(), workdir=workdir / "broker")
    try:
        broker.start()
    except BrokerError as exc:
        raise BenchError(str(exc)) from exc

    def say(text: str) -> None:
        if console is not None:
            console.print(text, highlight=False)

    try:
        monitor = BrokerMonitor(broker.port)
        say(f"raw baseline: {p.trackers} trackers x {p.messages} positions messages")
        base = await run_phase("raw", BASELINE, p, broker, workdir, messages=p.messages,
                               rate=0.0, alarm_every=0)
        say("ingest, saturating")
        sat = await run_phase("ingest", IngestPipeline, p, broker, workdir,
                              messages=p.messages, rate=0.0, alarm_every=0)
        cost = store_cost(Path(sat.pop("store")), p)
        rate = p.real_rate * p.speed
        paced_msgs = max(1, round(rate * p.paced_s / p.trackers))
        say(f"ingest, paced: {rate:g} positions messages/s ({p.speed:g}x the trackers' pace), "
            f"alarms from every {p.alarm_every}th tracker")
        paced = await run_phase("ingest-paced", IngestPipeline, p, broker, workdir,
                                messages=paced_msgs, rate=rate, alarm_every=p.alarm_every)
        with open_store(Path(paced.pop("store"))) as db:
            alerts = growth.alerts_raised(db.conn, "ext_power_lost")
        sys_report = await asyncio.to_thread(monitor.report, time.time(), p.sys_wait_s)
    finally:
        broker.stop()
    return report(p, base, sat, paced, cost, alerts, sys_report, time.time() - started)


def report(p: TrackerParams, base: dict[str, Any], sat: dict[str, Any], paced: dict[str, Any],
           cost: dict[str, Any], alerts: int, broker: dict[str, Any],
           duration_s: float) -> dict[str, Any]:
    """The one JSON document."""
    base.pop("store", None)
    lost = [r["counts"]["lost"] for r in (base, sat, paced)]
    ratio = (round(sat["positions_per_s"] / base["positions_per_s"], 3)
             if base["positions_per_s"] else None)
    alarm_latency = paced["latency_ms"]["alarm"] if paced["latency_ms"] else None
    return {
        "benchmark": "portwatch bench-trackers",
        "ok": not any(lost) and not broker["dropped_messages"]
        and alerts == paced["counts"]["alarms"],
        "positions_per_s": sat["positions_per_s"],
        "positions_msgs_per_s": sat["stored_msgs_per_s"],
        "ratio_vs_baseline": ratio,
        "real_load": {"trackers": p.trackers, "positions_per_s": round(
            p.real_rate * p.fixes_per_msg, 1), "msgs_per_s": round(p.real_rate, 2),
            "headroom": round(sat["stored_msgs_per_s"] / p.real_rate, 1)},
        "alert_latency_ms": {**(alarm_latency or {}),
                             "alerts_committed": alerts,
                             "alarms_sent": paced["counts"]["alarms"],
                             "measured": "tracker publishes ext_power_lost -> it receives the "
                                         "controller's ack covering it; the alert is committed "
                                         "in the same transaction (supervision runs in the "
                                         "batch), so the ack follows the alert's commit"},
        "ledger_per_truck_day": cost,
        "saturating": sat, "paced": {**paced, "load": f"{p.real_rate * p.speed:g} msg/s "
                                     f"({p.speed:g}x the trackers' own pace)"},
        "baseline": {**base, "what": "paho-mqtt 2.x QoS 1 subscriber, rows inserted with "
                                     "executemany in batches; no HMAC, no JSON, no dedupe, "
                                     "no projection, no rules, no ledger, no ack"},
        "broker": broker, "params": asdict(p), "machine": machine_facts(),
        "duration_s": round(duration_s, 1),
    }


def run_trackers_bench(p: TrackerParams, *, workdir: Path | None = None,
                       console: Console | None = None) -> dict[str, Any]:
    """Run the whole trackers benchmark; return the JSON-ready report."""
    p.check()
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_run(p, workdir.resolve(), console))
    with tempfile.TemporaryDirectory(prefix="pw-bench-trackers-") as tmp:
        return asyncio.run(_run(p, Path(tmp), console))


def bench_trackers(
    trackers: Annotated[int, typer.Option(help="emulated GPS trackers (one device each)")] =
        2_000,
    messages: Annotated[int, typer.Option(help="positions messages per tracker, saturating "
                                          "phase")] = 10,
    fixes_per_msg: Annotated[int, typer.Option(help="fixes per positions message")] = 10,
    fix_every_s: Annotated[float, typer.Option(help="seconds between fixes (device time)")] =
        10.0,
    paced_s: Annotated[float, typer.Option(help="length of the paced (latency) phase")] = 20.0,
    speed: Annotated[float, typer.Option(help="the paced phase runs the trackers this much "
                                         "faster than their own pace")] = 10.0,
    alarm_every: Annotated[int, typer.Option(help="every n-th tracker raises an alarm in the "
                                             "paced phase (0: none)")] = 20,
    procs: Annotated[int, typer.Option(help="processes the trackers are spread over")] = 2,
    workdir: Annotated[Path | None, typer.Option(
        help="keep the broker, stores and logs here [default: a temp dir]")] = None,
) -> None:
    """Positions at port scale: sustained positions/s through the real ingest, alert
    latency, ledger growth per truck-day, with the bare-subscriber baseline; print JSON.

    Exit code 1 if anything was lost or an alarm did not become an alert.

    Example: portwatch bench-trackers --trackers 2000 --messages 10 > trackers.json
    """
    err = Console(stderr=True)
    params = TrackerParams(trackers=trackers, messages=messages, fixes_per_msg=fixes_per_msg,
                           fix_every_s=fix_every_s, paced_s=paced_s, speed=speed,
                           alarm_every=alarm_every, procs=procs)
    try:
        doc = run_trackers_bench(params, workdir=workdir, console=err)
    except BenchError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    if not doc["ok"]:
        err.print("[red]error:[/] messages were lost, dropped, or an alarm raised no alert: "
                  "see counts, broker and alert_latency_ms in the JSON", highlight=False)
        raise typer.Exit(1)
