"""`portwatch ledger …` and `portwatch witness …`: a thin mirror of controller.ledger."""

from __future__ import annotations

import getpass
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from controller.errors import ControllerError, StoreError
from controller.ledger import bundle, checkpoint, evidence, logkey, note, proofs
from controller.ledger.errors import LedgerError
from controller.ledger.witness import Witness
from controller.storage import ledger_log as ledger_store
from controller.storage import now_ms, open_store, transaction
from tools import settings

err = Console(stderr=True, soft_wrap=True)
ledger_app = typer.Typer(help="The tamper-evident ledger: checkpoints, proofs, export and "
                         "offline verification.", no_args_is_help=True)
witness_app = typer.Typer(help="A witness that cosigns ledger checkpoints it checked for "
                          "consistency.", no_args_is_help=True)

DbOpt = Annotated[Path | None, typer.Option(
    "--db", envvar="PORTWATCH_DB", help="controller store [default: var/portwatch.db]")]
SiteOpt = Annotated[str | None, typer.Option(
    "--site", envvar="PORTWATCH_SITE",
    help="site id; the log's origin is portwatch/<site> [default: the ledger's own]")]
StateOpt = Annotated[Path, typer.Option("--state", help="the witness's own state directory")]


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _db(db: Path | None) -> Path:
    return db or settings.default_db()


def _open(db: Path | None) -> sqlite3.Connection:
    try:
        return open_store(_db(db)).conn
    except StoreError as exc:
        fail(str(exc))


def _signer(conn: sqlite3.Connection, db: Path | None, site: str | None) -> note.Signer:
    """The log key, named after the ledger's origin (or portwatch/<site> for a new ledger)."""
    stored = ledger_store.get_meta(conn, "origin")
    wanted = checkpoint.origin_for(site or settings.default_site())
    if stored is not None and site is not None and stored != wanted:
        fail(f"this ledger's origin is {stored!r}, not {wanted!r}")
    return checkpoint.log_signer(_db(db), stored or wanted)


def _print_json(doc: dict[str, Any]) -> None:
    typer.echo(json.dumps(doc, indent=1, ensure_ascii=False))


@ledger_app.command("checkpoint")
def ledger_checkpoint(db: DbOpt = None, site: SiteOpt = None) -> None:
    """Sign a checkpoint of the whole ledger now and print it (a C2SP signed note).

    The controller's key is created on first use in <db>.ledger-key.pem (mode 0600).

    Example: portwatch ledger checkpoint --db var/portwatch.db
    """
    conn = _open(db)
    try:
        cp = checkpoint.create(conn, _signer(conn, db, site), now_ms())
    except LedgerError as exc:
        fail(str(exc))
    typer.echo(checkpoint.cosigned_note(conn, cp), nl=False)


@ledger_app.command("key")
def ledger_key(db: DbOpt = None, site: SiteOpt = None) -> None:
    """Print the log's public key as a verifier key (vkey), for auditors and witnesses.

    Example: portwatch ledger key --db var/portwatch.db
    """
    conn = _open(db)
    typer.echo(_signer(conn, db, site).verifier.vkey)


@ledger_app.command("rotate-key")
def ledger_rotate_key(
    reason: Annotated[str, typer.Option(help="why the key changes, kept in the ledger")],
    db: DbOpt = None,
) -> None:
    """Replace the log key: the old key signs the hand-over, recorded in the ledger.

    Signs a last checkpoint with the old key, appends a log_key_rotation decision signed by
    the old key (and the new one) over the new key and its place in the log, signs a
    checkpoint with the new key, then moves the old key file aside (.retired-<key id>).
    Auditors keep the key they pinned: `ledger verify` follows the rotation. Tell the
    witnesses the new key.

    Example: portwatch ledger rotate-key --db var/portwatch.db --reason "yearly rotation"
    """
    import getpass
    import os

    conn = _open(db)
    try:
        old = _signer(conn, db, None)
        key_file = checkpoint.key_path(_db(db))
        checkpoint.create(conn, old, now_ms())
        new = logkey.generate_new_key(key_file, old.name)
        try:
            with transaction(conn):
                logkey.record_rotation(conn, old, new, now_ms(), f"cli:{getpass.getuser()}",
                                       reason)
        except LedgerError:
            logkey.new_key_path(key_file).unlink()
            raise
        # the store pins the new key from here: the files follow (a crash in between leaves
        # <key>.new, which the refusal to sign names)
        os.replace(key_file, logkey.retired_key_path(key_file, old.verifier))
        os.replace(logkey.new_key_path(key_file), key_file)
        cp = checkpoint.create(conn, new, now_ms())
    except LedgerError as exc:
        fail(str(exc))
    err.print(f"rotated the log key: {old.verifier.vkey} -> {new.verifier.vkey}",
              highlight=False)
    typer.echo(new.verifier.vkey)
    typer.echo(checkpoint.cosigned_note(conn, cp), nl=False)


