"""The agent core: config, boot counter, outbox, driver, uplink and health, wired together.

``Agent.emit(kind, body)`` is the one way a driver reports custody evidence. It signs the
event with the next seq and appends it to the persistent outbox, and returns that seq once
the event is durable (a power cut after that loses nothing), or None when it was refused:
the outbox is full (``outbox_full``), or the write failed (``write_error``: a flash error,
or no memory to sign it). Nothing refused is kept in RAM for later: the driver acts on the
None (the weighbridge keeps its barrier closed). Every refusal is one event: a driver that
offers the same event again gets a new seq or a new refusal.

Weighings may fill the outbox to its bound; every other kind stops ``1/RESERVE_PART`` of it
short, so that the last of the room is kept for weighings (edge/FAILURES.md, Outbox at its
bound).

Refusals are counted in ``<data_dir>/refused``, a persist slot (edge/persist.py) holding
the JSON body of the notice to come: ``{"count", "kinds": {kind: n}, "since_ts",
"until_ts", "reason"}`` (device times of the first and last refusal; ``reason`` is
``write_error`` if any was, else ``outbox_full``). It is written at each refusal, so it
survives a power cut. While the link is up, at each health tick, the agent stores it as a
signed ``refused`` event (protocols/bodies.py), like any other non-weighing; only once
that is in the outbox is the counter removed.

The device key (``<data_dir>/device_key``, a persist slot ``b"PWdk"`` holding the P-256
scalar; ``"device_signing": false`` in the config: none): created from ``os.urandom`` at
the first boot and never overwritten. With it the signer adds the device's own signature to
every custody event (edge/signer.py) and the birth carries its public key as ``pub``. A
key file that exists but cannot be read (or a first one that cannot be written) is logged,
raised as the alarm ``device_key_unreadable`` at each boot, and the agent goes on with the
HMAC alone: the controller then refuses its events once it has the key registered
(``bad_device_signature``), which is the point: a new key needs an admin.

Each part gets only what it uses: the driver ``emit``, the HAL and the data directory; the
uplink the signer (edge.signer), the outbox, the HAL's clock, ``log`` and ``birth_body``.
So each is tested alone (tests/edge/test_uplink.py, test_weighbridge_driver.py).
"""

import asyncio
import gc
import json
import sys

from edge.explain import explain
from edge.outbox import Outbox, OutboxError, OutboxFull
from edge.persist import BootCounter, makedirs, read_slot, remove, write_slot
from edge.signer import Signer, p256

FW_VERSION = "0.1.0"
RESERVE_PART = 16  # non-weighings leave the last max_bytes/16 of the outbox to weighings
POLL_MS = 100  # the health task's tick: how soon after the link comes up health goes


