"""The ``config`` command (edge/commands.py ``KINDS``), loaded only for it and freed after.

Body ``{"driver": type, "set": {name: value}}`` (PROTOCOL.md, Commands). Every name must
be in this device's allow-list (``SPEC``: the same table as protocols/settings.py,
which is not on the device) with a value of its type in its range, and ``driver`` must be
this device's driver type; else nothing changes and it is answered ``refused`` with the
reason (and counted in ``bad_commands``: the controller checks the same before sending).

The changed settings are kept in ``<data_dir>/settings``, a persist slot (edge/persist.py
``write_slot``: ``settings.tmp`` written, closed, renamed over; magic ``PWst``, JSON,
CRC): a power cut leaves the old slot or the new one whole. At boot edge/config.py
``remote`` puts them over the config file's (which holds the keys and is never rewritten:
no copy of the secret is made, and reading it whole would not fit in the heap that is
left). The live settings (``live`` 1) take effect at once, the others at the next
restart; the answer, ``applied``, carries the new values (``values``) and whether a
restart is needed (``restart``). A slot that cannot be written is answered ``failed``.
"""

import json

from edge.persist import read_slot, write_slot

# what may be changed: a line "<driver type or *>:<name> <low> <high> <live> <number>"
# each, protocols/settings.py SETTINGS (the test keeps them equal). One string, searched
# with find: a table of dicts and tuples cost 1 KB more heap while the command ran
SPEC = """
*:health_interval_s 2 3600 1 0
*:outbox_max_bytes 16384 4194304 0 0
*:resend_after_s 2 600 0 0
weighbridge:driver.poll_ms 20 5000 1 0
weighbridge:driver.timeout_ms 100 10000 0 0
weighbridge:driver.stable_s 0.2 60 0 1
weighbridge:driver.motion_alarm_s 5 3600 0 1
weighbridge:driver.min_weight_kg 0 100000 0 0
tracker:driver.moving_s 1 3600 1 1
tracker:driver.parked_s 5 86400 1 1
tracker:driver.batch_fixes 1 64 0 0
tracker:driver.batch_max_s 5 3600 0 1
"""


def spec(dtype, name):
    """[low, high, live, number] of ``name`` on a ``dtype`` device, or None."""
    for part in ("*", dtype):
        i = SPEC.find("\n%s:%s " % (part, name))
        if i >= 0:
            return [float(x) if "." in x else int(x)
                    for x in SPEC[SPEC.find(" ", i) + 1:SPEC.find("\n", i + 1)].split()]
    return None


def check(dtype, body):
    """None when ``body`` may be applied on a ``dtype`` device, else why not."""
    if body.get("driver") != dtype:
        return "this device's driver is %r, not %r" % (dtype, body.get("driver"))
    changes = body.get("set")
    if type(changes) is not dict or not 0 < len(changes) <= 8:
        return "set must be an object of 1-8 settings"
    for name in changes:
        err = _value(spec(dtype, name), name, changes[name])
        if err:
            return err
    return None


def _value(spec, name, v):
    if spec is None:
        return "%s cannot be changed remotely" % name
    if not (type(v) is int or (spec[3] and type(v) is float)):
        return "%s must be %s" % (name, "a number" if spec[3] else "an integer")
    if not spec[0] <= v <= spec[1]:
        return "%s must be between %s and %s" % (name, spec[0], spec[1])
    return None


def save(path, changes):
    """Merge ``changes`` into the settings slot ``path`` (written whole: tmp, rename)."""
    raw = read_slot(path, b"PWst", True, 600)  # 12 settings at most: no 1 KB buffer
    kept = json.loads(raw) if raw else {}
    kept.update(changes)
    write_slot(path, b"PWst", json.dumps(kept).encode())


def live(agent, name, v):
    """Apply one setting to the running agent; False when it waits for a restart."""
    drv = agent.driver
    if name == "health_interval_s":
        agent.health_ms = v * 1000
    elif name == "driver.poll_ms":
        drv.cfg["poll_ms"] = v
    elif name == "driver.moving_s":
        drv.moving_ms = int(v * 1000)
    elif name == "driver.parked_s":
        drv.parked_ms = int(v * 1000)
    else:
        return False
    return True


def run(up, body):
    """Handle one authentic, unexpired config command: (result, detail[, extra])."""
    agent = up.agent
    why = check(agent.driver_type, body)
    if why:
        from edge.commands import bad

        bad(up)
        return ("refused", why)
    changes = body["set"]
    # the agent's data directory, as its refused counter's path names it (no attribute more)
    path = agent.refused_path[:agent.refused_path.rfind("/")] + "/settings"
    try:
        save(path, changes)
    except (OSError, ValueError) as exc:
        return ("failed", ("%s not written: %s" % (path, exc))[:200])
    later = [n for n in changes if not live(agent, n, changes[n])]
    return ("applied", "restart needed for " + ", ".join(later) if later else "",
            {"values": changes, "restart": bool(later)})
