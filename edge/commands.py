"""Commands from the controller (PROTOCOL.md, Commands), loaded for each one and freed after.

Each command costs this module's code on the heap only while it is handled: the agent has
about 11 KB to spare at its lowest (edge/FAILURES.md, Heap), and commands come once per
truck. What lives on between commands is the uplink's ``cmds`` (the driver, recent ids,
answers waiting) and the driver's ``gate``.

``handle(up, payload)``: the uplink's downlink on t_cmd. A message that fails the HMAC for
t_cmd, or has no usable id, is counted (``bad_commands``) and dropped unanswered: the
device neither obeys nor speaks for a sender it cannot authenticate. An id among the last
8 is answered ``duplicate`` with its first result (or not at all while that one is in
progress), never executed again. The body checks are ``protocols.bodies.check_command``'s,
inline (that module is not on the device): here the common ones (id, ``expires_ts``),
then the kind's handler, found in ``KINDS``.

``KINDS``: command kind -> the module of its handler, loaded only for that command and
freed with this one (the barrier's too: edge/cmd_barrier.py, so that a config command does
not carry its code on a full heap). A kind adds one line. A handler is
``run(up, body)`` -> (result, detail[, fields added to the answer]), or None when it
answers later (``answer``); it
checks its own body and answers ``refused`` when it is wrong (``bad(up)`` counts it in
``bad_commands``).

edge/cmd_barrier.py ``run``: the weighbridge driver's part (edge/drivers/weighbridge.py):
(result, detail), or None for an ``open`` the driver answers (``answer``) once the coil is
written or its vehicle has left.

``answer(gate, opened)``: the driver's answer to its pending ``open``. Answers wait
in the uplink's ``cmds`` and go first in ``send_some`` (QoS 1; one lost is no harm: the
controller sends the command again and the repeat is answered ``duplicate``).
"""

import sys

# kind -> handler module (run(up, body)), each loaded only for its own commands
KINDS = {
    "barrier": "cmd_barrier",
    "config": "cmd_config",
    "restart": "cmd_restart",
    "update": "ota",  # over the air: edge/ota.py
}


def _free(name="commands"):
    sys.modules.pop("edge." + name, None)
    if hasattr(sys.modules.get("edge"), name):
        delattr(sys.modules["edge"], name)


def answer(g, opened):
    """The driver's answer to its pending open command (``g``: its ``gate``): ``opened``,
    or its vehicle left first."""
    try:
        cid, g[1] = g[1], None
        _answer(g[2], cid, "done" if opened else "failed",
                "" if opened else "the vehicle left before it opened")
    finally:
        _free()


def handle(up, payload):
    try:
        _handle(up, payload)
    finally:  # this module leaves the heap with the command
        _free()


def _answer(up, cid, result, detail, extra=None):
    for r in up.cmds[1]:
        if r[0] == cid and r[1] is None:
            r[1] = result
    a = {"id": cid, "result": result, "detail": detail}
    if extra:
        a.update(extra)
    up.cmds[2].append(a)
    up.wake = True


def bad(up):
    """Count a bad command in health ``bad_commands``."""
    st = up.stats
    st["bad_commands"] = st.get("bad_commands", 0) + 1


def _open(up, payload):
    """(kind, body, id) of an authentic command, else None (counted, logged)."""
    try:
        fields = up.signer.open(up.t_cmd, payload)
        body = fields["body"]
        cid = body["id"]
        if type(cid) is not str or not 0 < len(cid) <= 40:
            raise ValueError("bad_body: id must be a string of 1-40 characters")
        return fields.get("kind"), body, cid
    except (ValueError, KeyError, TypeError) as exc:  # EnvelopeError is a ValueError
        bad(up)
        up.log("ignored a bad command:", exc)
    return None


def _handle(up, payload):
    # small functions: each one's code is one piece of heap, and the agent's is fragmented
    if up.cmds is None:  # no driver here obeys commands: answers all the same
        up.cmds = [None, [], []]
    opened = _open(up, payload)
    if opened is None:
        return
    kind, body, cid = opened
    recent = up.cmds[1]
    for r in recent:
        if r[0] == cid:
            if r[1] is not None:  # None: in progress, its own answer is coming
                _answer(up, cid, "duplicate", r[1])
            return
    res = _decide(up, kind, body)
    recent.append([cid, None])
    if len(recent) > 8:
        recent.pop(0)
    up.log("command %s %s:" % (cid, kind), res[0] if res else "in progress")
    if res:
        _answer(up, cid, res[0], res[1], res[2] if len(res) > 2 else None)


def _decide(up, kind, body):
    until = body.get("expires_ts")
    if kind not in KINDS or type(until) is not int:
        bad(up)
        return ("refused", "not a command this device knows (kinds: %s) with expires_ts"
                % ", ".join(KINDS))
    if until < up.hal.now_ms():
        return ("expired", "expired at %d, device time %d" % (until, up.hal.now_ms()))
    return _run(KINDS[kind], up, body)


def _run(mod, up, body):
    try:
        __import__("edge." + mod)
        return sys.modules["edge." + mod].run(up, body)
    except MemoryError:  # answered: the controller learns why (and may try again later)
        return ("failed", "out of memory (free %d)" % up.hal.mem_free())
    finally:  # the handler leaves the heap with the command
        _free(mod)
