"""The config and restart commands on the device (edge/cmd_config.py, edge/cmd_restart.py,
through edge/commands.py): checks, the settings slot written whole and put over the config
file at the next boot (edge/config.py ``remote``), live settings, answers.
pytest and MicroPython.

A real Agent booted from a config file (edge.config.load, as edge/main.py does) with the
real signer and uplink; commands sealed as the controller seals them; the answers read
back from what ``send_some`` publishes, checked under the device key.
"""

import asyncio
import json
import os
import sys

from edge.agent import Agent
from edge.config import load
from edge.persist import read_slot
from protocols import envelope, settings, topics
from shared_support import make_tmpdir, read_file, rmtree, write_file

_HERE = __file__.rsplit("/", 1)[0]
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from test_agent import K1, Hal  # noqa: E402

KEY = bytes(int(K1[i:i + 2], 16) for i in range(0, 64, 2))
T_CMD = topics.topic("dl", "wb1", "cmd")
FAR = 1764072000000 + 10**9


class ResettingHal(Hal):
    """The test HAL with ``reset`` recorded instead of done."""

    def __init__(self):
        Hal.__init__(self)
        self.resets = 0

    def reset(self):
        self.resets += 1


class Client:
    def __init__(self, hal):
        self.hal = hal
        self.sent = []  # (topic, body, resets before it)

    async def publish(self, topic, payload, qos=0, retain=False, wait=True, timeout=None):
        if isinstance(payload, tuple):
            payload = b"".join([bytes(p) for p in payload])
        fields, _ = envelope.open_message(lambda k: KEY, topic, bytes(payload))
        self.sent.append((topic, fields["body"], self.hal.resets))
        return 1

    async def wait_ack(self, pid, timeout=None):
        return 0


def _config(d, driver=None):
    cfg = {"device_id": "wb1", "site": "dl", "kind": "weighbridge", "key_id": "k1",
           "secret_hex": K1, "data_dir": d + "/data", "device_signing": False,
           "driver": driver or {"type": "none"},
           "mqtt": {"host": "127.0.0.1", "port": 1883}, "health_interval_s": 10}
    write_file(d + "/cfg.json", json.dumps(cfg).encode())
    return d + "/cfg.json"


class Device:
    def __init__(self, d, driver=None):
        self.path = _config(d, driver)
        self.hal = ResettingHal()
        self.agent = Agent(load(self.path), self.hal)
        self.client = Client(self.hal)

    def command(self, kind, body, cid="c-1", secret=KEY):
        body = dict(body, id=cid, expires_ts=FAR)
        fields = envelope.make("wb1", 0, 0, 1764072000000, kind, body)
        self.agent.uplink.on_message(T_CMD, envelope.seal(secret, "k1", T_CMD, fields), False)

    def answers(self):
        asyncio.run(self.agent.uplink.send_some(self.client))
        return [b for t, b, _ in self.client.sent if t == T_CMD + "ack"]

    def slot(self):
        """The settings slot's JSON (None: none yet)."""
        raw = read_slot(self.path.rsplit("/", 1)[0] + "/data/settings", b"PWst", True)
        return None if raw is None else json.loads(raw)


def _with(test, driver=None):
    d = make_tmpdir("cc")
    try:
        test(Device(d, driver))
    finally:
        rmtree(d)


def test_config_live_setting_is_applied_at_once_and_kept_for_the_next_boot():
    def t(dev):
        before = read_file(dev.path)
        dev.command("config", {"driver": "none", "set": {"health_interval_s": 3}})
        [a] = dev.answers()
        assert a["result"] == "applied" and a["values"] == {"health_interval_s": 3}
        assert a["restart"] is False and a["detail"] == ""
        assert dev.agent.health_ms == 3000
        assert dev.slot() == {"health_interval_s": 3}
        assert read_file(dev.path) == before  # the file with the keys is never rewritten
        cfg = load(dev.path)  # the next boot
        assert cfg["health_interval_s"] == 3 and cfg["secret_hex"] == K1
    _with(t)


def test_config_setting_for_the_next_boot_says_a_restart_is_needed():
    def t(dev):
        bound = dev.agent.outbox.max_bytes
        dev.command("config", {"driver": "none", "set": {"outbox_max_bytes": 65536}})
        [a] = dev.answers()
        assert a["result"] == "applied" and a["restart"] is True
        assert "outbox_max_bytes" in a["detail"]
        assert dev.agent.outbox.max_bytes == bound  # not live
        dev.command("config", {"driver": "none", "set": {"health_interval_s": 5}}, cid="c-2")
        assert dev.answers()[-1]["result"] == "applied"
        assert dev.slot() == {"outbox_max_bytes": 65536, "health_interval_s": 5}  # merged
        assert load(dev.path)["outbox_max_bytes"] == 65536
    _with(t)


