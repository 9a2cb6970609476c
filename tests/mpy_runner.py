"""Run the shared tests under the real MicroPython interpreter.

pytest is not available under MicroPython, so this small runner imports every
``test_*.py`` module in the given folders and calls each ``test_*`` function.
The same files run under pytest on CPython: they use plain ``assert`` and the
helpers in ``tests/shared_support.py`` only.

Usage: micropython tests/mpy_runner.py tests/protocols tests/edge
"""

import os
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_root = _here.rsplit("/", 1)[0] if "/" in _here else "."
sys.path.insert(0, _here)
sys.path.insert(0, _root if _root != _here else "..")


# CPython-only modules among the shared folders: they import pynmea2 or hypothesis
CPYTHON_ONLY = ("test_nmea_oracle.py",)


def _modules(folder):
    names = sorted(n for n in os.listdir(folder) if n.startswith("test_") and n.endswith(".py")
                   and n not in CPYTHON_ONLY)
    return [(folder, n[:-3]) for n in names]


def _run_module(folder, name):
    sys.path.insert(0, folder)
    try:
        mod = __import__(name)
    finally:
        sys.path.pop(0)
    passed = failed = 0
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_"):
            continue
        fn = getattr(mod, attr)
        try:
            fn()
            passed += 1
        except Exception as exc:  # report and go on: one failure must not hide the rest
            failed += 1
            print("FAIL %s/%s.%s: %r" % (folder, name, attr, exc))
            sys.print_exception(exc)
    return passed, failed


def main(folders):
    passed = failed = 0
    for folder in folders:
        for f, name in _modules(folder):
            p, fl = _run_module(f, name)
            print("%s/%s: %d passed, %d failed" % (f, name, p, fl))
            passed += p
            failed += fl
    print("%d passed, %d failed" % (passed, failed))
    if failed or not passed:
        sys.exit(1)


main(sys.argv[1:] or ["tests/protocols", "tests/edge"])
