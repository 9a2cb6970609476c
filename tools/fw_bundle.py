"""Firmware bundles for over-the-air updates: ``build/bundles/<kind>-<version>/``.

The format (README, Update over the air): the image's files (``.mpy`` under ``edge/`` and
``protocols/``, the register maps), ``manifest.json`` = the UTF-8 of
``json.dumps(m, sort_keys=True, separators=(",", ":"))`` with
``m = {"format": 1, "kind", "version", "files": [{"path", "size", "sha256"}...] sorted by
path, "key_id", "mpy_abi"}``, and ``manifest.sig``: 128 lowercase hex r || s, ECDSA P-256
over SHA-256(``b"pw1-fw\\n"`` + manifest.json), made with ``protocols.p256.sign``. Devices
check it with the firmware public key in their config (``fw_pub``).

Used by the OTA tests to make good and deliberately broken bundles (``replace``) from the
image ``tools.firmware.build_firmware`` makes; ``load`` reads a bundle back for
``portwatch firmware publish``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from protocols import p256
from tools.firmware import REPO, build_firmware

BUNDLES = REPO / "build" / "bundles"
FORMAT = 1
SIG_PREFIX = b"pw1-fw\n"


class BundleError(ValueError):
    """A bundle directory that is not a complete, well-formed bundle."""


def mpy_abi(image: Path) -> int:
    """The bytecode version of the image's .mpy files (their 2nd byte), which a device
    compares with its own ``sys.implementation._mpy & 0xff`` (docs/FIRMWARE.md)."""
    head = next(image.rglob("*.mpy")).read_bytes()[:2]
    return head[1]


def manifest_bytes(m: dict[str, Any]) -> bytes:
    """The canonical bytes of a manifest: what is signed and served."""
    return json.dumps(m, sort_keys=True, separators=(",", ":")).encode()


def sign_manifest(d: int, data: bytes) -> str:
    """``manifest.sig``'s text for ``data`` under the firmware key ``d``."""
    return p256.sign(d, SIG_PREFIX, data).hex()


def build(kind: str, version: str, *, key_d: int, key_id: str, out_root: Path = BUNDLES,
          replace: dict[str, bytes] | None = None) -> Path:
    """Write ``out_root/<kind>-<version>/`` from the current firmware image; its path.

    ``replace``: path -> bytes to put in place of (or next to) an image file, before the
    manifest is made (a test's crashing ``edge/agent.mpy``)."""
    image = build_firmware()
    out = out_root / f"{kind}-{version}"
    if out.exists():
        shutil.rmtree(out)
    files = {p.relative_to(image).as_posix(): p.read_bytes() for p in image.rglob("*")
             if p.is_file() and p.name != ".built"}
    files.update(replace or {})
    entries = []
    for path in sorted(files):
        data = files[path]
        dest = out / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        entries.append({"path": path, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
    m = {"format": FORMAT, "kind": kind, "version": version, "files": entries,
         "key_id": key_id, "mpy_abi": mpy_abi(image)}
    data = manifest_bytes(m)
    (out / "manifest.json").write_bytes(data)
    (out / "manifest.sig").write_text(sign_manifest(key_d, data))
    return out


def load(path: Path) -> dict[str, Any]:
    """The manifest of the bundle at ``path``, after checking that every file it lists is
    there with its size and hash (BundleError names the first that is not)."""
    try:
        data = (path / "manifest.json").read_bytes()
        sig = (path / "manifest.sig").read_text().strip()
        m: dict[str, Any] = json.loads(data)
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path} is not a firmware bundle ({exc}): build one with "
                          "`portwatch firmware build KIND`") from exc
    if m.get("format") != FORMAT or manifest_bytes(m) != data or len(sig) != 128:
        raise BundleError(f"{path}/manifest.json is not a format-{FORMAT} manifest with its "
                          "signature: build the bundle again")
    for f in m["files"]:
        p = path / f["path"]
        if not p.is_file() or p.stat().st_size != f["size"] or \
                hashlib.sha256(p.read_bytes()).hexdigest() != f["sha256"]:
            raise BundleError(f"{p} is missing or differs from the manifest: build the "
                              "bundle again")
    return m
