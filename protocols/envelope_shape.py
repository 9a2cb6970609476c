"""Shape checks of an envelope's JSON fields (controller side; see ``protocols.envelope``).

Kept apart from ``protocols.envelope`` so that the firmware, which only signs and
reads the controller's acks, does not pay for these checks on its 96 KiB heap.
"""

import json

from protocols.envelope import MAX_KIND_LEN, MAX_SEQ, VERSION, EnvelopeError

# Limits on what a signed message may hold, so that nothing the controller stores can
# later break SQLite (64-bit integers, valid UTF-8) or the API's JSON (finite numbers,
# pydantic's serialiser recursion limit).
MAX_DEPTH = 16
MAX_INT = 2**63


def _refuse_duplicates(pairs):
    # a key given twice can be read two ways (first wins, last wins) and the ledger keeps
    # these very bytes: refused before any field is looked at
    out = {}
    for key, value in pairs:
        if key in out:
            raise EnvelopeError("duplicate_key", "key %r appears twice in one JSON object"
                                % (key[:32],))
        out[key] = value
    return out


try:
    json.loads("{}", object_pairs_hook=_refuse_duplicates)
    DETECTS_DUPLICATES = True
except TypeError:  # MicroPython's json takes no hooks; the controller runs on CPython
    DETECTS_DUPLICATES = False


def _loads(text):
    if DETECTS_DUPLICATES:
        return json.loads(text, object_pairs_hook=_refuse_duplicates)
    return json.loads(text)


def _is_int(value: object) -> bool:
    return type(value) is int


def parse(body_bytes: bytes) -> dict:
    """Decode and shape-check the JSON part of an envelope; return its dict.

    Call only after ``verify``: the signature is what makes the content trusted. A JSON
    object with a key given twice, at any depth, is ``duplicate_key`` (on CPython; see
    ``DETECTS_DUPLICATES``).
    """
    try:
        text = body_bytes.decode()
    except UnicodeError:
        raise EnvelopeError("bad_utf8", "payload is not valid UTF-8")
    try:
        fields = _loads(text)
    except EnvelopeError:
        raise  # duplicate_key (an EnvelopeError is a ValueError: not bad_json)
    except ValueError as exc:
        raise EnvelopeError("bad_json", "payload is not JSON (%s)" % exc)
    except RuntimeError:  # RecursionError on CPython; MicroPython has only RuntimeError
        raise EnvelopeError("bad_json", "payload is nested too deeply to decode")
    check_values(fields)
    check_shape(fields)
    return fields


def _bad_number(value: object) -> bool:
    if isinstance(value, float):
        return value - value != 0  # NaN and +-Infinity (CPython's json accepts them)
    return isinstance(value, int) and not -MAX_INT <= value < MAX_INT


def check_values(fields: object) -> None:
    """Refuse what JSON may spell but the store and the API cannot hold.

    ``bad_json``: NaN, Infinity or an overflowing float such as ``1e400``, and strings
    with lone surrogates (``"\\ud800"``). ``bad_shape``: nesting deeper than
    ``MAX_DEPTH`` or an integer outside the signed 64-bit range. Iterative, so depth
    costs no stack.
    """
    stack = [(fields, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise EnvelopeError("bad_shape", "JSON nested deeper than %d levels" % MAX_DEPTH)
            if isinstance(value, dict):
                for key in value:
                    stack.append((key, depth))
                values = value.values()
            else:
                values = value
            for item in values:
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            try:
                value.encode()
            except UnicodeError:
                raise EnvelopeError("bad_json", "string with a lone surrogate escape")
        elif _bad_number(value):
            if isinstance(value, float):
                raise EnvelopeError("bad_json", "numbers must be finite (no NaN or Infinity)")
            raise EnvelopeError("bad_shape", "integer outside the signed 64-bit range")


def check_shape(fields: object) -> None:
    """Raise EnvelopeError(``bad_shape``) unless ``fields`` has the envelope's fields and types."""
    if not isinstance(fields, dict):
        raise EnvelopeError("bad_shape", "envelope must be a JSON object")
    if fields.get("v") != VERSION or not _is_int(fields.get("v")):
        raise EnvelopeError("bad_shape", "unsupported envelope version %r" % (fields.get("v"),))
    dev = fields.get("dev")
    if not isinstance(dev, str) or not dev:
        raise EnvelopeError("bad_shape", "'dev' must be a non-empty string")
    for name, low, high in (("boot", 0, MAX_SEQ), ("seq", 0, MAX_SEQ), ("ts", 0, 2**53)):
        value = fields.get(name)
        if not _is_int(value) or value < low or value >= high:
            raise EnvelopeError(
                "bad_shape", "'%s' must be an integer in [%d, %d)" % (name, low, high)
            )
    kind = fields.get("kind")
    if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_LEN:
        raise EnvelopeError(
            "bad_shape", "'kind' must be a string of 1-%d characters" % MAX_KIND_LEN
        )
    if not isinstance(fields.get("body"), dict):
        raise EnvelopeError("bad_shape", "'body' must be a JSON object")