@ledger_app.command("export")
def ledger_export(
    out: Annotated[Path, typer.Option(help="bundle file to write (JSON)")],
    since_size: Annotated[int | None, typer.Option(
        min=0, help="only the entries from this tree size on (the ones before travel as "
        "the few hashes that sum them up): the size your last audit reached")] = None,
    since_checkpoint: Annotated[Path | None, typer.Option(
        help="or: from the size of this signed checkpoint (the one your last audit "
        "verified)")] = None,
    db: DbOpt = None,
) -> None:
    """Write a self-contained bundle: entries, checkpoints, cosignatures, public keys.

    With --since-size or --since-checkpoint it holds only the entries after your last
    audit; `ledger verify --extends` checks it against the checkpoint (or the earlier
    bundle) it continues.

    Example: portwatch ledger export --out audit/ledger.json --since-checkpoint audit/last.note
    """
    if not _db(db).exists():
        fail(f"no store at {_db(db)}: pass --db or set PORTWATCH_DB")
    if since_size is not None and since_checkpoint is not None:
        fail("give --since-size or --since-checkpoint, not both")
    start = since_size or 0
    if since_checkpoint is not None:
        try:
            start = checkpoint.Checkpoint.parse(note.parse(since_checkpoint.read_text()).text).size
        except (OSError, LedgerError) as exc:
            fail(f"--since-checkpoint {since_checkpoint}: {exc}")
    try:
        summary = bundle.export(_db(db), out, now_ms=now_ms(), since_size=start)
    except LedgerError as exc:
        fail(str(exc))
    span = (f"entries {summary['start']}..{summary['size'] - 1}" if summary["start"] else
            f"{summary['size']} entries")
    err.print(f"wrote {out}: {span}, {summary['checkpoints']} checkpoints, "
              f"log key {summary['log_key']}", highlight=False)


@ledger_app.command("verify")
def ledger_verify(
    path: Annotated[Path, typer.Argument(help="bundle from `portwatch ledger export`")],
    log_key: Annotated[str | None, typer.Option(
        help="the log's vkey as you got it from the operator (its first key, or a later one "
        "its signed rotations hand over to) [default: the bundle's]")] = None,
    witness_key: Annotated[list[str] | None, typer.Option(
        help="a witness's vkey whose cosignatures are checked where present, repeatable "
        "[default: the bundle's]")] = None,
    require_witness: Annotated[list[str] | None, typer.Option(
        help="a witness's vkey that must have cosigned the latest checkpoint, repeatable")] =
        None,
    quorum: Annotated[int | None, typer.Option(
        help="how many of the --require-witness keys must have cosigned [default: all]")] =
        None,
    checkpoint_file: Annotated[list[Path] | None, typer.Option(
        "--checkpoint", help="a signed checkpoint you hold (e.g. a witness's latest.note), "
        "repeatable")] = None,
    extends: Annotated[Path | None, typer.Option(
        help="the signed checkpoint or the earlier bundle this bundle must extend (needed "
        "for a bundle exported with --since-size or --since-checkpoint)")] = None,
) -> None:
    """Check a bundle offline; exit 1 with the first failure on stderr.

    Recomputes every leaf hash and the Merkle tree, checks every signature (following the
    log's signed key rotations) and each checkpoint's root against the entries, and
    consistency between checkpoints; with --require-witness, that the latest checkpoint
    is cosigned; with --extends, that the log still holds what you verified before. Every
    custody event of a device with a registered key must carry that device's own signature
    (no secret needed): one made with the HMAC secret alone fails, named by its entry.

    A lot's evidence pack (`portwatch lot evidence`) is checked as one: its entries'
    inclusion proofs against its signed checkpoint, its EPCIS event ids, device signatures.

    Example: portwatch ledger verify audit/ledger.json --log-key "$LOG_KEY" --require-witness "$W1"
    """
    if evidence.is_pack(path):
        _verify_pack(path, log_key, require_witness or [])
        return
    try:
        extra = [p.read_text() for p in checkpoint_file or []]
        held = extends.read_text() if extends is not None else None
    except OSError as exc:
        fail(f"cannot read a checkpoint file: {exc}")
    try:
        report = bundle.verify(path, log_key=log_key, witness_keys=witness_key or [],
                               checkpoints=extra, require_witnesses=require_witness or [],
                               quorum=quorum, extends=held)
    except LedgerError as exc:  # a malformed --require-witness key
        fail(str(exc))
    for line in report.notes:
        err.print(f"note: {line}", highlight=False)
    first = report.first
    if first is not None:
        more = len(report.failures) - 1
        fail(f"{first}" + (f" ({more} more failure{'s' * (more != 1)})" if more else ""))
    span = (f"entries {report.start}..{report.size - 1}" if report.start else
            f"{report.entries} entries")
    extra_lines = []
    if report.extends is not None:
        extra_lines.append(f"extends the size-{report.extends} tree you hold")
    if require_witness:
        extra_lines.append("latest checkpoint cosigned by " + ", ".join(report.witnessed))
    # device signatures are checked without any secret (controller/ledger/device_keys.py)
    extra_lines.append(f"custody events: {report.device_signed} signed by their device, "
                       f"{report.hmac_only} HMAC-only (device without a registered key)")
    typer.echo(f"OK {path}: {span}, {report.checkpoints} signed checkpoints, "
               f"{report.cosignatures} witness cosignatures; root "
               f"{report.root.hex()} (size {report.size})"
               + "".join(f"; {x}" for x in extra_lines))


