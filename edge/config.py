"""Load and check the device config file written by `portwatch device add`.

A missing or wrong setting stops the agent at boot with a message naming it: an
agent running on a half-read config would sign with the wrong key or poll the
wrong instrument, which is worse than not running.
"""

import json
import os

DEFAULTS = {
    "health_interval_s": 10,
    "outbox_max_bytes": 256 * 1024,
    "resend_after_s": 10,
    "window": 8,
}
MQTT_DEFAULTS = {"keepalive": 30, "user": None, "password": None, "tls": False}


class ConfigError(ValueError):
    """The config file is unusable; the message says which setting to fix."""


def _need(cfg, key, kind, where="config"):
    if key not in cfg:
        raise ConfigError("%s: missing %r" % (where, key))
    if not isinstance(cfg[key], kind):
        raise ConfigError("%s: %r has the wrong type" % (where, key))
    return cfg[key]


def unhex(text, what="secret_hex"):
    """bytes from a hex string (MicroPython has no bytes.fromhex on every port)."""
    if len(text) % 2:
        raise ConfigError(what + " must have an even number of hex digits")
    try:
        return bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))
    except ValueError:
        raise ConfigError(what + " is not hexadecimal")


def check(cfg):
    """Fill defaults and check the settings the agent needs; return the config dict."""
    for key in ("device_id", "site", "kind", "key_id", "secret_hex", "data_dir"):
        _need(cfg, key, str)
    if len(unhex(cfg["secret_hex"])) < 16:
        raise ConfigError("secret_hex must hold at least 16 bytes")
    mqtt = _need(cfg, "mqtt", dict)
    _need(mqtt, "host", str, "mqtt")
    _need(mqtt, "port", int, "mqtt")
    for key in MQTT_DEFAULTS:
        mqtt.setdefault(key, MQTT_DEFAULTS[key])
    if mqtt["tls"] is not False:
        if mqtt["tls"] is not True:
            raise ConfigError("mqtt: 'tls' must be true or false")
        # the site CA the broker's certificate must chain to, pinned: DER as hex
        mqtt["ca"] = unhex(_need(mqtt, "tls_ca_hex", str, "mqtt"), "tls_ca_hex")
        mqtt.pop("tls_ca_hex")
    _need(cfg, "driver", dict)  # its "event_bytes" is read by edge/main.py before this
    if type(cfg.setdefault("device_signing", True)) is not bool:
        raise ConfigError("'device_signing' must be true or false")
    for key in DEFAULTS:
        cfg.setdefault(key, DEFAULTS[key])
    # a board's network settings and fw_pub: edge/config_net.py, run by edge/boot.py before
    # this (and by `portwatch firmware deploy`); not here: at 96 KiB the weighbridge's
    # first-boot key generation did not fit beside that code (MemoryError in p256's load)
    return cfg


def load(path):
    """Read, parse and check a config file."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError as exc:
        raise ConfigError("cannot read config %s: %s" % (path, exc))
    except ValueError as exc:
        raise ConfigError("config %s is not JSON: %s" % (path, exc))
    if not isinstance(cfg, dict):
        raise ConfigError("config %s must hold a JSON object" % path)
    return check(cfg)


def device_key(cfg, path):
    """This device's P-256 private key: (d, None), or (None, why not) when the config turns
    device signing off (why None) or the key file at ``path`` cannot be used.

    Made from ``os.urandom`` at the first boot (drawn again while 0 or >= n) and written as
    a persist slot (``b"PWdk"``, the 32-byte scalar, its CRC): never overwritten, so a file
    that is there but unreadable stays as it is for someone to look at. Boot-only code, so
    it lives here: edge/main.py frees this module once the agent is built.
    """
    if not cfg.get("device_signing", True):
        return None, None
    from edge.explain import explain
    from edge.persist import read_slot, write_slot
    from edge.signer import p256

    raw = read_slot(path, b"PWdk", True, 64)  # 40 bytes: no 1 KB buffer on a full heap
    if raw is not None:
        d = p256("scalar", raw)
        return d, None if d else "not a P-256 private key"
    try:
        os.stat(path)
        return None, "corrupt (bad length, magic or CRC)"
    except OSError:  # none yet: the first boot (or a first write cut short)
        pass
    d = None
    while d is None:
        d = p256("scalar", os.urandom(32))
    try:
        write_slot(path, b"PWdk", d.to_bytes(32, "big"))
    except OSError as exc:  # not kept, so not used: the next boot would sign with another
        return None, "cannot be written: " + explain(exc)
    return d, None
