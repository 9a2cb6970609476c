"""This device's identity and key: it seals what the device sends and checks what it is sent.

The agent seals custody events before they enter the outbox; the uplink seals birth,
death, health and gap notices, re-seals events stored under an older key, and opens
the controller's acks with ``secret_for``. A key rotation is a new ``key_id`` and
secret in the config, read at boot: one Signer, so every message changes key at once.
"""

import json

from protocols import envelope


class Signer:
    def __init__(self, device_id, boot, key_id, secret):
        self.device_id = device_id
        self.boot = boot
        self.key_id = key_id
        self._secret = secret

    def seal(self, topic, seq, ts, kind, body):
        """One message from this device, in this boot, signed for ``topic``: wire bytes."""
        return envelope.seal(self._secret, self.key_id, topic,
                             envelope.make(self.device_id, self.boot, seq, ts, kind, body))

    def reseal(self, topic, wire):
        """``wire`` signed with the current key; None when it already is. The JSON fields
        (seq, boot, ts, body) stay as they were: only the signature line changes."""
        cut = wire.rfind(b"\n")
        kid = self.key_id.encode() + b":"
        if wire[cut + 1:cut + 1 + len(kid)] == kid:
            return None
        return envelope.seal(self._secret, self.key_id, topic, json.loads(wire[:cut]))

    def secret_for(self, key_id):
        """The secret to check a downlink signed with ``key_id``; None for any other key."""
        return self._secret if key_id == self.key_id else None
