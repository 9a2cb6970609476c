"""A witness: a second key (e.g. the destination customs office) that cosigns checkpoints.

It cosigns a checkpoint only if the log signed it and it is consistent (RFC 9162 §2.1.4.2)
with the last checkpoint this witness cosigned, so a log that rewrote or forked its history
cannot get a cosignature for it. Its cosignature is a c2sp.org/tlog-cosignature v1 line
(signature type 0x04, timestamped). The witness trusts nothing from the log but the pinned
log key: the proof is checked against the root the witness itself kept.

State directory (the witness's own, never the controller's):
  witness-key.pem   its Ed25519 key, mode 0600
  witness.json      its name, the pinned log vkey and origin
  state.json        size and root of the last checkpoint it cosigned, and its time
  latest.note       that checkpoint with the log's signature and this cosignature, for
                    an auditor (`portwatch ledger verify BUNDLE --checkpoint latest.note`)
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.ledger import keys, note, tree
from controller.ledger.checkpoint import Checkpoint
from controller.ledger.errors import LedgerError, NoteError, WitnessRefused

KEY_FILE, CONFIG_FILE, STATE_FILE, NOTE_FILE = ("witness-key.pem", "witness.json", "state.json",
                                               "latest.note")


@dataclass(frozen=True, slots=True)
class Cosigned:
    size: int
    root: bytes
    timestamp: int


class Witness:
    """One witness's key, pinned log key and last cosigned checkpoint."""

    def __init__(self, state_dir: Path, signer: note.Signer, log_key: note.Verifier) -> None:
        self.state_dir, self.signer, self.log_key = state_dir, signer, log_key

    @classmethod
    def init(cls, state_dir: Path, name: str, log_key: note.Verifier) -> Witness:
        """Create the witness's key and pin the log's key; refuses an existing witness."""
        if (state_dir / CONFIG_FILE).exists():
            raise LedgerError(f"{state_dir} already holds a witness; use another directory")
        note.check_key_name(name)
        key = keys.create_key(state_dir / KEY_FILE)
        _write_json(state_dir / CONFIG_FILE, {"name": name, "log_key": log_key.vkey,
                                              "origin": log_key.name})
        return cls(state_dir, note.Signer(name, note.COSIGNATURE_V1, key), log_key)

    @classmethod
    def open(cls, state_dir: Path) -> Witness:
        try:
            cfg = json.loads((state_dir / CONFIG_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise LedgerError(f"no witness in {state_dir} ({exc}): run `portwatch witness "
                              "init` first") from exc
        signer = note.Signer(cfg["name"], note.COSIGNATURE_V1,
                             keys.load_key(state_dir / KEY_FILE))
        return cls(state_dir, signer, note.Verifier.parse(cfg["log_key"]))

    @property
    def verifier(self) -> note.Verifier:
        return self.signer.verifier

    def last(self) -> Cosigned | None:
        path = self.state_dir / STATE_FILE
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        return Cosigned(int(doc["size"]), base64.b64decode(doc["root"]), int(doc["timestamp"]))

    def cosign(self, checkpoint_note: str, proof: Sequence[bytes], now_s: int) -> str:
        """Check and cosign; return the cosignature line. WitnessRefused says why not."""
        try:
            signed = note.parse(checkpoint_note)
            cp = Checkpoint.parse(signed.text)
        except NoteError as exc:
            raise WitnessRefused(f"refusing to cosign a malformed checkpoint: {exc}") from exc
        if cp.origin != self.log_key.name:
            raise WitnessRefused(f"refusing to cosign: origin {cp.origin!r} is not the pinned "
                                 f"log {self.log_key.name!r}")
        if signed.verified_by(self.log_key) is not True:
            raise WitnessRefused("refusing to cosign: the checkpoint is not signed by the "
                                 "pinned log key")
        last = self.last()
        if last is not None:
            self._check_consistent(last, cp, proof)
        ts = max(now_s, last.timestamp if last else 0)
        line = self.signer.signature_line(signed.text, timestamp=ts)
        _write_json(self.state_dir / STATE_FILE, {"size": cp.size, "timestamp": ts,
                                                  "root": base64.b64encode(cp.root).decode()})
        _write_text(self.state_dir / NOTE_FILE, signed.with_line(line).render())
        return line

    def _check_consistent(self, last: Cosigned, cp: Checkpoint, proof: Sequence[bytes]) -> None:
        if cp.size < last.size:
            raise WitnessRefused(f"refusing to cosign size {cp.size}: this witness already "
                                 f"cosigned size {last.size} (a log never shrinks)")
        if not tree.verify_consistency(last.size, cp.size, last.root, cp.root, proof):
            raise WitnessRefused(
                f"refusing to cosign size {cp.size}: it is not consistent with size "
                f"{last.size}, root {base64.b64encode(last.root).decode()}, which this witness "
                "cosigned: the log rewrote or forked its history")


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    _write_text(path, json.dumps(doc, indent=1) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Atomic replace: a crash leaves the old state or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    # the rename itself is durable only once the directory is synced: an HTTP witness
    # answers right after this, and must not come back from a power cut with the old state
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
