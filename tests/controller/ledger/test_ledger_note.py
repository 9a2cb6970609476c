"""Signed notes, checkpoints and cosignatures against other implementations' vectors."""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from controller.ledger import checkpoint, note, vectors
from controller.ledger.errors import NoteError

# golang.org/x/mod/sumdb/note's example key, signer key and signed note
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_LINE = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
           "ngotpRZb6KE6RyyBwJnAM=\n")
# signed-note's own example (c2sp.org/signed-note), and transparency-dev/formats test keys
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6T"
             "fXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
COSIG_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
# cosignature/v1 signatures of transparency-dev/formats and of c2sp.org/tlog-cosignature
COSIG_SIGS = [("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEH"
               "WWOworDcFiEBYJXORmnFBOBA==", 1727964367),
              ("jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0"
               "xUe+mbIUBkBIfZ+qnA==", 1679315147)]
VECTORS = json.loads(vectors.PATH.read_text())["checkpoint"]


def test_note_verifies_the_go_sumdb_example() -> None:
    v = note.Verifier.parse(GO_VKEY)
    assert v.vkey == GO_VKEY
    assert note.parse(GO_TEXT + "\n" + GO_LINE).verified_by(v) is True


def test_note_signing_with_the_go_key_gives_the_go_signature_byte_for_byte() -> None:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]  # the base64 holds a "+"
    signer = note.Signer("PeterNeumann", note.ED25519, Ed25519PrivateKey.from_private_bytes(seed))
    assert signer.verifier.vkey == GO_VKEY
    assert signer.signature_line(GO_TEXT) == GO_LINE


def test_note_verifies_the_signed_note_spec_example() -> None:
    assert note.parse(SPEC_NOTE).verified_by(note.Verifier.parse(SPEC_VKEY)) is True


@pytest.mark.parametrize(("vkey", "sig_type"), [(PLUS_VKEY, 1), (COSIG_VKEY, 4)])
def test_note_parses_vkeys_with_plus_in_base64_and_type_4(vkey: str, sig_type: int) -> None:
    v = note.Verifier.parse(vkey)
    assert v.sig_type == sig_type and v.vkey == vkey
    raw = base64.b64decode(vkey.split("+", 2)[2])
    expected = hashlib.sha256(v.name.encode() + b"\n" + raw).digest()[:4]
    assert v.key_id == expected


@pytest.mark.parametrize("bad", [
    SPEC_VKEY.replace("530d903a", "530d903b"),  # key ID of another key
    SPEC_VKEY.replace("+Aeky", "+Beky"),  # unknown signature type
    "example.com/foo+530d903a",  # no key
    "a b+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # space in the name
])
def test_note_refuses_malformed_vkeys(bad: str) -> None:
    with pytest.raises(NoteError):
        note.Verifier.parse(bad)


@pytest.mark.parametrize(("sig_b64", "timestamp"), COSIG_SIGS)
def test_note_cosignature_layout_is_key_id_then_big_endian_time_then_signature(
        sig_b64: str, timestamp: int) -> None:
    raw = base64.b64decode(sig_b64)
    assert len(raw) == 4 + 8 + 64 and struct.unpack(">Q", raw[4:12])[0] == timestamp


def test_note_cosignature_signs_the_cosignature_v1_message() -> None:
    seed = bytes.fromhex(VECTORS["witness_seed_hex"])
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    signed = note.parse(VECTORS["cosigned_note"])
    line = signed.signatures[1]
    ts = struct.unpack(">Q", line.signature[:8])[0]
    message = f"cosignature/v1\ntime {ts}\n{signed.text}".encode()
    Ed25519PublicKey.verify(public, line.signature[8:], message)  # raises if wrong
    assert ts == VECTORS["cosignature_time"]
    key = public.public_bytes_raw()
    assert line.key_id == hashlib.sha256(b"witness.example/w1\n\x04" + key).digest()[:4]


def test_note_vector_checkpoint_verifies_with_both_keys_and_fails_when_altered() -> None:
    log, wit = (note.Verifier.parse(VECTORS["log_vkey"]),
                note.Verifier.parse(VECTORS["witness_vkey"]))
    signed = note.parse(VECTORS["cosigned_note"])
    assert signed.verified_by(log) is True and signed.verified_by(wit) is True
    altered = note.parse(VECTORS["cosigned_note"].replace("\n5\n", "\n6\n"))
    assert altered.verified_by(log) is False and altered.verified_by(wit) is False
    other = note.Verifier("someone.else", note.ED25519, b"\x00" * 32)
    assert signed.verified_by(other) is None  # unknown keys are ignored, per the spec


def test_note_checkpoint_text_round_trips_and_refuses_malformed_bodies() -> None:
    cp = checkpoint.Checkpoint("portwatch/x", 12, b"\x01" * 32)
    assert checkpoint.Checkpoint.parse(cp.text()) == cp
    assert cp.text() == "portwatch/x\n12\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
    for bad in ["portwatch/x\n012\n" + cp.text().split("\n")[2] + "\n",
                "portwatch/x\n12\nAQE=\n", "portwatch/x\n12\n", "portwatch/x\n-1\nAQE=\n"]:
        with pytest.raises(NoteError):
            checkpoint.Checkpoint.parse(bad)


@pytest.mark.parametrize("bad", [
    "text\n— k AAAA\n",  # no blank line
    "text\n\n-- k AQIDBAU=\n",  # not an em dash
    "text\n\n— k !!!\n",  # not base64
    "te\x01xt\n\n— k AQIDBAU=\n",  # control character
])
def test_note_parse_refuses_malformed_notes(bad: str) -> None:
    with pytest.raises(NoteError):
        note.parse(bad)
