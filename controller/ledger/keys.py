"""Ed25519 private keys in PEM files readable by their owner only (never in the repository)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.ledger.errors import LedgerError
from controller.secret_files import write_private


def load_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file; LedgerError if unreadable or another type."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise LedgerError(f"cannot read the Ed25519 key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def create_key(path: Path) -> Ed25519PrivateKey:
    """Generate a key and write it with mode 0600; refuses to overwrite an existing file."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        write_private(path, pem, exclusive=True)
    except FileExistsError as exc:
        raise LedgerError(f"{path} already exists: a key is never overwritten") from exc
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key in `path`, created (mode 0600) if there is none yet."""
    if path.exists():
        return load_key(path)
    try:
        return create_key(path)
    except LedgerError:  # another process created it between exists() and open()
        return load_key(path)
