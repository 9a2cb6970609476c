"""The controller's side of c2sp.org/tlog-witness: push each new checkpoint to every
configured witness, keep the cosignatures, and raise an alert when one goes uncosigned.

Witnesses are configured in the store (`portwatch witness add`, table ledger_witnesses,
each addition a ledger decision). For each one the pusher believes the witness holds the
largest size it has cosigned for us (0 if none); a 409 names the witness's real size and
the pusher retries at once from it with the right consistency proof. A cosignature is
stored only after it verifies under the witness's configured key. An unreachable or
refusing witness is retried with exponential back-off (1 s doubling to 60 s by default).

Alert ``checkpoint_uncosigned`` (rule ``witness``, critical, subject = the witness's name)
is raised, as a ledger decision like every alert, when the oldest checkpoint a witness
has not cosigned is older than ``uncosigned_after_s``; it clears when the witness
catches up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from controller.errors import InvalidInput, NotFound
from controller.ledger import checkpoint, note
from controller.ledger.errors import LedgerError
from controller.ledger.witness_protocol import SIZE_CONTENT_TYPE, format_request
from controller.storage import Store, ledger_log, now_ms, open_store
from controller.storage import supervision as alert_rows
from controller.storage import witnesses as rows

log = logging.getLogger("portwatch.witness_push")
RULE, CODE = "witness", "checkpoint_uncosigned"
MAX_CONFLICTS = 3


@dataclass(frozen=True, slots=True)
class PushSettings:
    uncosigned_after_s: float = 600.0
    poll_s: float = 1.0
    timeout_s: float = 10.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0


@dataclass(slots=True)
class WitnessStatus:
    """What the pusher knows of one witness since the controller started."""

    failures: int = 0
    next_try_ms: int = 0
    known_size: int | None = None  # from its last 409
    last_error: str = ""
    cosigned: int = 0


@dataclass(slots=True)
class WitnessPusher:
    db_path: Path
    settings: PushSettings = field(default_factory=PushSettings)
    clock: Callable[[], int] = now_ms
    status: dict[str, WitnessStatus] = field(default_factory=dict)

    async def run(self) -> None:
        """Push and check the alert every ``poll_s`` until cancelled."""
        async with httpx.AsyncClient(timeout=self.settings.timeout_s) as client:
            while True:
                try:
                    await self.step(client)
                except Exception:  # a bug here must not stop the controller: log, go on
                    log.exception("witness push step failed")
                await asyncio.sleep(self.settings.poll_s)

    async def step(self, client: httpx.AsyncClient) -> None:
        """One round: push the latest checkpoint where due, then raise or clear alerts."""
        store = open_store(self.db_path, migrate=False)
        try:
            configured = rows.all_witnesses(store.conn)
            latest = checkpoint.latest(store.conn)
            for w in configured:
                st = self.status.setdefault(w.name, WitnessStatus())
                if latest is not None and self.clock() >= st.next_try_ms:
                    await self._push(store, client, w, latest, st)
            self._alerts(store, configured)
        finally:
            store.close()

    async def _push(self, store: Store, client: httpx.AsyncClient, w: rows.WitnessRow,
                    cp: checkpoint.StoredCheckpoint, st: WitnessStatus) -> None:
        conn = store.conn
        done = rows.cosigned_size(conn, w.vkey)
        if done is not None and done >= cp.size:
            return
        old = st.known_size if st.known_size is not None else (done or 0)
        if old > cp.size:
            old = done or 0
        verifier = note.Verifier.parse(w.vkey)
        for _ in range(MAX_CONFLICTS + 1):
            try:
                proof = (ledger_log.consistency_proof(conn, old, cp.size)
                         if 0 < old < cp.size else [])
                resp = await client.post(w.url, content=format_request(old, proof, cp.note))
            except httpx.HTTPError as exc:
                return self._failed(w, st, f"unreachable: {exc!r}")
            except LedgerError as exc:
                return self._failed(w, st, f"no proof from size {old}: {exc}")
            if resp.status_code == 200:
                return self._store(store, w, cp, verifier, resp.text, st)
            if resp.status_code == 409:
                known = _size_body(resp)
                if known is None or known == old:
                    return self._failed(w, st, f"409 with body {resp.text[:80]!r}")
                if known > cp.size:
                    st.known_size = None
                    return self._failed(w, st, f"the witness holds size {known}, larger than "
                                        f"our latest checkpoint ({cp.size}): it cosigned a "
                                        "checkpoint this store does not hold")
                log.info("witness %s holds size %d, not %d: retrying from it", w.name, known,
                         old)
                st.known_size = old = known
                continue
            return self._failed(w, st, f"refused with {resp.status_code}: "
                                f"{resp.text.strip()[:200]}")
        self._failed(w, st, f"gave up after {MAX_CONFLICTS} conflicts")

    def _store(self, store: Store, w: rows.WitnessRow, cp: checkpoint.StoredCheckpoint,
               verifier: note.Verifier, body: str, st: WitnessStatus) -> None:
        """Keep the one line of the response that verifies under the witness's key."""
        for line in body.splitlines(keepends=True):
            try:
                checkpoint.add_cosignature(store.conn, cp.id, line, verifier, self.clock())
            except LedgerError:
                continue  # not this witness's line, or not a valid one: try the next
            st.failures, st.next_try_ms, st.last_error = 0, 0, ""
            st.known_size, st.cosigned = cp.size, st.cosigned + 1
            log.info("witness %s cosigned checkpoint %d (size %d)", w.name, cp.id, cp.size)
            return
        self._failed(w, st, "its answer holds no valid cosignature under its configured key")

    def _failed(self, w: rows.WitnessRow, st: WitnessStatus, why: str) -> None:
        st.failures += 1
        delay = min(self.settings.backoff_max_s,
                    self.settings.backoff_min_s * 2 ** (st.failures - 1))
        st.next_try_ms = self.clock() + int(delay * 1000)
        st.last_error = why
        log.warning("witness %s (%s): %s; retry in %.0f s (failure %d)", w.name, w.url, why,
                    delay, st.failures)

    def _alerts(self, store: Store, configured: list[rows.WitnessRow]) -> None:
        now = self.clock()
        names = {w.name for w in configured}
        for w in configured:
            waiting = rows.first_uncosigned(store.conn, w.vkey)
            late = (waiting is not None
                    and now - waiting[2] > self.settings.uncosigned_after_s * 1000)
            detail = {} if waiting is None else {
                "checkpoint_id": waiting[0], "size": waiting[1], "created_ms": waiting[2],
                "url": w.url, "last_error": self.status.get(w.name, WitnessStatus()).last_error,
                "uncosigned_after_s": self.settings.uncosigned_after_s}
            _set_alert(store, w.name, late, detail, now)
        for a in alert_rows.list_alerts(store, active=True, limit=1000):
            if a["rule"] == RULE and a["code"] == CODE and a["subject"] not in names:
                _set_alert(store, str(a["subject"]), False, {"removed": True}, now)


