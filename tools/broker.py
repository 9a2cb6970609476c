"""Run a real Mosquitto broker as a child process, with a config generated for portwatch.

Used by the demo, the benchmark and the hardware-in-the-loop tests, each of which
starts its own broker on a free port so that it can stop, restart or pause it.

Two defaults of Mosquitto lose or stall QoS 1 traffic (docs/ARCHITECTURE.md, Pitfalls):
``max_queued_messages`` (1,000 per client, then silent drops) and Nagle's algorithm
on the sockets. Every config generated here (the child broker's, and the one
``portwatch broker config`` writes for a site) takes :func:`delivery_settings`, which
lifts the first and sets ``set_tcp_nodelay``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from protocols.envelope import MAX_WIRE_BYTES
from tools.procs import ProcessDied, kill_process, port_open, stop_process, wait_until
from tools.tls import BrokerTls


class BrokerError(ProcessDied):
    """Mosquitto could not be found or started."""


def mosquitto_binary() -> str:
    """Path of the mosquitto executable, or BrokerError saying how to install it."""
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError(
        "mosquitto not found: install it with `apt-get install mosquitto` "
        "(scripts/setup.sh does this when run as root)"
    )


MAX_QUEUED_MESSAGES = 1_000_000
# per client: a site's whole backlog (every agent's full 256 KiB outbox: 2,000 agents)
# fits, while a flood queued for an offline controller cannot take the server's memory
MAX_QUEUED_BYTES = 512 * 1024 * 1024
# the largest envelope (protocols/envelope.py MAX_WIRE_BYTES, 16 KiB) with its topic and
# headers; anything bigger is refused by the broker, which drops that client's link
MAX_PACKET_BYTES = MAX_WIRE_BYTES + 1024
PID_FILE = "mosquitto.pid"  # in the persistence directory: the broker's user writes it


def delivery_settings(max_queued_messages: int = MAX_QUEUED_MESSAGES) -> tuple[str, ...]:
    """The mosquitto.conf lines every portwatch broker needs so QoS 1 neither drops nor
    stalls, and no client's message or queue can exhaust the broker."""
    return (
        f"max_queued_messages {max_queued_messages}",  # the default 1,000 drops silently
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        "max_inflight_messages 100",
        f"max_packet_size {MAX_PACKET_BYTES}",  # a 200 MB publish reached the controller
        "set_tcp_nodelay true",  # Nagle stalls asynchronous publishers
        "sys_interval 1",  # fresh $SYS figures (dropped messages) for monitoring and bench
    )


# With logins, the client id is the login: one device's login cannot connect under the
# controller's or another device's id to throw that client off (each new connection with
# a client id replaces the one already there). One login, one connection at a time.
LOGIN_IS_CLIENT_ID = "use_username_as_clientid true"


def tls_settings(tls: BrokerTls) -> tuple[str, ...]:
    """The lines that make the listener above them speak TLS only (1.2 and up)."""
    return (f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}",
            "tls_version tlsv1.2")


LOG_SETTINGS = (
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "connection_messages true",
)


def render_config(
    *,
    port: int,
    data_dir: Path,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    tls: BrokerTls | None = None,
) -> str:
    """The text of a mosquitto.conf for a broker this process runs (tests, demo, bench).

    With ``tls`` its one listener speaks only TLS.
    """
    lines = [
        f"listener {port} 127.0.0.1",
        *(tls_settings(tls) if tls is not None else ()),
        # as root, mosquitto drops to the 'mosquitto' user and then cannot read our files
        *(["user root"] if os.geteuid() == 0 else []),
        "persistence true",
        f"persistence_location {data_dir}/",
        "autosave_interval 1",
        *delivery_settings(max_queued_messages),
        *LOG_SETTINGS,
    ]
    if password_file is not None:
        lines += ["allow_anonymous false", f"password_file {password_file}", LOGIN_IS_CLIENT_ID]
    else:
        lines.append("allow_anonymous true")
    if acl_file is not None:
        lines.append(f"acl_file {acl_file}")
    return "\n".join(lines) + "\n"


