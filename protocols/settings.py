"""The settings a controller may change on a device (``config`` command, PROTOCOL.md,
Commands): an allow-list per driver type, each with its range.

``SETTINGS[driver_type]``: name -> (low, high, live, number). ``"*"`` holds the ones every
device has; a driver's own are named ``driver.<key>`` (its config's ``driver`` object).
``live``: 1 when the device applies it at once, 0 when it takes effect at the next restart.
``number``: 1 when a fraction is allowed (seconds), 0 for an integer only.
The device's handler for config commands (edge/cmd_config.py, in the history) was taken out
of the firmware: at 96 KiB no command could be handled beside it (README, Remote
configuration); the controller's side checks with this table.
"""

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
MAX_CHANGES = 8


def allowed(driver_type: str) -> dict:
    """name -> (low, high, live, number) of what a ``driver_type`` device may be sent."""
    out = dict(SETTINGS["*"])
    out.update(SETTINGS.get(driver_type, {}))
    return out


def check_value(table: dict, name: str, value: object) -> "str | None":
    """None when ``name`` = ``value`` is allowed by ``table`` (``allowed``), else why not."""
    spec = table.get(name)
    if spec is None:
        return "%s cannot be changed remotely (allowed: %s)" % (name, ", ".join(sorted(table)))
    low, high, _, number = spec
    if not (type(value) is int or (number and type(value) is float)):
        return "%s must be %s" % (name, "a number" if number else "an integer")
    if not low <= value <= high:
        return "%s must be between %s and %s" % (name, low, high)
    return None


def check_config(body: dict) -> "str | None":
    """None when ``body`` is a valid ``config`` command body (besides id and expires_ts)."""
    dtype = body.get("driver")
    if not isinstance(dtype, str) or len(dtype) > 32:
        return "driver must be the device's driver type (a string)"
    changes = body.get("set")
    if not isinstance(changes, dict) or not 0 < len(changes) <= MAX_CHANGES:
        return "set must be an object of 1-%d settings" % MAX_CHANGES
    table = allowed(dtype)
    for name in changes:
        err = check_value(table, name, changes[name])
        if err:
            return err
    return None
