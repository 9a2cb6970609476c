"""The ``config`` command (edge/commands.py ``KINDS``), loaded only for it and freed after.

Body ``{"driver": type, "set": {name: value}}`` (PROTOCOL.md, Commands). Every name must
be in this device's allow-list (``SETTINGS``: the same table as protocols/settings.py,
which is not on the device) with a value of its type in its range, and ``driver`` must be
this device's driver type; else nothing changes and it is answered ``refused`` with the
reason (and counted in ``bad_commands``: the controller checks the same before sending).

The config file is read, changed and written whole as ``<config>.tmp``, closed, then
renamed over the config (edge/persist.py ``replace``): a power cut leaves the old file or
the new one, never a mix. The live settings (``live`` 1) take effect at once, the others
at the next restart; the answer, ``applied``, carries the new values (``values``) and
whether a restart is needed (``restart``). A config that cannot be read or written is
answered ``failed`` and nothing is changed.
"""

import json

from edge.persist import replace

# name -> (low, high, live, number): protocols/settings.py SETTINGS (the test keeps them equal)
SETTINGS = {
    "*": {
        "health_interval_s": (2, 3600, 1, 0),
        "outbox_max_bytes": (16384, 4194304, 0, 0),
        "resend_after_s": (2, 600, 0, 0),
    },
    "weighbridge": {
        "driver.poll_ms": (20, 5000, 1, 0),
        "driver.timeout_ms": (100, 10000, 0, 0),
        "driver.stable_s": (0.2, 60, 0, 1),
        "driver.motion_alarm_s": (5, 3600, 0, 1),
        "driver.min_weight_kg": (0, 100000, 0, 0),
    },
    "tracker": {
        "driver.moving_s": (1, 3600, 1, 1),
        "driver.parked_s": (5, 86400, 1, 1),
        "driver.batch_fixes": (1, 64, 0, 0),
        "driver.batch_max_s": (5, 3600, 0, 1),
    },
}


def check(dtype, body):
    """None when ``body`` may be applied on a ``dtype`` device, else why not."""
    if body.get("driver") != dtype:
        return "this device's driver is %r, not %r" % (dtype, body.get("driver"))
    changes = body.get("set")
    if type(changes) is not dict or not 0 < len(changes) <= 8:
        return "set must be an object of 1-8 settings"
    table = SETTINGS.get(dtype, {})
    for name in changes:
        spec = SETTINGS["*"].get(name) or table.get(name)
        v = changes[name]
        if spec is None:
            return "%s cannot be changed remotely" % name
        if not (type(v) is int or (spec[3] and type(v) is float)):
            return "%s must be %s" % (name, "a number" if spec[3] else "an integer")
        if not spec[0] <= v <= spec[1]:
            return "%s must be between %s and %s" % (name, spec[0], spec[1])
    return None


def write(path, changes):
    """Apply ``changes`` to the config file ``path``: tmp, close, rename over it."""
    with open(path) as f:
        cfg = json.load(f)
    for name in changes:
        if name.startswith("driver."):
            cfg["driver"][name[7:]] = changes[name]
        else:
            cfg[name] = changes[name]
    with open(path + ".tmp", "w") as f:
        json.dump(cfg, f)
    replace(path + ".tmp", path)


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
    """Handle one authentic, unexpired config command: (result, detail, extra)."""
    agent = up.agent
    why = check(agent.driver_type, body)
    if why:
        from edge.commands import bad

        bad(up)
        return ("refused", why)
    changes = body["set"]
    if not agent.cfg_path:
        return ("failed", "this agent was started without a config file to write")
    try:
        write(agent.cfg_path, changes)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return ("failed", ("config %s not written: %s" % (agent.cfg_path, exc))[:200])
    later = [n for n in changes if not live(agent, n, changes[n])]
    return ("applied", "restart needed for " + ", ".join(later) if later else "",
            {"values": changes, "restart": bool(later)})
