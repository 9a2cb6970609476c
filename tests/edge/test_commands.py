"""Commands on the device: edge/commands.py checks and remembers them for the uplink, the
weighbridge driver in ``barrier: "controller"`` mode obeys them, the answers go out signed
on cmdack. pytest and MicroPython.

The indicator is the scripted Modbus master of test_weighbridge_driver (the real one is
tested against pymodbus in hil_tests) and the MQTT client the fake of test_uplink; the
signer, the envelope, the detector and the driver are the real ones. Commands are sealed
as the controller seals them (controller/commands.py ``wire``).
"""

import json
import sys

from edge.drivers.weighbridge import WeighbridgeDriver
from edge.signer import Signer
from protocols import envelope, topics
from shared_support import make_tmpdir, read_file, repo_root, rmtree

_HERE = __file__.rsplit("/", 1)[0]
if _HERE not in sys.path:  # the fakes of the uplink and driver tests, shared
    sys.path.insert(0, _HERE)
from test_uplink import DEV, K1, SITE, Device, FakeClient, run  # noqa: E402
from test_weighbridge_driver import FakeHal, ScriptedMaster, Sink, polls, regs  # noqa: E402

T_CMD = topics.topic(SITE, DEV, "cmd")
T_CMDACK = topics.topic(SITE, DEV, "cmdack")
T_ACK = topics.topic(SITE, DEV, "ack")
FAR = 1764072000000 + 10**9


class Gate:
    """An out-gate: the driver in controller mode wired to an uplink as the agent wires it."""

    def __init__(self, tmp, mode="controller", on_deck=12):
        self.dev = Device(tmp)
        self.sink = Sink()
        cfg = {"map": "portwatch-sim", "host": "127.0.0.1", "port": 1, "stable_s": 0.3}
        if mode:
            cfg["barrier"] = mode
        self.drv = WeighbridgeDriver(cfg, self.sink.emit, FakeHal(), None)
        self.drv.master = ScriptedMaster([regs(0, plate="")] + [regs(45240)] * on_deck
                                         + [regs(0, plate="")] * 4, self.sink)
        up = self.dev.uplink
        if self.drv.gate is not None:  # as Agent wires them
            up.cmds = [self.drv, [], []]
        self.client = FakeClient()

    def weigh(self, n=8):
        polls(self.drv, n)
        assert self.drv.detector.seq, "the truck was not weighed"
        return self.drv.detector.seq

    def command(self, action="open", seq=None, cid="c-1", expires=FAR, secret=K1,
                topic=T_CMD, kind="barrier"):
        body = {"id": cid, "action": action, "weighing_seq": seq or self.drv.detector.seq,
                "expires_ts": expires, "reason": "cleared"}
        fields = envelope.make(DEV, 0, 0, 1764072000000, kind, body)
        self.dev.uplink.on_message(T_CMD, envelope.seal(secret, "k1", topic, fields), False)

    def answers(self):
        """The cmdacks sent so far, each checked under the device key on cmdack (one turn
        of the session loop: ``send_some`` sends them first)."""
        run(self.dev.uplink.send_some(self.client))
        out = []
        for topic, payload, qos, _ in self.client.published:
            assert topic == T_CMDACK and qos == 1, topic
            fields, _ = envelope.open_message(lambda k: K1, T_CMDACK, payload)
            assert fields["kind"] == "cmdack"
            b = fields["body"]
            out.append((b["id"], b["result"], b["detail"]))
        return out


def _gate(test, **kw):
    tmp = make_tmpdir("cmd")
    try:
        test(Gate(tmp, **kw))
    finally:
        rmtree(tmp)


def test_command_open_for_the_weighing_on_deck_opens_then_answers_done():
    def t(g):
        g.weigh()
        assert g.sink.barrier() == [False]  # stored, but shut: the controller decides
        g.command("open")
        assert g.answers() == []  # answered once the coil is written
        polls(g.drv, 1)
        assert g.sink.barrier() == [False, True]
        assert g.answers() == [("c-1", "done", "")]
        polls(g.drv, 5)  # the truck leaves: shut again
        assert g.sink.barrier() == [False, True, False]
    _gate(t)


