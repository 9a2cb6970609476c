"""Mosquitto's password file and ACL rendered from the registry."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import pytest

from controller import broker_auth, broker_names, registry
from controller.errors import InvalidInput
from controller.storage import Store
from ctl_helpers import SITE

# written by the real `mosquitto_passwd -c -b passwd alice s3cret` (mosquitto 2.0.11)
MOSQUITTO_PASSWD_LINE = ("alice:$7$101$InIQwKpPZ3D4kPs7$p7mLb28BSqC1BfS9PsinM4VtWUM7+oHXqzp3Buo"
                         "Dbp9GhKuSiMc+IkG4afyPpBx2qmj1WCnAZMEL/XLybv5LSw==")


def _blocks(acl: str) -> dict[str, list[str]]:
    """{user: [rule, ...]} of an ACL file, and the rules before any user under ''."""
    out: dict[str, list[str]] = {"": []}
    user = ""
    for line in acl.splitlines():
        if line.startswith("user "):
            user = line.split(" ", 1)[1]
            out[user] = []
        elif line.strip() and not line.startswith("#"):
            out[user].append(line)
    return out


def test_mosquitto_hash_matches_mosquitto_passwd_output() -> None:
    _, hashed = MOSQUITTO_PASSWD_LINE.split(":", 1)
    _, _, iterations, salt, _ = hashed.split("$")
    ours = registry.mosquitto_hash("s3cret", salt=base64.b64decode(salt),
                                   iterations=int(iterations))
    assert ours == hashed
    fresh = registry.mosquitto_hash("s3cret").split("$")
    assert fresh[1:3] == ["7", "101"] and len(base64.b64decode(fresh[3])) == 12
    assert len(base64.b64decode(fresh[4])) == 64  # SHA-512


def test_acl_confines_each_device_to_its_own_subtree(db: Store,
                                                     device: dict[str, Any]) -> None:
    registry.provision(db, device_id="wb-2", site=SITE, kind="weighbridge")
    blocks = _blocks(broker_auth.render_acl_file(broker_auth.accounts(db, site=SITE)))
    assert blocks[""] == []  # nothing for anonymous clients
    base = f"pw/v1/{SITE}/wb-1"
    assert sorted(blocks["wb-1"]) == sorted([
        f"topic write {base}/evt", f"topic write {base}/tele", f"topic write {base}/state",
        f"topic write {base}/cmdack", f"topic read {base}/ack", f"topic read {base}/cmd"])
    assert all("wb-2/" in rule for rule in blocks["wb-2"])
    ctl = blocks[broker_auth.CONTROLLER_USER]
    assert f"topic read pw/v1/{SITE}/+/evt" in ctl and f"topic write pw/v1/{SITE}/+/ack" in ctl
    assert not any(r.startswith("topic write") and r.endswith(("/evt", "/state")) for r in ctl)


def test_password_file_holds_each_account_hash(db: Store,
                                               device: dict[str, Any]) -> None:
    text = broker_auth.render_password_file(broker_auth.accounts(db, site=SITE))
    entries = dict(line.split(":", 1) for line in text.splitlines())
    assert entries["wb-1"] == device["mqtt_password_hash"]
    assert set(entries) == {"wb-1", broker_auth.CONTROLLER_USER}
    assert all(h.startswith("$7$101$") for h in entries.values())
    assert device["mqtt_password"] not in text


def test_controller_credentials_are_created_once_and_hashed(db: Store) -> None:
    assert broker_auth.stored_controller_credentials(db) is None
    user, password = broker_auth.controller_credentials(db)
    assert broker_auth.controller_credentials(db) == (user, password)
    row = db.db["broker_accounts"].get(user)
    _, _, iterations, salt, _ = row["password_hash"].split("$")
    assert row["password_hash"] == registry.mosquitto_hash(
        password, salt=base64.b64decode(salt), iterations=int(iterations))


def test_write_files_are_private_and_complete(tmp_path: Path, db: Store,
                                              device: dict[str, Any]) -> None:
    extra = broker_auth.Account("tester", registry.mosquitto_hash("x"), ("topic read a/b",))
    passwd, acl = broker_auth.write_files(db, site=SITE, out_dir=tmp_path / "b", extra=[extra])
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["acl", "passwd"]
    assert _blocks(acl.read_text())["tester"] == ["topic read a/b"]
    assert passwd.read_text().count("\n") == 3


def test_a_device_named_like_the_controller_is_refused_and_an_old_one_left_out(
        db: Store, device: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        registry.provision(db, device_id=broker_auth.CONTROLLER_USER, site=SITE,
                           kind="weighbridge")
    with monkeypatch.context() as old_code:  # a store from before the rule
        old_code.setattr(broker_names, "RESERVED", frozenset())
        registry.provision(db, device_id=broker_auth.CONTROLLER_USER, site=SITE,
                           kind="weighbridge")
    skipped: list[str] = []
    users = [a.user for a in broker_auth.accounts(db, site=SITE, skipped=skipped)]
    assert users == [broker_auth.CONTROLLER_USER, "wb-1"]  # its own, not the device's
    assert len(skipped) == 1 and "portwatch device decommission" in skipped[0]
