"""Reliability and speed of the ingest: ``portwatch bench`` as a library.

One run starts its own Mosquitto (``tools.broker``, on a free port) and measures,
one phase after the other on that broker:

1. the **raw baseline** (``tools.bench_pipelines.RawBaseline``): what a bare paho
   subscriber inserting rows in batches can store on this machine;
2. each requested **pipeline** (default: the controller's real ``IngestService``),
   twice: saturating (every agent as fast as its window allows: throughput), then
   paced at ``latency_rate`` msgs/s in all (latency at a load it can sustain; at
   saturation latency only measures the backlog, i.e. the length of the run).

In every phase N simulated agents (``tools.bench_agents``, a child process) sign
real envelopes for devices provisioned in that phase's registry and publish them
with QoS 1, ``window`` in flight each. Throughput runs from the first publish to
the last durable signal: the controller's ack received by the agent (the ingest
publishes it only after the SQLite commit), or the baseline's own commit. Counts
are read back from the SQLite files, and Mosquitto's dropped-message counter from
``$SYS`` (docs/ARCHITECTURE.md, Pitfalls: its defaults drop QoS 1 messages silently).

Another pipeline variant (the ledger on or off, say) is one class registered in
``tools.bench_pipelines.PIPELINES``, measured with ``--pipeline NAME``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from controller import registry
from controller.storage import open_store
from tools.bench_agents import merge
from tools.bench_pipelines import (
    BASELINE,
    PIPELINES,
    BenchError,
    PhaseContext,
    Pipeline,
    PipelineCounts,
    PipelineFactory,
)
from tools.broker import BrokerError, MosquittoProcess, mosquitto_binary
from tools.procs import free_port, stop_process

__all__ = ["BenchError", "BenchParams", "machine_facts", "run_bench"]

REPO = Path(__file__).resolve().parent.parent
SYS_INTERVAL_S = 10  # Mosquitto's default sys_interval: $SYS figures are this old at most
Progress_ = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class BenchParams:
    """What to run. The defaults take about 30 s on 2 cores."""

    agents: int = 10
    messages: int = 5_000  # per agent, in each saturating phase
    payload_bytes: int = 0  # wire size to pad each envelope to; 0: a plain weighing (~330 B)
    window: int = 8  # QoS 1 publishes in flight per agent, as the firmware's default
    agent_procs: int = 2  # child processes the agents are spread over (one GIL each)
    batch_max: int = 500  # the ingest's (and the baseline's) largest batch per commit
    batch_wait_s: float = 0.02
    pipelines: tuple[str, ...] = ("ingest", "ingest-no-ledger")
    latency_rate: float = 2_000.0  # msgs/s offered in all in the latency phase; 0: skip it
    latency_s: float = 10.0  # length of the latency phase at that rate
    sys_wait_s: float = SYS_INTERVAL_S + 1.0  # wait for a fresh $SYS reading at the end
    resend_after_s: float = 10.0
    stall_s: float = 30.0
    site: str = "bench"

    def check(self) -> None:
        if min(self.agents, self.messages, self.window, self.batch_max, self.agent_procs) < 1:
            raise BenchError("agents, messages, window, batch size and agent processes must "
                             "all be >= 1")
        if self.latency_rate < 0 or self.latency_s <= 0:
            raise BenchError("the latency phase needs a rate >= 0 and a length > 0 s")
        unknown = [p for p in self.pipelines if p not in PIPELINES]
        if unknown or not self.pipelines:
            raise BenchError(f"unknown pipeline {unknown}: choose from {', '.join(PIPELINES)}")
        if len(set(self.pipelines)) != len(self.pipelines):
            raise BenchError("name each pipeline once")


def machine_facts() -> dict[str, Any]:
    """Cores, Python and Mosquitto versions: what a figure depends on."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "nproc": len(os.sched_getaffinity(0)),
            "cpu": cpu, "python": platform.python_version(),
            "mosquitto": mosquitto_version(), "platform": platform.platform()}


