"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and witness cosignatures.

A note is its text (ending in a newline), a blank line, then signature lines::

    — <key name> <base64(key ID (4 bytes, big-endian) ‖ signature)>

key ID = SHA-256(key name ‖ 0x0A ‖ signature type ‖ 32-byte public key)[:4]. Two signature
types are used here:

* 0x01, plain Ed25519 over the note text: the log's checkpoint signature;
* 0x04, c2sp.org/tlog-cosignature v1: a witness signs ``"cosignature/v1\\ntime <t>\\n"``
  followed by the note text, and its signature is the 8-byte big-endian POSIX time ``t``
  followed by the Ed25519 signature.

Public keys travel as verifier keys (vkeys): ``<name>+<hex key ID>+<base64(type ‖ key)>``,
the form Go's sumdb/note and the transparency-dev witnesses read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from controller.ledger.errors import NoteError

ED25519, COSIGNATURE_V1 = 0x01, 0x04
DASH = "— "  # U+2014 EM DASH, space
MAX_SIGNATURES = 100


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def check_key_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r}: it must be non-empty, with no spaces and no '+'")
    return name


@dataclass(frozen=True, slots=True)
class Verifier:
    """A public key that checks one kind of note signature."""

    name: str
    sig_type: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public)

    @property
    def vkey(self) -> str:
        raw = base64.b64encode(bytes([self.sig_type]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def verify(self, text: str, signature: bytes) -> bool:
        """Check a signature (key ID stripped) over the note text."""
        message = text.encode()
        if self.sig_type == COSIGNATURE_V1:
            if len(signature) != 72:
                return False
            (ts,) = struct.unpack(">Q", signature[:8])
            message = cosigned_message(text, ts)
            signature = signature[8:]
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        try:
            name, hex_id, raw_b64 = vkey.strip().split("+", 2)  # base64 may hold "+"
            raw = base64.b64decode(raw_b64, validate=True)
            expected = bytes.fromhex(hex_id)
        except (ValueError, binascii.Error) as exc:
            raise NoteError(f"{vkey!r} is not a verifier key <name>+<hex id>+<base64 key>") \
                from exc
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"verifier key {name}: expected type 0x01 or 0x04 and a 32-byte "
                            "Ed25519 key")
        out = cls(check_key_name(name), raw[0], raw[1:])
        if out.key_id != expected:
            raise NoteError(f"verifier key {name}: its key ID {hex_id} does not match the key")
        return out


@dataclass(frozen=True, slots=True)
class Signer:
    """A private Ed25519 key with its name and signature type."""

    name: str
    sig_type: int
    private: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        public = self.private.public_key().public_bytes(serialization.Encoding.Raw,
                                                        serialization.PublicFormat.Raw)
        return Verifier(check_key_name(self.name), self.sig_type, public)

    def signature_line(self, text: str, *, timestamp: int = 0) -> str:
        """The note signature line over `text` (a cosignature carries `timestamp`, POSIX s)."""
        check_text(text)
        if self.sig_type == COSIGNATURE_V1:
            sig = struct.pack(">Q", timestamp) + self.private.sign(cosigned_message(text,
                                                                                    timestamp))
        else:
            sig = self.private.sign(text.encode())
        encoded = base64.b64encode(self.verifier.key_id + sig).decode()
        return f"{DASH}{self.name} {encoded}\n"


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a tlog-cosignature/v1 Ed25519 signature covers."""
    if not 0 <= timestamp < 1 << 63:
        raise NoteError(f"cosignature time {timestamp} is out of range")
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("note text must end in a newline and hold no blank line")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note text must hold no control character but newline")


@dataclass(frozen=True, slots=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes  # after the key ID
    line: str  # as written, with its newline


@dataclass(frozen=True, slots=True)
class Note:
    text: str
    signatures: tuple[SignatureLine, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line for s in self.signatures)

    def with_line(self, line: str) -> Note:
        """The note with one more signature line (a cosignature), unless it is already there."""
        extra = parse(self.text + "\n" + line).signatures
        if any(s.line == line for s in self.signatures):
            return self
        return Note(self.text, self.signatures + extra)

    def verified_by(self, verifier: Verifier) -> bool | None:
        """True if `verifier` signed it, False if a line claiming to be that key fails,
        None if no line is from that key (C2SP: unknown keys are ignored)."""
        found: bool | None = None
        for s in self.signatures:
            if s.name == verifier.name and s.key_id == verifier.key_id:
                if not verifier.verify(self.text, s.signature):
                    return False
                found = True
        return found


def parse(note: str) -> Note:
    """Split a signed note into text and signature lines; NoteError if malformed."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text, lines = note[:cut + 1], note[cut + 2:].splitlines(keepends=True)
    check_text(text)
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a signed note needs 1 to {MAX_SIGNATURES} signature lines")
    sigs: list[SignatureLine] = []
    for line in lines:
        if not line.startswith(DASH) or not line.endswith("\n"):
            raise NoteError(f"signature line {line!r} does not start with '— '")
        name, _, b64 = line[len(DASH):-1].partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise NoteError(f"signature line of {name!r} is not base64") from exc
        if len(raw) < 5:
            raise NoteError(f"signature line of {name!r} is too short")
        sigs.append(SignatureLine(check_key_name(name), raw[:4], raw[4:], line))
    return Note(text, tuple(sigs))
