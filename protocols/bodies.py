"""Body shapes of each message kind, checked by the controller and by the edge's tests.

Returns an error string (what is wrong) or None; pure and MicroPython-compatible.
Kinds per channel: ``evt``: weighing, positions (a tracker's batch of fixes), alarm, gap
(the device declares its record of this seq lost: unreadable on flash), refused (the
device could not store ``count`` custody events, ``kinds`` of them each, between
``since_ts`` and ``until_ts`` of device time, for ``reason`` ``outbox_full`` or
``write_error``: edge/agent.py); ``tele``: health;
``state``: birth, death.
"""

from protocols import passage as _passage
from protocols import settings as _settings

KINDS = {
    "evt": ("weighing", "positions", "alarm", "gap", "refused", "sample"),
    "tele": ("health",),
    "state": ("birth", "death"),
    "cmdack": ("cmdack",),
}

MAX_PLATE = 32
# a weighing's optional weight-curve summary (edge/drivers/weighing.py), a list of
# integers >= 0 in this order (an array, as fixes are: outbox bytes)
CURVE_FIELDS = ("samples", "settle_ms", "max_step_kg", "reversals", "restarts")
# positions: one fix is [ts_ms, lat_e6, lon_e6, speed_dkmh, course_deg, sats, hdop_x10]
# (device time in ms; millionths of a degree, south and west negative; 0.1 km/h; 0-359;
# satellites used; HDOP x 10), oldest first
FIX_FIELDS = ("ts_ms", "lat_e6", "lon_e6", "speed_dkmh", "course_deg", "sats", "hdop_x10")
MAX_FIXES = 64
POSITION_SOURCES = ("nmea", "jtt808")
ALARM_STATES = ("raised", "cleared")
REFUSED_REASONS = ("outbox_full", "write_error")
# sample: a lab analyzer's result (protocols/labline.py); findings are
# [latin_name, count, sample_mass_g]
SAMPLE_BASES = ("wet", "dry")
MAX_SAMPLE_ID = 40
MAX_FINDINGS = 16


def _int(body, name, low=None):
    value = body.get(name)
    if type(value) is not int:
        return "%s must be an integer" % name
    if low is not None and value < low:
        return "%s must be >= %d" % (name, low)
    return None


def _weighing(body):
    plate = body.get("plate")
    if not isinstance(plate, str) or len(plate) > MAX_PLATE:
        return "plate must be a string of at most %d characters" % MAX_PLATE
    for name, low in (("gross_kg", None), ("tare_kg", None), ("net_kg", None),
                      ("division_kg", 1), ("stable_ms", 0), ("arrived_ts", 0)):
        err = _int(body, name, low)
        if err:
            return err
    # optional (older agents send neither): the weight curve's summary, and the position
    # sensors blocked at the weighed reading
    curve = body.get("curve")
    if curve is not None:
        if not isinstance(curve, list) or len(curve) != len(CURVE_FIELDS):
            return "curve must be a list of %d integers %s" % (len(CURVE_FIELDS),
                                                              ",".join(CURVE_FIELDS))
        for v in curve:
            if type(v) is not int or v < 0:
                return "curve holds integers >= 0 only"
    blocked = body.get("blocked")
    if blocked is not None:
        if not isinstance(blocked, list) or len(blocked) > 8:
            return "blocked must be a list of at most 8 sensor names"
        for name in blocked:
            if not isinstance(name, str) or not 0 < len(name) <= 32:
                return "blocked holds sensor names (1-32 characters)"
    return None


def _fix(fix, prev_ts):
    if not isinstance(fix, list) or len(fix) != len(FIX_FIELDS):
        return "a fix is a list of %d integers %s" % (len(FIX_FIELDS), ",".join(FIX_FIELDS))
    for v in fix:
        if type(v) is not int:
            return "a fix holds integers only"
    ts, lat, lon, speed, course, sats, hdop = fix
    if ts < 0 or ts < prev_ts:
        return "fixes must be in device-time order (ts_ms not decreasing)"
    if not -90000000 <= lat <= 90000000 or not -180000000 <= lon <= 180000000:
        return "lat_e6 must be within +-90e6 and lon_e6 within +-180e6"
    if speed < 0 or not 0 <= course < 360 or sats < 0 or hdop < 0:
        return "speed, sats and hdop must be >= 0 and course 0-359"
    return None


