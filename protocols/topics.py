"""The MQTT topic scheme: one subtree per device, so a broker ACL can confine it.

    pw/v1/<site>/<device_id>/<channel>

Device → controller channels: ``evt`` (custody events: weighings, alarms; QoS 1,
from the persistent outbox), ``tele`` (health telemetry; QoS 0), ``state``
(retained birth / last will), ``cmdack`` (command acknowledgements).
Controller → device channels: ``ack`` ("committed up to seq N"), ``cmd`` (commands).
"""

PREFIX = "pw"
VERSION = "v1"

UP_CHANNELS = ("evt", "tele", "state", "cmdack")
DOWN_CHANNELS = ("ack", "cmd")
CHANNELS = UP_CHANNELS + DOWN_CHANNELS

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
MAX_ID_LEN = 64


class TopicError(ValueError):
    """A topic or a topic part does not follow the portwatch scheme."""


def check_id(value: object, what: str = "id") -> str:
    """Raise TopicError unless ``value`` is a usable site or device id."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LEN:
        raise TopicError("%s must be 1-%d characters" % (what, MAX_ID_LEN))
    for ch in value:
        if ch not in _ID_CHARS:
            raise TopicError(
                "%s %r has %r: use letters, digits, '-', '_' or '.'" % (what, value, ch)
            )
    return value


def topic(site: str, device_id: str, channel: str) -> str:
    """Build the topic of one device channel."""
    check_id(site, "site")
    check_id(device_id, "device id")
    if channel not in CHANNELS:
        raise TopicError("unknown channel %r (one of %s)" % (channel, ", ".join(CHANNELS)))
    return "/".join((PREFIX, VERSION, site, device_id, channel))


def parse(value: str) -> "tuple[str, str, str]":
    """Split a topic into (site, device_id, channel) or raise TopicError."""
    parts = value.split("/")
    if len(parts) != 5 or parts[0] != PREFIX or parts[1] != VERSION:
        raise TopicError("not a portwatch v1 topic: %r" % value)
    site, device_id, channel = parts[2], parts[3], parts[4]
    check_id(site, "site")
    check_id(device_id, "device id")
    if channel not in CHANNELS:
        raise TopicError("unknown channel %r in %r" % (channel, value))
    return site, device_id, channel


def uplink_filter(site: str, channel: str) -> str:
    """Subscription filter for one uplink channel of every device at a site."""
    return "/".join((PREFIX, VERSION, check_id(site, "site"), "+", channel))