def mosquitto_version() -> str:
    """``2.0.11`` from ``mosquitto -h``'s first line."""
    out = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
    return first.removeprefix("mosquitto version ").strip()


class BrokerMonitor:
    """Latest ``$SYS/broker/publish/messages/*`` figures (dropped, received, sent)."""

    TOPIC = "$SYS/broker/publish/messages/+"

    def __init__(self, port: int) -> None:
        self.values: dict[str, int] = {}
        self.updated = 0.0
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sys",
                                  clean_session=True)
        self.client.on_connect = lambda c, *_: c.subscribe(self.TOPIC)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.values[msg.topic.rsplit("/", 1)[1]] = int(msg.payload or b"0")
            self.updated = time.time()

    def report(self, after: float, wait_s: float) -> dict[str, Any]:
        """Figures published after ``after`` (waiting up to ``wait_s``), else the last seen."""
        deadline = time.monotonic() + wait_s
        while self.updated <= after and time.monotonic() < deadline:
            time.sleep(0.1)
        self.client.disconnect()
        self.client.loop_stop()
        with self.lock:
            return {"dropped_messages": self.values.get("dropped"),
                    "publish_received": self.values.get("received"),
                    "publish_sent": self.values.get("sent"),
                    "fresh": self.updated > after,
                    "source": "$SYS/broker/publish/messages/{dropped,received,sent}"}


def provision(db_path: Path, site: str, prefix: str, agents: int) -> list[dict[str, str]]:
    """Register ``agents`` weighbridges; return the keys the simulated agents sign with."""
    db = open_store(db_path, create=True)
    try:
        rows = [registry.provision(db, device_id=f"{prefix}-{i:04d}", site=site,
                                   kind="weighbridge") for i in range(1, agents + 1)]
    finally:
        db.close()
    return [{k: r[k] for k in ("device_id", "key_id", "secret_hex")} for r in rows]


@dataclass(frozen=True, slots=True)
class Phase:
    """One stream of every agent's events through one pipeline."""

    name: str  # directory, device-id prefix and client ids
    factory: PipelineFactory
    messages: int  # per agent
    rate: float = 0.0  # total msgs/s offered; 0: saturating (each agent as fast as its window)


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Child = tuple[subprocess.Popen[bytes], Path]  # an agents process and its result file


