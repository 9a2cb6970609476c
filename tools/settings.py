"""Defaults shared by the CLI commands; each can be overridden by an option or PORTWATCH_* env."""

from __future__ import annotations

import os
from pathlib import Path

from tools.firmware import REPO

DEFAULT_SITE = "dalian-north"


def default_db() -> Path:
    """The controller store: $PORTWATCH_DB, else var/portwatch.db in the repository."""
    return Path(os.environ.get("PORTWATCH_DB", REPO / "var" / "portwatch.db"))


def default_site() -> str:
    return os.environ.get("PORTWATCH_SITE", DEFAULT_SITE)


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    """'host:port' or 'host' into (host, port); ValueError with a hint when malformed."""
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:{default_port}")
    return host, int(port)
