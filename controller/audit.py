"""The audit: served rows rebuilt from the ledger and compared, row by row.

Nothing in the store's tables is trusted. Each custody event's ledger entry holds the
device's message exactly as received; the replay parses it as the ingest did, makes the
``messages`` row and runs the same registered projections (controller/projections) to
make the rows of ``weighings``, ``alarms``, ``lost_ranges``, ``refused_notices`` and any
table a later projection writes. Admins' ``declare_lost`` decisions add their lost ranges,
and each device's watermark (``devices.committed_seq``, which the completeness view is
read from) must lie where the replayed messages and lost ranges put it. Then every stored
row is compared with its rebuilt one: *edited* (same key, other values), *deleted*
(rebuilt, not stored) and *added* (stored, made by no entry), by table and key.

Plausibility flags depend on more than the event (the device's registration, its latest
health, the site's settings): the ingest records what it judged each device against in a
``limits`` decision before the first event judged that way, and the replay uses it, so a
flag is rebuilt exactly. A weighing stored before those decisions existed has no recorded
limits: its flags are counted as unchecked, never guessed.

The work goes device by device and seq range by seq range (``chunk`` events at a time),
so memory stays bounded by the chunk, not the store. ``audit_store`` is the full audit;
``audit_new`` checks only the entries from one index on (what the controller runs after
its commits). The ledger entries themselves are checked by ``portwatch ledger verify``
(hashes, signed checkpoints); here each entry's bytes must match its recorded leaf hash.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.facts import Fact
from controller.ledger import entries as entry_mod
from controller.ledger import tree
from controller.ledger.errors import EntryFormatError
from controller.plausibility import Limits
from controller.projections import PROJECTIONS, project
from controller.storage import audit_reads
from controller.storage.custody import PROJECTED_COLUMNS
from protocols import envelope
from protocols.envelope_shape import parse as parse_envelope

CHUNK = 5000
LOST = "lost_ranges"
DECISION_KINDS = ("limits", "declare_lost")
_LOST_VALUES = ("reason", "declared_by", "declared_ms")

Row = dict[str, Any]
# a served row's key: (device_id, seq), and the row's place among its event's rows
# (idx) in a table with several rows per event (positions: one row per fix)
Key = tuple[Any, ...]
Progress = Callable[[int, int, int], None]  # devices done, devices in all, entries replayed


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One row that is not what the ledger makes it.

    ``problem``: ``edited``, ``deleted``, ``added``, or ``ledger`` (an entry that cannot be
    replayed: its bytes do not match its leaf hash, or it does not parse), ``trigger`` (a
    trigger someone put in the store). ``columns``: (column, stored, expected) of an edit.
    """

    table: str
    key: str
    problem: str
    columns: tuple[tuple[str, Any, Any], ...] = ()
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        """Plain JSON (bytes as their length and SHA-256): for --json and ledger bodies."""
        out: dict[str, Any] = {"table": self.table, "key": self.key, "problem": self.problem}
        if self.columns:
            out["columns"] = [{"column": c, "stored": _plain(s), "expected": _plain(e)}
                              for c, s, e in self.columns]
        if self.detail:
            out["detail"] = self.detail
        return out

    @property
    def device_id(self) -> str:
        return self.key.split("/", 1)[0] if "/" in self.key else "*"

    def signature(self) -> str:
        """Identifies the mismatch: the same one found again is not reported again."""
        return json.dumps(self.as_json(), sort_keys=True, ensure_ascii=False)


@dataclass(slots=True)
class TableCount:
    """Rows checked and problems found in one table."""

    checked: int = 0
    edited: int = 0
    deleted: int = 0
    added: int = 0


@dataclass(slots=True)
class AuditReport:
    """What an audit looked at and what it found."""

    entries: int = 0          # custody events replayed
    devices: int = 0
    ledger_size: int = 0
    unchecked_flags: int = 0  # weighings stored before limits were recorded
    seconds: float = 0.0
    tables: dict[str, TableCount] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    def count(self, table: str) -> TableCount:
        return self.tables.setdefault(table, TableCount())

    def add(self, m: Mismatch) -> None:
        self.mismatches.append(m)
        c = self.count(m.table)
        if m.problem in ("edited", "deleted", "added"):
            setattr(c, m.problem, getattr(c, m.problem) + 1)

    @property
    def clean(self) -> bool:
        return not self.mismatches


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}…"
    return value


