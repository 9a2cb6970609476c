"""Small persistent state for the firmware: atomic file replace, JSON state, boot counter.

Runs under MicroPython (ESP32 + LittleFS in the field, the unix port in tests) and CPython.
MicroPython has no ``os.fsync``, so every guarantee here rests on two properties instead:

* ``close()`` is the durability point. On LittleFS it commits the file copy-on-write: after a
  power cut the file holds either its old or its new content, never a mix. On a POSIX host it
  hands the data to the kernel (survives a crash of the process, not of the host).
* ``os.rename(tmp, name)`` replaces ``name`` atomically on POSIX and LittleFS. FAT refuses to
  rename over an existing file; there we remove ``name`` first, and readers fall back to
  ``name.tmp`` (see :func:`read_atomic`), so the window costs nothing either.

The boot counter does not trust even that: it keeps two slots, each with its own CRC, and
writes the older one, so a torn or rotted slot falls back to the other.

Boot counter slot layout (12 bytes, little-endian), files ``<path>.a`` and ``<path>.b``::

    offset size field
    0      4    magic  b"PWbc"
    4      4    value  u32, the last boot number handed out
    8      4    crc32 of bytes 0..7
"""

import json
import os
import struct
from binascii import crc32

_SLOT = "<4sI"
_SLOT_MAGIC = b"PWbc"


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def makedirs(path):
    """Create ``path`` and its missing parents (MicroPython has no ``os.makedirs``)."""
    so_far = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        so_far = so_far + part if so_far in ("", "/") else so_far + "/" + part
        if not exists(so_far):
            os.mkdir(so_far)


def remove_quietly(path):
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def write_atomic(path, data):
    """Replace the file ``path`` with ``data`` so a reader sees the old or the new content.

    Writes ``path.tmp``, closes it (the commit point on LittleFS), then renames it over
    ``path``. Raises OSError when the file system refuses (full, read-only).
    """
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    replace(tmp, path)


def replace(tmp, path):
    """Rename the closed file ``tmp`` over ``path`` (atomic on POSIX and LittleFS)."""
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT will not rename over an existing file: remove it, then rename. A power cut in
        # between leaves only path.tmp, which read_atomic() picks up.
        remove_quietly(path)
        os.rename(tmp, path)


def read_bytes(path):
    """The content of ``path``, or None when it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def read_atomic(path, parse):
    """Read a file written by :func:`write_atomic`; ``parse(bytes)`` returns a value or None.

    Tries ``path`` then ``path.tmp`` (left alone by a power cut during a FAT replace) and
    returns the first value ``parse`` accepts, or None when neither parses.
    """
    for name in (path, path + ".tmp"):
        data = read_bytes(name)
        if data is not None:
            value = parse(data)
            if value is not None:
                return value
    return None


def _parse_json(data):
    try:
        return json.loads(data)
    except ValueError:  # torn or corrupt: the caller gets its default
        return None


def save_json(path, obj):
    """Atomically replace ``path`` with ``obj`` (a dict: no strict prefix of it parses) as JSON."""
    write_atomic(path, json.dumps(obj).encode())


def load_json(path, default=None):
    """The JSON value in ``path`` (or its ``.tmp``), or ``default`` when missing or corrupt."""
    value = read_atomic(path, _parse_json)
    return default if value is None else value


def pack_slot(magic, value):
    """A 12-byte record: magic, u32 value, crc32 of the first 8 bytes."""
    head = struct.pack(_SLOT, magic, value)
    return head + struct.pack("<I", crc32(head) & 0xFFFFFFFF)


def unpack_slot(magic, data):
    """The u32 value of a slot written by :func:`pack_slot`, or None when invalid."""
    if data is None or len(data) != 12:
        return None
    m, value = struct.unpack_from(_SLOT, data, 0)
    (crc,) = struct.unpack_from("<I", data, 8)
    if m != magic or crc != crc32(data[:8]) & 0xFFFFFFFF:
        return None
    return value


class BootCounter:
    """A boot number that never goes backwards (Sparkplug bdSeq-like), kept in two slots.

    ``next()`` reads both slots, takes the highest valid value, writes value + 1 into the
    other slot and returns it only once written (closed). A power cut during that write
    leaves the older slot valid, and the number being written was never handed out.
    ``recovered`` says how the last ``next()`` found the slots: 2 both valid, 1 one valid
    (a torn or corrupt slot was skipped), 0 none (first boot, or both lost: restarts at 1).
    """

    def __init__(self, path):
        self.path = path
        self.recovered = None

    def _slots(self):
        return (self.path + ".a", self.path + ".b")

    def peek(self):
        """The last number handed out (0 if none), without counting a boot."""
        return self._read()[0]

    def _read(self):
        a, b = [unpack_slot(_SLOT_MAGIC, read_bytes(p)) for p in self._slots()]
        valid = (a is not None) + (b is not None)
        if a is None and b is None:
            return 0, 0, valid
        if b is None or (a is not None and a >= b):
            return a, 0, valid
        return b, 1, valid

    def next(self):
        value, newest, valid = self._read()
        self.recovered = valid
        value += 1
        # Write the slot that does not hold the newest value: the newest survives a cut.
        target = self._slots()[1 - newest]
        with open(target, "wb") as f:
            f.write(pack_slot(_SLOT_MAGIC, value))
        return value
