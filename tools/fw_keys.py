"""The site's firmware key: the P-256 key that signs firmware bundles' manifests.

Kept outside the repo, next to the store like the site CA (``<store>.ca/``, tools/tls.py):
``<store>.fw/firmware.key``, mode 0600 in a 0700 directory (controller/secret_files.py),
never overwritten. The file holds the 32-byte scalar as 64 hex digits and a newline: the
same number ``protocols.p256.sign`` takes. Its public key (SEC1 uncompressed, 130 hex
digits) goes into device configs as ``fw_pub``; its id (``fw-`` and 12 hex digits of the
public key's SHA-256) into every manifest, so a device can tell which key to check with.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from controller.secret_files import write_private
from protocols import p256
from tools.firmware import FirmwareError

KEY_FILE = "firmware.key"


@dataclass(frozen=True)
class FirmwareKey:
    """A loaded firmware key: the private scalar, its public key and id, its file."""

    d: int
    pub: str
    key_id: str
    path: Path


def key_dir_for(db_path: Path) -> Path:
    """Where the firmware key of the store at ``db_path`` lives (beside ``<store>.ca``)."""
    return Path(f"{Path(db_path).absolute()}.fw")


def key_id_of(pub: str) -> str:
    """``fw-`` and the first 12 hex digits of SHA-256 over the public key's bytes."""
    return "fw-" + hashlib.sha256(bytes.fromhex(pub)).hexdigest()[:12]


def _loaded(d: int, path: Path) -> FirmwareKey:
    pub = p256.public(d)
    return FirmwareKey(d, pub, key_id_of(pub), path)


def load(path: Path) -> FirmwareKey:
    """The key at ``path``; FirmwareError saying what to do when it is missing or bad."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise FirmwareError(f"no firmware key at {path}: make one with "
                            "`portwatch firmware keygen` (once per site)") from None
    except OSError as exc:
        raise FirmwareError(f"cannot read the firmware key {path}: {exc}") from None
    d = None
    if len(text) == 64:
        try:
            d = p256.scalar(bytes.fromhex(text))
        except ValueError:
            d = None
    if d is None:
        raise FirmwareError(f"{path} is not a firmware key (64 hex digits of a P-256 "
                            "scalar): restore it from the site's backup")
    return _loaded(d, path)


def create(path: Path) -> FirmwareKey:
    """Draw a new key and write it 0600; FileExistsError if there is one (never replaced:
    devices holding its public key would refuse every bundle signed with another)."""
    d = None
    while d is None:
        d = p256.scalar(os.urandom(32))
    write_private(path, d.to_bytes(32, "big").hex().encode() + b"\n", exclusive=True)
    return _loaded(d, path)


def load_or_create(path: Path) -> tuple[FirmwareKey, bool]:
    """The key at ``path``, made first when there is none; (key, made now)."""
    if path.exists():
        return load(path), False
    try:
        return create(path), True
    except FileExistsError:  # another process made it meanwhile
        return load(path), False