def _start_agents(params: BenchParams, phase: Phase, port: int, devices: list[dict[str, str]],
                  pipeline: Pipeline, phase_dir: Path) -> list[Child]:
    """Start ``agent_procs`` children, each simulating its share of the devices."""
    children = []
    for i in range(min(params.agent_procs, len(devices))):
        result = phase_dir / f"agents-{i}.json"
        spec = {"host": "127.0.0.1", "port": port, "site": params.site,
                "devices": devices[i::params.agent_procs], "messages": phase.messages,
                "window": params.window, "payload_bytes": params.payload_bytes,
                "wait_acks": pipeline.acks, "result": str(result),
                "resend_after_s": params.resend_after_s, "stall_s": params.stall_s,
                "rate": phase.rate / params.agents}
        spec_path = phase_dir / f"agents-{i}-spec.json"
        spec_path.write_text(json.dumps(spec))
        with open(phase_dir / f"agents-{i}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "tools.bench_agents", str(spec_path)],
                                    cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        children.append((proc, result))
    return children


async def _drain(pipeline: Pipeline, sent: int, stall_s: float, progress: Progress_) -> None:
    """Wait until the pipeline has stored ``sent`` messages or stops making progress."""
    last, since = -1, time.monotonic()
    while (n := pipeline.stored()) < sent and time.monotonic() - since < stall_s:
        progress(n)
        if n != last:
            last, since = n, time.monotonic()
        await asyncio.sleep(0.05)
    progress(pipeline.stored())


async def run_phase(phase: Phase, params: BenchParams, broker: MosquittoProcess, workdir: Path,
                    progress: Progress_) -> dict[str, Any]:
    """Stream every agent's events through one pipeline; return its figures."""
    phase_dir = workdir / phase.name
    phase_dir.mkdir(parents=True, exist_ok=True)
    ctx = PhaseContext(name=phase.name, broker_port=broker.port, site=params.site,
                       db_path=phase_dir / "portwatch.db", devices=params.agents,
                       batch_max=params.batch_max, batch_wait_s=params.batch_wait_s)
    devices = provision(ctx.db_path, params.site, phase.name, params.agents)
    pipeline = phase.factory(ctx)
    broker_pid = broker.proc.pid if broker.proc is not None else 0
    cpu0 = (time.process_time(), _proc_cpu_s(broker_pid))
    children: list[Child] = []
    try:
        await pipeline.start()
        children = _start_agents(params, phase, broker.port, devices, pipeline, phase_dir)
        while any(proc.poll() is None for proc, _ in children):
            progress(pipeline.stored())
            await asyncio.sleep(0.1)
        if any(proc.returncode != 0 or not path.exists() for proc, path in children):
            raise BenchError(f"the simulated agents failed; see {phase_dir}/agents-*.log")
        agents = merge([json.loads(path.read_text()) for _, path in children])
        await _drain(pipeline, agents["sent"], params.stall_s, progress)
    finally:
        for proc, _ in children:
            stop_process(proc)
        counts = await pipeline.stop()
    cpu = {"agents": agents["cpu_s"], "pipeline": round(time.process_time() - cpu0[0], 2),
           "broker": round(_proc_cpu_s(broker_pid) - cpu0[1], 2)}
    return {**figures(pipeline, counts, agents), "cpu_s": cpu}


def figures(pipeline: Pipeline, counts: PipelineCounts, agents: dict[str, Any]) -> dict[str, Any]:
    """One phase's throughput, latency and counts, from the agents' and the store's view."""
    end = agents["last_ack"] if pipeline.acks else counts.last_commit
    span = (end or 0.0) - agents["first_publish"]
    return {
        "pipeline": pipeline.name,
        "stored_msgs_per_s": round(counts.stored / span, 1) if span > 0 else 0.0,
        "span_s": round(span, 3),
        "durable_signal": pipeline.durable_signal,
        "latency_ms": agents["latency_ms"] if pipeline.acks else None,
        "counts": {"sent": agents["sent"], "stored": counts.stored,
                   "duplicates": counts.duplicates, "lost": agents["sent"] - counts.stored,
                   "rejected": counts.rejected, "resends": agents["resends"],
                   "published": agents["published"]},
        "wire_bytes_mean": round(agents["bytes_sent"] / max(1, agents["published"]), 1),
    }


async def measure_pipeline(name: str, params: BenchParams, broker: MosquittoProcess,
                           workdir: Path, track: Callable[[str, int], Progress_]
                           ) -> dict[str, Any]:
    """A pipeline's saturated throughput, then its latency at a paced, sustainable load."""
    factory = PIPELINES[name]
    total = params.agents * params.messages
    sat = await run_phase(Phase(name, factory, params.messages), params, broker, workdir,
                          track(name, total))
    sat["latency_ms_saturated"] = {**sat.pop("latency_ms"), "load": "saturating: every agent "
                                   f"publishes as fast as its window of {params.window} allows"}
    if params.latency_rate <= 0:
        return {**sat, "latency_ms": None}
    per_agent = max(1, round(params.latency_rate * params.latency_s / params.agents))
    paced = await run_phase(Phase(f"{name}-paced", factory, per_agent, params.latency_rate),
                            params, broker, workdir,
                            track(f"{name} paced", per_agent * params.agents))
    sat["latency_ms"] = {**paced["latency_ms"],
                         "load": f"paced: {params.latency_rate:g} msg/s offered in all "
                                 f"({params.agents} agents), {paced['stored_msgs_per_s']} stored"}
    sat["latency_counts"] = paced["counts"]
    sat["latency_cpu_s"] = paced["cpu_s"]
    return sat


def _progress_for(console: Console | None) -> tuple[Progress | None,
                                                    Callable[[str, int], Progress_]]:
    if console is None:
        return None, lambda _name, _total: lambda _n: None
    bar = Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("stored"), TimeElapsedColumn(), console=console)

    def track(name: str, total: int) -> Progress_:
        task = bar.add_task(name, total=total)
        return lambda n: bar.update(task, completed=n)

    return bar, track