def _verify_pack(path: Path, log_key: str | None, witnesses: list[str]) -> None:
    """Check a lot's evidence pack offline (controller/ledger/evidence.py)."""
    problems, summary = evidence.verify(path, log_key=log_key, require_witnesses=witnesses)
    if problems:
        more = len(problems) - 1
        fail(problems[0] + (f" ({more} more failure{'s' * (more != 1)})" if more else ""))
    if log_key is None:
        err.print("note: trusting the pack's own log key: pass --log-key to pin it",
                  highlight=False)
    typer.echo(f"OK {path}: lot {summary['lot']}, {summary['events']} EPCIS events, "
               f"{summary['entries']} ledger entries proved against the checkpoint of size "
               f"{summary['checkpoint_size']} signed by {summary['log_key']}; "
               f"{summary['device_signed']} custody events checked against device keys"
               + (f"; cosigned by {', '.join(summary['witnessed'])}"
                  if summary["witnessed"] else ""))


@ledger_app.command("prove-inclusion")
def ledger_prove_inclusion(
    index: Annotated[int | None, typer.Option(help="ledger entry index")] = None,
    device: Annotated[str | None, typer.Option(help="or: the device id of a custody event")] =
        None,
    seq: Annotated[int | None, typer.Option(help="... and its seq")] = None,
    size: Annotated[int | None, typer.Option(
        help="tree size [default: the latest checkpoint's]")] = None,
    db: DbOpt = None,
) -> None:
    """Print an RFC 9162 inclusion proof for one entry as JSON, with its signed checkpoint.

    Example: portwatch ledger prove-inclusion --device wb-gate1 --seq 17 > weighing-17.json
    """
    conn = _open(db)
    if index is None:
        if device is None or seq is None:
            fail("give --index N, or --device ID and --seq N")
        index = ledger_store.find_message(conn, device, seq)
        if index is None:
            fail(f"no ledger entry for {device} seq {seq}")
    try:
        _print_json(proofs.inclusion(conn, index, size))
    except LedgerError as exc:
        fail(str(exc))


@ledger_app.command("prove-consistency")
def ledger_prove_consistency(
    old: Annotated[int, typer.Option(min=1, help="the earlier tree size (1 or more: RFC 9162)")],
    new: Annotated[int | None, typer.Option(
        help="the later tree size [default: the latest checkpoint's]")] = None,
    db: DbOpt = None,
) -> None:
    """Print an RFC 9162 consistency proof between two tree sizes as JSON.

    Example: portwatch ledger prove-consistency --old 40 --new 120 > consistency.json
    """
    try:
        _print_json(proofs.consistency(_open(db), old, new))
    except LedgerError as exc:
        fail(str(exc))


@ledger_app.command("check-proof")
def ledger_check_proof(
    path: Annotated[Path, typer.Argument(help="JSON from prove-inclusion or prove-consistency")],
    log_key: Annotated[str | None, typer.Option(
        help="the log's vkey, to check the checkpoints' signatures")] = None,
) -> None:
    """Check an inclusion or consistency proof offline (RFC 9162 §2.1.3.2, §2.1.4.2).

    Example: portwatch ledger check-proof weighing-17.json --log-key 'portwatch/dalian-north+…'
    """
    try:
        doc = json.loads(path.read_text())
        key = note.Verifier.parse(log_key) if log_key else None
    except (OSError, ValueError, LedgerError) as exc:
        fail(str(exc))
    problems = proofs.check(doc, key)
    if problems:
        fail("; ".join(problems))
    if key is None:
        err.print("note: checkpoint signatures not checked: pass --log-key", highlight=False)
    typer.echo(f"OK: {doc['type']} proof verifies")