def render_site_config(
    *,
    port: int,
    bind: str,
    user: str,
    password_file: Path,
    acl_file: Path,
    data_dir: Path,
    tls: BrokerTls,
) -> str:
    """The text of the mosquitto.conf ``portwatch broker config`` writes for a site's broker.

    Its one listener speaks only TLS (``tls``: the site CA and the broker's certificate):
    there is no clear MQTT port, so no password, plate or weight crosses a network readable.

    Started as root, Mosquitto switches to ``user`` right after reading this file, before
    it opens anything else (pid file, persistence, password file, ACL) and before every
    reload, so that user must own them; this file itself it reads again on SIGHUP, so it
    must stay readable by that user. Paths must be absolute: the broker may run anywhere.
    """
    paths = {"password_file": password_file, "acl_file": acl_file, "data_dir": data_dir,
             "cafile": tls.ca, "certfile": tls.cert, "keyfile": tls.key}
    for name, path in paths.items():
        if not path.is_absolute():
            raise ValueError(f"{name} must be an absolute path, not {path}")
    words = {"bind": bind, "user": user, **{k: str(v) for k, v in paths.items()}}
    for name, value in words.items():
        if not value or any(ch in value for ch in "\r\n") or (
                name in ("bind", "user") and any(ch.isspace() for ch in value)):
            raise ValueError(f"{name} {value!r} cannot go into mosquitto.conf")
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not a TCP port")
    return "\n".join([
        "# written by `portwatch broker config` from the device registry: run it again",
        "# rather than editing this file (it would overwrite your changes)",
        f"listener {port} {bind}",
        *tls_settings(tls),
        f"user {user}",
        "allow_anonymous false",
        f"password_file {password_file}",
        LOGIN_IS_CLIENT_ID,
        f"acl_file {acl_file}",
        "persistence true",
        f"persistence_location {data_dir}/",
        f"pid_file {data_dir / PID_FILE}",
        *delivery_settings(),
        *LOG_SETTINGS,
    ]) + "\n"


def paho_client(client_id: str, *, ca: Path | None = None,
                login: tuple[str, str] | None = None) -> Any:
    """A paho-mqtt (v2 callbacks) client; over TLS pinned to the CA file ``ca`` if given.

    With logins, the broker makes the login the client id: two clients on one login at
    once throw each other off, so each concurrent client needs a login of its own.
    """
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if ca is not None:
        client.tls_set(ca_certs=str(ca))  # verifies the chain and the host name
    if login is not None:
        client.username_pw_set(*login)
    return client


def login_accepted(port: int, user: str | None, password: str | None, *,
                   host: str = "127.0.0.1", timeout: float = 5.0,
                   ca: Path | None = None) -> bool:
    """True when the broker accepts this login (one MQTT CONNECT, then DISCONNECT).

    ``user=None`` tries an anonymous connection; ``ca``: over TLS, pinned to that CA file.
    """
    from paho.mqtt.enums import MQTTErrorCode

    answer: list[bool] = []
    client = paho_client(f"pw-login-probe-{secrets.token_hex(4)}", ca=ca)
    if user is not None:
        client.username_pw_set(user, password)
    client.on_connect = lambda _c, _u, _f, rc, _p: answer.append(not rc.is_failure)
    try:
        client.connect(host, port, keepalive=10)
        deadline = time.monotonic() + timeout
        while not answer and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break  # the socket closed before a CONNACK
        return bool(answer and answer[0])
    except OSError:
        return False
    finally:
        client.disconnect()


class MosquittoProcess:
    """A Mosquitto broker owned by this process: start, stop, restart, pause, resume."""

    def __init__(
        self,
        *,
        port: int,
        workdir: Path,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        self.port = port
        self.tls = tls
        self.workdir = Path(workdir)
        self.password_file = password_file
        self.acl_file = acl_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def start(self, timeout: float = 10.0) -> None:
        """Write the config and start the broker; return once it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        data_dir = self.workdir / "data"
        data_dir.mkdir(exist_ok=True)
        self.config_path.write_text(
            render_config(
                port=self.port,
                data_dir=data_dir,
                password_file=self.password_file,
                acl_file=self.acl_file,
                tls=self.tls,
            )
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            wait_until(
                lambda: self._alive() and port_open(self.port),
                timeout=timeout,
                what=f"mosquitto on port {self.port}",
            )
        except AssertionError as exc:
            raise BrokerError(f"{exc}; see {self.log_path}") from exc

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            log = self.log_path
            tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
            raise BrokerError(f"mosquitto exited: {tail}")
        return True

    def stop(self) -> None:
        """Stop the broker (SIGTERM: it saves its persistence file first)."""
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """Kill the broker without letting it save anything."""
        kill_process(self.proc, timeout=5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """Ask the broker to re-read its password file and ACL (SIGHUP)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): its sockets stay open but nothing moves."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