def test_command_repeat_is_answered_duplicate_and_not_executed_again():
    def t(g):
        g.weigh()
        g.command("open")
        polls(g.drv, 1)
        g.command("open")
        polls(g.drv, 1)
        assert g.answers() == [("c-1", "done", ""), ("c-1", "duplicate", "done")]
        assert g.drv.master.coils == [(0, False), (0, True)]
    _gate(t)


def test_command_for_another_weighing_is_refused_and_stays_shut():
    def t(g):
        seq = g.weigh()
        g.command("open", seq=seq + 1)
        polls(g.drv, 2)
        [(_, result, detail)] = g.answers()
        assert result == "refused" and "not on the deck" in detail
        assert g.sink.barrier() == [False]
    _gate(t)


def test_command_deny_keeps_it_shut_and_answers_done():
    def t(g):
        g.weigh()
        g.command("deny")
        polls(g.drv, 2)
        assert g.answers() == [("c-1", "done", "held shut")]
        assert g.sink.barrier() == [False]
    _gate(t)


def test_command_expired_is_answered_expired_not_obeyed():
    def t(g):
        g.weigh()
        g.command("open", expires=1)
        polls(g.drv, 2)
        [(_, result, _)] = g.answers()
        assert result == "expired" and g.sink.barrier() == [False]
    _gate(t)


def test_command_forged_or_on_another_topic_is_counted_not_answered():
    def t(g):
        g.weigh()
        g.command("open", secret=b"\x99" * 32, cid="c-forged")
        g.command("open", topic=T_ACK, cid="c-replayed")  # an ack's signature: not a command
        polls(g.drv, 2)
        assert g.answers() == [] and g.sink.barrier() == [False]
        assert g.dev.uplink.stats["bad_commands"] == 2
    _gate(t)


def test_command_bad_body_is_refused_and_counted():
    def t(g):
        g.weigh()
        g.command("lift")
        g.command("open", cid="c-2", kind="reboot")
        assert [a[1] for a in g.answers()] == ["refused", "refused"]
        assert g.dev.uplink.stats["bad_commands"] == 2
    _gate(t)


def test_command_local_barrier_refuses_and_opens_on_its_own():
    def t(g):
        g.weigh()
        g.command("open")
        polls(g.drv, 1)
        [(_, result, detail)] = g.answers()
        assert result == "refused" and "no driver here obeys" in detail
        assert g.sink.barrier() == [False, True]  # today's behaviour, unchanged
    _gate(t, mode=None)


def test_command_vehicle_leaving_before_the_open_is_answered_failed():
    def t(g):
        g.weigh(9)  # the truck's last reading: the next shows the deck empty
        g.command("open")
        polls(g.drv, 3)
        assert g.answers() == [("c-1", "failed", "the vehicle left before it opened")]
        assert g.sink.barrier() == [False]
    _gate(t, on_deck=8)


def test_command_vectors_open_on_the_device_and_nowhere_else():
    v = json.loads(read_file(repo_root() + "/protocols/vectors/commands.json").decode())
    key = bytes(int(v["key_hex"][i:i + 2], 16) for i in range(0, 64, 2))
    signer = Signer("wb-out", 1, v["key_id"], key)
    c = v["command"]
    fields = signer.open(c["topic"], c["wire"].encode())
    assert fields["body"] == c["fields"]["body"]
    for topic in v["wrong_topics"]:
        try:
            signer.open(topic, c["wire"].encode())
        except ValueError as exc:
            assert "bad_signature" in str(exc)
        else:
            raise AssertionError("the command opened on " + topic)
    a = v["cmdack"]
    assert signer.open(a["topic"], a["wire"].encode())["body"] == a["fields"]["body"]
    # the device's own answer verifies as the controller checks it (the bytes may differ
    # from the vector's: MicroPython's dicts do not keep the JSON's key order)
    wire = signer.seal(a["topic"], 1, a["fields"]["ts"], "cmdack", a["fields"]["body"])
    got, _ = envelope.open_message(lambda k: key, a["topic"], wire)
    assert got["body"] == a["fields"]["body"] and got["dev"] == "wb-out"


def test_command_module_leaves_the_heap_after_each_command():
    def t(g):
        g.weigh()
        g.command("open")
        assert "edge.commands" not in sys.modules
        polls(g.drv, 1)  # the answer loads it again, and frees it
        assert "edge.commands" not in sys.modules
        assert g.answers() == [("c-1", "done", "")]
    _gate(t)
