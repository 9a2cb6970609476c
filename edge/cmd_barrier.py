"""The ``barrier`` command (edge/commands.py ``KINDS``): the out-gate weighbridge's exit
barrier (``open`` | ``deny`` for the weighing on the deck), loaded only for it and freed
after. (result, detail), or None for an ``open`` the driver answers later
(edge/commands.py ``answer``) once the coil is written or its vehicle has left.
"""


def run(up, body):
    """The out-gate barrier's command (``open`` | ``deny``), for the driver."""
    drv = up.cmds[0]
    seq = body.get("weighing_seq")
    if body.get("action") not in ("open", "deny") or type(seq) is not int or seq < 1 or \
            not isinstance(body.get("reason"), str):
        from edge.commands import bad

        bad(up)
        return ("refused", "not a barrier command with action open or deny, weighing_seq, "
                "expires_ts and reason")
    if not hasattr(drv, "gate"):
        return ("refused", "no driver here obeys commands")
    if drv.gate:
        drv.gate[2] = up  # for the answer it gives later
    return _barrier(drv, body, seq)


def _barrier(drv, body, seq):
    g = drv.gate
    if g is None:
        return ("refused", "this barrier is local: it opens on its own")
    d = drv.detector
    if d.state != "weighed" or d.seq != seq:
        return ("refused", "weighing %d is not on the deck (deck: %s, seq %d)" % (
            seq, d.state, d.seq))
    if g[1]:
        from edge.commands import _answer

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
