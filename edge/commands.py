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
inline (that module is not on the device). Then ``barrier`` decides for the driver.

``barrier(drv, body)``: the weighbridge driver's part (edge/drivers/weighbridge.py):
(result, detail), or None for an ``open`` the driver answers (``answer``) once the coil is
written or its vehicle has left.

``answer(gate, opened)``: the driver's answer to its pending ``open``. Answers wait
in the uplink's ``cmds`` and go first in ``send_some`` (QoS 1; one lost is no harm: the
controller sends the command again and the repeat is answered ``duplicate``).
"""

import sys


def _free():
    sys.modules.pop("edge.commands", None)
    if hasattr(sys.modules.get("edge"), "commands"):
        delattr(sys.modules["edge"], "commands")


def answer(g, opened):
    """The driver's answer to its pending open command (``g``: its ``gate``): ``opened``,
    or its vehicle left first."""
    try:
        cid, g[1] = g[1], None
        _answer(g[2], cid, "done" if opened else "failed",
                "" if opened else "the vehicle left before it opened")
    finally:
        _free()


def barrier(drv, body):
    g = drv.gate
    if g is None:
        return ("refused", "this barrier is local: it opens on its own")
    d = drv.detector
    seq = body["weighing_seq"]
    if d.state != "weighed" or d.seq != seq:
        return ("refused", "weighing %d is not on the deck (deck: %s, seq %d)" % (
            seq, d.state, d.seq))
    if g[1]:
        _answer(g[2], g[1], "failed", "another command came for this weighing")
        g[1] = None
    if body["action"] == "deny":
        g[0] = 0
        return ("done", "held shut")
    if drv.coil is None:
        return ("failed", "no barrier coil in the register map")
    g[0] = seq
    g[1] = body["id"]
    return None


def handle(up, payload):
    try:
        _handle(up, payload)
    finally:  # this module leaves the heap with the command
        _free()


def _answer(up, cid, result, detail):
    for r in up.cmds[1]:
        if r[0] == cid and r[1] is None:
            r[1] = result
    up.cmds[2].append({"id": cid, "result": result, "detail": detail})
    up.wake = True


def _bad(up):
    st = up.stats
    st["bad_commands"] = st.get("bad_commands", 0) + 1


def _handle(up, payload):
    if up.cmds is None:  # no driver here obeys commands: answers all the same
        up.cmds = [None, [], []]
    try:
        fields = up.signer.open(up.t_cmd, payload)
        body = fields["body"]
        cid = body["id"]
        if type(cid) is not str or not 0 < len(cid) <= 40:
            raise ValueError("bad_body: id must be a string of 1-40 characters")
    except (ValueError, KeyError, TypeError) as exc:  # EnvelopeError is a ValueError
        _bad(up)
        up.log("ignored a bad command:", exc)
        return
    recent = up.cmds[1]
    for r in recent:
        if r[0] == cid:
            if r[1] is not None:  # None: in progress, its own answer is coming
                _answer(up, cid, "duplicate", r[1])
            return
    seq, until = body.get("weighing_seq"), body.get("expires_ts")
    drv = up.cmds[0]
    if fields.get("kind") != "barrier" or body.get("action") not in ("open", "deny") or \
            type(seq) is not int or type(until) is not int or seq < 1 or \
            not isinstance(body.get("reason"), str):
        _bad(up)
        res = ("refused", "not a barrier command with action open or deny, weighing_seq, "
               "expires_ts and reason")
    elif until < up.hal.now_ms():
        res = ("expired", "expired at %d, device time %d" % (until, up.hal.now_ms()))
    elif not hasattr(drv, "gate"):
        res = ("refused", "no driver here obeys commands")
    else:
        if drv.gate:
            drv.gate[2] = up  # for the answer it gives later
        res = barrier(drv, body)
    recent.append([cid, None])
    if len(recent) > 8:
        recent.pop(0)
    up.log("command %s %s for seq %s:" % (cid, body.get("action"), seq),
           res[0] if res else "in progress")
    if res:
        _answer(up, cid, res[0], res[1])
