"""The agent core: config, boot counter, outbox, driver, uplink and health, wired together.

``Agent.emit(kind, body)`` is the one way a driver reports custody evidence: it
signs the event with the next seq and appends it to the persistent outbox before
anything is published, so a power cut after ``emit`` returns loses nothing.

Each part gets only what it uses: the driver ``emit`` and the HAL; the uplink the
signer (edge.signer), the outbox, the HAL's clock, ``log`` and ``birth_body``. So each
is tested alone (tests/edge/test_uplink.py, test_weighbridge_driver.py).
"""

import asyncio
import gc

from edge import config as config_mod
from edge.explain import explain
from edge.outbox import Outbox, OutboxError, OutboxFull
from edge.persist import BootCounter, makedirs
from edge.signer import Signer


class Agent:
    """One device's firmware: ``asyncio.run(agent.run())``."""

    def __init__(self, cfg, hal):
        self.cfg = cfg
        self.hal = hal
        if cfg.get("clock_skew_ms") and hasattr(hal, "set_clock_skew"):
            hal.set_clock_skew(cfg["clock_skew_ms"])
        self.device_id = cfg["device_id"]
        data = cfg["data_dir"]
        makedirs(data)
        self.boot = BootCounter(data + "/boot").next()
        self.signer = Signer(self.device_id, self.boot, cfg["key_id"],
                             config_mod.unhex(cfg["secret_hex"]))
        bound = cfg["outbox_max_bytes"]
        # acks free whole segments: several segments per bound, or a full tail never frees
        self.outbox = Outbox(data + "/outbox", max_bytes=bound,
                             segment_bytes=max(2048, min(16384, bound // 8)))
        self.started = hal.ticks_ms()
        self.stats = {"events": 0, "outbox_full": 0, "emit_errors": 0, "mem_errors": 0}
        from edge.uplink import Uplink
        self.uplink = Uplink(self.signer, self.outbox, hal, cfg["mqtt"], cfg["site"], self.log,
                             self.birth_body, window=cfg["window"],
                             resend_after_s=cfg["resend_after_s"])
        self.t_evt = self.uplink.t_evt
        self.driver = _make_driver(cfg["driver"], self.emit, hal)
        self.watchdog = hal.Watchdog()

    def log(self, *parts):
        self.hal.log(self.device_id, *parts)

    def emit(self, kind, body):
        """Sign and store one custody event; return its seq, or 0 if it could not be stored."""
        seq = self.outbox.next_seq()
        try:
            wire = self.signer.seal(self.t_evt, seq, self.hal.now_ms(), kind, body)
            self.outbox.append(seq, self.t_evt, wire)
        except OutboxFull:
            self.stats["outbox_full"] += 1
            self.log("OUTBOX FULL: %s not stored; controller unreachable?" % kind)
            return 0
        except (OSError, OutboxError, ValueError) as exc:
            self.stats["emit_errors"] += 1
            self.log("cannot store %s:" % kind, explain(exc))
            return 0
        self.stats["events"] += 1
        self.log("%s seq %d %s" % (kind, seq, _summary(body)))
        self.uplink.wake.set()
        return seq

    def birth_body(self):
        return {"fw": config_mod.FW_VERSION, "kind": self.cfg["kind"], "hal": self.hal.NAME,
                "driver": self.cfg["driver"].get("type", ""), "next_seq": self.outbox.next_seq()}

    def health_body(self):
        """A flat health sample: every figure an operator watches, nothing nested (RAM)."""
        count, size = self.outbox.backlog()
        up = self.uplink.stats
        ob = self.outbox.stats
        body = {
            "fw": config_mod.FW_VERSION,
            "uptime_s": self.hal.ticks_diff(self.hal.ticks_ms(), self.started) // 1000,
            "mem_free": max(self.hal.mem_free(), 0),
            "backlog": count,
            "backlog_bytes": size,
            "acked_seq": self.outbox.acked(),
            "next_seq": self.outbox.next_seq(),
            "clock_offset_ms": self.uplink.clock_offset_ms,
            "connects": up["connects"],
            "links_lost": up["links_lost"],
            "resends": up["resends"],
            "resealed": up["resealed"],
            "bad_downlink": up["bad_downlink"],
            "outbox_full": self.stats["outbox_full"],
            "outbox_crc_errors": ob["crc_errors"],
            "outbox_recovered": ob["recovered_truncated"],
            "mem_errors": self.stats["mem_errors"],
        }
        if self.driver is not None:
            self.driver.add_health(body)
        return body

    async def _health_loop(self):
        interval_ms = self.cfg["health_interval_s"] * 1000
        while True:
            gc.collect()
            self.watchdog.feed()
            try:
                await self.uplink.publish_health(self.health_body())
            except MemoryError:
                self.stats["mem_errors"] += 1
            await self.hal.sleep_ms(interval_ms)

    async def _guard(self, name, make):
        """Run one task forever: a crash is logged, counted and the task restarted."""
        while True:
            try:
                await make()
            except MemoryError as exc:
                self.stats["mem_errors"] += 1
                gc.collect()
                self.log(name, "out of memory; restarting it; free", self.hal.mem_free())
                _print_exception(exc)
                try:
                    import micropython
                    micropython.mem_info(1)
                except ImportError:
                    pass
            except Exception as exc:  # a bug in one task must not stop the others
                self.stats["task_errors"] = self.stats.get("task_errors", 0) + 1
                self.log(name, "crashed:", explain(exc), "- restarting it")
            await self.hal.sleep_ms(1000)

    async def run(self):
        self.log("boot %d, fw %s, next seq %d, backlog %d" % (
            self.boot, config_mod.FW_VERSION, self.outbox.next_seq(), self.outbox.backlog()[0]))
        tasks = [asyncio.create_task(self._guard("uplink", self.uplink.run)),
                 asyncio.create_task(self._guard("health", self._health_loop))]
        if self.driver is not None:
            tasks.append(asyncio.create_task(self._guard("driver", self.driver.run)))
        await asyncio.gather(*tasks)


def _print_exception(exc):
    try:
        import sys
        sys.print_exception(exc)
    except AttributeError:  # CPython
        import traceback
        traceback.print_exception(exc)


def _summary(body):
    if "gross_kg" in body:
        return "%s gross %d kg" % (body.get("plate", ""), body["gross_kg"])
    if "alarm" in body:
        return "%s %s" % (body["alarm"], body["state"])
    return ""


def _make_driver(dcfg, emit, hal):
    kind = dcfg.get("type", "")
    if kind == "weighbridge":
        from edge.drivers.weighbridge import WeighbridgeDriver
        return WeighbridgeDriver(dcfg, emit, hal)
    if kind in ("", "none"):
        return None
    raise config_mod.ConfigError("driver: unknown type %r (known: weighbridge)" % kind)