class Replay:
    """The decisions the rebuilt rows depend on, per device, in log order."""

    def __init__(self) -> None:
        self.limits: dict[str, tuple[list[int], list[Limits]]] = {}
        self.lost: dict[str, list[Row]] = {}
        self.last_idx = -1

    def add_decision(self, idx: int, decision: entry_mod.Decision) -> None:
        """Take in one ``limits`` or ``declare_lost`` decision (others are ignored)."""
        self.last_idx = max(self.last_idx, idx)
        b = decision.body
        dev = b.get("device_id")
        if not isinstance(dev, str):
            return
        if decision.decision == "limits":
            idxs, values = self.limits.setdefault(dev, ([], []))
            idxs.append(idx)
            values.append(limits_from_body(b))
        elif decision.decision == "declare_lost":
            self.lost.setdefault(dev, []).append({
                "device_id": dev, "first_seq": b.get("first_seq"), "last_seq": b.get("last_seq"),
                "reason": b.get("reason"), "declared_by": decision.actor,
                "declared_ms": decision.time_ms})

    def limits_at(self, device_id: str, idx: int) -> Limits | None:
        """The limits recorded for the device last before entry ``idx`` (None: none were)."""
        known = self.limits.get(device_id)
        if known is None:
            return None
        at = bisect.bisect_left(known[0], idx)
        return None if at == 0 else known[1][at - 1]

    @classmethod
    def load(cls, conn: Any, after_idx: int = -1) -> Replay:
        r = cls()
        r.read(conn, after_idx)
        return r

    def read(self, conn: Any, after_idx: int = -1) -> None:
        """Take in every decision the replay uses past ``after_idx`` (they are few)."""
        for idx, data in audit_reads.decisions(conn, DECISION_KINDS, after_idx):
            try:
                e = entry_mod.decode(data)
            except EntryFormatError:
                continue  # reported where the entry is replayed; verify names it too
            if isinstance(e, entry_mod.Decision):
                self.add_decision(idx, e)


def limits_from_body(b: Mapping[str, Any]) -> Limits:
    """The Limits a ``limits`` decision recorded (controller/ingest/writer.recorded_limits)."""
    d = Limits()
    return Limits(capacity_kg=int(b.get("capacity_kg", d.capacity_kg)),
                  division_kg=b.get("division_kg"),
                  plate_pattern=str(b.get("plate_pattern", d.plate_pattern)),
                  max_clock_skew_ms=int(b.get("max_clock_skew_ms", d.max_clock_skew_ms)),
                  max_delay_ms=int(b.get("max_delay_ms", d.max_delay_ms)),
                  clock_offset_ms=b.get("clock_offset_ms"),
                  calibration=_windows(b.get("calibration")))


def _windows(value: Any) -> tuple[tuple[int, int], ...] | None:
    """The calibration windows a ``limits`` body recorded (absent: not under control)."""
    if not isinstance(value, list):
        return None
    return tuple((int(w[0]), int(w[1])) for w in value)


@dataclass(slots=True)
class Rebuilt:
    """The rows one chunk of events makes, by table and (device_id, seq)."""

    rows: dict[str, dict[Key, Row]] = field(default_factory=dict)
    unchecked: set[tuple[str, str, int]] = field(default_factory=set)  # (table, dev, seq)
    lost: list[Row] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)


def _fields(wire: bytes) -> dict[str, Any]:
    """The envelope's fields, as the ingest read them. Plain json.loads gives the same dict
    as the ingest's checked parse for any message it accepted (it refused duplicate keys and
    bad shapes), at a third of the cost; what is not an object gets the full parse, which
    says what is wrong."""
    fields = json.loads(envelope.split(wire)[0])
    if not isinstance(fields, dict) or not isinstance(fields.get("body"), dict):
        return dict(parse_envelope(envelope.split(wire)[0]))
    return fields


def seq_tables() -> list[str]:
    """Every table the audit compares by (device_id, seq): messages and each projection's
    table that has a seq column (a new projection is audited by being registered)."""
    out = ["messages"]
    for p in PROJECTIONS.values():
        if p.table not in out and "seq" in PROJECTED_COLUMNS.get(p.table, ()):
            out.append(p.table)
    return out


def row_key(row: Mapping[str, Any]) -> Key:
    """A row's audit key: (device_id, seq), or (device_id, seq, idx) where it has an idx."""
    if "idx" in row:
        return (str(row["device_id"]), int(row["seq"]), int(row["idx"]))
    return (str(row["device_id"]), int(row["seq"]))


