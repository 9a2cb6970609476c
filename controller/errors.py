"""The controller's one root exception and its typed subclasses.

Each subclass names a kind of refusal; the API maps the kinds to HTTP statuses in one
place (``controller/api/errors.py``) and the CLI prints the message and exits 1. Every
message says what to do next.
"""


class ControllerError(Exception):
    """Root of every error the controller raises on purpose; the message says what to do."""


class NotFound(ControllerError):
    """The thing asked for does not exist (HTTP 404)."""


class Conflict(ControllerError):
    """The request contradicts what is stored (HTTP 409)."""


class InvalidInput(ControllerError, ValueError):
    """A value is malformed or out of range (HTTP 422). Also a ValueError, for callers
    that validate plain values."""


class Unavailable(ControllerError):
    """A resource the request needs is not there now (HTTP 503)."""


class NotAuthenticated(ControllerError):
    """No API token, or an unknown, revoked or expired one (HTTP 401)."""


class NotAllowed(ControllerError):
    """The caller's role may not do this (HTTP 403)."""


class UnknownDevice(NotFound):
    """No device with that id is registered."""


class UnknownToken(NotFound):
    """No API token with that id or name."""


class DeviceExists(Conflict):
    """A device with that id is already registered (or was, and is decommissioned)."""


class DeviceDecommissioned(Conflict):
    """The device was decommissioned: its history is kept, it may not change."""


class ConfigError(InvalidInput):
    """A setting is missing or invalid."""


class StoreError(Unavailable):
    """The store cannot be opened or used as it is."""


class StoreNotFound(StoreError):
    """No store at the given path (and the command does not create one)."""