def _size_body(resp: httpx.Response) -> int | None:
    if not resp.headers.get("content-type", "").startswith(SIZE_CONTENT_TYPE):
        return None
    text = resp.text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _set_alert(store: Store, witness: str, active: bool, detail: dict[str, object],
               now: int) -> None:
    """Raise or clear one witness's alert, with its ledger decision, in one transaction."""
    # a read first: the write lock (which the ingest waits on) is taken only on a change
    if active == (alert_rows.active_alert_id(store.conn, RULE, "", CODE, witness) is not None):
        return
    with store.transaction() as conn:
        current = alert_rows.active_alert_id(conn, RULE, "", CODE, witness)
        if active == (current is not None):
            return
        if active:
            alert_id = alert_rows.raise_alert(
                conn, rule=RULE, code=CODE, device_id="", subject=witness,
                severity="critical", detail=detail, raised_ts=now // 1000, raised_ms=now,
                raised_seq=None)
            log.error("ALERT %s: witness %s has not cosigned checkpoint size %s for more "
                      "than %s s (%s)", CODE, witness, detail.get("size"),
                      detail.get("uncosigned_after_s"), detail.get("last_error") or "no error")
        else:
            assert current is not None
            alert_id = current
            alert_rows.clear_alert(conn, alert_id, cleared_ts=now // 1000, cleared_ms=now,
                                   cleared_seq=None, cleared_by=f"rule:{RULE}")
            log.info("alert %s cleared: witness %s is up to date", CODE, witness)
        ledger_log.append_decision(conn, "alert", f"rule:{RULE}", {
            "alert_id": alert_id, "action": "raise" if active else "clear", "code": CODE,
            "device_id": "", "subject": witness, "severity": "critical",
            "detail": detail, "ts": now // 1000, "seq": None}, now)


def add_witness(store: Store, vkey: str, url: str, *, actor: str) -> rows.WitnessRow:
    """Configure a witness (its cosignature vkey and URL) as a ledger decision.

    InvalidInput for a vkey that is not a cosignature/v1 key or a URL that is not http(s).
    ``url`` may be the witness's base URL: ``/add-checkpoint`` is appended when missing.
    """
    try:
        verifier = note.Verifier.parse(vkey)
    except LedgerError as exc:
        raise InvalidInput(str(exc)) from exc
    if verifier.sig_type != note.COSIGNATURE_V1:
        raise InvalidInput(f"{verifier.name}: a witness key is a cosignature/v1 key (type "
                           "0x04), as `portwatch witness init` prints it")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise InvalidInput(f"witness URL {url!r}: expected http(s)://host[:port][/prefix]")
    path = parts.path.rstrip("/")
    if not path.endswith("/add-checkpoint"):
        path += "/add-checkpoint"
    full = f"{parts.scheme}://{parts.netloc}{path}"
    now = now_ms()
    with store.transaction() as conn:
        rows.add(conn, verifier.name, verifier.vkey, full, now)
        ledger_log.append_decision(conn, "witness_added", actor, {
            "name": verifier.name, "vkey": verifier.vkey, "url": full}, now)
    return rows.WitnessRow(verifier.name, verifier.vkey, full, now)


def remove_witness(store: Store, name: str, *, actor: str) -> None:
    """Stop pushing to a witness (its stored cosignatures stay), as a ledger decision."""
    now = now_ms()
    with store.transaction() as conn:
        if not rows.remove(conn, name):
            raise NotFound(f"no witness named {name!r}: list them with `portwatch witness list`")
        ledger_log.append_decision(conn, "witness_removed", actor, {"name": name}, now)


def list_witnesses(store: Store) -> list[dict[str, object]]:
    """Each configured witness with the largest size it cosigned and what it waits for."""
    out: list[dict[str, object]] = []
    for w in rows.all_witnesses(store.conn):
        waiting = rows.first_uncosigned(store.conn, w.vkey)
        out.append({"name": w.name, "url": w.url, "vkey": w.vkey,
                    "cosigned_size": rows.cosigned_size(store.conn, w.vkey),
                    "waiting_size": None if waiting is None else waiting[1],
                    "waiting_since_ms": None if waiting is None else waiting[2]})
    return out
