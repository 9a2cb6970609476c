"""Files that hold secrets (private keys, device configs with HMAC secrets and broker
passwords): mode 0600 whatever the umask, in directories nobody else can write.

``O_CREAT``'s mode goes through the umask and an existing file keeps its mode through
``O_TRUNC``, so both are fixed with ``fchmod`` on the open descriptor, before any byte is
written. Directories this module creates are 0700: a directory others can write lets them
replace the key file with their own (the log then signs with the attacker's key).
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """Create `path` and its missing parents with mode 0700 (existing ones are left as
    they are: the operator chose them)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            continue
        d.chmod(DIR_MODE)  # mkdir's mode went through the umask


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to `path` with mode 0600, durably. `exclusive`: FileExistsError rather
    than replace an existing file (keys are never overwritten)."""
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), FILE_MODE)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
