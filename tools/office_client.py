"""The destination office's side of the trip feed: its config, and a reference receiver.

An office holds one config file (written by ``portwatch office add --out``): its id, the
site, the broker, its login, the site CA and the log key it pins. :class:`OfficeListener`
subscribes to the office's trip topic, checks each record's signature with that key, hands
verified records to a callback and acks them by (trip id, version). A record that fails
its check is counted and never acked, so the port sees it pending.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controller.ledger import note
from controller.ledger.errors import NoteError
from controller.office_record import (
    TRIP,
    TRIPACK,
    RecordError,
    Verified,
    ack_bytes,
    office_topic,
    verify,
)
from controller.secret_files import write_private
from tools.broker import paho_client


class OfficeConfigError(ValueError):
    """An office config file that cannot be used; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class OfficeConfig:
    """What an office needs to receive its trips."""

    office_id: str
    site: str
    broker_host: str
    broker_port: int
    password: str
    log_key: str  # the vkey `portwatch ledger key` prints at the port
    ca: str | None = None  # path of the site CA's certificate (None: clear MQTT)

    @classmethod
    def load(cls, path: Path) -> OfficeConfig:
        try:
            doc = json.loads(path.read_text())
            config = cls(**doc)
            note.Verifier.parse(config.log_key)
        except (OSError, ValueError, TypeError, NoteError) as exc:
            raise OfficeConfigError(f"{path}: not a usable office config ({exc}); write it "
                                    "again with `portwatch office add --out`") from exc
        return config

    def save(self, path: Path) -> None:
        """Write the config readable by its owner only (it holds the broker password)."""
        write_private(path, (json.dumps(asdict(self), indent=1) + "\n").encode())


@dataclass
class ListenerStats:
    received: int = 0
    verified: int = 0
    refused: int = 0
    acked: int = 0
    errors: list[str] = field(default_factory=list)


class OfficeListener:
    """Receive, verify and ack an office's trip records on a background paho thread."""

    def __init__(self, config: OfficeConfig, on_record: Callable[[Verified], None],
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.key = note.Verifier.parse(config.log_key)
        self.on_record = on_record
        self.on_refused = on_refused
        self.stats = ListenerStats()
        self.connected = threading.Event()
        self._client: Any = None

    def start(self) -> None:
        """Connect (retrying in the background while the broker is away) and subscribe."""
        c = self.config
        client = paho_client(c.office_id, ca=Path(c.ca) if c.ca else None,
                             login=(c.office_id, c.password))
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *_a: self.connected.clear()
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.connect_async(c.broker_host, c.broker_port, keepalive=15)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
            self.connected.clear()

    def _on_connect(self, client: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            self.stats.errors.append(f"broker refused the login: {rc}")
            return
        client.subscribe(office_topic(self.config.site, self.config.office_id, TRIP), qos=1)
        self.connected.set()

    def _on_message(self, client: Any, _u: Any, message: Any) -> None:
        self.stats.received += 1
        try:
            record = verify(bytes(message.payload), self.key, self.config.office_id)
        except RecordError as exc:
            self.stats.refused += 1
            self.stats.errors.append(str(exc))
            if self.on_refused is not None:
                self.on_refused(str(exc))
            return
        self.stats.verified += 1
        self.on_record(record)
        client.publish(office_topic(self.config.site, self.config.office_id, TRIPACK),
                       ack_bytes(record.trip_id, record.version), qos=1)
        self.stats.acked += 1
