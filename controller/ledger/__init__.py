"""The tamper-evident ledger: an RFC 9162 Merkle log of device messages and decisions.

Pure code: the canonical entry format (`entries`), the tree arithmetic (`tree`), signed
notes and checkpoints, proofs, a witness and the offline-verifiable export. The rows live
in `controller/storage/ledger_log.py`, whose `append` every part of the controller calls
inside its own transaction. FORMAT.md documents every byte an auditor sees.
"""

from controller.ledger.entries import decision, device_message
from controller.ledger.errors import (
    EntryFormatError,
    LedgerError,
    NoteError,
    WitnessRefused,
)

__all__ = [
    "EntryFormatError",
    "LedgerError",
    "NoteError",
    "WitnessRefused",
    "decision",
    "device_message",
]
