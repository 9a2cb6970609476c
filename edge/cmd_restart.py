"""The ``restart`` command (edge/commands.py ``KINDS``), loaded only for it and freed after.

Answered ``restarting``; the uplink restarts the device (HAL ``reset``) once that answer
is published (edge/uplink.py ``send_some``), so the controller hears it before the link
drops. Nothing is lost: custody events are in the outbox on flash, acknowledged or not,
and sent after the boot like after any reboot.
"""


def run(up, body):
    """Handle one authentic, unexpired restart command: (result, detail)."""
    reason = body.get("reason", "")
    if type(reason) is not str:
        from edge.commands import bad

        bad(up)
        return ("refused", "reason must be a string")
    up.log("restart asked by the controller:", reason)
    return ("restarting", "after this answer is sent")


def reset(hal):
    """Restart the device: the HAL's ``reset`` (the unix port: exit with RESTART_EXIT for
    ``portwatch agent`` or the test rig to start it again), else ``machine.reset()``."""
    r = getattr(hal, "reset", None)
    if r is None:
        import machine

        r = machine.reset
    r()