def key_name(table: str, key: Key) -> str:
    """How a mismatch names a row: device/seq, and device/seq/idx."""
    return "/".join(str(k) for k in key)


def _columns(table: str) -> tuple[str, ...]:
    return audit_reads.MESSAGE_COLUMNS if table == "messages" else PROJECTED_COLUMNS[table]


def rebuild(events: Iterable[tuple[int, bytes, bytes]], replay: Replay,
            report: AuditReport) -> Rebuilt:
    """Replay custody-event entries (idx, entry, leaf hash): their rows, as the ingest made
    them. An entry that cannot be replayed is a ``ledger`` mismatch in ``report``."""
    out = Rebuilt()
    for idx, data, leaf in events:
        if tree.leaf_hash(data) != leaf:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail="the entry's bytes do not hash to its recorded leaf "
                                "hash: run `portwatch ledger verify` on an export"))
            continue
        try:
            e = entry_mod.decode(data)
            if not isinstance(e, entry_mod.DeviceMessage):
                continue
            fields = _fields(e.wire)
        except (EntryFormatError, envelope.EnvelopeError, ValueError) as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"the custody event does not replay: {exc}"))
            continue
        if e.channel != "evt":
            continue
        report.entries += 1
        dev = e.device_id
        limits = replay.limits_at(dev, idx)
        fact = Fact.from_fields(dev, fields, e.received_ms, limits)
        key = (dev, fact.seq)
        if key in out.rows.get("messages", {}):
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"a second custody event for {dev}/{fact.seq}"))
            continue
        out.seqs.append(fact.seq)
        out.rows.setdefault("messages", {})[key] = {
            "device_id": dev, "seq": fact.seq, "boot": fact.boot, "kind": fact.kind,
            "device_ts": fact.device_ts, "received_ms": fact.received_ms, "topic": e.topic,
            "payload": e.wire, "sha256": hashlib.sha256(e.wire).hexdigest()}
        for table, row in project(fact):
            if table == LOST:
                out.lost.append(row)
            else:
                out.rows.setdefault(table, {})[row_key(row)] = row
                if limits is None and "flags_json" in row:
                    out.unchecked.add((table, dev, fact.seq))
    return out


def compare(table: str, expected: Mapping[Key, Row],
            stored: Iterable[Row], report: AuditReport,
            unchecked: set[tuple[str, str, int]] | None = None) -> None:
    """Diff one table's rows (keyed by device_id, seq and idx) against the rebuilt ones."""
    unchecked = unchecked or set()
    cols = _columns(table)
    count = report.count(table)
    seen: set[Key] = set()
    for row in stored:
        key = row_key(row)
        seen.add(key)
        count.checked += 1
        want = expected.get(key)
        name = key_name(table, key)
        if want is None:
            report.add(Mismatch(table, name, "added", detail="no ledger entry makes this row"))
            continue
        skip = (table, key[0], key[1]) in unchecked
        if skip:
            report.unchecked_flags += 1
        diffs = tuple((c, _value(row.get(c)), _value(want.get(c))) for c in cols
                      if row.get(c) != want.get(c) and not (skip and c == "flags_json")
                      and _value(row.get(c)) != _value(want.get(c)))
        if diffs:
            report.add(Mismatch(table, name, "edited", diffs))
    for key in expected:
        if key not in seen:
            report.add(Mismatch(table, key_name(table, key), "deleted",
                                detail="the ledger makes this row; the store lacks it"))


def _value(v: Any) -> Any:
    return bytes(v) if isinstance(v, memoryview | bytearray) else v


def compare_lost(device_id: str, expected: list[Row], stored: list[Row],
                 report: AuditReport) -> None:
    """Declared-lost ranges are compared as a multiset of their values (their ids are the
    store's own numbering, not the ledger's)."""
    def sig(r: Row) -> tuple[Any, ...]:
        return (r.get("first_seq"), r.get("last_seq"), *(r.get(c) for c in _LOST_VALUES))

    want, have = Counter(sig(r) for r in expected), Counter(sig(r) for r in stored)
    report.count(LOST).checked += len(stored)
    for s, n in (have - want).items():
        for _ in range(n):
            report.add(Mismatch(LOST, f"{device_id}/{s[0]}-{s[1]}", "added",
                                detail=f"reason {s[2]!r}, declared by {s[3]!r} at {s[4]}: no "
                                "ledger entry declares it"))
    for s, n in (want - have).items():
        for _ in range(n):
            report.add(Mismatch(LOST, f"{device_id}/{s[0]}-{s[1]}", "deleted",
                                detail=f"reason {s[2]!r}, declared by {s[3]!r} at {s[4]}: the "
                                "ledger declares it; the store lacks it (or holds it edited)"))


