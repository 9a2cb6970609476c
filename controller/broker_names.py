"""Which names may be a device's broker login: the one rule, used where a device is
provisioned (API and CLI both go through ``registry.provision``) and where the broker's
files are generated (``broker_auth.accounts``).

A device logs in to Mosquitto as its device id, so a device id must be a usable id
(``protocols.topics.check_id``: no ':' nor spaces, which the password and ACL files
cannot hold) and must not be the name of an account portwatch itself uses: a device
named ``portwatch-controller`` would share the controller's login.
"""

from __future__ import annotations

from controller.errors import InvalidInput
from protocols import topics

CONTROLLER_USER = "portwatch-controller"
GATEWAY_USER = "portwatch-jtt808"  # the JT/T 808 gateway (controller/gateways/accounts.py)
RESERVED = frozenset({CONTROLLER_USER, GATEWAY_USER})


def refusal(device_id: str) -> str | None:
    """Why ``device_id`` cannot be a device's broker login, or None when it can."""
    try:
        topics.check_id(device_id, "device id")
    except ValueError as exc:
        return str(exc)
    if device_id in RESERVED:
        return (f"device id {device_id!r} is reserved: it is the broker login of portwatch's "
                "own " + ("controller" if device_id == CONTROLLER_USER else "account") +
                "; pick another id")
    return None


def check_device_id(device_id: str) -> None:
    """InvalidInput unless ``device_id`` can be a device's broker login."""
    reason = refusal(device_id)
    if reason is not None:
        raise InvalidInput(reason)
