"""The JT/T 808 gateway's broker login (a ``broker_accounts`` row, role ``jtt808-gateway``)
and the terminals it speaks for.

Its password is kept in clear, as the controller's is: the gateway must log in with it.
"""

from __future__ import annotations

from controller.storage.database import Store

ROLE = "jtt808-gateway"


def login(store: Store) -> tuple[str, str] | None:
    """The gateway's (user, password), or None before one was created."""
    row = store.conn.execute("SELECT user, password FROM broker_accounts WHERE role=? "
                             "ORDER BY created_ms LIMIT 1", [ROLE]).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def add_login(store: Store, user: str, password: str, password_hash: str,
              created_ms: int) -> None:
    """Store the gateway's login unless a concurrent caller already did."""
    store.conn.execute("INSERT OR IGNORE INTO broker_accounts (user, role, password, "
                       "password_hash, created_ms) VALUES (?, ?, ?, ?, ?)",
                       [user, ROLE, password, password_hash, created_ms])


def hashes(store: Store) -> list[tuple[str, str]]:
    """(user, password hash) of the gateway's login, if it has one."""
    return [(str(r[0]), str(r[1])) for r in store.conn.execute(
        "SELECT user, password_hash FROM broker_accounts WHERE role=? ORDER BY user", [ROLE])]


def terminal_ids(store: Store, *, site: str, prefix: str) -> list[str]:
    """Ids of the devices in service at ``site`` of kind gps whose id starts with
    ``prefix``: the terminals the gateway speaks for."""
    return [str(r[0]) for r in store.conn.execute(
        "SELECT device_id FROM devices WHERE decommissioned_ms IS NULL AND kind='gps' AND "
        "site=? AND substr(device_id, 1, ?)=? ORDER BY device_id",
        [site, len(prefix), prefix])]


def terminal(store: Store, device_id: str) -> dict[str, object] | None:
    """A terminal's registry facts (site, kind, decommissioned_ms), or None."""
    row = store.conn.execute("SELECT site, kind, decommissioned_ms FROM devices "
                             "WHERE device_id=?", [device_id]).fetchone()
    if row is None:
        return None
    return {"site": row[0], "kind": row[1], "decommissioned_ms": row[2]}
