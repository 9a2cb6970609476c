"""How soon a site is back after its broker returns: ``portwatch bench-resume`` as a library.

A real site (``tools.rig``: Mosquitto, the controller, weighbridge emulators and their
agents under ``micropython`` with the device heap) runs idle; the broker is stopped for
``outage_s``, started again, and for every agent the time is taken from the broker's return
to the controller's next stored message from it (its birth, health or a custody event:
``devices.last_seen_ms``). That covers the whole path a weighing takes after an outage: the
agent's reconnect, the controller's own reconnect, the first publish and the commit.

The baseline, measured in the same run, is the same figure after an outage of
``baseline_outage_s`` (2 s): one missed keepalive, before any back-off has grown. Each
outage is repeated ``repeats`` times; the report gives min, median and max over every
agent and repeat, so a back-off that grows with the outage, or agents reconnecting in
lockstep, shows up as a gap between the two.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from controller.storage import devices as device_rows
from controller.storage import now_ms, open_store
from tools.bench import machine_facts
from tools.procs import wait_until
from tools.rig import Rig


class ResumeError(RuntimeError):
    """The measurement could not run; the message says what to change."""


@dataclass(frozen=True, slots=True)
class ResumeParams:
    """What to measure."""

    agents: int = 3
    outage_s: float = 60.0
    repeats: int = 3
    baseline_outage_s: float = 2.0
    heap: str = "96K"
    timeout_s: float = 60.0  # an agent not back by then counts as a failure

    def check(self) -> None:
        if not 1 <= self.agents <= 50:
            raise ResumeError("--agents must be 1..50 (each is a micropython process)")
        if self.repeats < 1 or self.outage_s <= 0 or self.baseline_outage_s <= 0:
            raise ResumeError("--repeats must be >= 1 and outages > 0 s")


def _last_seen(rig: Rig) -> dict[str, int]:
    with open_store(rig.db_path, migrate=False) as store:
        return {r["device_id"]: int(r["last_seen_ms"] or 0) for r in device_rows.all_rows(store)}


def _outage(rig: Rig, seconds: float, timeout_s: float) -> dict[str, float]:
    """Stop the broker for ``seconds``; return each agent's seconds from its return to the
    controller's next stored message from that agent."""
    rig.broker.stop()
    time.sleep(seconds)  # the scenario itself: an outage of this length, not a wait
    rig.broker.start()
    up = now_ms()
    back: dict[str, float] = {}

    def all_back() -> bool:
        for device_id, seen in _last_seen(rig).items():
            if device_id in rig.agents and device_id not in back and seen >= up:
                back[device_id] = round((seen - up) / 1000, 3)
        return len(back) == len(rig.agents)

    try:
        wait_until(all_back, timeout_s, interval=0.05, what="every agent back after the outage")
    except AssertionError as exc:
        missing = sorted(set(rig.agents) - set(back))
        raise ResumeError(f"{exc}: not back within {timeout_s} s: {missing}") from exc
    return back


def _figures(samples: list[float]) -> dict[str, float]:
    return {"min": min(samples), "median": round(statistics.median(samples), 3),
            "max": max(samples), "samples": len(samples)}


def run_resume(params: ResumeParams, *, workdir: Path | None = None,
               console: Console | None = None) -> dict[str, Any]:
    """Run the measurement; return the JSON-ready report. Progress goes to ``console``."""
    params.check()
    console = console or Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="pw-resume-") as tmp:
        rig = Rig(Path(workdir or tmp), site="resume", heap=params.heap)
        try:
            with console.status("starting a site: broker, controller, agents"):
                rig.start()
                for i in range(1, params.agents + 1):
                    rig.add_weighbridge(f"wb-{i:02d}", health_interval_s=10)
                    rig.start_agent(f"wb-{i:02d}")
                wait_until(lambda: all(s for s in _last_seen(rig).values()), 60,
                           what="every agent online")
            runs: dict[str, list[float]] = {"baseline": [], "outage": []}
            plan = [("baseline", params.baseline_outage_s)] * params.repeats + \
                   [("outage", params.outage_s)] * params.repeats
            for n, (phase, seconds) in enumerate(plan, 1):
                console.print(f"[{n}/{len(plan)}] broker down for {seconds:g} s ({phase})")
                back = _outage(rig, seconds, params.timeout_s)
                console.print(f"        back after: {back}")
                runs[phase] += list(back.values())
        finally:
            rig.stop()
    return {
        "benchmark": "portwatch bench-resume",
        "what": "seconds from the broker's return to the controller's next stored message "
                "from each agent",
        "resume_s": {**_figures(runs["outage"]), "outage_s": params.outage_s},
        "baseline": {**_figures(runs["baseline"]), "outage_s": params.baseline_outage_s},
        "samples_s": runs,
        "params": asdict(params),
        "machine": machine_facts(),
    }