class Agent:
    """One device's firmware: ``asyncio.run(agent.run())``."""

    def __init__(self, cfg, hal):
        # the config dict is not kept (its key, its paths: ~0.5 KB): only what runs uses
        self.kind = cfg["kind"]
        self.health_ms = cfg["health_interval_s"] * 1000
        self.hal = hal
        if cfg.get("clock_skew_ms") and hasattr(hal, "set_clock_skew"):
            hal.set_clock_skew(cfg["clock_skew_ms"])
        m = cfg["mqtt"]
        if m.get("tls"):
            # the TLS context first: it wants 3 KB in one piece, which a 96 KiB heap still
            # has before the outbox, the signer and the driver settle in (edge.uplink keeps it)
            from edge.net.sock import context

            m["context"] = context(m.pop("ca"))
        self.driver_type = kind = cfg["driver"].get("type", "")
        self.device_id = cfg["device_id"]
        data = cfg["data_dir"]
        makedirs(data)
        self.boot = BootCounter(data + "/boot").next()
        # edge.config only here, at boot: edge/main.py frees it once the agent is built
        from edge.config import unhex

        self.signer = Signer(self.device_id, self.boot, cfg["key_id"], unhex(cfg["secret_hex"]))
        bound = cfg["outbox_max_bytes"]
        # acks free whole segments: several segments per bound, or a full tail never frees
        self.outbox = Outbox(data + "/outbox", max_bytes=bound,
                             segment_bytes=max(2048, min(16384, bound // 8)))
        self.started = hal.ticks_ms()
        self.stats = {"events": 0, "outbox_full": 0, "emit_errors": 0, "mem_errors": 0}
        self.refused_path = data + "/refused"
        self.refused = None  # the notice to come: the counter's JSON body, or None
        self.full = 0  # events refused since the last one stored: an episode, logged once
        raw = read_slot(self.refused_path, b"PWrf", True)
        if raw:
            try:
                self.refused = json.loads(raw)
            except ValueError:
                pass
        from edge.uplink import Uplink
        self.uplink = Uplink(self.signer, self.outbox, hal, cfg["mqtt"], cfg["site"], self.log,
                             self.birth_body, window=cfg["window"],
                             resend_after_s=cfg["resend_after_s"])
        self.t_evt = self.uplink.t_evt
        # the device key, made at the first boot, never overwritten (edge.config: boot-only
        # code, freed after it); unreadable, the agent goes on with the HMAC alone
        from edge.config import device_key

        dkey, why = device_key(cfg, data + "/device_key")
        self.signer.dkey = dkey
        if kind == "weighbridge":
            from edge.drivers.weighbridge import WeighbridgeDriver
            self.driver = WeighbridgeDriver(cfg["driver"], self.emit, hal, data)
        elif kind == "tracker":
            from edge.drivers.tracker import TrackerDriver
            self.driver = TrackerDriver(cfg["driver"], self.emit, hal, data)
        elif kind == "lab":
            from edge.drivers.lab import LabDriver
            self.driver = LabDriver(cfg["driver"], self.emit, hal, data)
        elif kind == "rail":
            from edge.drivers.rail import RailDriver
            self.driver = RailDriver(cfg["driver"], self.emit, hal, data)
        elif kind in ("", "none"):
            self.driver = None
        else:
            from edge.config import ConfigError

            raise ConfigError("driver: unknown type %r (known: weighbridge, tracker, lab, rail)"
                              % kind)
        if getattr(self.driver, "gate", None) is not None:  # it obeys commands
            self.uplink.cmds = [self.driver, [], []]  # (edge/commands.py)
        # the public key, computed once: at every birth it would load the signing code and
        # churn big integers just as the link comes up, when the first health sample needs
        # ~0.9 KB in one piece (edge/FAILURES.md, Heap)
        self.pub = p256("public", dkey) if dkey else None
        if dkey:  # for an admin registering a new key (portwatch device set-key)
            self.log("device key pub", self.pub)
        if why:  # once per boot: the controller learns it from the alarm, the log says why
            self.log("DEVICE KEY UNREADABLE: %s/device_key %s; custody events go with the "
                     "HMAC only" % (data, why))
            self.emit("alarm", {"alarm": "device_key_unreadable", "state": "raised",
                                "detail": {"why": why}})
        # code needed only at boot: unreferenced, it leaves the heap (2 KB)
        sys.modules.pop("protocols.topics", None)
        if hasattr(sys.modules.get("protocols"), "topics"):
            delattr(sys.modules["protocols"], "topics")

    def log(self, *parts):
        self.hal.log(self.device_id, *parts)

    def _store(self, kind, body):
        """Sign and append one event: its seq, or why it was refused."""
        ob = self.outbox
        seq = ob.next_seq()
        try:
            try:  # the rail agent's signer seals in its buffer (edge/seal_into.py)
                wire = self.signer.seal(self.t_evt, seq, self.hal.now_ms(), kind, body,
                                        parts=True)
            except MemoryError:
                # no room for a P-256 signature now (it wants ~8 KB; the heap has ~10 KB in
                # pieces): stored with the HMAC alone, durable at once, and the uplink adds
                # the device's signature before it leaves (edge/FAILURES.md, Heap)
                self.stats["devsig_deferred"] = self.stats.get("devsig_deferred", 0) + 1
                gc.collect()
                wire = self.signer.seal(self.t_evt, seq, self.hal.now_ms(), kind, body,
                                        parts=True, devsig=False)
            ob.append(seq, self.t_evt, wire,
                      0 if kind == "weighing" else ob.max_bytes // RESERVE_PART)
            return seq
        except OutboxFull:
            return "outbox_full"
        except MemoryError as exc:
            self.stats["mem_errors"] += 1
            gc.collect()
            self.log("cannot sign %s: out of memory; free %d" % (kind, self.hal.mem_free()))
            if hasattr(sys, "print_exception"):  # MicroPython: where it ran out, to the log
                sys.print_exception(exc)
        except (OSError, OutboxError, ValueError) as exc:
            self.log("cannot store %s:" % kind, explain(exc))
        return "write_error"

    def emit(self, kind, body):
        """Store one custody event: its seq once durable, or None when it was refused."""
        st = self.stats
        seq = self._store(kind, body)
        if type(seq) is int:
            if self.full:
                self.log("outbox takes events again after %d refused" % self.full)
                self.full = 0
            st["events"] += 1
            if type(body) is not dict:  # writes its own JSON (edge/drivers/rail.py)
                what = ""
            elif "gross_kg" in body:
                what = "%s gross %d kg" % (body.get("plate", ""), body["gross_kg"])
            else:
                what = "%s %s" % (body.get("alarm", ""), body.get("state", ""))
            self.log("%s seq %d %s" % (kind, seq, what))
            self.uplink.wake = True
            return seq
        if seq == "outbox_full":
            st["outbox_full"] += 1
            if not self.full:
                self.log("OUTBOX FULL: %s refused (counted, reported); controller unreachable?"
                         % kind)
        else:
            st["emit_errors"] += 1
        self.full += 1
        now = self.hal.now_ms()
        r = self.refused or {"count": 0, "kinds": {}, "since_ts": now, "reason": seq}
        r["count"] += 1
        r["kinds"][kind] = r["kinds"].get(kind, 0) + 1
        r["until_ts"] = now
        if seq != "outbox_full":
            r["reason"] = seq
        self.refused = r
        try:
            write_slot(self.refused_path, b"PWrf", json.dumps(r).encode())
        except OSError:
            pass  # still in RAM: written again at the next refusal, reported all the same
        return None

    def report(self):
        """Store the uplink's alarm (an ack beyond our seqs) and the refused notice, if
        any; forget the counter once it is stored."""
        a = self.uplink.alarm
        if a:
            self.uplink.alarm = None  # once: a refusal is counted like any other
            self.emit("alarm", {"alarm": "ack_beyond_next_seq",
                                "state": "raised" if a[0] else "cleared",
                                "detail": {"upto": a[1], "next_seq": a[2]}})
        r = self.refused
        if r and type(self._store("refused", r)) is int:
            self.log("refused notice stored: %d events" % r["count"])
            self.refused = None
            remove(self.refused_path)
            self.uplink.wake = True

    def birth_body(self):
        b = {"fw": FW_VERSION, "kind": self.kind, "hal": self.hal.NAME,
             "driver": self.driver_type, "next_seq": self.outbox.next_seq()}
        if self.pub:
            b["pub"] = self.pub
        return b

    def health_body(self):
        """A flat health sample: every figure an operator watches, nothing nested (RAM)."""
        count, size = self.outbox.backlog()
        up = self.uplink.stats
        st = self.stats
        ob = self.outbox
        body = {
            "fw": FW_VERSION,
            "uptime_s": self.hal.ticks_diff(self.hal.ticks_ms(), self.started) // 1000,
            "mem_free": max(self.hal.mem_free(), 0),
            "backlog": count,
            "backlog_bytes": size,
            "acked_seq": ob.acked(),
            "next_seq": ob.next_seq(),
            "clock_offset_ms": self.uplink.clock_offset_ms,
            "outbox_crc_errors": ob.stats["crc_errors"],
            "outbox_recovered": ob.stats["recovered_truncated"],
            "acks_beyond": ob.stats["acks_beyond"],
            "refused": self.refused["count"] if self.refused else 0,
        }
        for k in ("connects", "connect_failures", "links_lost", "resends", "resealed",
                  "bad_downlink"):
            body[k] = up[k]
        body["bad_commands"] = up.get("bad_commands", 0)  # counted from the first one
        for k in ("outbox_full", "emit_errors", "mem_errors"):
            body[k] = st[k]
        body["devsig_deferred"] = st.get("devsig_deferred", 0)  # signed by the uplink later
        body["reseal_waits"] = up.get("reseal_waits", 0)
        if self.driver is not None:
            self.driver.add_health(body)
        return body

    async def _health_loop(self):
        """Health every ``health_interval_s`` while the link is up, and at once when it comes
        up (the uplink's ``offline`` figures go in that one); the refused notice before it."""
        up = self.uplink
        wait = 0
        while True:
            self.hal.feed()
            if up.linked and (wait <= 0 or up.offline):
                self.report()
                gc.collect()
                try:
                    if await up.publish_health(self.health_body()):
                        wait = self.health_ms
                except MemoryError:
                    # no hole for the sample's ~0.9 KB of JSON (the heap fragments most just
                    # as a link comes up): counted, tried again at the next tick, 100 ms on,
                    # not after the guard's 1 s restart (edge/FAILURES.md, Heap)
                    self.stats["mem_errors"] += 1
                    gc.collect()
            await self.hal.sleep_ms(POLL_MS)
            wait -= POLL_MS

    async def _guard(self, name, make):
        """Run one task forever: a crash is logged, counted and the task restarted."""
        while True:
            try:
                await make()
            except MemoryError as exc:
                self.stats["mem_errors"] += 1
                gc.collect()
                self.log(name, "out of memory; restarting it; free", self.hal.mem_free())
                if hasattr(sys, "print_exception"):  # MicroPython: where it ran out
                    sys.print_exception(exc)
            except Exception as exc:  # a bug in one task must not stop the others
                self.stats["task_errors"] = self.stats.get("task_errors", 0) + 1
                self.log(name, "crashed:", explain(exc), "- restarting it")
            await self.hal.sleep_ms(1000)

    async def run(self):
        self.log("boot %d, fw %s, next seq %d, backlog %d" % (
            self.boot, FW_VERSION, self.outbox.next_seq(), self.outbox.backlog()[0]))
        tasks = [asyncio.create_task(self._guard("uplink", self.uplink.run)),
                 asyncio.create_task(self._guard("health", self._health_loop))]
        if self.driver is not None:
            tasks.append(asyncio.create_task(self._guard("driver", self.driver.run)))
        await tasks[0]  # forever (not asyncio.gather: its module would cost 0.7 KB of heap)
