"""Over-the-air update: the ``update`` command's handler (edge/commands.py KINDS), loaded
only while an update is checked and downloaded, freed after (README, Update over the air).

``run(up, body)``: checks the body, answers at once what needs no download (the version
runs already: ``done``; it was rolled back here: ``failed``; another update is under way:
``refused``), else starts the download as a task and answers later (None).

The download (``_update``): ``manifest.json`` is streamed to ``<data>/fw/<v>.mf`` while
SHA-256(``b"pw1-fw\\n"`` + it) is made, ``manifest.sig`` checked against the config's
``fw_pub`` (protocols/p256_verify.py, loaded for this only); then kind, ``mpy_abi`` and
version; then each listed file, in Range requests of ``CHUNK`` bytes, written to
``<data>/fw/<v>/<path>`` and hashed as it is written: nothing is held in RAM but a chunk's
piece (edge/net/http.py). A bad signature, a hash or size that differs, a refused request:
the version's files are deleted and the command answered ``failed`` with the reason; the
running version is untouched.

The switch (``switch``): ``fw/trial`` (new, previous, boots 0) first, then ``fw/current``
(new), each a persist slot (tmp + rename): a power cut between the two leaves a trial whose
version is not current, which boot (edge/fwboot.py) discards. Then a reset (the HAL's, or
on the unix port exit ``RESTART``, which tools/agent_supervisor.py restarts like a board's
reset). The new version answers the command, which the controller sends again, ``done``.
"""

import asyncio
import hashlib
import json
import os
import sys

from edge.net.http import get
from edge.persist import makedirs, read_slot, remove, write_slot

RESTART = 75  # exit code asking the supervisor for a restart (a board resets instead)
CHUNK = 8192  # bytes per Range request
SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


def _safe(name, slash=False):
    if not name or len(name) > 120 or ".." in name or name[0] in "./":
        return False
    return all(c in SAFE or (slash and c == "/") for c in name)


def run(up, body):
    """The update command: (result, detail) now, or None: the download's task answers."""
    o = up.ota  # [data_dir, fw_pub, driver type, running version, rolled back version]
    v, url, tok = body.get("version"), body.get("url"), body.get("token")
    if not (type(v) is str and _safe(v) and type(url) is str and url[:7] == "http://" and
            type(tok) is str and type(body.get("trial_s")) is int):
        return ("refused", "not an update with version, url (http://), token and trial_s")
    if v == o[3]:
        return ("done", "running %s" % v)
    if v == o[4]:
        return ("failed", "rolled back: %s did not confirm within its trial; fix it and "
                "publish a new version" % v)
    if not o[1]:
        return ("refused", "no fw_pub in this device's config: updates cannot be checked")
    if len(o) > 5:
        return ("refused", "update to %s under way" % o[5])
    o.append(v)
    o.append(asyncio.create_task(_task(up, body)))  # held while it runs
    return None


def _answer(up, cid, result, detail):
    for r in up.cmds[1]:
        if r[0] == cid and r[1] is None:
            r[1] = result
    up.cmds[2].append({"id": cid, "result": result, "detail": detail[:200]})
    up.wake = True


async def _task(up, body):
    o = up.ota
    v = body["version"]
    try:
        await _update(up, o, body)
    except Exception as exc:  # every failure is an answer, never a crash
        rmtree(o[0] + "/fw/" + v)
        remove(o[0] + "/fw/" + v + ".mf")
        up.log("update to %s failed:" % v, exc)
        _answer(up, body["id"], "failed", "%s: %s" % (type(exc).__name__, exc))
    finally:
        del o[5:]
        for m in ("edge.ota", "edge.net.http", "protocols.p256_verify"):
            sys.modules.pop(m, None)


def rmtree(path):
    """Delete ``path`` and everything under it (MicroPython has no shutil)."""
    try:
        names = [e[0] for e in os.ilistdir(path)] if hasattr(os, "ilistdir") else \
            os.listdir(path)
    except OSError:
        remove(path)
        return
    for n in names:
        rmtree(path + "/" + n)
    try:
        os.rmdir(path)
    except OSError:
        pass


def _where(url):
    rest = url[7:]
    i = rest.find("/")
    host, path = rest[:i], rest[i:]
    h, _, p = host.partition(":")
    return h, int(p or 80), path


class _Sink:
    """Writes a body to a file and hashes it as it goes."""

    def __init__(self, f, h):
        self.f, self.h, self.n = f, h, 0

    def __call__(self, chunk):
        self.f.write(chunk)
        self.h.update(chunk)
        self.n += len(chunk)


