"""`portwatch firmware build`: per-kind bundles, their manifest and signature, reproducible
bytes, and each kind's bundle booting under the real MicroPython from its directory alone.

The signature is checked with the ``cryptography`` package (OpenSSL's ECDSA), not with the
code that made it (protocols/p256.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fw_support import TEST_ONLY_FW_D, TEST_ONLY_FW_PUB, TEST_ONLY_KEY_ID, write_config

from tools import fw_build
from tools.firmware import REPO, micropython_binary, mpy_cross_binary
from tools.procs import wait_until

KINDS = ("weighbridge", "gps", "lab", "rail_reader")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, fw_build.Bundle]:
    root = tmp_path_factory.mktemp("bundles")
    return {k: fw_build.build_bundle(k, TEST_ONLY_FW_D, TEST_ONLY_KEY_ID, out_root=root)
            for k in KINDS}


def _verify(pub_hex: str, data: bytes, sig_hex: str) -> None:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(pub_hex))
    raw = bytes.fromhex(sig_hex)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, data, ec.ECDSA(hashes.SHA256()))  # InvalidSignature if not


def test_manifest_is_canonical_lists_every_file_and_verifies_with_openssl(
        bundles: dict[str, fw_build.Bundle]) -> None:
    b = bundles["weighbridge"]
    raw = (b.directory / "manifest.json").read_bytes()
    m = json.loads(raw)
    assert raw == json.dumps(m, sort_keys=True, separators=(",", ":")).encode()
    assert set(m) == {"format", "kind", "version", "files", "key_id", "mpy_abi"}
    assert (m["format"], m["kind"], m["key_id"]) == (1, "weighbridge", TEST_ONLY_KEY_ID)
    emitted = re.search(r"mpy v(\d+)", subprocess.run([mpy_cross_binary(), "--version"],
                        capture_output=True, text=True).stdout)
    assert emitted and m["mpy_abi"] == int(emitted.group(1))
    paths = [f["path"] for f in m["files"]]
    assert paths == sorted(paths)
    on_disk = sorted(p.relative_to(b.directory).as_posix() for p in b.directory.rglob("*")
                     if p.is_file() and p.name not in ("manifest.json", "manifest.sig"))
    assert paths == on_disk
    for f in m["files"]:
        data = (b.directory / f["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f["size"], f["sha256"])
    pairs = hashlib.sha256(b"".join(f["path"].encode() + b"\0" + f["sha256"].encode() + b"\n"
                                    for f in m["files"])).hexdigest()
    assert m["version"] == f"{fw_build.fw_version()}+{pairs[:12]}"
    sig = (b.directory / "manifest.sig").read_text()
    assert re.fullmatch(r"[0-9a-f]{128}", sig)
    _verify(TEST_ONLY_FW_PUB, b"pw1-fw\n" + raw, sig)
    with pytest.raises(InvalidSignature):
        _verify(TEST_ONLY_FW_PUB, b"pw1-fw\n" + raw.replace(b'"format":1', b'"format":2'), sig)


def test_each_kind_carries_only_its_own_driver(bundles: dict[str, fw_build.Bundle]) -> None:
    drivers = {k: sorted(p.name for p in (b.directory / "edge" / "drivers").glob("*.mpy"))
               for k, b in bundles.items()}
    assert drivers["weighbridge"] == ["__init__.mpy", "weighbridge.mpy", "weighing.mpy"]
    assert drivers["gps"] == ["__init__.mpy", "tracker.mpy"]
    assert drivers["lab"] == ["__init__.mpy", "lab.mpy"]
    assert drivers["rail_reader"] == ["__init__.mpy", "rail.mpy"]
    wb, gps = bundles["weighbridge"].directory, bundles["gps"].directory
    assert (wb / "edge/net/modbus.mpy").exists() and not (gps / "edge/net/modbus.mpy").exists()
    assert (wb / "protocols/registermaps/portwatch-sim.json").exists()
    assert not (gps / "protocols/registermaps").exists()
    assert not (gps / "protocols/envelope.mpy").exists()  # the controller's side stays off
    for b in bundles.values():  # loaded lazily by name: the board's
        for lazy in ("edge/hal/esp32.mpy", "edge/hal/esp32_net.mpy",
                     "edge/hal/esp32_io.mpy",
                     "edge/config_net.mpy", "edge/boot.mpy", "main.py"):
            assert (b.directory / lazy).exists(), (b.kind, lazy)


def test_build_twice_gives_the_same_tar_and_one_source_byte_a_new_version(
        tmp_path: Path) -> None:
    a = fw_build.build_bundle("lab", TEST_ONLY_FW_D, TEST_ONLY_KEY_ID, out_root=tmp_path / "a")
    # the same sources from another checkout (another path) into another directory
    repo = tmp_path / "repo"
    for pkg in ("edge", "protocols"):
        shutil.copytree(REPO / pkg, repo / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "tools/mpy").mkdir(parents=True)
    shutil.copy(fw_build.BOARD_MAIN, repo / "tools/mpy/board_main.py")
    b = fw_build.build_bundle("lab", TEST_ONLY_FW_D, TEST_ONLY_KEY_ID, out_root=tmp_path / "b",
                              repo=repo)
    assert b.version == a.version
    assert b.tar.read_bytes() == a.tar.read_bytes()
    with tarfile.open(a.tar) as t:
        members = t.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and not m.uname and not m.pax_headers
               for m in members)
    assert {m.mode for m in members if m.isfile()} == {0o644}
    assert members[0].name == f"lab-{a.version}"
    raw = a.tar.read_bytes()
    assert raw[257:263] == b"ustar\0"  # plain ustar headers: no pax ('x') entries
    assert all(raw[i + 156:i + 157] in (b"0", b"5") for i in _header_offsets(raw))
    src = repo / "edge/drivers/lab.py"  # one byte of a string the agent logs
    text = src.read_text()
    assert '"lab source"' in text
    src.write_text(text.replace('"lab source"', '"Lab source"', 1))
    c = fw_build.build_bundle("lab", TEST_ONLY_FW_D, TEST_ONLY_KEY_ID, out_root=tmp_path / "c",
                              repo=repo)
    assert c.version != a.version and c.version.startswith(fw_build.fw_version() + "+")


def _header_offsets(raw: bytes) -> list[int]:
    out, i = [], 0
    while i + 512 <= len(raw) and raw[i:i + 512].strip(b"\0"):
        out.append(i)
        size = int(raw[i + 124:i + 136].strip(b"\0 ") or b"0", 8)
        i += 512 + (size + 511) // 512 * 512
    return out


# how a board starts (/main.py: edge.boot, a board's config), and how `portwatch agent` does
ENTRIES = {"board": ["-c", "import edge.boot"], "agent": ["-m", "edge.main", "config.json"]}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_boots_from_its_bundle_alone_at_96k(
        kind: str, entry: str, bundles: dict[str, fw_build.Bundle], tmp_path: Path) -> None:
    b = bundles[kind]
    board = tmp_path / "board"
    shutil.copytree(b.directory, board)
    extra = {"wifi": {"ssid": "port-ops", "password": ""}, "fw_pub": TEST_ONLY_FW_PUB}
    write_config(board / "config.json", b.kind, **(extra if entry == "board" else {}))
    env = {**os.environ, "MICROPYPATH": ".frozen"}  # the board's files and the port's own
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        p = subprocess.Popen([micropython_binary(), "-X", "heapsize=96K", *ENTRIES[entry]],
                             cwd=board, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        booted = re.compile(r"boot 1, fw \S+, next seq")
        wait_until(lambda: booted.search(log.read_text()) or p.poll() is not None,
                   timeout=30, what=f"{kind} boot line")
        assert p.poll() is None and booted.search(log.read_text()), log.read_text()
    finally:
        p.kill()
        p.wait()
    text = log.read_text()
    assert "Traceback" not in text and "ImportError" not in text, text


def test_keygen_keeps_one_private_key_beside_the_store_and_device_add_records_its_pub(
        tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from controller.storage import open_store
    from tools.cli import app

    runner = CliRunner()
    db = tmp_path / "pw.db"
    open_store(db, create=True).close()
    r = runner.invoke(app, ["firmware", "keygen", "--db", str(db)])
    assert r.exit_code == 0 and "made a new firmware key" in r.output, r.output
    key = tmp_path / "pw.db.fw" / "firmware.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    pub = re.search(r"\b04[0-9a-f]{128}\b", r.output.replace("\n", ""))
    assert pub
    again = runner.invoke(app, ["firmware", "keygen", "--db", str(db)])
    assert "already there" in again.output and pub.group(0) in again.output.replace("\n", "")
    out = tmp_path / "wb-9.json"
    r = runner.invoke(app, ["device", "add", "wb-9", "--out", str(out), "--db", str(db),
                            "--site", "s1"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["fw_pub"] == pub.group(0)
    # the bundle built with that key verifies with the device's fw_pub (OpenSSL's verify)
    r = runner.invoke(app, ["firmware", "build", "gps", "--db", str(db),
                            "--out", str(tmp_path / "bundles")])
    assert r.exit_code == 0, r.output
    (b,) = (tmp_path / "bundles").glob("tracker-*/")
    _verify(pub.group(0), b"pw1-fw\n" + (b / "manifest.json").read_bytes(),
            (b / "manifest.sig").read_text())
    bad = runner.invoke(app, ["firmware", "build", "crane", "--db", str(db)])
    assert bad.exit_code == 1 and "unknown device kind 'crane'" in bad.output
