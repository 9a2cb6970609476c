"""The tamper-evident ledger: an RFC 9162 Merkle log of device messages and decisions.

One append call for every part of the controller (`append`, inside the caller's
transaction; `append_decision` for a decision), signed checkpoints, a witness, proofs, and
an offline-verifiable export. FORMAT.md documents every byte an auditor sees.
"""

from controller.ledger.entries import decision, device_message
from controller.ledger.errors import (
    EntryFormatError,
    LedgerError,
    NoteError,
    WitnessRefused,
)
from controller.ledger.store import append, append_decision, migrate, size, transaction

__all__ = [
    "EntryFormatError",
    "LedgerError",
    "NoteError",
    "WitnessRefused",
    "append",
    "append_decision",
    "decision",
    "device_message",
    "migrate",
    "size",
    "transaction",
]
