"""Shape checks of an envelope's JSON fields (controller side; see ``protocols.envelope``).

Kept apart from ``protocols.envelope`` so that the firmware, which only signs and
reads the controller's acks, does not pay for these checks on its 96 KiB heap.
"""

import json

from protocols.envelope import MAX_KIND_LEN, MAX_SEQ, VERSION, EnvelopeError


def _is_int(value: object) -> bool:
    return type(value) is int


def parse(body_bytes: bytes) -> dict:
    """Decode and shape-check the JSON part of an envelope; return its dict.

    Call only after ``verify``: the signature is what makes the content trusted.
    """
    try:
        text = body_bytes.decode()
    except UnicodeError:
        raise EnvelopeError("bad_utf8", "payload is not valid UTF-8")
    try:
        fields = json.loads(text)
    except ValueError as exc:
        raise EnvelopeError("bad_json", "payload is not JSON (%s)" % exc)
    check_shape(fields)
    return fields


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