class _Watermark:
    """The contiguous watermark the replayed seqs and lost ranges allow, fed in seq order."""

    def __init__(self, lost: list[Row]) -> None:
        self.ranges = sorted((int(r["first_seq"]), int(r["last_seq"])) for r in lost
                             if isinstance(r.get("first_seq"), int)
                             and isinstance(r.get("last_seq"), int))
        self.value = 0
        self.broken = False
        self.max_seq = 0

    def _extend(self) -> None:
        moved = True
        while moved:
            moved = False
            for first, last in self.ranges:
                if first <= self.value + 1 <= last:
                    self.value, moved = last, True

    def feed(self, seq: int) -> None:
        self.max_seq = max(self.max_seq, seq)
        if self.broken:
            return
        self._extend()
        if seq == self.value + 1:
            self.value = seq
        elif seq > self.value + 1:
            self.broken = True

    def bounds(self, numbered: int) -> tuple[int, int]:
        """(lowest, highest) watermark an honest store can hold: the ingest caps it at the
        highest seq the device had numbered when it last moved it (its highest event, or
        its health's next_seq - 1 at that time, which may have grown since; at least the
        end of every range declared lost, which was refused beyond it)."""
        if not self.broken:
            self._extend()
        floor = max([self.max_seq, *(last for _, last in self.ranges)])
        return min(self.value, floor), min(self.value, max(floor, numbered))


def _numbered(conn: Any, device_id: str) -> int:
    data = audit_reads.last_telemetry(conn, device_id)
    if data is None:
        return 0
    try:
        e = entry_mod.decode(data)
        if not isinstance(e, entry_mod.DeviceMessage):
            return 0
        nxt = parse_envelope(envelope.split(e.wire)[0])["body"].get("next_seq")
    except (EntryFormatError, envelope.EnvelopeError, ValueError, AttributeError):
        return 0
    return nxt - 1 if isinstance(nxt, int) and nxt > 0 else 0


def audit_device(conn: Any, device_id: str, replay: Replay, report: AuditReport,
                 chunk: int = CHUNK) -> None:
    """Audit every row of one device, ``chunk`` events at a time."""
    tables = seq_tables()
    lost = list(replay.lost.get(device_id, []))
    mark = _Watermark(lost)
    after = -1
    while True:
        events = audit_reads.events(conn, device_id, after, chunk)
        last = len(events) < chunk
        built = rebuild([(i, e, h) for i, _s, e, h in events], replay, report)
        upto = None if last else events[-1][1]
        for s in sorted(built.seqs):
            mark.feed(s)
        for t in tables:
            stored = audit_reads.rows_in_range(conn, t, device_id, after, upto)
            compare(t, built.rows.get(t, {}), stored, report, built.unchecked)
        lost.extend(built.lost)
        if last or upto is None:
            break
        after = upto
    compare_lost(device_id, lost, audit_reads.lost_rows(conn, device_id), report)
    stored_mark = audit_reads.committed_seq(conn, device_id)
    if stored_mark is None and mark.max_seq:
        # portwatch never deletes a device (decommissioning keeps its row and history)
        report.add(Mismatch("devices", f"{device_id}/committed_seq", "deleted",
                            detail="the ledger holds custody events of this device; the "
                            "registry has no row for it"))
    elif stored_mark is not None:
        low, high = mark.bounds(_numbered(conn, device_id))
        report.count("devices").checked += 1
        if not low <= stored_mark <= high:
            want: Any = low if low == high else f"{low}..{high}"
            report.add(Mismatch("devices", f"{device_id}/committed_seq", "edited",
                                (("committed_seq", stored_mark, want),),
                                detail="the watermark the completeness view reports is not "
                                "where the ledger's events and lost ranges put it"))


