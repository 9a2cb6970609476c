"""The ledger's exceptions: each under the controller's root, each message says what to do."""

from __future__ import annotations

from controller.errors import ControllerError


class LedgerError(ControllerError):
    """A ledger operation was refused or its data is malformed."""


class EntryFormatError(LedgerError):
    """Bytes that are not a canonical ledger entry, or fields that cannot make one."""


class NoteError(LedgerError):
    """A signed note, key or checkpoint that is malformed or does not verify."""


class WitnessRefused(LedgerError):
    """The witness will not cosign: the checkpoint is not consistent with what it cosigned."""
