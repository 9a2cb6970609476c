"""Storage: the one package that speaks SQL.

Every other layer (ingest, supervision, the API, the CLI) calls these modules and never
writes SQL itself (a test holds that line):

- ``database``: the :class:`Store` handle, ``open_store`` (never creates a store by
  accident), the transaction, read-only snapshots
- ``schema``: tables, indexes and migrations, run once by the process that owns the store
- ``devices``: the device registry and its key ring; ``tokens``: API tokens;
  ``broker_accounts``: the controller's own broker login
- ``custody``: the ingest's batch writes (messages, projected rows, watermarks, lost
  ranges) and completeness
- ``supervision``: rule state and alerts
- ``ledger_log``: the ledger's entries, subtree hashes, checkpoints and cosignatures
- ``views``: the read models the API and the CLI serve

SQLite (WAL) is the embedded default; PostgreSQL is planned as a second implementation of
the same functions.
"""

from controller.storage.database import Store, now_ms, open_store, read_snapshot, transaction

__all__ = ["Store", "now_ms", "open_store", "read_snapshot", "transaction"]
