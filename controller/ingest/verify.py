"""Pure checks of one received MQTT message: topic, device, signature, shape, body.

Order matters: the signature is checked before the JSON is parsed, so that
unsigned garbage costs one HMAC and is never decoded. Deduplication and freshness
need stored state and happen in the batch writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.keyring import KeyRing
from controller.ledger import device_keys as device_sigs
from protocols import bodies, envelope, topics


@dataclass(frozen=True, slots=True)
class Received:
    """One message as it came off the broker."""

    topic: str
    payload: bytes
    received_ms: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message whose signature, shape and body are valid."""

    msg: Received
    device_id: str
    channel: str
    key_id: str
    fields: dict[str, Any]
    # the hex of the device signature line (custody events only), checked by the writer
    # against the key registered for the device (controller/ledger/device_keys.py)
    es256: str | None = None

    @property
    def seq(self) -> int:
        value: int = self.fields["seq"]
        return value


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message refused with a stable reason code and a human detail."""

    msg: Received
    reason: str
    detail: str
    device_id: str | None = None


Verdict = Accepted | Rejected


def check_message(msg: Received, *, site: str, keys: KeyRing) -> Verdict:
    """Classify one message; never raises.

    A retired key is judged at ``msg.received_ms``, the controller's receipt clock: a
    device's own clock must not decide whether its key still counts.
    """
    try:
        msg_site, device_id, channel = topics.parse(msg.topic)
    except topics.TopicError as exc:
        return Rejected(msg, "bad_topic", str(exc))
    if msg_site != site:
        return Rejected(msg, "bad_topic", f"site {msg_site!r} is not this controller's {site!r}")
    if channel in topics.DOWN_CHANNELS:
        return Rejected(msg, "bad_topic", f"{channel!r} is a controller-to-device channel")
    device_keys = keys.get(device_id)
    if device_keys is None:
        return Rejected(msg, "unknown_device", f"device {device_id!r} is not registered",
                        device_id)

    def secret_for(key_id: str) -> bytes | None:
        key = device_keys.get(key_id)
        return key.secret if key is not None else None

    try:
        fields, key_id, es256 = envelope.open_parts(secret_for, msg.topic, msg.payload)
    except envelope.EnvelopeError as exc:
        return Rejected(msg, exc.reason, exc.detail, device_id)
    if not device_keys[key_id].valid_at(msg.received_ms):
        # checked after the signature, so this reason means "authentic but retired"
        return Rejected(msg, "expired_key", f"key {key_id!r} of {device_id!r} was retired at "
                        f"{device_keys[key_id].valid_until_ms} ms; use its newest key",
                        device_id)
    if fields["dev"] != device_id:
        return Rejected(msg, "device_mismatch",
                        f"envelope says {fields['dev']!r}, topic says {device_id!r}", device_id)
    if es256 is not None and channel != "evt":
        return Rejected(msg, "bad_shape", f"an es256 line on {channel!r}: only custody events "
                        "(evt) carry a device signature", device_id)
    if channel == "evt" and fields["seq"] < 1:
        return Rejected(msg, "bad_shape", "custody events need seq >= 1", device_id)
    problem = bodies.check(channel, fields["kind"], fields["body"])
    if problem:
        return Rejected(msg, "bad_body", problem, device_id)
    if fields["kind"] == "birth" and "pub" in fields["body"]:
        try:
            device_sigs.check_pub(fields["body"]["pub"])
        except device_sigs.DeviceKeyError as exc:
            return Rejected(msg, "bad_body", f"pub: {exc}", device_id)
    return Accepted(msg, device_id, channel, key_id, fields, es256)