def audit_store(conn: Any, *, chunk: int = CHUNK, progress: Progress | None = None,
                replay: Replay | None = None) -> AuditReport:
    """The full audit of a store (open one read snapshot: ``conn`` must see one moment)."""
    started = time.perf_counter()
    report = AuditReport(ledger_size=audit_reads.size(conn))
    replay = replay or Replay.load(conn)
    ids = sorted(audit_reads.devices(conn, [*seq_tables(), LOST]))
    report.devices = len(ids)
    for n, dev in enumerate(ids, 1):
        audit_device(conn, dev, replay, report, chunk)
        if progress is not None:
            progress(n, len(ids), report.entries)
    from controller import audit_alerts  # it builds on this module's report types
    audit_alerts.audit_alerts(conn, report)
    from controller import audit_trips  # orders and trips, from their decisions
    audit_trips.audit_trips(conn, report)
    from controller import audit_gate  # holds, gate decisions, commands, from theirs
    audit_gate.audit_gate(conn, report)
    from controller import audit_blends  # ore blends and their inputs, from blend decisions
    audit_blends.audit_blends(conn, report)
    from controller import audit_lots  # lots and their status history, from lot decisions
    audit_lots.audit_lots(conn, report)
    from controller import audit_calibration  # certificates, from their decisions
    audit_calibration.audit_calibration(conn, report)
    from controller import audit_samples  # each sample's lot, from sample_lot decisions
    audit_samples.audit_samples(conn, report)
    from controller import audit_trains  # train manifests, from their train decisions
    audit_trains.audit_trains(conn, report)
    for name, table in audit_reads.triggers(conn):
        report.add(Mismatch(table, name, "trigger",
                            detail="a trigger in the store (portwatch makes none): it can "
                            "rewrite rows as they are written"))
    report.seconds = time.perf_counter() - started
    return report


def audit_new(conn: Any, start_idx: int, replay: Replay, *,
              chunk: int = CHUNK) -> tuple[AuditReport, int]:
    """Check the rows made by the entries from ``start_idx`` on; return the report and the
    index to start from next time. ``replay`` is kept up to date with the decisions read."""
    started = time.perf_counter()
    report = AuditReport(ledger_size=audit_reads.size(conn))
    tables = seq_tables()
    pos = start_idx
    while True:
        batch = audit_reads.entries_from(conn, pos, chunk)
        if not batch:
            break
        events = []
        for idx, data, leaf in batch:
            try:
                e = entry_mod.decode(data)
            except EntryFormatError:
                events.append((idx, data, leaf))  # rebuild reports it
                continue
            if isinstance(e, entry_mod.Decision):
                if e.decision == "alert":
                    from controller import audit_alerts  # builds on this module's types
                    audit_alerts.check_decision(conn, idx, e, report)
                elif e.decision in ("order", "trip"):
                    from controller import audit_trips  # builds on this module's types
                    audit_trips.check_decision(conn, idx, e, report)
                elif e.decision == "lot":
                    from controller import audit_lots  # builds on this module's types
                    audit_lots.check_decision(conn, idx, e, report)
                elif e.decision == "sample_lot":
                    from controller import audit_samples  # builds on this module's types
                    audit_samples.check_decision(conn, idx, e, report)
                elif e.decision == "train":
                    from controller import audit_trains  # builds on this module's types
                    audit_trains.check_decision(conn, idx, e, report)
                if idx > replay.last_idx:
                    replay.add_decision(idx, e)
                    if e.decision == "declare_lost":
                        _check_lost_present(conn, replay.lost[str(e.body["device_id"])][-1],
                                            report)
            elif e.channel == "evt":
                events.append((idx, data, leaf))
        built = rebuild(events, replay, report)
        for t in tables:
            by_event: dict[tuple[str, int], dict[Key, Row]] = {}
            for key, row in built.rows.get(t, {}).items():
                by_event.setdefault((key[0], key[1]), {})[key] = row
            for (dev, seq), want in by_event.items():
                compare(t, want, audit_reads.rows_at(conn, t, dev, seq), report,
                        built.unchecked)
        for row in built.lost:
            _check_lost_present(conn, row, report)
        pos = batch[-1][0] + 1
        if len(batch) < chunk:
            break
    report.seconds = time.perf_counter() - started
    return report, pos


def _check_lost_present(conn: Any, want: Row, report: AuditReport) -> None:
    dev = str(want["device_id"])
    have = [r for r in audit_reads.lost_rows(conn, dev)
            if (r["first_seq"], r["last_seq"]) == (want["first_seq"], want["last_seq"])]
    report.count(LOST).checked += len(have)
    if not any(all(r.get(c) == want.get(c) for c in _LOST_VALUES) for r in have):
        report.add(Mismatch(LOST, f"{dev}/{want['first_seq']}-{want['last_seq']}", "deleted",
                            detail="the ledger declares this range lost; the store lacks it "
                            "(or holds it edited)"))