async def _update(up, o, body):
    data, v = o[0], body["version"]
    host, port, base = _where(body["url"])
    q = "?t=" + body["token"]
    fw = data + "/fw/"
    rmtree(fw + v)  # what a power cut left of an earlier try
    makedirs(fw + v)
    up.log("update to %s: manifest from %s:%d%s" % (v, host, port, base))
    h = hashlib.sha256(b"pw1-fw\n")
    with open(fw + v + ".mf", "wb") as f:
        await get(host, port, base + "/manifest.json" + q, _Sink(f, h))
    sig = bytearray()
    await get(host, port, base + "/manifest.sig" + q, sig.extend)
    from protocols.p256_verify import verify_digest

    if not verify_digest(o[1], bytes(sig).decode().strip(), h.digest()):
        raise ValueError("bad signature: manifest.sig does not verify with fw_pub")
    sys.modules.pop("protocols.p256_verify", None)
    t = _tail(fw + v + ".mf")
    abi = sys.implementation._mpy & 0xFF  # the manifest's mpy_abi: an int (docs/FIRMWARE.md)
    if t.get("format") != 1 or t.get("version") != v or t.get("kind") != o[2] or \
            t.get("mpy_abi") != abi:
        raise ValueError("manifest for %s %s %s (format %s), this device needs %s %s %s" % (
            t.get("kind"), t.get("version"), t.get("mpy_abi"), t.get("format"), o[2], v, abi))
    n = 0
    for e in _files(fw + v + ".mf"):
        p, size = e["path"], e["size"]
        if not _safe(p, True) or type(size) is not int:
            raise ValueError("manifest lists a bad path %r" % p)
        i = p.rfind("/")
        if i > 0:
            makedirs(fw + v + "/" + p[:i])
        h = hashlib.sha256()
        with open(fw + v + "/" + p, "wb") as f:
            sink = _Sink(f, h)
            while sink.n < size:
                got = await get(host, port, base + "/files/" + p + q, sink, sink.n,
                                min(size, sink.n + CHUNK) - 1)
                if not got:
                    break
        hx = "".join("%02x" % b for b in h.digest())
        if sink.n != size or hx != e["sha256"]:
            raise ValueError("%s: %d bytes sha256 %s, the manifest says %d bytes %s" % (
                p, sink.n, hx[:16], size, e["sha256"][:16]))
        n += 1
        await asyncio.sleep(0)
    up.log("update to %s: %d files verified; switching" % (v, n))
    switch(data, v, current(data) or "", body["trial_s"])
    reset(up.hal)


def reset(hal):
    """Restart the device: the HAL's ``reset``, else ``machine.reset()``, else (the unix
    port without one) exit ``RESTART`` for the supervisor to start it again."""
    r = getattr(hal, "reset", None)
    if r is None:
        try:
            import machine

            r = machine.reset
        except (ImportError, AttributeError):
            sys.exit(RESTART)
    r()


def _files(path):
    """The manifest's file entries, one at a time, read from flash (canonical JSON: the
    list comes first, each entry an object without braces inside)."""
    with open(path) as f:
        if f.read(10) != '{"files":[':
            raise ValueError("manifest does not start with its files")
        buf = ""
        while True:
            chunk = f.read(256)
            buf += chunk
            while True:
                if buf[:1] == ",":
                    buf = buf[1:]
                if buf[:1] == "]":
                    return
                i = buf.find("}")
                if i < 0:
                    break
                yield json.loads(buf[:i + 1])
                buf = buf[i + 1:]
            if not chunk:
                raise ValueError("manifest ends inside its file list")


def _tail(path):
    """The manifest's fields after its file list (format, key_id, kind, mpy_abi,
    version)."""
    with open(path) as f:
        f.seek(0, 2)
        end = f.tell()
        f.seek(max(0, end - 400))
        t = f.read()
    i = t.rfind("]")
    return json.loads("{" + t[i + 2:])


def switch(data, new, prev, trial_s):
    """Make ``new`` the version booted next, on trial for ``trial_s`` seconds (``prev``:
    the one to go back to, "" for the image's own)."""
    write_slot(data + "/fw/trial", b"PWft", ("%s\n%s\n0\n%d" % (new, prev, trial_s)).encode())
    write_slot(data + "/fw/current", b"PWfc", new.encode())


def current(data):
    """The version in ``fw/current``, or None (the image's own)."""
    v = read_slot(data + "/fw/current", b"PWfc", True, 64)
    return v.decode() if v else None
