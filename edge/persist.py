"""Small persistent state for the firmware: atomic file replace, CRC'd slots, boot counter.

Runs under MicroPython (ESP32 + LittleFS in the field, the unix port in tests) and CPython.
MicroPython has no ``os.fsync``, so every guarantee here rests on two properties instead:

* ``close()`` is the durability point. On LittleFS it commits the file copy-on-write: after a
  power cut the file holds either its old or its new content, never a mix. On a POSIX host it
  hands the data to the kernel (survives a crash of the process, not of the host).
* ``os.rename(tmp, name)`` replaces ``name`` atomically on POSIX and LittleFS. FAT refuses to
  rename over an existing file; there we remove ``name`` first, and readers fall back to
  ``name.tmp`` (see :func:`read_slot`), so the window costs nothing either.

What is used: ``makedirs``; ``remove`` (True when the file is gone); ``write_atomic`` (tmp,
close, rename) and ``replace`` (the rename half, for a tmp file written elsewhere);
``pack_slot`` / ``read_slot`` for a 12-byte value with its own CRC (the outbox's ``ack``
file, the boot counter's slots); ``BootCounter``. Nothing else: on the device every function,
class and string here costs heap, so there is no JSON state helper (nothing used one).

Slot layout (12 bytes, little-endian)::

    offset size field
    0      4    magic  e.g. b"PWak" (outbox ack), b"PWbc" (boot counter)
    4      4    value  u32
    8      4    crc32 of bytes 0..7

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
    """Replace the slot file ``path`` with ``value`` so a reader sees the old or the new one.

    Writes ``path.tmp`` (the slot layout above), closes it (the commit point on LittleFS),
    then renames it over ``path``. Raises OSError when the file system refuses (full,
    read-only).
    """
    head = struct.pack("<4sI", magic, value)
    with open(path + ".tmp", "wb") as f:
        f.write(head)
        f.write(struct.pack("<I", crc32(head) & 0xFFFFFFFF))
    replace(path + ".tmp", path)


def read_slot(path, magic):
    """The value of the slot in ``path``, else in ``path.tmp``; None when neither is valid.

    ``path.tmp`` is what a power cut during a FAT replace leaves; a missing, torn, rotten or
    foreign (other magic) file is not valid.
    """
    for name in (path, path + ".tmp"):
        try:
            with open(name, "rb") as f:
                data = f.read(13)
        except OSError:
            continue
        if len(data) == 12 and data[:4] == magic:
            value, crc = struct.unpack("<II", data[4:])
            if crc == crc32(data[:8]) & 0xFFFFFFFF:
                return value
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
