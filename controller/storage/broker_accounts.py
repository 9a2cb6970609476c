"""Broker logins that are not devices (the controller's own), and device logins' hashes.

The controller's password is kept in clear because the controller must log in with it,
like the HMAC secrets of the devices.
"""

from __future__ import annotations

from typing import Any

from controller.storage.database import Store


def controller_login(store: Store) -> tuple[str, str] | None:
    """The controller's broker (user, password), or None before one was created."""
    row = store.conn.execute("SELECT user, password FROM broker_accounts WHERE "
                             "role='controller' ORDER BY created_ms LIMIT 1").fetchone()
    return (str(row[0]), str(row[1])) if row else None


def add_controller_login(store: Store, user: str, password: str, password_hash: str,
                         created_ms: int) -> None:
    """Store the controller's login unless a concurrent caller already did."""
    store.conn.execute("INSERT OR IGNORE INTO broker_accounts (user, role, password, "
                       "password_hash, created_ms) VALUES (?, 'controller', ?, ?, ?)",
                       [user, password, password_hash, created_ms])


def controller_hashes(store: Store) -> list[tuple[str, str]]:
    """(user, password hash) of every controller login."""
    return [(str(r[0]), str(r[1])) for r in store.conn.execute(
        "SELECT user, password_hash FROM broker_accounts WHERE role='controller' ORDER BY user")]


def device_logins(store: Store) -> list[dict[str, Any]]:
    """device_id, site and password hash of every device still in service."""
    return list(store.db.query("SELECT device_id, site, mqtt_password_hash FROM devices "
                               "WHERE decommissioned_ms IS NULL ORDER BY device_id"))