def _positions(body):
    fixes = body.get("fixes")
    if not isinstance(fixes, list) or not 1 <= len(fixes) <= MAX_FIXES:
        return "fixes must be a list of 1-%d fixes" % MAX_FIXES
    prev = 0
    for fix in fixes:
        err = _fix(fix, prev)
        if err:
            return err
        prev = fix[0]
    for name in ("ign", "ext_power", "tamper"):
        if name in body and type(body[name]) is not bool:
            return "%s must be true or false" % name
    if "src" in body and body["src"] not in POSITION_SOURCES:
        return "src must be one of %s" % ", ".join(POSITION_SOURCES)
    # optional, from JT/T 808: each fix's alarm and status DWORDs, one per fix
    for name in ("alarm_bits", "status_bits"):
        if name in body:
            bits = body[name]
            if not isinstance(bits, list) or len(bits) != len(fixes):
                return "%s must be a list with one DWORD per fix" % name
            for v in bits:
                if type(v) is not int or not 0 <= v <= 0xFFFFFFFF:
                    return "%s must hold integers 0-4294967295" % name
    return None


def _alarm(body):
    alarm = body.get("alarm")
    if not isinstance(alarm, str) or not alarm or len(alarm) > 48:
        return "alarm must be a code of 1-48 characters"
    if body.get("state") not in ALARM_STATES:
        return "state must be 'raised' or 'cleared'"
    if "detail" in body and not isinstance(body["detail"], dict):
        return "detail must be an object"
    return None


def _health(body):
    if not isinstance(body.get("fw"), str):
        return "fw (firmware version) must be a string"
    for name in ("uptime_s", "mem_free", "backlog"):
        if name in body:
            err = _int(body, name, 0)
            if err:
                return err
    return None


def _birth(body):
    if not isinstance(body.get("fw"), str):
        return "fw (firmware version) must be a string"
    pub = body.get("pub")
    # the device's public key (optional: agents from before device keys send none); the
    # controller also checks that it is a point on the curve
    if pub is not None and (not isinstance(pub, str) or len(pub) != 130
                            or not pub.startswith("04") or pub.strip("0123456789abcdef")):
        return "pub must be 130 lowercase hex digits: an uncompressed P-256 point ('04' X Y)"
    return None


def _any(body):
    return None


def _gap(body):
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason or len(reason) > 48:
        return "reason must be a string of 1-48 characters"
    return None


def _refused(body):
    for name, low in (("count", 1), ("since_ts", 0), ("until_ts", 0)):
        err = _int(body, name, low)
        if err:
            return err
    if body["until_ts"] < body["since_ts"]:
        return "until_ts must not be before since_ts"
    kinds = body.get("kinds")
    if not isinstance(kinds, dict) or not kinds:
        return "kinds must be an object of kind -> count"
    total = 0
    for kind in kinds:
        if not isinstance(kind, str) or not kind or len(kind) > 32:
            return "kinds must be named by strings of 1-32 characters"
        err = _int(kinds, kind, 1)
        if err:
            return "kinds: " + err
        total += kinds[kind]
    if total != body["count"]:
        return "count must be the sum of kinds"
    if body.get("reason") not in REFUSED_REASONS:
        return "reason must be 'outbox_full' or 'write_error'"
    return None


def _sample(body):
    for name in ("sample_id", "calibration_id"):
        v = body.get(name)
        if not isinstance(v, str) or not 0 < len(v) <= MAX_SAMPLE_ID:
            return "%s must be a string of 1-%d characters" % (name, MAX_SAMPLE_ID)
    for name in ("sampled_ts", "moisture_pm", "protein_pm", "impurity_pm",
                 "test_weight_g_per_l"):
        err = _int(body, name, 0)
        if err:
            return err
    for name in ("moisture_pm", "protein_pm", "impurity_pm"):
        if body[name] > 1000:
            return "%s must be 0-1000 (per mille)" % name
    if body.get("basis") not in SAMPLE_BASES:
        return "basis must be 'wet' or 'dry'"
    if type(body.get("outlier")) is not bool:
        return "outlier must be true or false"
    if "fe_pm" in body and (type(body["fe_pm"]) is not int or not 0 <= body["fe_pm"] <= 1000):
        # optional: iron content of an ore sample, judged by the recall limits
        return "fe_pm, when given, must be an integer 0-1000 (per mille)"
    findings = body.get("findings")
    if not isinstance(findings, list) or len(findings) > MAX_FINDINGS:
        return "findings must be a list of at most %d findings" % MAX_FINDINGS
    for f in findings:
        if not isinstance(f, list) or len(f) != 3 or not isinstance(f[0], str) \
                or not 0 < len(f[0]) <= 64 or type(f[1]) is not int or f[1] < 0 \
                or type(f[2]) is not int or f[2] < 0:
            return "a finding is [latin_name, count >= 0, sample_mass_g >= 0]"
    return None


