"""Device emulators for demos and hardware-in-the-loop tests: real protocol servers, scripted.

Each emulator is library first (an asyncio class usable in-process), a ``python -m``
entry point, and a JSON-lines control port so tests in another process can script
it and read back what it did.
"""


class EmulatorError(Exception):
    """An emulator was asked for something it cannot do; the message says what to change."""


class ControlError(EmulatorError):
    """An emulator's control port refused a command or could not be reached."""
