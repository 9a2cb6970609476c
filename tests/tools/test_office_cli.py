"""`portwatch office`: add writes the office's config (0600, password only there), list and
remove work on a real store, and a bad id or a clash is refused with a hint."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from controller import broker_auth, registry
from controller.ledger import checkpoint, note
from controller.storage import open_store
from tools.cli import app
from tools.office_client import OfficeConfig

runner = CliRunner()


def _add(tmp_path: Path, office_id: str, *extra: str) -> Any:
    return runner.invoke(app, ["office", "add", office_id, "--destination", "dest-a",
                               "--out", str(tmp_path / f"{office_id}.json"), "--db",
                               str(tmp_path / "pw.db"), "--site", "s1", "--no-broker-tls",
                               "--broker", "10.0.0.2:1884", *extra])


def test_office_cli_add_writes_a_private_config_with_the_log_key(tmp_path: Path) -> None:
    open_store(tmp_path / "pw.db", create=True).close()
    r = _add(tmp_path, "cn-inland", "--name", "inland customs")
    assert r.exit_code == 0, r.output
    path = tmp_path / "cn-inland.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = OfficeConfig.load(path)
    assert (cfg.site, cfg.broker_host, cfg.broker_port, cfg.ca) == ("s1", "10.0.0.2", 1884,
                                                                    None)
    signer = checkpoint.log_signer(tmp_path / "pw.db", checkpoint.origin_for("s1"))
    assert note.Verifier.parse(cfg.log_key) == signer.verifier
    with open_store(tmp_path / "pw.db") as db:
        hashes = {a.user: a.password_hash for a in broker_auth.accounts(db, site="s1")}
    assert cfg.password not in json.dumps(hashes) and hashes["cn-inland"].startswith("$7$")

    listed = runner.invoke(app, ["office", "list", "--json", "--db", str(tmp_path / "pw.db")])
    [office] = json.loads(listed.output)
    assert (office["office_id"], office["name"], office["destinations"], office["pending"]) \
        == ("cn-inland", "inland customs", ["dest-a"], 0)

    gone = runner.invoke(app, ["office", "remove", "cn-inland", "--reason", "closed", "--db",
                               str(tmp_path / "pw.db")])
    assert gone.exit_code == 0, gone.output
    listed = runner.invoke(app, ["office", "list", "--json", "--db", str(tmp_path / "pw.db")])
    assert json.loads(listed.output) == []


def test_office_cli_refuses_a_bad_id_a_device_id_and_an_unknown_office(tmp_path: Path) -> None:
    with open_store(tmp_path / "pw.db", create=True) as db:
        registry.provision(db, device_id="wb-1", site="s1", kind="weighbridge")
    bad = _add(tmp_path, "bad/id")
    assert bad.exit_code == 1 and "pick another office id" in bad.output
    clash = _add(tmp_path, "wb-1")
    assert clash.exit_code == 1 and "a device" in clash.output
    unknown = runner.invoke(app, ["office", "remove", "nobody", "--reason", "x", "--db",
                                  str(tmp_path / "pw.db")])
    assert unknown.exit_code == 1 and "portwatch office list" in unknown.output


def test_office_cli_listen_refuses_a_config_that_is_not_one(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"office_id": "x"}')
    r = runner.invoke(app, ["office", "listen", "--office", "x", "--config", str(bad)])
    assert r.exit_code == 1 and "office add --out" in r.output
