"""A new firmware version on trial confirms itself (edge/agent.py runs ``watch``; loaded
only while a trial is open).

Confirmed once the link has been up, with health sent, for ``trial_s`` seconds without a
break: the ``fw/trial`` slot is removed (atomic), and the version stays. Not confirmed
within ``3 * trial_s`` (the broker never came back, the agent's tasks never ran right):
the device resets, and the next boot rolls back (edge/fwboot.py). A crash before that,
or a power cut, also ends in a boot that rolls back.
"""

from edge.persist import read_slot, remove


def trial_s(data):
    """The open trial's seconds, or None when no version is on trial."""
    t = read_slot(data + "/fw/trial", b"PWft", True, 200)
    return int(t.decode().split("\n")[3]) if t else None


async def watch(agent, data, secs):
    hal, up = agent.hal, agent.uplink
    start = since = hal.ticks_ms()
    sent = up.stats["health_sent"]
    agent.log("firmware on trial: confirms after %d s linked with health sent" % secs)
    while True:
        now = hal.ticks_ms()
        if not up.linked:
            since, sent = now, up.stats["health_sent"]
        elif up.stats["health_sent"] > sent and hal.ticks_diff(now, since) >= secs * 1000:
            remove(data + "/fw/trial")
            agent.log("firmware confirmed after its trial")
            return
        if hal.ticks_diff(now, start) > 3 * secs * 1000:
            agent.log("firmware not confirmed within %d s: resetting to roll back" % (3 * secs))
            from edge.ota import reset

            reset(hal)
        await hal.sleep_ms(200)
