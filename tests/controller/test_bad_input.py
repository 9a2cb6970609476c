"""Bad input at the controller's MQTT door: verify + commit, every refusal counted, none stored.

Every case here is *validly signed* unless it tests the signature itself: a device
(or whoever holds its key) is the one sending the garbage, so the signature check
cannot be what saves the controller. Each case must be rejected with its stable
reason, counted once in the batch result and in ``rejections``, and leave the
``messages``, ``weighings``, ``alarms`` and ``health`` tables and the device row as
they were. The property tests at the end throw arbitrary bytes and arbitrary signed
JSON at the same door: nothing raises.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller import registry
from controller.ingest.verify import Accepted, Received, Rejected, Verdict, check_message
from controller.ingest.writer import BatchResult, commit_batch
from controller.storage import Store
from ctl_helpers import SITE, weighing_body
from protocols import envelope, envelope_shape, topics

TABLES = ("messages", "weighings", "alarms", "health")
KIND_OF = {"evt": "weighing", "tele": "health", "state": "birth"}
HEALTH = {"fw": "0.1.0", "uptime_s": 5, "mem_free": 40000, "backlog": 0}
ALARM = {"alarm": "overload", "state": "raised", "detail": {"kg": 61000}}


# --- building signed garbage -------------------------------------------------------------

def _sign(device: dict[str, Any], json_bytes: bytes, channel: str = "evt") -> Received:
    """Sign arbitrary bytes as ``device`` would: the signature is valid whatever they hold."""
    topic = topics.topic(SITE, device["device_id"], channel)
    sig = envelope.signature(bytes.fromhex(device["secret_hex"]), topic, json_bytes)
    return Received(topic, json_bytes + b"\n" + device["key_id"].encode() + b":" + sig.encode(),
                    1764072000500)


def _fields(channel: str = "evt", **overrides: Any) -> dict[str, Any]:
    kind = overrides.pop("kind", KIND_OF[channel])
    body = {"weighing": weighing_body(), "health": HEALTH, "birth": {"fw": "0.1.0"},
            "alarm": ALARM}.get(kind if isinstance(kind, str) else "", {})
    fields = envelope.make("wb-1", 1, 1, 1764072000000, kind, dict(body))
    fields.update(overrides)
    return fields


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # allow_nan: writes the NaN/Infinity literals we test


def _body(channel: str, kind: str, **body: Any) -> bytes:
    return _dumps(_fields(channel, kind=kind, body=body))


def _ingest(db: Store, *msgs: Received) -> tuple[list[Verdict], BatchResult]:
    verdicts = [check_message(m, site=SITE, keys=registry.secrets_by_device(db)) for m in msgs]
    return verdicts, commit_batch(db.conn, verdicts)


def _snapshot(db: Store) -> dict[str, Any]:
    state = {t: db.db[t].count for t in TABLES}
    state["device"] = db.conn.execute(
        "SELECT status, boot, committed_seq, tele_seq, health_json FROM devices "
        "WHERE device_id='wb-1'").fetchone()
    return state


def _assert_refused(db: Store, msg: Received, reason: str) -> None:
    before = _snapshot(db)
    n_rejections = db.db["rejections"].count
    (verdict,), result = _ingest(db, msg)
    assert isinstance(verdict, Rejected), f"accepted: {msg.payload[:120]!r}"
    assert verdict.reason == reason, (verdict.reason, verdict.detail)
    assert result.rejected == {reason: 1}
    assert (result.stored, result.telemetry) == (0, 0)
    assert _snapshot(db) == before
    rows = list(db.db.query("SELECT reason, size FROM rejections ORDER BY id DESC LIMIT 1"))
    assert db.db["rejections"].count == n_rejections + 1
    assert rows == [{"reason": reason, "size": len(msg.payload)}]


# --- the cases ----------------------------------------------------------------------------

def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


CASES: dict[str, tuple[str, bytes, str]] = {
    # name: (channel, signed JSON bytes, reason)
    "invalid utf-8 byte": ("evt", _dumps(_fields()).replace(b"B12345", b"B\xff\xfe345"),
                           "bad_utf8"),
    "overlong utf-8": ("evt", _dumps(_fields()).replace(b"B12345", b"B\xc0\xaf345"), "bad_utf8"),
    "utf-8 encoded surrogate": ("evt", _dumps(_fields()).replace(b"B12345", b"B\xed\xa0\x80"),
                                "bad_utf8"),
    "truncated json": ("evt", _dumps(_fields())[:-7], "bad_json"),
    "empty": ("evt", b"", "bad_json"),
    "json array": ("evt", b"[1, 2, 3]", "bad_shape"),
    "json string": ("evt", b'"weighing"', "bad_shape"),
    "json null": ("evt", b"null", "bad_shape"),
    "empty object": ("evt", b"{}", "bad_shape"),
    "version 2": ("evt", _dumps(_fields(v=2)), "bad_shape"),
    "version true": ("evt", _dumps(_fields(v=True)), "bad_shape"),
    "version 1.0": ("evt", _dumps(_fields(v=1.0)), "bad_shape"),
    "dev number": ("evt", _dumps(_fields(dev=1)), "bad_shape"),
    "seq string": ("evt", _dumps(_fields(seq="1")), "bad_shape"),
    "seq float": ("evt", _dumps(_fields(seq=1.0)), "bad_shape"),
    "seq bool": ("evt", _dumps(_fields(seq=True)), "bad_shape"),
    "seq zero on evt": ("evt", _dumps(_fields(seq=0)), "bad_shape"),
    "seq list": ("evt", _dumps(_fields(seq=[1])), "bad_shape"),
    "boot negative": ("evt", _dumps(_fields(boot=-1)), "bad_shape"),
    "ts past 2**53": ("evt", _dumps(_fields(ts=2**53)), "bad_shape"),
    "kind empty": ("evt", _dumps(_fields(kind="")), "bad_shape"),
    "kind too long": ("evt", _dumps(_fields(kind="w" * 33)), "bad_shape"),
    "kind object": ("evt", _dumps(_fields(kind={"k": 1})), "bad_shape"),
    "body list": ("evt", _dumps(_fields(body=[1])), "bad_shape"),
    "body null": ("evt", _dumps(_fields(body=None)), "bad_shape"),
    # huge numbers
    "seq 10**30": ("evt", _dumps(_fields(seq=10**30)), "bad_shape"),
    "gross 2**63": ("evt", _body("evt", "weighing", **dict(weighing_body(), gross_kg=2**63)),
                    "bad_shape"),
    "tare -2**63-1": ("evt", _body("evt", "weighing", **dict(weighing_body(), tare_kg=-2**63 - 1)),
                      "bad_shape"),
    "4000-digit int in health": ("tele", _body("tele", "health", fw="1", x=int("9" * 4000)),
                                 "bad_shape"),
    "float overflow 1e400": ("tele", _body("tele", "health", fw="1").replace(
        b'"fw"', b'"x": 1e400, "fw"'), "bad_json"),
    # NaN and Infinity: CPython's json reads them, JSON (RFC 8259) has no such thing
    "NaN ts": ("evt", _dumps(_fields(ts=math.nan)), "bad_json"),
    "NaN in body": ("tele", _body("tele", "health", fw="1", clock_offset_ms=math.nan),
                    "bad_json"),
    "Infinity in alarm detail": ("evt", _body("evt", "alarm", alarm="overload", state="raised",
                                              detail={"kg": math.inf}), "bad_json"),
    "-Infinity in a list": ("tele", _body("tele", "health", fw="1", xs=[1, -math.inf]),
                            "bad_json"),
    # strings JSON can spell but UTF-8 (and so SQLite) cannot hold
    "lone surrogate in plate": ("evt", _body("evt", "weighing",
                                             **dict(weighing_body(), plate="\ud800")), "bad_json"),
    "lone surrogate in a key": ("tele", _body("tele", "health", fw="1", **{"\udfff": 1}),
                                "bad_json"),
    # nesting: the parser's recursion and the depth the store and API will carry
    "8000 deep array": ("evt", _deep(8000), "bad_json"),
    "8000 deep inside the body": ("evt", _dumps(_fields(body={"x": 0})).replace(
        b'{"x": 0}', b'{"x": ' + _deep(8000) + b"}"), "bad_json"),
    "17 levels": ("evt", _body("evt", "alarm", alarm="overload", state="raised",
                               detail={"a": json.loads(_deep(15))}), "bad_shape"),
    "100000 deep array": ("evt", _deep(100_000), "too_large"),
    # sizes: the limit is 16 KiB for the whole wire message
    "16 KiB + 1": ("evt", b"", "too_large"),  # filled in by _sized below
    "1 MiB": ("evt", _dumps(_fields(body=dict(weighing_body(), pad="x" * 2**20))), "too_large"),
}


def _sized(device: dict[str, Any], total: int) -> Received:
    """A valid signed weighing of exactly ``total`` wire bytes (padded in an extra field)."""
    base = _fields()
    base["body"]["pad"] = ""
    overhead = len(_sign(device, _dumps(base)).payload)
    base["body"]["pad"] = "x" * (total - overhead)
    msg = _sign(device, _dumps(base))
    assert len(msg.payload) == total
    return msg


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_rejected_counted_and_not_stored(db: Store,
                                                      device: dict[str, Any], name: str) -> None:
    channel, raw, reason = CASES[name]
    msg = _sized(device, envelope.MAX_WIRE_BYTES + 1) if name == "16 KiB + 1" else _sign(
        device, raw, channel)
    _assert_refused(db, msg, reason)


BODIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (channel, kind, body) -- all bad_body
    "plate number": ("evt", "weighing", dict(weighing_body(), plate=12345)),
    "plate null": ("evt", "weighing", dict(weighing_body(), plate=None)),
    "plate list": ("evt", "weighing", dict(weighing_body(), plate=["B1"])),
    "plate 33 chars": ("evt", "weighing", dict(weighing_body(), plate="B" * 33)),
    "gross string": ("evt", "weighing", dict(weighing_body(), gross_kg="45240")),
    "gross float": ("evt", "weighing", dict(weighing_body(), gross_kg=45240.0)),
    "gross bool": ("evt", "weighing", dict(weighing_body(), gross_kg=True)),
    "gross missing": ("evt", "weighing", {k: v for k, v in weighing_body().items()
                                          if k != "gross_kg"}),
    "net object": ("evt", "weighing", dict(weighing_body(), net_kg={"kg": 1})),
    "division zero": ("evt", "weighing", dict(weighing_body(), division_kg=0)),
    "stable negative": ("evt", "weighing", dict(weighing_body(), stable_ms=-1)),
    "arrived negative": ("evt", "weighing", dict(weighing_body(), arrived_ts=-5)),
    "weighing empty": ("evt", "weighing", {}),
    "alarm missing": ("evt", "alarm", {"state": "raised"}),
    "alarm empty code": ("evt", "alarm", {"alarm": "", "state": "raised"}),
    "alarm code number": ("evt", "alarm", {"alarm": 5, "state": "raised"}),
    "alarm code 49 chars": ("evt", "alarm", {"alarm": "a" * 49, "state": "raised"}),
    "alarm state unknown": ("evt", "alarm", {"alarm": "overload", "state": "on"}),
    "alarm state list": ("evt", "alarm", {"alarm": "overload", "state": ["raised"]}),
    "alarm state object": ("evt", "alarm", {"alarm": "overload", "state": {"raised": 1}}),
    "alarm detail list": ("evt", "alarm", {"alarm": "overload", "state": "raised",
                                           "detail": [1]}),
    "alarm detail string": ("evt", "alarm", {"alarm": "overload", "state": "raised",
                                             "detail": "x"}),
    "health fw missing": ("tele", "health", {"uptime_s": 5}),
    "health fw number": ("tele", "health", {"fw": 1}),
    "health uptime negative": ("tele", "health", dict(HEALTH, uptime_s=-1)),
    "health uptime string": ("tele", "health", dict(HEALTH, uptime_s="5")),
    "health mem float": ("tele", "health", dict(HEALTH, mem_free=1.5)),
    "health backlog bool": ("tele", "health", dict(HEALTH, backlog=False)),
    "birth fw null": ("state", "birth", {"fw": None}),
    "weighing on tele": ("tele", "weighing", weighing_body()),
    "health on evt": ("evt", "health", HEALTH),
    "unknown kind": ("evt", "toast", {}),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_bad_body_is_rejected_counted_and_not_stored(db: Store,
                                                     device: dict[str, Any], name: str) -> None:
    channel, kind, body = BODIES[name]
    _assert_refused(db, _sign(device, _dumps(_fields(channel, kind=kind, body=body)), channel),
                    "bad_body")


def test_bad_input_limits_are_inclusive(db: Store,
                                        device: dict[str, Any]) -> None:
    """What sits exactly on a limit is taken: 16 KiB, 16 levels, the 64-bit extremes."""
    deepest = json.loads(_deep(envelope_shape.MAX_DEPTH - 3))  # envelope, body, detail: 3
    msgs = [_sized(device, envelope.MAX_WIRE_BYTES),
            _sign(device, _dumps(_fields(seq=2, kind="alarm",
                                         body=dict(ALARM, detail={"a": deepest})))),
            _sign(device, _dumps(_fields(seq=3, body=dict(weighing_body(), gross_kg=2**63 - 1,
                                                          tare_kg=-(2**63)))))]
    verdicts, result = _ingest(db, *msgs)
    assert all(isinstance(v, Accepted) for v in verdicts), [getattr(v, "detail", v)
                                                           for v in verdicts]
    assert result.stored == 3 and result.rejected == {}
    assert db.db["weighings"].get(("wb-1", 3))["gross_kg"] == 2**63 - 1


def test_bad_input_in_a_batch_does_not_cost_the_good_messages(
        db: Store, device: dict[str, Any]) -> None:
    good = [_sign(device, _dumps(_fields(seq=s))) for s in (1, 2)]
    bad = [_sign(device, raw, channel) for channel, raw, _ in CASES.values()]
    _, result = _ingest(db, good[0], *bad, good[1])
    assert result.stored == 2
    assert result.watermarks == {"wb-1": 2}
    assert sum(result.rejected.values()) == len(bad)


def test_parser_alone_survives_100000_deep_nesting() -> None:
    """The size limit stops this first on the wire; the JSON step must survive it too."""
    for raw in (_deep(100_000), b'{"v": 1, "body": ' + b'{"a": ' * 100_000):
        with pytest.raises(envelope.EnvelopeError) as info:
            envelope_shape.parse(raw)
        assert info.value.reason == "bad_json"


# --- properties -----------------------------------------------------------------------------

_TOPICS = st.one_of(
    st.text(max_size=80),
    st.sampled_from([topics.topic(SITE, "wb-1", c) for c in ("evt", "tele", "state", "cmdack",
                                                             "ack", "cmd")]),
    st.builds(lambda dev, ch: f"pw/v1/{SITE}/{dev}/{ch}", st.text(max_size=70),
              st.sampled_from(["evt", "tele", "state", "x"])),
)


@st.composite
def _wire(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, often shaped like an envelope with a well-formed signature line."""
    head = draw(st.binary(max_size=600))
    if draw(st.booleans()):
        return head
    key_id = draw(st.sampled_from(["k1", "k0", "", "k1:k1", "\u00e9"]))
    sig = draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    return head + b"\n" + key_id.encode() + b":" + sig.encode()


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topic=_TOPICS, payload=_wire())
def test_arbitrary_bytes_on_any_topic_never_raise_and_store_nothing(
        db: Store, device: dict[str, Any], topic: str, payload: bytes) -> None:
    before = _snapshot(db)
    (verdict,), result = _ingest(db, Received(topic, payload, 1764072000500))
    assert isinstance(verdict, Rejected)  # nobody can sign without the key
    assert result.rejected == {verdict.reason: 1}
    assert _snapshot(db) == before


