"""Response and request bodies of the API (pydantic)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from controller import auth
from controller.registry import DEVICE_KINDS
from protocols.envelope import MAX_SEQ
from protocols.topics import MAX_ID_LEN

# Upper bounds of integers the API accepts. SQLite integers are signed 64-bit: an
# unbounded int reached it as an OverflowError, a 500, where a 422 is the answer.
SEQ_MAX = MAX_SEQ - 1
MS_MAX = 2**53 - 1
ROWS_MAX = 2**62
# Bounds of strings: a description of 10 MB was stored and then served in every device
# list to every role
ID_PATTERN = rf"^[A-Za-z0-9_.-]{{1,{MAX_ID_LEN}}}$"  # protocols/topics.py check_id
DESCRIPTION_MAX = 500
HOST_PATTERN = r"^[A-Za-z0-9.:\[\]-]{1,253}$"
EXPIRES_IN_S = (auth.EXPIRES_IN_MIN_S, auth.EXPIRES_IN_MAX_S)


def _integral(value: Any) -> Any:
    # JSON has one number type: 3.0 is the integer 3 (JSON Schema agrees); 3.5 stays a float
    # and is refused, as are true and "3"
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_integral)]


class Body(BaseModel):
    """A request body: unknown fields and values of another JSON type (false for a number,
    "5" for an integer) are refused, not coerced or ignored."""

    model_config = ConfigDict(strict=True, extra="forbid")


# [first, last]: a tuple made prefixItems, which OpenAPI tools that read 3.0 take for
# an invalid "items" array
SeqRange = Annotated[list[int], Field(min_length=2, max_length=2)]


class Device(BaseModel):
    device_id: str
    site: str
    kind: str
    description: str = ""
    status: str = Field(description="online, offline, stale (no message lately) or never")
    last_seen_ms: int | None = None
    fw_version: str | None = None
    boot: int
    committed_seq: int = Field(description="every event up to this seq is durably stored")
    health: dict[str, Any] | None = None
    health_ms: int | None = None
    clock_offset_ms: int | None = Field(None, description="device clock minus controller clock")
    clock_suspect: bool = Field(False, description="clock offset beyond 60 s: device times "
                                "are stored but should not be trusted alone")
    missing: list[SeqRange] = Field(
        default_factory=list, description="seq ranges above committed_seq never received "
        "(first, last); they stay here until they arrive or are declared lost")
    lost: list[SeqRange] = Field(default_factory=list,
                                        description="seq ranges declared lost (first, last)")
    refused_events: int = Field(0, description="custody events the device could not store and "
                                "refused (it kept its gate closed), from its signed notices")
    key_id: str
    decommissioned_ms: int | None = Field(None, description="when it was taken out of service")
    device_pub: str | None = Field(None, description="the device's registered public key "
                                   "(P-256, uncompressed, hex); null: none yet")


class DeviceCreate(Body):
    device_id: str = Field(pattern=ID_PATTERN, examples=["wb-gate1"],
                           description="letters, digits, '-', '_', '.'; not a reserved broker "
                           "login (portwatch-controller)")
    kind: str = Field(pattern="^(" + "|".join(DEVICE_KINDS) + ")$", examples=["weighbridge"])
    description: str = Field("", max_length=DESCRIPTION_MAX)
    driver: dict[str, Any] = Field(default_factory=dict, description="the driver's settings "
                                   "(README, Drivers); checked against the device kind")
    broker_host: str = Field("127.0.0.1", pattern=HOST_PATTERN)
    broker_port: WholeNumber = Field(1883, ge=1, le=65535)


class DeviceProvisioned(BaseModel):
    device: Device
    config: dict[str, Any] = Field(description="the agent's config file; holds its secrets")


class KeyRotation(Body):
    grace_s: float = Field(3600, ge=0, le=30 * 86400, allow_inf_nan=False,
                           description="seconds the old key is still accepted (controller clock)")


class KeyRotated(BaseModel):
    device_id: str
    key_id: str = Field(description="the new key id: put it and the secret in the device config")
    secret_hex: str = Field(description="the new HMAC secret, shown once")
    old_key_id: str
    old_valid_until_ms: int = Field(description="messages under older keys received after "
                                    "this time are rejected as expired_key")
    rotated_ms: int


class DeviceKeyRegistration(Body):
    pub: str = Field(pattern=r"^04[0-9a-f]{128}$", description="the device's public key: "
                     "uncompressed P-256 point, 130 lowercase hex digits, as its birth "
                     "announces it (`pub`)")


class DeviceKeyRegistered(BaseModel):
    device_id: str
    pub: str
    replaces: str | None = Field(description="the key it replaces; null: the first")
    leaf_index: int = Field(description="the ledger entry of the device_key decision")


class Decommission(Body):
    reason: str = Field(min_length=1, max_length=200, examples=["gate 1 rebuilt"])


class LostDeclaration(Body):
    first_seq: WholeNumber = Field(ge=1, le=SEQ_MAX)
    last_seq: WholeNumber = Field(ge=1, le=SEQ_MAX)
    reason: str = Field(min_length=1, max_length=200)


class HealthSample(BaseModel):
    boot: int
    seq: int
    device_ts: int
    received_ms: int
    body: dict[str, Any]


LEAF_INDEX_DOC = ("index of the ledger entry holding this event's message: "
                  "GET /api/v1/ledger/proofs/inclusion?index= proves it (null: no entry, "
                  "which `portwatch ledger audit` reports)")
ENTRY_HASH_DOC = "RFC 9162 leaf hash of that entry, hex (what the inclusion proof proves)"


DEVICE_SIGNED_DOC = ("true: the device's own P-256 signature (es256 line) was checked under "
                     "its registered key; false: only the HMAC, whose secret the controller "
                     "also holds (a device without a registered key)")


class Weighing(BaseModel):
    """One weighing as the device signed it, with what the controller found wrong in it.

    Strings (the plate above all) are the device's, untrusted: served as JSON, escaped by
    the JSON encoding only, so a client must escape them for its own output (HTML, a
    terminal, a CSV); ``plate_unsafe`` says a plate holds characters that need it.
    """

    device_id: str
    seq: int
    plate: str
    gross_kg: int
    tare_kg: int
    net_kg: int
    division_kg: int
    stable_ms: int
    arrived_ts: int
    device_ts: int
    received_ms: int
    flags: list[str] | None = Field(
        None, description="plausibility flags (README, Operate: implausible weighings): "
        "empty when none; null for weighings stored before the controller checked them",
        examples=[["net_mismatch", "plate_unsafe"]])
    leaf_index: int | None = Field(None, description=LEAF_INDEX_DOC)
    entry_hash: str | None = Field(None, description=ENTRY_HASH_DOC)
    device_signed: bool = Field(False, description=DEVICE_SIGNED_DOC)


class Alarm(BaseModel):
    device_id: str
    seq: int
    alarm: str
    state: str
    detail: dict[str, Any]
    device_ts: int
    received_ms: int
    leaf_index: int | None = Field(None, description=LEAF_INDEX_DOC)
    entry_hash: str | None = Field(None, description=ENTRY_HASH_DOC)
    device_signed: bool = Field(False, description=DEVICE_SIGNED_DOC)


class Rejection(BaseModel):
    id: int
    received_ms: int
    topic: str
    device_id: str | None
    reason: str
    detail: str
    size: int
    excerpt_hex: str


class RejectionCount(BaseModel):
    device_id: str = Field(description="the device the topic names, or '*' for every "
                           "unregistered or unreadable sender")
    reason: str
    window_ms: int = Field(description="start of the counting window, controller clock")
    window_s: int = Field(description="length of the window")
    total: int = Field(description="messages refused for this reason in this window")
    bytes: int = Field(description="their payload bytes")
    kept: int = Field(description="how many of them are kept in full (rejections, ledger)")
    first_ms: int
    last_ms: int
    summary_idx: int | None = Field(description="ledger index of the window's signed "
                                    "summary, once it has ended (none if all were kept)")


class IngestStats(BaseModel):
    stored_events: int
    stored_weighings: int
    rejected_by_reason: dict[str, int]
    live: dict[str, Any] = Field(description="counters of the running ingest since start")


class Alert(BaseModel):
    id: int
    rule: str = Field(description="the supervision rule that raised it")
    code: str
    device_id: str
    subject: str = Field(description="tells apart alerts of one code on one device, e.g. "
                         "'seq 42' for a one-off")
    severity: str = Field(description="info, warning or critical")
    detail: dict[str, Any]
    state: str = Field(description="open, acknowledged (someone is on it; still active) or "
                       "resolved")
    active: bool = Field(description="open or acknowledged")
    raised_ts: int = Field(description="device time of the fact that raised it, ms")
    raised_ms: int = Field(description="when the controller received that fact, ms")
    age_s: float = Field(description="seconds since it was raised (controller clock); "
                         "for a resolved alert, how long it was active")
    acked_ms: int | None = None
    acked_by: str | None = Field(None, description="the operator's token")
    ack_comment: str | None = None
    resolved_ms: int | None = None
    resolved_by: str | None = Field(None, description="rule:<name> (the rule cleared it) or "
                                    "the operator's token")
    resolve_comment: str | None = None
    cleared_ms: int | None = Field(None, description="the same as resolved_ms (older name)")
    cleared_by: str | None = Field(None, description="the same as resolved_by (older name)")


class AlertTransition(BaseModel):
    action: str = Field(description="raise, acknowledge, resolve (an operator) or clear "
                        "(the rule)")
    by: str
    at_ms: int
    comment: str


class AlertDetail(Alert):
    history: list[AlertTransition] = Field(description="every transition, oldest first; "
                                           "each is an `alert` ledger decision")


AlertComment = Annotated[str, Field(
    min_length=1, max_length=500, pattern=r"\S", examples=["driver called, truck back"],
    description="who is on it / what was done (1-500 characters)")]


class AlertAck(Body):
    comment: AlertComment


class AlertResolve(Body):
    comment: AlertComment


class TokenCreate(Body):
    name: str = Field(pattern=auth.NAME_PATTERN, min_length=1, max_length=auth.NAME_MAX,
                      examples=["control-room"], description="who holds it: no control "
                      "characters, not only spaces")
    role: str = Field(pattern="^(" + "|".join(auth.ROLES) + ")$", examples=["operator"],
                      description=", ".join(auth.ROLES))
    expires_in_s: Annotated[int, Field(ge=EXPIRES_IN_S[0], le=EXPIRES_IN_S[1]),
                            BeforeValidator(_integral)] | None = \
        Field(None, description="the token stops working this many seconds from now "
              "(1 minute to 5 years); omit: until revoked")


class TokenInfo(BaseModel):
    token_id: str = Field(description="first 12 hex of the token's SHA-256: names it, "
                          "never reveals it")
    name: str
    role: str
    created_ms: int
    expires_ms: int | None = Field(None, description="after this it answers 401; null: "
                                   "until revoked")
    state: str = Field(description="live, expired or revoked")
    revoked_ms: int | None = None
    revoked_by: str | None = None


class TokenCreated(TokenInfo):
    token: str = Field(description="the token itself, shown once")
