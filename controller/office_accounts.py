"""Broker logins of the office feed: one per destination office, and the feed publisher's.

An office reads only its own trip topic and writes only its own ack topic::

    user <office_id>
    topic read  pw/v1/<site>/<office_id>/trip
    topic write pw/v1/<site>/<office_id>/tripack

so it can neither read nor speak on any device's topics. The feed publisher (a second MQTT
client of the controller: a portwatch broker makes each login its client id, so it cannot
reuse the controller's login) writes every office's trip topic and reads every ack.
"""

from __future__ import annotations

import logging
import secrets

from controller.broker_auth import Account
from controller.broker_names import RESERVED
from controller.office_record import TRIP, TRIPACK, office_filter, office_topic
from controller.registry import mosquitto_hash
from controller.storage import Store, now_ms
from controller.storage import offices as rows

log = logging.getLogger(__name__)
FEED_USER = "portwatch-office-feed"


def office_rules(site: str, office_id: str) -> tuple[str, ...]:
    """An office reads its trip topic and writes its ack topic, nothing else."""
    return (f"topic read {office_topic(site, office_id, TRIP)}",
            f"topic write {office_topic(site, office_id, TRIPACK)}")


def feed_rules(site: str) -> tuple[str, ...]:
    """The publisher writes every office's trip topic and reads every office's acks."""
    return (f"topic write {office_filter(site, TRIP)}",
            f"topic read {office_filter(site, TRIPACK)}")


def feed_credentials(store: Store) -> tuple[str, str]:
    """The feed publisher's broker (user, password), created and stored on first call."""
    stored = rows.feed_login(store)
    if stored is not None:
        return stored
    password = secrets.token_urlsafe(24)
    rows.add_feed_login(store, FEED_USER, password, mosquitto_hash(password), now_ms())
    created = rows.feed_login(store)
    assert created is not None  # just inserted (or a concurrent caller did)
    return created


def office_accounts(store: Store, *, site: str, taken: set[str],
                    skipped: list[str] | None = None) -> list[Account]:
    """The feed's account (created if missing) and one per live office whose id is no
    other login's (``taken``); a clash is explained in ``skipped`` and the log. No office:
    no login at all (a site without the feed has no account for it)."""
    logins = rows.broker_logins(store)
    if not logins:
        return []
    feed_credentials(store)
    out = [Account(user, password_hash, feed_rules(site))
           for user, password_hash in rows.feed_hashes(store)]
    for office_id, password_hash in logins:
        if office_id in taken or office_id in RESERVED or office_id == FEED_USER:
            why = (f"office {office_id!r} has no broker login: another account has that "
                   "name. Remove it (portwatch office remove) and add it under another id")
            log.warning("%s", why)
            if skipped is not None:
                skipped.append(why)
            continue
        out.append(Account(office_id, password_hash, office_rules(site, office_id)))
    return out
