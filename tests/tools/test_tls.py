"""The site CA and the broker's certificate (tools/tls.py), and the agent's pinned CA in
its config (`portwatch device add`, edge/config.py). The TLS handshakes themselves, with
Mosquitto and the agent under MicroPython, are hil_tests/test_broker_hardening.py."""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from edge import config as edge_config
from tools import tls
from tools.cli import app


def _sans(cert: Path) -> set[str]:
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in ext}


def test_ca_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    ca_dir = tmp_path / "pw.db.ca"
    cert = tls.ensure_ca(ca_dir, site="s")
    first = cert.read_bytes()
    assert tls.ensure_ca(ca_dir, site="s").read_bytes() == first  # not replaced
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    c = x509.load_pem_x509_certificate(first)
    assert c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert c.not_valid_after_utc - c.not_valid_before_utc > datetime.timedelta(days=3000)


def test_half_a_ca_is_refused_rather_than_replaced(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    tls.ensure_ca(ca_dir, site="s")
    (ca_dir / "ca.key").unlink()
    with pytest.raises(ValueError, match="half a CA"):
        tls.ensure_ca(ca_dir, site="s")


def test_server_certificate_names_the_hosts_and_is_issued_again_only_when_needed(
        tmp_path: Path) -> None:
    ca_dir, out = tmp_path / "ca", tmp_path / "tls"
    files, new = tls.broker_tls(ca_dir, out, ("mqtt.port.example", "10.20.0.2"), site="s")
    assert new and _sans(files.cert) == {"mqtt.port.example", "10.20.0.2"}
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    _, new = tls.broker_tls(ca_dir, out, ("mqtt.port.example", "10.20.0.2"), site="s")
    assert not new  # same hosts, same CA, far from expiry: kept
    files, new = tls.broker_tls(ca_dir, out, ("mqtt.port.example",), site="s")
    assert new and _sans(files.cert) == {"mqtt.port.example"}
    # another CA (a restored or replaced one): the broker's certificate must follow it
    files, new = tls.broker_tls(tmp_path / "other-ca", out, ("mqtt.port.example",), site="s")
    assert new and files.ca.read_bytes() == (tmp_path / "other-ca" / "ca.pem").read_bytes()
    # close to its end: issued again
    tls.issue_server_cert(ca_dir, out, ("h",), days=10)
    assert not tls.server_cert_current(files, ca_dir / "ca.pem", ("h",))


@pytest.mark.parametrize("host", ["", "two words", "http://x", "a/b", "*.wild"])
def test_hosts_that_cannot_go_into_a_certificate_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="--tls-host"):
        tls.check_hosts((host,))


def test_cli_broker_config_refuses_a_bad_tls_host_before_writing(tmp_path: Path) -> None:
    args = ["broker", "config", "--out", str(tmp_path / "b"), "--db", str(tmp_path / "pw.db"),
            "--tls-host", "not a host"]
    r = CliRunner().invoke(app, ["init", "--db", str(tmp_path / "pw.db")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert r.exit_code == 1 and "--tls-host 'not a host'" in r.output
    assert not (tmp_path / "b").exists()


def test_device_add_pins_the_site_ca_and_turns_tls_on(tmp_path: Path) -> None:
    db, out = tmp_path / "pw.db", tmp_path / "wb-1.json"
    assert CliRunner().invoke(app, ["init", "--db", str(db)]).exit_code == 0
    r = CliRunner().invoke(app, ["device", "add", "wb-1", "--out", str(out), "--db", str(db)])
    assert r.exit_code == 0, r.output
    cfg = json.loads(out.read_text())
    mqtt = cfg["mqtt"]
    assert mqtt["tls"] is True and mqtt["port"] == tls.TLS_PORT == 8883
    pinned = bytes.fromhex(mqtt["tls_ca_hex"])
    assert pinned == tls.ca_der(tls.ca_dir_for(db) / "ca.pem")
    # what the agent makes of it at boot: the DER bytes, the hex gone
    checked = edge_config.check(cfg)["mqtt"]  # type: ignore[no-untyped-call]
    assert checked["ca"] == pinned and "tls_ca_hex" not in checked


@pytest.mark.parametrize(("mqtt", "message"), [
    ({"tls": True}, "missing 'tls_ca_hex'"),
    ({"tls": True, "tls_ca_hex": "zz"}, "tls_ca_hex is not hexadecimal"),
    ({"tls": True, "tls_ca_hex": "abc"}, "tls_ca_hex must have an even number"),
    ({"tls": "yes", "tls_ca_hex": "00"}, "'tls' must be true or false"),
])
def test_agent_config_with_a_bad_tls_setting_stops_at_boot_naming_it(
        mqtt: dict[str, object], message: str) -> None:
    cfg = {"device_id": "wb-1", "site": "s", "kind": "weighbridge", "key_id": "k1",
           "secret_hex": "00" * 32, "data_dir": "/d", "driver": {},
           "mqtt": {"host": "h", "port": 8883, **mqtt}}
    with pytest.raises(edge_config.ConfigError, match=message):
        edge_config.check(cfg)  # type: ignore[no-untyped-call]
