"""The controller's one root exception and its readable subclasses."""


class ControllerError(Exception):
    """Root of every error the controller raises on purpose; the message says what to do."""


class UnknownDevice(ControllerError):
    """No device with that id is registered."""


class DeviceExists(ControllerError):
    """A device with that id is already registered."""


class ConfigError(ControllerError):
    """A setting is missing or invalid."""
