"""The schema: every table and index of the store, and its migrations (through sqlite-utils).

``migrate`` is idempotent and runs once per process that owns the store (the controller at
start-up, a CLI command before it writes); ``PRAGMA user_version`` records the version.

Versions: 1 devices, messages and their projections; 2 key ring, key rotations, broker
accounts; 3 supervision (rule state, alerts), token revocation, device decommissioning,
the store's own id; 4 devices' notices of custody events they refused; 5 rejection
counts per (device, reason, window), weighings' plausibility flags.
"""

from __future__ import annotations

import secrets

import sqlite_utils

from controller.errors import StoreError
from controller.storage.database import Store, now_ms

# 6: the schema-5 steps (token expiry, rejection buckets, weighing flags, watermark repair)
# landed one after another under 5, so a store that reached 5 in between runs them again:
# every step is idempotent
# 7: ledger_witnesses (the remote witnesses the controller pushes checkpoints to);
# devices.device_pub and messages.device_signed (devices' own signing keys)
# 8: the same again for the schema-7 steps (witnesses, device keys), which landed one after
# the other under 7
# 9: trucks under dynamic supervision: positions, transfer orders, trips, holds, device
# commands, the alert lifecycle, destination offices
# 10: the same again for the schema-9 steps, which landed one after the other under 9, and
# lots: lots and their history, hold kinds and approvals, samples, rail manifests and
# passages, blends, calibration certificates and draft surveys
SCHEMA_VERSION = 10


