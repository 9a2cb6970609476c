"""Commands from the controller (PROTOCOL.md, Commands), loaded for each one and freed after.

Each command costs this module's code on the heap only while it is handled: the agent has
about 11 KB to spare at its lowest (edge/FAILURES.md, Heap), and commands come once per
truck. What lives on between commands is the uplink's (``recent``, ``cmdacks``, counts)
and the driver's (``allow``, ``pending``).

``handle(up, payload)``: the uplink's downlink on t_cmd. A message that fails the HMAC for
t_cmd, or has no usable id, is counted (``bad_commands``) and dropped unanswered: the
device neither obeys nor speaks for a sender it cannot authenticate. An id among the last
8 is answered ``duplicate`` with its first result (or not at all while that one is in
progress), never executed again. The body checks are ``protocols.bodies.check_command``'s,
inline (that module is not on the device). Then ``barrier`` decides for the driver.

``barrier(drv, body)``: the weighbridge driver's part (edge/drivers/weighbridge.py):
(result, detail), or None for an ``open`` the driver answers once the coil is written.
"""

import sys


def barrier(drv, body):
    if not drv.ctl:
        return ("refused", "this barrier is local: it opens on its own")
    d = drv.detector
    seq = body["weighing_seq"]
    if d.state != "weighed" or d.seq != seq:
        return ("refused", "weighing %d is not on the deck (deck: %s, seq %d)" % (
            seq, d.state, d.seq))
    if drv.pending:
        drv.answer(drv.pending, "failed", "another command came for this weighing")
        drv.pending = None
    if body["action"] == "deny":
        drv.allow = 0
        return ("done", "held shut")
    if drv.coil is None:
        return ("failed", "no barrier coil in the register map")
    drv.allow = seq
    drv.pending = body["id"]
    return None


def handle(up, payload):
    try:
        _handle(up, payload)
    finally:  # this module leaves the heap with the command
        sys.modules.pop("edge.commands", None)
        if hasattr(sys.modules.get("edge"), "commands"):
            delattr(sys.modules["edge"], "commands")


def _handle(up, payload):
    st = up.stats
    try:
        fields = up.signer.open(up.t_cmd, payload)
        body = fields["body"]
        cid = body["id"]
        if type(cid) is not str or not 0 < len(cid) <= 40:
            raise ValueError("bad_body: id must be a string of 1-40 characters")
    except (ValueError, KeyError, TypeError) as exc:  # EnvelopeError is a ValueError
        st["bad_commands"] += 1
        up.log("ignored a bad command:", exc)
        return
    for r in up.recent:
        if r[0] == cid:
            if r[1] is not None:  # None: in progress, its own answer is coming
                up.answer(cid, "duplicate", r[1])
            return
    st["commands"] += 1
    seq, until = body.get("weighing_seq"), body.get("expires_ts")
    if fields.get("kind") != "barrier" or body.get("action") not in ("open", "deny") or \
            type(seq) is not int or type(until) is not int or seq < 1 or \
            not isinstance(body.get("reason"), str):
        st["bad_commands"] += 1
        res = ("refused", "not a barrier command with action open or deny, weighing_seq, "
               "expires_ts and reason")
    elif until < up.hal.now_ms():
        res = ("expired", "expired at %d, device time %d" % (until, up.hal.now_ms()))
    elif up.driver is None or not hasattr(up.driver, "ctl"):
        res = ("refused", "no driver here obeys commands")
    else:
        res = barrier(up.driver, body)
    up.recent.append([cid, None])
    if len(up.recent) > 8:
        up.recent.pop(0)
    up.log("command %s %s for seq %s:" % (cid, body.get("action"), seq),
           res[0] if res else "in progress")
    if res:
        up.answer(cid, res[0], res[1])
