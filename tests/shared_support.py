"""Helpers for tests that run under both pytest and MicroPython (no pytest features)."""

import os


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def make_tmpdir(tag="t"):
    """Create and return a fresh empty directory under /tmp."""
    base = "/tmp/pw-test-" + tag + "-"
    while True:
        suffix = "".join("%02x" % b for b in os.urandom(6))
        path = base + suffix
        if not _exists(path):
            os.mkdir(path)
            return path


def rmtree(path):
    """Remove a directory tree (MicroPython has no shutil)."""
    for entry in os.listdir(path):
        full = path + "/" + entry
        if os.stat(full)[0] & 0x4000:
            rmtree(full)
        else:
            os.remove(full)
    os.rmdir(path)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def repo_root():
    """The repository root, found from this file's location."""
    here = __file__ if __file__.startswith("/") else os.getcwd() + "/" + __file__
    return here.rsplit("/", 2)[0]
