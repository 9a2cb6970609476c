"""Secrets at rest under a careless umask: the log key, witness keys and the device configs
`portwatch device add` writes (HMAC secret, broker password) are 0600, in directories
nobody else can write, even where an older file of another mode stood."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.ledger import checkpoint, note
from controller.ledger.witness import Witness
from controller.secret_files import write_private
from controller.storage import open_store
from tools.cli import app

runner = CliRunner()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_write_private_is_0600_in_0700_dirs_whatever_the_umask_or_old_file(
        tmp_path: Path, permissive_umask: None) -> None:
    target = tmp_path / "a" / "b" / "secret.json"
    write_private(target, b"{}")
    assert _mode(target) == 0o600
    assert _mode(tmp_path / "a") == 0o700 and _mode(tmp_path / "a" / "b") == 0o700
    old = tmp_path / "old.json"
    old.write_text("x")
    old.chmod(0o644)
    write_private(old, b"new")
    assert _mode(old) == 0o600 and old.read_bytes() == b"new"
    with pytest.raises(FileExistsError):
        write_private(old, b"again", exclusive=True)


def test_device_add_config_is_private_under_a_permissive_umask(
        tmp_path: Path, permissive_umask: None) -> None:
    db = tmp_path / "pw.db"
    open_store(db, create=True).close()
    out = tmp_path / "configs" / "wb-1.json"
    out.parent.mkdir()
    out.write_text("{}")
    out.chmod(0o666)  # a config left by an older portwatch, or copied by hand
    r = runner.invoke(app, ["device", "add", "wb-1", "--out", str(out), "--db", str(db),
                            "--site", "s1"])
    assert r.exit_code == 0, r.output
    assert _mode(out) == 0o600
    assert "secret_hex" in json.loads(out.read_text())
    fresh = tmp_path / "new-dir" / "wb-2.json"
    r = runner.invoke(app, ["device", "add", "wb-2", "--out", str(fresh), "--db", str(db),
                            "--site", "s1"])
    assert r.exit_code == 0, r.output
    assert _mode(fresh) == 0o600 and _mode(fresh.parent) == 0o700


def test_log_and_witness_keys_are_private_under_a_permissive_umask(
        tmp_path: Path, permissive_umask: None) -> None:
    db = tmp_path / "store-dir" / "pw.db"
    signer = checkpoint.log_signer(db, "portwatch/s1")
    key = checkpoint.key_path(db)
    assert _mode(key) == 0o600 and _mode(key.parent) == 0o700
    w = Witness.init(tmp_path / "witness", "customs.example/w1", signer.verifier)
    assert isinstance(w.verifier, note.Verifier)
    assert _mode(tmp_path / "witness" / "witness-key.pem") == 0o600
    assert _mode(tmp_path / "witness") == 0o700