@witness_app.command("init")
def witness_init(
    state: StateOpt,
    name: Annotated[str, typer.Option(help="the witness's key name, e.g. customs.example/w1")],
    log_key: Annotated[str | None, typer.Option(
        help="the log's vkey to pin [default: read from --db's key]")] = None,
    db: DbOpt = None,
) -> None:
    """Create a witness: its key (mode 0600) in --state, and the log key it trusts.

    Example: portwatch witness init --state var/witness --name customs.example/dalian-dest
    """
    try:
        pinned = (note.Verifier.parse(log_key) if log_key else
                  _signer(_open(db), db, None).verifier)
        w = Witness.init(state, name, pinned)
    except LedgerError as exc:
        fail(str(exc))
    typer.echo(w.verifier.vkey)


@witness_app.command("cosign")
def witness_cosign(state: StateOpt, db: DbOpt = None) -> None:
    """Cosign the log's latest checkpoint if it is consistent with the last one cosigned.

    The consistency proof comes from the store; the witness checks it against the root it
    kept itself. Exit 1, and nothing signed, when the log forked or rewrote its history.

    Example: portwatch witness cosign --state var/witness --db var/portwatch.db
    """
    from controller.witness_server import state_lock

    conn = _open(db)
    try:
        with state_lock(state):  # never alongside a running `witness serve` on this state
            _cosign_latest(conn, state)
    except (LedgerError, ControllerError) as exc:
        fail(str(exc))


def _cosign_latest(conn: sqlite3.Connection, state: Path) -> None:
    try:
        w = Witness.open(state)
        cp = checkpoint.latest(conn)
        if cp is None:
            fail("the log has no checkpoint yet: run `portwatch ledger checkpoint`")
        last = w.last()
        proof = (ledger_store.consistency_proof(conn, last.size, cp.size)
                 if last is not None and last.size <= cp.size <= ledger_store.size(conn) else [])
        line = w.cosign(cp.note, proof, int(time.time()))
        checkpoint.add_cosignature(conn, cp.id, line, w.verifier, now_ms())
    except LedgerError as exc:
        fail(str(exc))
    typer.echo(checkpoint.cosigned_note(conn, cp), nl=False)


@witness_app.command("serve")
def witness_serve(
    state: StateOpt,
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on")] = "127.0.0.1:8990",
) -> None:
    """Run an HTTP witness (c2sp.org/tlog-witness: POST /add-checkpoint) on its own state.

    It cosigns a checkpoint of the pinned log only when it is consistent with the last one
    it cosigned, and writes its new state (fsync) before it answers: 409 with its size when
    the log's view is stale, 422 when the proof fails, 403/404 for another key or log.

    Example: portwatch witness serve --state /var/lib/pw-witness --listen 0.0.0.0:8990
    """
    from controller import witness_server

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        fail(f"--listen {listen!r}: expected HOST:PORT")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        witness_server.serve(state, host.strip("[]"), int(port))
    except (LedgerError, ControllerError) as exc:
        fail(str(exc))


@witness_app.command("add")
def witness_add(
    vkey: Annotated[str, typer.Option(help="the witness's vkey, as its `witness init` "
                                      "printed it")],
    url: Annotated[str, typer.Option(help="its base URL, e.g. http://customs.example:8990")],
    db: DbOpt = None,
) -> None:
    """Have the controller push every new checkpoint to this witness (a ledger decision).

    Example: portwatch witness add --url http://customs.example:8990 --vkey 'customs.example/w1+…'
    """
    from controller import witness_push

    try:
        w = witness_push.add_witness(open_store(_db(db)), vkey, url,
                                     actor=f"cli:{getpass.getuser()}")
    except ControllerError as exc:
        fail(str(exc))
    typer.echo(f"witness {w.name} at {w.url}")


@witness_app.command("remove")
def witness_remove(
    name: Annotated[str, typer.Argument(help="the witness's name")],
    db: DbOpt = None,
) -> None:
    """Stop pushing to a witness; the cosignatures it gave stay (a ledger decision).

    Example: portwatch witness remove customs.example/w1
    """
    from controller import witness_push

    try:
        witness_push.remove_witness(open_store(_db(db)), name, actor=f"cli:{getpass.getuser()}")
    except ControllerError as exc:
        fail(str(exc))
    typer.echo(f"removed witness {name}")


@witness_app.command("list")
def witness_list(db: DbOpt = None) -> None:
    """The configured witnesses: URL, key, largest size cosigned, what waits for them.

    Example: portwatch witness list --db var/portwatch.db
    """
    from controller import witness_push

    try:
        found = witness_push.list_witnesses(open_store(_db(db)))
    except ControllerError as exc:
        fail(str(exc))
    typer.echo(json.dumps(found, indent=1))

# registers `portwatch ledger audit` on ledger_app (its own module: controller/audit.py)
from tools import audit_cli as _audit_cli  # noqa: E402, F401
