"""Small persistent state for the firmware: atomic file replace, CRC'd slots, boot counter.

Runs under MicroPython (ESP32 + LittleFS in the field, the unix port in tests) and CPython.
MicroPython has no ``os.fsync``, so every guarantee here rests on two properties instead:

* ``close()`` is the durability point. On LittleFS it commits the file copy-on-write: after a
  power cut the file holds either its old or its new content, never a mix. On a POSIX host it
  hands the data to the kernel (survives a crash of the process, not of the host).
* ``os.rename(tmp, name)`` replaces ``name`` atomically on POSIX and LittleFS. FAT refuses to
  rename over an existing file; there we remove ``name`` first, and readers fall back to
  ``name.tmp`` (see :func:`read_slot`), so the window costs nothing either.

What is used: ``makedirs``; ``remove`` (True when the file is gone); ``replace`` (rename a
closed tmp file over its target: the atomic half, also for files written elsewhere);
``write_slot`` / ``read_slot`` for a 12-byte value with its own CRC (the outbox's ``ack``
file, the boot counter's slots) or a few hundred bytes (the agent's refused counter);
``BootCounter``. Nothing else: on the device every function,
class and string here costs heap, so there is no JSON state helper (nothing used one).

Slot layout (12 bytes, little-endian)::

    offset size field
    0      4    magic  e.g. b"PWak" (outbox ack), b"PWbc" (boot counter)
    4      4    value  u32
    8      4    crc32 of bytes 0..7

A slot of bytes (``b"PWrf"``, the agent's refused counter: its JSON) is the same with n
bytes in place of the u32 and the crc32 of bytes 0..n+3 after them.

The boot counter does not trust even the rename: it keeps two slots, ``<path>.a`` and
``<path>.b``, and writes the older one, so a torn or rotted slot falls back to the other.
"""

import os
import struct
from binascii import crc32


def makedirs(path):
    """Create ``path`` and its missing parents (MicroPython has no ``os.makedirs``)."""
    i = 0
    while i >= 0:
        i = path.find("/", i + 1)
        try:
            os.mkdir(path[:i] if i > 0 else path)
        except OSError:
            pass  # there already; a directory that cannot be made fails at its first use


def remove(path):
    """Delete the file ``path``; True when it is gone (deleted now, or missing already)."""
    try:
        os.remove(path)
    except OSError as e:
        return e.errno == 2  # ENOENT
    return True


def replace(tmp, path):
    """Rename the closed file ``tmp`` over ``path`` (atomic on POSIX and LittleFS)."""
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT will not rename over an existing file: remove it, then rename. A power cut in
        # between leaves only path.tmp, which read_slot() picks up.
        remove(path)
        os.rename(tmp, path)


def write_slot(path, magic, value):
    """Replace the slot file ``path`` so that a reader sees the old or the new one.

    ``value`` is a u32 (the 12-byte layout above) or bytes (up to 1,020: a small record,
    such as the agent's refused counter, same layout with the bytes in place of the u32).
    Writes ``path.tmp``, closes it (the commit point on LittleFS), then renames it over
    ``path``. Raises OSError when the file system refuses (full, read-only).
    """
    data = magic + (struct.pack("<I", value) if type(value) is int else value)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
        f.write(struct.pack("<I", crc32(data) & 0xFFFFFFFF))
    replace(path + ".tmp", path)


def read_slot(path, magic, raw=False, size=1024):
    """The u32 in the slot ``path`` (its bytes if ``raw``), else in ``path.tmp``; None when
    neither is valid.

    ``path.tmp`` is what a power cut during a FAT replace leaves; a missing, torn, rotten or
    foreign (other magic) file is not valid, nor a u32 slot of any length but 12 bytes.
    ``size``: the most bytes read (a small slot read at boot needs no 1 KB buffer).
    """
    for name in (path, path + ".tmp"):
        try:
            with open(name, "rb") as f:
                data = f.read(size)
        except OSError:
            continue
        n = len(data) - 4
        if (n == 8 or (raw and n >= 4)) and data[:4] == magic and \
                struct.unpack("<I", data[n:])[0] == crc32(data[:n]) & 0xFFFFFFFF:
            return data[4:n] if raw else struct.unpack("<I", data[4:8])[0]
    return None


class BootCounter:
    """A boot number that never goes backwards (Sparkplug bdSeq-like), kept in two slots.

    ``next()`` reads both slots, takes the highest valid value, writes value + 1 into the
    other slot (``write_slot``: tmp, close, rename) and returns it only once written. A power
    cut during that write leaves the newer slot valid, and the number being written was never
    handed out (at worst it is skipped, never reissued).
    ``recovered`` says how the last ``next()`` or ``peek()`` found the slots: 2 both valid,
    1 one valid (a torn or corrupt slot was skipped), 0 none (first boot, or both lost:
    restarts at 1).
    """

    def __init__(self, path):
        self.path = path
        self.recovered = None

    def peek(self):
        """The last number handed out (0 if none), without counting a boot."""
        a = read_slot(self.path + ".a", b"PWbc")
        b = read_slot(self.path + ".b", b"PWbc")
        self.recovered = (a is not None) + (b is not None)
        self._in_b = b is not None and (a is None or b > a)  # where the newest value is
        return max(a or 0, b or 0)

    def next(self):
        value = self.peek() + 1
        # Write the slot that does not hold the newest value: the newest survives a cut.
        write_slot(self.path + (".a" if self._in_b else ".b"), b"PWbc", value)
        return value