_NASTY = st.sampled_from([math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 10**30,
                          "\ud800", "\udfff", {"\ud800": 1}, json.loads(_deep(20)),
                          True, 1.5, "", None, [], {}])
_JSON = st.recursive(
    _NASTY | st.none() | st.booleans() | st.floats() | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(st.characters(exclude_categories=[]), max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=[]), max_size=8), inner,
                      max_size=4),
    max_leaves=30,
)


@st.composite
def _envelope_fields(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid envelope of some kind, then a few of its fields or body entries replaced."""
    channel, kind = draw(st.sampled_from([("evt", "weighing"), ("evt", "alarm"),
                                          ("tele", "health"), ("state", "birth"),
                                          ("state", "death"), ("cmdack", "cmdack")]))
    seq = draw(st.integers(min_value=1, max_value=50))
    fields = envelope.make("wb-1", 1, seq, 1764072000000, kind, dict(
        {"weighing": weighing_body(), "alarm": ALARM, "health": HEALTH,
         "birth": {"fw": "1"}}.get(kind, {})))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            fields[draw(st.sampled_from(["v", "dev", "boot", "seq", "ts", "kind", "body"]))] = (
                draw(_JSON))
        elif isinstance(fields["body"], dict):
            key = draw(st.sampled_from([*fields["body"], "detail", "x"]))
            fields["body"][key] = draw(_JSON)
    return channel, fields


@pytest.fixture
def pristine(db: Store, device: dict[str, Any]) -> Iterator[sqlite3.Connection]:
    """A copy of the store with only the device in it, to restore before each example."""
    copy = sqlite3.connect(":memory:")
    db.conn.backup(copy)
    yield copy
    copy.close()


@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_envelope_fields(), ascii_only=st.booleans())
def test_signed_arbitrary_json_never_raises_and_stores_only_what_it_accepts(
        db: Store, device: dict[str, Any], pristine: sqlite3.Connection,
        case: tuple[str, dict[str, Any]], ascii_only: bool) -> None:
    channel, fields = case
    try:
        raw = json.dumps(fields, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    except ValueError:  # e.g. an int past the str conversion limit: cannot be sent at all
        return
    pristine.backup(db.conn)  # each example meets a fresh store: no seq_conflict by accident
    before = db.db["messages"].count
    (verdict,), result = _ingest(db, _sign(device, raw, channel))
    if isinstance(verdict, Rejected):
        assert result.rejected == {verdict.reason: 1} and result.stored == 0
    assert db.db["messages"].count == before + result.stored
    for (text,) in db.conn.execute("SELECT health_json FROM devices WHERE health_json IS NOT NULL"):
        json.dumps(json.loads(text), allow_nan=False)  # what is stored, the API can serve
