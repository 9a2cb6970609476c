"""The JT/T 808 gateway's broker login and its ACL: the least rights that work.

The gateway publishes, for each terminal provisioned as ``jt-<phone>`` (kind gps), that
device's custody events (``evt``) and its birth and death (``state``), and reads that
device's ``ack`` (the controller's watermark). Nothing else: not another device's topics,
not the terminals' ``tele``/``cmd`` (it sends no telemetry and relays no commands yet).
Mosquitto's ACL has no prefix patterns, so the rules name each terminal: the files are
regenerated when a terminal is provisioned, as for any device.
"""

from __future__ import annotations

import secrets

from controller.broker_names import GATEWAY_USER
from controller.gateways.jtt808_events import DEVICE_PREFIX
from controller.registry import mosquitto_hash
from controller.storage import Store, now_ms
from controller.storage import gateway_logins as rows
from protocols import topics


def gateway_rules(site: str, terminal_ids: list[str]) -> tuple[str, ...]:
    """Write each terminal's ``evt`` and ``state``, read its ``ack``."""
    out: list[str] = []
    for device_id in terminal_ids:
        out += [f"topic write {topics.topic(site, device_id, 'evt')}",
                f"topic write {topics.topic(site, device_id, 'state')}",
                f"topic read {topics.topic(site, device_id, 'ack')}"]
    return tuple(out)


def credentials(store: Store) -> tuple[str, str]:
    """The gateway's broker (user, password), created and stored on first call."""
    stored = rows.login(store)
    if stored is not None:
        return stored
    password = secrets.token_urlsafe(24)
    rows.add_login(store, GATEWAY_USER, password, mosquitto_hash(password), now_ms())
    created = rows.login(store)
    assert created is not None  # just inserted (or a concurrent caller did)
    return created


def accounts(store: Store, *, site: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(user, password hash, ACL rules) of the gateway's login, when it has one: the
    broker files carry it only after ``credentials`` made it (``portwatch jtt808 login``
    or the first ``portwatch jtt808 serve``)."""
    terminals = rows.terminal_ids(store, site=site, prefix=DEVICE_PREFIX)
    return [(user, password_hash, gateway_rules(site, terminals))
            for user, password_hash in rows.hashes(store)]
