"""check_message: every rejection reason, and the happy path."""

from __future__ import annotations

from typing import Any

from controller import registry
from controller.ingest.verify import Accepted, Received, Rejected, check_message
from controller.storage import Store
from ctl_helpers import SITE, signed


def _check(db: Store, msg: Received) -> Accepted | Rejected:
    return check_message(msg, site=SITE, keys=registry.secrets_by_device(db))


def test_check_message_accepts_signed_weighing(db: Store,
                                               device: dict[str, Any]) -> None:
    v = _check(db, signed(device, seq=1))
    assert isinstance(v, Accepted)
    assert (v.device_id, v.channel, v.seq) == ("wb-1", "evt", 1)


def test_check_message_rejects_each_bad_input_with_its_reason(
        db: Store, device: dict[str, Any]) -> None:
    good = signed(device, seq=1)
    topic = good.topic
    cases = {
        "bad_topic": Received("pw/v1/test-site/wb-1/nope", good.payload, 0),
        "unknown_device": Received(topic.replace("wb-1", "wb-9"), good.payload, 0),
        "bad_signature": Received(topic, good.payload.replace(b"45240", b"45241"), 0),
        "unknown_key": signed(device, seq=1, key_id="k7"),
        "no_signature": Received(topic, b'{"v": 1}', 0),
        "too_large": Received(topic, b"x" * 20000, 0),
        "bad_body": signed(device, seq=2, body={"plate": 5}),
    }
    other = registry.provision(db, device_id="wb-2", site=SITE, kind="weighbridge")
    forged = signed(device, seq=3, secret=bytes.fromhex(other["secret_hex"]))
    cases["bad_signature_stolen_topic"] = forged
    for expected, msg in cases.items():
        v = _check(db, msg)
        assert isinstance(v, Rejected), expected
        assert v.reason == expected.removesuffix("_stolen_topic"), (expected, v.detail)


def test_check_message_rejects_wrong_site_and_downlink_channels(
        db: Store, device: dict[str, Any]) -> None:
    msg = signed(device, seq=1)
    wrong_site = Received(msg.topic.replace(SITE, "elsewhere"), msg.payload, 0)
    downlink = Received(msg.topic.replace("/evt", "/ack"), msg.payload, 0)
    for m in (wrong_site, downlink):
        v = _check(db, m)
        assert isinstance(v, Rejected) and v.reason == "bad_topic"


def test_check_message_rejects_kind_not_allowed_on_channel(
        db: Store, device: dict[str, Any]) -> None:
    v = _check(db, signed(device, seq=1, channel="tele", kind="weighing"))
    assert isinstance(v, Rejected) and v.reason == "bad_body"