def check_version(store: Store) -> None:
    """StoreError when the store was written by a newer portwatch than this one."""
    version = int(store.conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(f"{store.path} has schema {version}, newer than this portwatch's "
                         f"{SCHEMA_VERSION}: upgrade portwatch before using it")


def migrate(store: Store) -> None:
    """Create every table, index and column that does not exist yet."""
    check_version(store)
    db = store.db
    # one transaction: a second process migrating at the same moment waits for the lock,
    # then finds every table there
    with store.transaction():
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return
        _custody(db)
        _security(db, version)
        _ledger(db)
        _supervision(db)
        _operations(db)
        _refusals(db)
        _token_expiry(db)
        _rejection_buckets(db)
        _repair_watermarks(db, version)
        _weighing_flags(db)
        _witnesses(db)
        _device_keys(db)
        # schema 9 steps (each idempotent) go here
        _calibrations(db)
        _alert_lifecycle(db)
        _gate_control(db)
        _offices(db)
        _trips(db)
        _lots(db)
        _blends(db)
        _samples(db)
        _rail(db)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _custody(db: sqlite_utils.Database) -> None:
    """Devices, every accepted message, and the tables projected from them."""
    names = set(db.table_names())
    if "devices" not in names:
        db.table("devices").create(
            {
                "device_id": str, "site": str, "kind": str, "description": str,
                "key_id": str, "secret_hex": str, "mqtt_password_hash": str,
                "created_ms": int, "status": str, "boot": int, "last_seen_ms": int,
                "fw_version": str, "committed_seq": int, "tele_boot": int, "tele_seq": int,
                "state_seq": int,
                "health_json": str, "health_ms": int, "clock_offset_ms": int,
                "driver_json": str,
            },
            pk="device_id",
            defaults={"status": "never", "committed_seq": 0, "boot": -1,
                      "tele_boot": -1, "tele_seq": -1, "state_seq": -1},
            not_null={"site", "kind", "key_id", "secret_hex"},
        )
    if "messages" not in names:
        db.table("messages").create(
            {"device_id": str, "seq": int, "boot": int, "kind": str, "device_ts": int,
             "received_ms": int, "topic": str, "payload": bytes, "sha256": str},
            pk=("device_id", "seq"),
        )
    if "weighings" not in names:
        db.table("weighings").create(
            {"device_id": str, "seq": int, "plate": str, "gross_kg": int, "tare_kg": int,
             "net_kg": int, "division_kg": int, "stable_ms": int, "arrived_ts": int,
             "device_ts": int, "received_ms": int},
            pk=("device_id", "seq"),
        )
        db.table("weighings").create_index(["plate"])
        db.table("weighings").create_index(["device_ts"])
    if "alarms" not in names:
        db.table("alarms").create(
            {"device_id": str, "seq": int, "alarm": str, "state": str, "detail_json": str,
             "device_ts": int, "received_ms": int},
            pk=("device_id", "seq"),
        )
    if "health" not in names:
        db.table("health").create(
            {"id": int, "device_id": str, "boot": int, "seq": int, "device_ts": int,
             "received_ms": int, "body_json": str},
            pk="id",
        )
        db.table("health").create_index(["device_id", "received_ms"])
    if "rejections" not in names:
        db.table("rejections").create(
            {"id": int, "received_ms": int, "topic": str, "device_id": str, "reason": str,
             "detail": str, "size": int, "excerpt_hex": str},
            pk="id",
        )
        db.table("rejections").create_index(["reason"])
    if "api_tokens" not in names:
        db.table("api_tokens").create(
            {"token_sha256": str, "name": str, "role": str, "created_ms": int},
            pk="token_sha256",
        )
    if "lost_ranges" not in names:
        # seqs a device will never deliver (declared by the device or by an admin): the
        # watermark passes over them and completeness reports them as lost, not missing
        db.table("lost_ranges").create(
            {"id": int, "device_id": str, "first_seq": int, "last_seq": int, "reason": str,
             "declared_by": str, "declared_ms": int},
            pk="id",
        )
        db.table("lost_ranges").create_index(["device_id", "first_seq"])


def _security(db: sqlite_utils.Database, version: int) -> None:
    """Key ring, key rotation record and broker accounts (schema 2)."""
    names = set(db.table_names())
    if "device_keys" not in names:
        # every HMAC key a device has had; devices.key_id/secret_hex stay its newest key.
        # valid_until_ms (controller clock) is set when a rotation retires the key
        db.table("device_keys").create(
            {"device_id": str, "key_id": str, "secret_hex": str, "created_ms": int,
             "valid_until_ms": int},
            pk=("device_id", "key_id"), not_null={"secret_hex", "created_ms"},
        )
    if version < 2:  # a store from schema 1: each device's current key joins the ring
        db.execute("INSERT OR IGNORE INTO device_keys (device_id, key_id, secret_hex, created_ms) "
                   "SELECT device_id, key_id, secret_hex, coalesce(created_ms, 0) FROM devices")
    if "key_rotations" not in names:
        db.table("key_rotations").create(
            {"id": int, "device_id": str, "old_key_id": str, "new_key_id": str,
             "rotated_ms": int, "old_valid_until_ms": int, "actor": str},
            pk="id",
        )
        db.table("key_rotations").create_index(["device_id"])
    if "broker_accounts" not in names:
        # broker logins that are not devices (the controller's own). The password is kept
        # in clear because the controller must log in with it, like the HMAC secrets above
        db.table("broker_accounts").create(
            {"user": str, "role": str, "password": str, "password_hash": str,
             "created_ms": int},
            pk="user",
        )


def _ledger(db: sqlite_utils.Database) -> None:
    """The ledger's tables (controller/ledger/FORMAT.md describes what they hold).

    ledger_entries       idx (leaf index, from 0), kind, subkind (channel or decision kind),
                         device_id, seq, time_ms, entry (canonical bytes), leaf_hash
    ledger_nodes         every complete subtree hash of level >= 1, keyed
                         ``level << 40 | index``: roots and proofs in O(log² n) look-ups
    ledger_checkpoints   signed checkpoints (size, root, note, created_ms)
    ledger_cosignatures  witness cosignature lines per checkpoint, with the witness's vkey
    ledger_meta          name/value: the log's origin
    """
    names = set(db.table_names())
    if "ledger_entries" not in names:
        db.table("ledger_entries").create(
            {"idx": int, "kind": str, "subkind": str, "device_id": str, "seq": int,
             "time_ms": int, "entry": bytes, "leaf_hash": bytes},
            pk="idx", not_null={"kind", "entry", "leaf_hash"},
        )
        db.execute("CREATE INDEX ledger_entries_device_seq ON ledger_entries "
                   "(device_id, seq) WHERE device_id IS NOT NULL")
    if "ledger_nodes" not in names:
        db.table("ledger_nodes").create({"id": int, "hash": bytes}, pk="id",
                                        not_null={"hash"})
    if "ledger_checkpoints" not in names:
        db.table("ledger_checkpoints").create(
            {"id": int, "size": int, "root": bytes, "note": str, "created_ms": int},
            pk="id", not_null={"size", "root", "note"},
        )
        db.table("ledger_checkpoints").create_index(["size"])
    if "ledger_cosignatures" not in names:
        db.table("ledger_cosignatures").create(
            {"id": int, "checkpoint_id": int, "witness": str, "vkey": str, "line": str,
             "created_ms": int},
            pk="id", not_null={"checkpoint_id", "vkey", "line"},
        )
        db.table("ledger_cosignatures").create_index(["checkpoint_id", "vkey"], unique=True)
    if "ledger_meta" not in names:
        db.table("ledger_meta").create({"name": str, "value": str}, pk="name")


def _supervision(db: sqlite_utils.Database) -> None:
    """Rule state (one JSON document per rule and scope) and the alerts rules raise."""
    names = set(db.table_names())
    if "rule_state" not in names:
        db.table("rule_state").create(
            {"rule": str, "scope": str, "state_json": str, "updated_ms": int},
            pk=("rule", "scope"), not_null={"state_json"},
        )
    if "alerts" not in names:
        # one row per raised alert; cleared_* stay NULL while it is active. raised_ts and
        # cleared_ts are the device times of the facts that raised and cleared it
        db.table("alerts").create(
            {"id": int, "rule": str, "code": str, "device_id": str, "subject": str,
             "severity": str, "detail_json": str, "raised_ts": int, "raised_ms": int,
             "raised_seq": int, "cleared_ts": int, "cleared_ms": int, "cleared_seq": int,
             "cleared_by": str},
            pk="id", not_null={"rule", "code", "severity", "raised_ts", "raised_ms"},
        )
        db.execute("CREATE INDEX alerts_active ON alerts (device_id, code) "
                   "WHERE cleared_ms IS NULL")


def _refusals(db: sqlite_utils.Database) -> None:
    """Custody events a device refused (never stored, never given a seq), as it reported."""
    if "refused_notices" not in db.table_names():
        db.table("refused_notices").create(
            {"device_id": str, "seq": int, "count": int, "kinds_json": str, "since_ts": int,
             "until_ts": int, "reason": str, "device_ts": int, "received_ms": int},
            pk=("device_id", "seq"),
        )


def _operations(db: sqlite_utils.Database) -> None:
    """Token revocation, device decommissioning, and the store's own id."""
    tokens = db.table("api_tokens")
    for column in ("revoked_ms", "revoked_by"):
        if column not in tokens.columns_dict:
            tokens.add_column(column, int if column == "revoked_ms" else str)
    devices = db.table("devices")
    for column in ("decommissioned_ms", "decommissioned_by"):
        if column not in devices.columns_dict:
            devices.add_column(column, int if column == "decommissioned_ms" else str)
    if "store_meta" not in db.table_names():
        db.table("store_meta").create({"name": str, "value": str}, pk="name")
        # a random id per store: the controller's MQTT client id is made from it, so two
        # controllers on two stores never knock each other off the broker
        db.execute("INSERT INTO store_meta (name, value) VALUES ('store_id', ?), "
                   "('created_ms', ?)", [secrets.token_hex(8), str(now_ms())])


def _rejection_buckets(db: sqlite_utils.Database) -> None:
    """Rejections counted per (device, reason, window): a flood costs one row per bucket.

    A store from before schema 5 kept every rejection in full: its rows become buckets
    whose messages are all kept (``total = kept``), so they need no summary and the
    totals by reason stay what they were.
    """
    if "rejection_buckets" in db.table_names():
        return
    db.table("rejection_buckets").create(
        {"device_id": str, "reason": str, "window_ms": int, "window_s": int, "kept": int,
         "total": int, "bytes": int, "first_ms": int, "last_ms": int, "summary_idx": int},
        pk=("device_id", "reason", "window_ms"),
        not_null={"window_s", "kept", "total", "bytes", "first_ms", "last_ms"},
    )
    db.table("rejection_buckets").create_index(["window_ms"])
    db.execute("CREATE INDEX rejection_buckets_due ON rejection_buckets (window_ms) "
               "WHERE summary_idx IS NULL AND total > kept")
    db.execute("INSERT INTO rejection_buckets (device_id, reason, window_ms, window_s, kept, "
               "total, bytes, first_ms, last_ms) SELECT coalesce(device_id, '*'), reason, "
               "received_ms / 3600000 * 3600000, 3600, count(*), count(*), "
               "coalesce(sum(size), 0), min(received_ms), max(received_ms) FROM rejections "
               "GROUP BY 1, 2, 3")


def _token_expiry(db: sqlite_utils.Database) -> None:
    """API tokens may expire (schema 5): NULL is a token that lives until revoked."""
    if "expires_ms" not in db.table("api_tokens").columns_dict:
        db.table("api_tokens").add_column("expires_ms", int)


def _repair_watermarks(db: sqlite_utils.Database, version: int) -> None:
    """Schema 5: a watermark past the highest seq the device has numbered (its highest
    stored event, or its last health's next_seq - 1) comes back to it. Before schema 5 an
    admin could declare lost a range ending anywhere, and the ack that followed told the
    device to drop events it had not made yet."""
    if version < 5:
        db.execute(
            "UPDATE devices SET committed_seq = max("
            "coalesce((SELECT max(seq) FROM messages m WHERE m.device_id = devices.device_id), 0),"
            " coalesce(json_extract(health_json, '$.next_seq') - 1, 0)) "
            "WHERE committed_seq > max("
            "coalesce((SELECT max(seq) FROM messages m WHERE m.device_id = devices.device_id), 0),"
            " coalesce(json_extract(health_json, '$.next_seq') - 1, 0))")


def _weighing_flags(db: sqlite_utils.Database) -> None:
    """Schema 5: each weighing's plausibility flags (controller/plausibility.py), a JSON
    list of codes; NULL on weighings stored before the controller checked them."""
    weighings = db.table("weighings")
    if "flags_json" not in weighings.columns_dict:
        weighings.add_column("flags_json", str)


def _witnesses(db: sqlite_utils.Database) -> None:
    """Schema 7: the remote tlog-witnesses the controller pushes each checkpoint to (name
    from their vkey, the vkey that checks their cosignatures, the add-checkpoint URL)."""
    if "ledger_witnesses" not in db.table_names():
        db.table("ledger_witnesses").create(
            {"name": str, "vkey": str, "url": str, "added_ms": int},
            pk="name", not_null={"vkey", "url"},
        )


def _device_keys(db: sqlite_utils.Database) -> None:
    """Schema 7: each device's registered public key (ECDSA P-256, uncompressed SEC1 hex;
    NULL: none yet, its custody events are checked by HMAC only) and, per stored custody
    event, whether its device signature was checked (1) or it carried only the HMAC (0;
    NULL on events stored before device keys)."""
    if "device_pub" not in db.table("devices").columns_dict:
        db.table("devices").add_column("device_pub", str)
    if "device_signed" not in db.table("messages").columns_dict:
        db.table("messages").add_column("device_signed", int)


def _trips(db: sqlite_utils.Database) -> None:
    """Schema 9: trackers' fixes (one row per fix, projected from ``positions`` events),
    transfer orders, their trips and each trip's events (projected from the ledger's
    ``order`` and ``trip`` decisions: controller/projections/orders.py)."""
    names = set(db.table_names())
    if "positions" not in names:
        db.table("positions").create(
            {"device_id": str, "seq": int, "idx": int, "ts_ms": int, "lat_e6": int,
             "lon_e6": int, "speed_dkmh": int, "course_deg": int, "sats": int,
             "hdop_x10": int, "received_ms": int},
            pk=("device_id", "seq", "idx"), not_null={"ts_ms", "lat_e6", "lon_e6"},
        )
        db.table("positions").create_index(["device_id", "ts_ms"])
    if "orders" not in names:
        db.table("orders").create(
            {"order_id": str, "lot": str, "plate": str, "tracker_id": str,
             "destination": str, "corridor": str, "window_start_ms": int,
             "window_end_ms": int, "expected_net_kg": int, "status": str, "created_ms": int,
             "created_by": str, "updated_ms": int, "cancel_reason": str},
            pk="order_id", not_null={"lot", "plate", "tracker_id", "destination", "corridor",
                                     "window_start_ms", "window_end_ms", "status"},
        )
        db.table("orders").create_index(["plate", "status"])
        db.table("orders").create_index(["tracker_id", "status"])
    if "trips" not in names:
        # a trip's id is its order's id (one trip per order)
        db.table("trips").create(
            {"trip_id": str, "tracker_id": str, "plate": str, "lot": str,
             "destination": str, "corridor": str, "gate_device": str, "weighing_seq": int,
             "net_kg": int, "departed_ms": int, "status": str, "arrived_ts": int,
             "closed_ms": int, "end_reason": str},
            pk="trip_id", not_null={"tracker_id", "status", "departed_ms"},
        )
        db.table("trips").create_index(["tracker_id", "status"])
    if "trip_events" not in names:
        # one row per ``trip`` ledger decision, keyed by its ledger index
        db.table("trip_events").create(
            {"idx": int, "trip_id": str, "event": str, "time_ms": int, "actor": str,
             "detail_json": str},
            pk="idx", not_null={"trip_id", "event", "time_ms"},
        )
        db.table("trip_events").create_index(["trip_id", "idx"])


def _alert_lifecycle(db: sqlite_utils.Database) -> None:
    """Schema 9: the alert lifecycle open -> acknowledged -> resolved. cleared_* keep their
    columns and mean "resolved" (by the rule clearing it or by an operator); acked_* and
    the two comments are new."""
    cols = db.table("alerts").columns_dict
    for name, kind in (("acked_ms", int), ("acked_by", str), ("ack_comment", str),
                       ("resolve_comment", str)):
        if name not in cols:
            db.table("alerts").add_column(name, kind)


def _offices(db: sqlite_utils.Database) -> None:
    """Schema 9: destination customs offices and the trip records queued for them
    (controller/office_feed.py, controller/storage/offices.py)."""
    names = set(db.table_names())
    if "offices" not in names:
        db.table("offices").create(
            {"office_id": str, "name": str, "destinations_json": str, "password_hash": str,
             "created_ms": int, "created_by": str, "removed_ms": int, "removed_by": str},
            pk="office_id", not_null={"name", "destinations_json", "password_hash",
                                      "created_ms"},
        )
    if "office_outbox" not in names:
        # ``record`` is the exact text built in the trip's transaction; ``signed`` the note
        # sent (kept from the first send, so a re-send is the same bytes)
        db.table("office_outbox").create(
            {"office_id": str, "office_seq": int, "trip_id": str, "version": int,
             "record": str, "signed": str, "created_ms": int, "attempts": int,
             "next_ms": int, "last_sent_ms": int, "acked_ms": int},
            pk=("office_id", "office_seq"),
            not_null={"trip_id", "version", "record", "created_ms", "attempts", "next_ms"},
        )
        db.execute("CREATE INDEX office_outbox_pending ON office_outbox (next_ms) "
                   "WHERE acked_ms IS NULL")
        db.table("office_outbox").create_index(["trip_id", "office_id"])


def _gate_control(db: sqlite_utils.Database) -> None:
    """Schema 9: lot holds (one row per hold; released_* NULL while it holds), the
    controller's commands to devices (barrier open/deny) with their delivery state, and
    the out-gate decision made for each weighing there."""
    names = set(db.table_names())
    if "holds" not in names:
        db.table("holds").create(
            {"id": int, "lot": str, "reason": str, "actor": str, "held_ms": int,
             "released_ms": int, "released_by": str, "release_reason": str},
            pk="id", not_null={"lot", "reason", "actor", "held_ms"},
        )
        db.execute("CREATE UNIQUE INDEX holds_active ON holds (lot) WHERE released_ms IS NULL")
    if "commands" not in names:
        db.table("commands").create(
            {"id": str, "device_id": str, "kind": str, "body_json": str, "issued_ms": int,
             "expires_ms": int, "attempts": int, "last_sent_ms": int, "state": str,
             "ack_json": str, "acked_ms": int},
            pk="id", not_null={"device_id", "kind", "body_json", "issued_ms", "expires_ms",
                               "attempts", "state"},
        )
        db.execute("CREATE INDEX commands_pending ON commands (expires_ms) "
                   "WHERE state = 'pending'")
        db.table("commands").create_index(["device_id", "issued_ms"])
    if "gate_decisions" not in names:
        # one per weighing at an out-gate: a weighing without a row is a decision to make
        # (at start, after a crash between the batch's commit and the decision)
        db.table("gate_decisions").create(
            {"device_id": str, "weighing_seq": int, "action": str, "reasons_json": str,
             "order_id": str, "lot": str, "plate": str, "command_id": str,
             "decided_ms": int},
            pk=("device_id", "weighing_seq"), not_null={"action", "reasons_json",
                                                        "decided_ms"},
        )


def _calibrations(db: sqlite_utils.Database) -> None:
    """Schema 9: instruments' calibration certificates (one row per device and certificate;
    valid from ``issued_ms`` until before ``expires_ms``) and draft surveys of lots."""
    names = set(db.table_names())
    if "calibrations" not in names:
        db.table("calibrations").create(
            {"device_id": str, "certificate_id": str, "accuracy_class": str, "e_kg": int,
             "issued_ms": int, "expires_ms": int, "issuer": str, "actor": str,
             "recorded_ms": int},
            pk=("device_id", "certificate_id"),
            not_null={"accuracy_class", "issued_ms", "expires_ms", "issuer", "actor",
                      "recorded_ms"},
        )
        db.table("calibrations").create_index(["expires_ms"])
    if "draft_surveys" not in names:
        db.table("draft_surveys").create(
            {"id": int, "lot_id": str, "kg": int, "surveyor": str, "actor": str,
             "time_ms": int},
            pk="id", not_null={"lot_id", "kg", "surveyor", "actor", "time_ms"},
        )
        db.table("draft_surveys").create_index(["lot_id"])


def _lots(db: sqlite_utils.Database) -> None:
    """Schema 9: lots from vessel to release and their status history (projections of the
    ledger's ``lot`` decisions: controller/projections/lots.py); holds gain a ``kind``
    (one active hold per lot and kind) and the approvals of a four-eyes release."""
    names = set(db.table_names())
    if "lots" not in names:
        # held_from: the status a hold interrupted, restored when the last hold is released
        db.table("lots").create(
            {"lot_id": str, "declaration_no": str, "commodity": str, "hs_code": str,
             "origin_country": str, "vessel": str, "declared_kg": int, "kind": str,
             "status": str, "created_ms": int, "updated_ms": int,
             "released_before_test": int, "held_from": str, "created_by": str},
            pk="lot_id", not_null={"declaration_no", "commodity", "hs_code",
                                   "origin_country", "vessel", "declared_kg", "kind",
                                   "status", "created_ms", "updated_ms"},
        )
        db.table("lots").create_index(["status"])
    if "lot_events" not in names:
        # one row per ``lot`` decision, keyed by its ledger index
        db.table("lot_events").create(
            {"lot_id": str, "idx": int, "status": str, "reason": str, "actor": str,
             "time_ms": int},
            pk="idx", not_null={"lot_id", "status", "time_ms"},
        )
        db.table("lot_events").create_index(["lot_id", "idx"])
        db.table("lot_events").create_index(["status", "time_ms"])
    if "kind" not in db.table("holds").columns_dict:
        db.table("holds").add_column("kind", str, not_null_default="manual")
    indexes = {i.name for i in db.table("holds").indexes}
    if "holds_active_kind" not in indexes:
        db.execute("DROP INDEX IF EXISTS holds_active")
        db.execute("CREATE UNIQUE INDEX holds_active_kind ON holds (lot, kind) "
                   "WHERE released_ms IS NULL")
    if "hold_approvals" not in names:
        db.table("hold_approvals").create(
            {"hold_id": int, "officer": str, "reason": str, "approved_ms": int},
            pk=("hold_id", "officer"), not_null={"approved_ms"},
        )


def _blends(db: sqlite_utils.Database) -> None:
    """Schema 9: ore blends (one row per blended lot) and their inputs with kg and fraction
    (projected from the ledger's ``blend`` decisions: controller/blends.py)."""
    names = set(db.table_names())
    if "blends" not in names:
        db.table("blends").create(
            {"blend_lot": str, "commodity": str, "origin": str, "origins_json": str,
             "total_kg": int, "reason": str, "actor": str, "created_ms": int},
            pk="blend_lot", not_null={"total_kg", "reason", "actor", "created_ms"},
        )
    if "blend_inputs" not in names:
        db.table("blend_inputs").create(
            {"blend_lot": str, "input_lot": str, "kg": int, "fraction": float},
            pk=("blend_lot", "input_lot"), not_null={"kg", "fraction"},
        )
        db.table("blend_inputs").create_index(["input_lot"])


def _samples(db: sqlite_utils.Database) -> None:
    """Schema 9: lab analyzers' samples (projected from ``sample`` events) and the lot each
    belongs to (the controller's ``sample_lot`` decisions: controller/samples.py)."""
    names = set(db.table_names())
    if "samples" not in names:
        db.table("samples").create(
            {"device_id": str, "seq": int, "sample_id": str, "sampled_ts": int,
             "moisture_pm": int, "basis": str, "protein_pm": int, "impurity_pm": int,
             "test_weight_g_per_l": int, "calibration_id": str, "outlier": int,
             "findings_json": str, "device_ts": int, "received_ms": int},
            pk=("device_id", "seq"), not_null={"sample_id", "sampled_ts"},
        )
        db.table("samples").create_index(["device_id", "sample_id"])
        db.table("samples").create_index(["sampled_ts"])
    if "sample_lots" not in names:
        # lot_id NULL: no lot was unloading at the sampling time (alert sample_without_lot)
        db.table("sample_lots").create(
            {"device_id": str, "seq": int, "sample_id": str, "lot_id": str,
             "calibration_valid": int, "duplicate_of_seq": int, "decided_ms": int},
            pk=("device_id", "seq"), not_null={"sample_id", "decided_ms"},
        )
        db.table("sample_lots").create_index(["lot_id"])


def _rail(db: sqlite_utils.Database) -> None:
    """Schema 9: the rail yard. ``passage_cars`` is projected from ``passage`` events (one
    row per tag read: role car or loco, or one role 'none' row for a passage without tags,
    each row carrying its passage's figures); ``passages`` is a view of one row per
    passage. ``trains`` and ``train_cars`` are train manifests, made from the controller's
    ``train`` decisions (controller/trains.py)."""
    names = set(db.table_names())
    if "passage_cars" not in names:
        db.table("passage_cars").create(
            {"device_id": str, "seq": int, "idx": int, "train": str, "direction": str,
             "started_ts": int, "ended_ts": int, "speed_dkmh": int, "axles_counted": int,
             "role": str, "car_seq": int, "initial": str, "number": int, "side": int,
             "length_dm": int, "axles": int, "weight_kg": int, "raw_hex": str,
             "received_ms": int},
            pk=("device_id", "seq", "idx"), not_null={"direction", "started_ts", "role"},
        )
        db.table("passage_cars").create_index(["initial", "number"])
        db.table("passage_cars").create_index(["started_ts"])
    if "passages" not in set(db.view_names()):
        db.create_view("passages", """
            SELECT device_id, seq, MAX(train) AS train, MAX(direction) AS direction,
                   MAX(started_ts) AS started_ts, MAX(ended_ts) AS ended_ts,
                   MAX(speed_dkmh) AS speed_dkmh, MAX(axles_counted) AS axles_counted,
                   SUM(role = 'car') AS cars, SUM(role = 'loco') AS locos,
                   SUM(role = 'car' AND initial IS NULL) AS unreadable,
                   MAX(received_ms) AS received_ms
            FROM passage_cars GROUP BY device_id, seq""")
    if "trains" not in names:
        # status: open (manifest declared, train not seen yet), passed (matched to a
        # passage), released (dispatched), cancelled
        db.table("trains").create(
            {"train_id": str, "reader": str, "direction": str, "status": str, "note": str,
             "actor": str, "created_ms": int, "updated_ms": int, "passage_device": str,
             "passage_seq": int, "released_ms": int, "released_by": str},
            pk="train_id", not_null={"reader", "direction", "status", "created_ms"},
        )
        db.table("trains").create_index(["reader", "direction", "status"])
    if "train_cars" not in names:
        db.table("train_cars").create(
            {"train_id": str, "idx": int, "initial": str, "number": int, "lot": str,
             "destination": str, "declared_kg": int},
            pk=("train_id", "idx"), not_null={"initial", "number"},
        )
        db.table("train_cars").create_index(["lot"])