# Commands, controller -> device on ``cmd`` (PROTOCOL.md, Commands). The kind is the
# envelope's; each kind's own checks are in _COMMAND_CHECKS (below check_command).
BARRIER_ACTIONS = ("open", "deny")
CMDACK_RESULTS = ("done", "duplicate", "expired", "refused", "failed", "applied",
                  "restarting")
MAX_COMMAND_ID = 40
MAX_DISPLAY = 64
MAX_REASON = 200


def _command_id(body):
    cid = body.get("id")
    if not isinstance(cid, str) or not cid or len(cid) > MAX_COMMAND_ID:
        return "id must be a string of 1-%d characters" % MAX_COMMAND_ID
    return None


def check_command(kind: str, body: dict) -> "str | None":
    """None when ``body`` is a valid command of ``kind`` (sent on ``cmd``), else what is
    wrong. The agent makes the same checks inline (edge/uplink.py: its heap)."""
    if kind not in COMMAND_KINDS:
        return "command kind %r is not one of %s" % (kind, ", ".join(COMMAND_KINDS))
    if not isinstance(body, dict):
        return "body must be an object"
    err = _command_id(body) or _int(body, "expires_ts", 1)
    if err:
        return err
    return _COMMAND_CHECKS[kind](body)


def _barrier(body):
    if body.get("action") not in BARRIER_ACTIONS:
        return "action must be 'open' or 'deny'"
    err = _int(body, "weighing_seq", 1)
    if err:
        return err
    reason = body.get("reason")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        return "reason must be a string of at most %d characters" % MAX_REASON
    display = body.get("display")
    if display is not None and (not isinstance(display, str) or len(display) > MAX_DISPLAY):
        return "display must be a string of at most %d characters" % MAX_DISPLAY
    return None


def _restart(body):
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        return "reason must be a string of at most %d characters" % MAX_REASON
    return None


def _update(body):
    # over the air (edge/ota.py): the version, where its bundle is, the download token
    v, url, tok = body.get("version"), body.get("url"), body.get("token")
    if not isinstance(v, str) or not 0 < len(v) <= 32 or \
            v.strip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") or \
            v[0] == ".":
        return "version must be 1-32 letters, digits, '.', '_' or '-'"
    if not isinstance(url, str) or not url.startswith("http://") or len(url) > 200:
        return "url must be the bundle's http:// base URL (at most 200 characters)"
    if not isinstance(tok, str) or not 16 <= len(tok) <= 64:
        return "token must be the download token (16-64 characters)"
    return _int(body, "trial_s", 1) or _int(body, "size", 0)


# kind -> its own checks (after id and expires_ts): a kind adds one line
_COMMAND_CHECKS = {"barrier": _barrier, "config": _settings.check_config,
                   "restart": _restart, "update": _update}
COMMAND_KINDS = tuple(_COMMAND_CHECKS)


def _cmdack(body):
    err = _command_id(body)
    if err:
        return err
    if body.get("result") not in CMDACK_RESULTS:
        return "result must be one of %s" % ", ".join(CMDACK_RESULTS)
    detail = body.get("detail", "")
    if not isinstance(detail, str) or len(detail) > MAX_REASON:
        return "detail must be a string of at most %d characters" % MAX_REASON
    # a config's answer: the settings' values now, and whether a restart is needed
    if "values" in body and not isinstance(body["values"], dict):
        return "values must be an object"
    if "restart" in body and type(body["restart"]) is not bool:
        return "restart must be true or false"
    return None


_CHECKS = {"gap": _gap, "refused": _refused, "weighing": _weighing, "positions": _positions,
           "alarm": _alarm, "sample": _sample,
           "health": _health, "birth": _birth, "death": _any, "cmdack": _cmdack}


# passage: a rail reader's train; its shape lives in protocols/passage.py
KINDS["evt"] = KINDS["evt"] + ("passage",)
_CHECKS["passage"] = _passage.check


def check(channel: str, kind: str, body: dict) -> "str | None":
    """Return None when ``body`` is a valid ``kind`` on ``channel``, else what is wrong."""
    allowed = KINDS.get(channel)
    if allowed is None:
        return "channel %r carries no device messages" % channel
    if kind not in allowed:
        return "kind %r is not allowed on %s (allowed: %s)" % (kind, channel, ", ".join(allowed))
    return _CHECKS[kind](body)