def test_config_out_of_range_unknown_or_wrong_type_is_refused_and_nothing_changes():
    def t(dev):
        before = read_file(dev.path)
        bad = [{"health_interval_s": 1}, {"health_interval_s": 3601},
               {"health_interval_s": True}, {"health_interval_s": 2.5},
               {"secret_hex": "00" * 32}, {"driver.poll_ms": 100}, {}]
        for i, change in enumerate(bad):
            dev.command("config", {"driver": "none", "set": change}, cid="c-%d" % i)
        dev.command("config", {"driver": "tracker", "set": {"health_interval_s": 5}},
                    cid="c-drv")
        answers = dev.answers()
        assert [a["result"] for a in answers] == ["refused"] * 8, answers
        assert "between 2 and 3600" in answers[0]["detail"]
        assert "cannot be changed remotely" in answers[4]["detail"]
        assert "driver is 'none'" in answers[7]["detail"]
        assert read_file(dev.path) == before and dev.agent.health_ms == 10000
        assert dev.slot() is None
        assert dev.agent.uplink.stats["bad_commands"] == 8
    _with(t)


def test_config_forged_is_ignored_and_counted():
    def t(dev):
        dev.command("config", {"driver": "none", "set": {"health_interval_s": 2}},
                    secret=b"\x99" * 32)
        assert dev.answers() == [] and dev.slot() is None
        assert dev.agent.uplink.stats["bad_commands"] == 1
    _with(t)


def test_config_after_a_power_cut_mid_write_boots_the_old_slot_then_writes_the_new():
    def t(dev):
        dev.command("config", {"driver": "none", "set": {"health_interval_s": 20}})
        assert dev.answers()[0]["result"] == "applied"
        slot = dev.path.rsplit("/", 1)[0] + "/data/settings"
        write_file(slot + ".tmp", b"PWst{\"health_inter")  # the next write, cut short
        assert load(dev.path)["health_interval_s"] == 20  # the old slot is whole
        dev.command("config", {"driver": "none", "set": {"health_interval_s": 30}}, cid="c-2")
        assert dev.answers()[-1]["result"] == "applied"
        assert load(dev.path)["health_interval_s"] == 30
        assert not _exists(slot + ".tmp")
        write_file(slot, b"PWst{\"health_interval_s\": 99}\x00\x00\x00\x00")  # rotten CRC
        assert load(dev.path)["health_interval_s"] == 10  # ignored: the file's value
    _with(t)


def test_config_weighbridge_poll_interval_applies_live():
    def t(dev):
        drv = dev.agent.driver
        dev.command("config", {"driver": "weighbridge",
                               "set": {"driver.poll_ms": 50, "driver.stable_s": 0.5}})
        [a] = dev.answers()
        assert a["result"] == "applied" and a["restart"] is True, a
        assert drv.cfg["poll_ms"] == 50
        d = load(dev.path)["driver"]
        assert d["poll_ms"] == 50 and d["stable_s"] == 0.5 and d["map"] == "portwatch-sim"
    _with(t, {"type": "weighbridge", "map": "portwatch-sim", "host": "127.0.0.1", "port": 1})


def test_restart_is_answered_then_the_device_resets_and_modules_leave_the_heap():
    def t(dev):
        dev.command("restart", {"reason": "new settings"})
        assert dev.hal.resets == 0  # not before the answer is out
        assert dev.answers() == [{"id": "c-1", "result": "restarting",
                                  "detail": "after this answer is sent"}]
        assert dev.client.sent[-1][2] == 0 and dev.hal.resets == 1  # answered, then reset
        for name in ("edge.commands", "edge.cmd_config"):
            assert name not in sys.modules, name
    _with(t)


def test_unknown_kind_is_refused_and_counted():
    def t(dev):
        dev.command("reboot", {})
        [a] = dev.answers()
        assert a["result"] == "refused" and "config" in a["detail"]
        assert dev.agent.uplink.stats["bad_commands"] == 1
    _with(t)


def test_the_device_allow_list_is_the_protocol_one():
    from edge.cmd_config import SPEC, spec

    table = {}
    for line in SPEC.strip().split("\n"):
        part, rest = line.split(":", 1)
        name = rest.split(" ")[0]
        table.setdefault(part, {})[name] = tuple(spec("none" if part == "*" else part, name))
    assert table == settings.SETTINGS
    assert spec("tracker", "driver.poll_ms") is None and spec("none", "driver.moving_s") is None
    for dtype in ("none", "weighbridge", "tracker"):
        table = settings.allowed(dtype)
        assert (settings.check_config({"driver": dtype, "set": {"health_interval_s": 1}})
                is not None)
        for name in table:
            low = table[name][0]
            assert settings.check_config({"driver": dtype, "set": {name: low}}) is None


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False