async def _measure(params: BenchParams, broker: MosquittoProcess, workdir: Path,
                   console: Console | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    bar, track = _progress_for(console)
    if bar is not None:
        bar.start()
    try:
        base = await run_phase(Phase("raw", BASELINE, params.messages), params, broker, workdir,
                               track("raw baseline", params.agents * params.messages))
        runs = [await measure_pipeline(name, params, broker, workdir, track)
                for name in params.pipelines]
    finally:
        if bar is not None:
            bar.stop()
    return base, runs


async def _run(params: BenchParams, workdir: Path, console: Console | None) -> dict[str, Any]:
    started = time.time()
    broker = MosquittoProcess(port=free_port(), workdir=workdir / "broker")
    try:
        broker.start()
    except BrokerError as exc:
        raise BenchError(str(exc)) from exc
    try:
        monitor = BrokerMonitor(broker.port)
        base, runs = await _measure(params, broker, workdir, console)
        if console is not None and params.sys_wait_s:
            console.print(f"waiting up to {params.sys_wait_s:.0f} s for Mosquitto's $SYS figures")
        sys_report = await asyncio.to_thread(monitor.report, time.time(), params.sys_wait_s)
    finally:
        broker.stop()
    return report(params, base, runs, sys_report, time.time() - started)


LATENCY_MEASURED = {"from": "the seq's event time at the agent: when the pacer made it due "
                            "(paced), its first publish() call (saturating)",
                    "to": "the agent's receipt of the controller's signed ack covering that seq "
                          "(published only after the SQLite commit)"}


def report(params: BenchParams, base: dict[str, Any], runs: list[dict[str, Any]],
           broker: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """The one JSON document: the first pipeline's figures at the top, the rest in variants."""
    first, base_rate = runs[0], base["stored_msgs_per_s"]
    lost = [r["counts"]["lost"] for r in [base, *runs]] + [
        r["latency_counts"]["lost"] for r in runs if "latency_counts" in r]
    ratio = round(first["stored_msgs_per_s"] / base_rate, 3) if base_rate else None
    return {
        "benchmark": "portwatch bench",
        "ok": not any(lost) and not broker["dropped_messages"],
        "pipeline": first["pipeline"],
        "stored_msgs_per_s": first["stored_msgs_per_s"],
        "latency_ms": first["latency_ms"],
        "ratio_vs_baseline": ratio,
        "counts": first["counts"],
        **{k: v for k, v in first.items() if k != "wire_bytes_mean"},
        "latency_measured": LATENCY_MEASURED,
        "baseline": {**{k: v for k, v in base.items() if k not in ("latency_ms",
                                                                      "wire_bytes_mean")},
                     "msgs_per_s": base_rate,
                     "what": "paho-mqtt 2.x QoS 1 subscriber, rows inserted with executemany "
                             "in batches; no HMAC, no JSON, no dedupe, no ack"},
        "variants": runs[1:],
        "broker": broker,
        "params": {**{k: v for k, v in asdict(params).items() if k != "pipelines"},
                   "pipelines": list(params.pipelines),
                   "wire_bytes_mean": first["wire_bytes_mean"]},
        "machine": machine_facts(),
        "duration_s": round(duration_s, 1),
    }


def run_bench(params: BenchParams, *, workdir: Path | None = None,
              console: Console | None = None) -> dict[str, Any]:
    """Run the whole benchmark; return the JSON-ready report. Progress goes to ``console``."""
    params.check()
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_run(params, workdir.resolve(), console))
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        return asyncio.run(_run(params, Path(tmp), console))
