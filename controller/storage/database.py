"""The store handle: one SQLite connection in WAL mode, its transaction, and how it is opened.

SQLite is the embedded default. Everything above this package talks to a :class:`Store`
and to the functions of the storage modules that take one; none of them writes SQL, so a
second backend (PostgreSQL is planned) is another implementation of this package's
functions, not an edit of every layer.

Opening never creates a store by accident: :func:`open_store` refuses a path where no store
exists unless ``create=True`` (only the commands that create stores pass it), so a
mistyped ``--db`` is an error that names the path instead of a new empty store. The schema
is migrated by the process that owns the store (the controller at start-up, a CLI command
before it writes), not on every API request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import sqlite_utils

from controller.errors import StoreError, StoreNotFound

log = logging.getLogger(__name__)

# The store holds every device's HMAC secret and the controller's broker password in
# clear: only its owner may read it, and SQLite gives the -wal and -shm files the mode
# of the store file.
STORE_MODE = 0o600
COMPANION_SUFFIXES = ("-wal", "-shm", "-journal", ".ledger-key.pem")


def now_ms() -> int:
    """Wall-clock time in ms since the Unix epoch (the controller's receipt clock)."""
    return time.time_ns() // 1_000_000


class Store:
    """An open store: ``conn`` (sqlite3, autocommit) and ``db`` (sqlite-utils over it)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.db = sqlite_utils.Database(conn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Join the open transaction, or run one of our own (BEGIN IMMEDIATE … COMMIT)."""
        with transaction(self.conn) as conn:
            yield conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Join the caller's transaction, or run one of our own (BEGIN IMMEDIATE … COMMIT).

    IMMEDIATE takes the write lock at the start, so two writers queue on the busy timeout
    instead of one failing at its first write with SQLITE_BUSY.
    """
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def store_files(path: Path) -> list[Path]:
    """The store file and its companions (WAL, shared memory, journal, ledger key)."""
    return [path, *(Path(str(path) + suffix) for suffix in COMPANION_SUFFIXES)]


def make_private(path: Path) -> list[Path]:
    """Give the store and its companions mode 0600 where others could read them; return
    the files it changed (each logged: the secrets may have been read meanwhile)."""
    fixed = []
    for file in store_files(path):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077 == 0:
            continue
        try:
            file.chmod(STORE_MODE)
        except OSError as exc:  # not ours to change: say so, the store still opens
            log.warning("store file %s is mode %03o, readable by others, and could not be "
                        "made 0600: %s", file, mode, exc)
            continue
        log.warning("store file %s was mode %03o, readable by others: now 0600 (it holds "
                    "device secrets; rotate them if others may have read it)", file, mode)
        fixed.append(file)
    return fixed


def _create_private(path: Path) -> None:
    """Create an empty store file of mode 0600 (whatever the umask) for SQLite to fill."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, STORE_MODE)
    try:
        os.fchmod(fd, STORE_MODE)
    finally:
        os.close(fd)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def open_store(path: Path | str, *, create: bool = False, migrate: bool = True) -> Store:
    """Open the store at ``path``.

    ``create``: make it (and its directory) when it does not exist, mode 0600; otherwise a
    missing store raises StoreNotFound. A store file or companion that others may read is
    made 0600, with a warning in the log. ``migrate``: bring the schema up to date (idempotent; the
    API's per-request connections pass False, the controller migrated at start-up).
    """
    from controller.storage import schema  # schema imports this module for Store

    path = Path(path)
    if not path.exists():
        if not create:
            raise StoreNotFound(
                f"no store at {path}: pass --db (or set PORTWATCH_DB) to an existing store, "
                "or create one with `portwatch init` (the controller and `portwatch demo` "
                "create theirs)")
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(path)
    elif path.is_dir():
        raise StoreError(f"{path} is a directory, not a store file: pass the .db file")
    make_private(path)
    try:
        store = Store(_connect(path), path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open {path} as a portwatch store: {exc}") from exc
    make_private(path)  # a -wal or -shm file left by a process that ran with a loose umask
    try:
        if migrate:
            schema.migrate(store)
        else:
            schema.check_version(store)
    except BaseException:
        store.close()
        raise
    return store


@contextlib.contextmanager
def read_snapshot(path: Path | str) -> Iterator[sqlite3.Connection]:
    """A read-only connection inside one read transaction: every query sees one moment."""
    if not Path(path).is_file():
        raise StoreNotFound(f"no store at {path}: pass --db (or set PORTWATCH_DB)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("BEGIN")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read {path} as a portwatch store: {exc}") from exc
    try:
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()
