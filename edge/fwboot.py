"""Which firmware version boots (edge/main.py, first thing; freed before the agent loads).

Over-the-air updates (edge/ota.py) leave two persist slots in ``<data_dir>/fw/``:
``current`` (the version to boot; none: this image's own) and ``trial`` (``new``,
``previous``, boots so far, ``trial_s``) while a new version has not confirmed itself.
``choose`` reads them and decides:

* a trial whose version is not ``current``: the switch was cut between its two writes;
  the trial is dropped, ``current`` boots (the old version: consistent).
* a trial at 0 boots: its first boot; counted (1), the new version boots on trial.
* a trial at 1 boot: the new version booted once and never confirmed (it crashed, hung
  into a watchdog reset, or the power went): rolled back. ``rolled_back`` names it (the
  agent reports it in its birth as ``fw_rb``, and refuses an update to it), ``current``
  becomes the previous version, the trial goes; in that order, each write atomic.

The chosen version's directory ``<data_dir>/fw/<v>`` goes first on ``sys.path`` and every
``edge``/``protocols`` module this image loaded is dropped, so that the version's own
``edge.main`` can take over (``choose`` returns True for that). In the version's own main,
``sys.path[0]`` is its directory already: nothing is decided again.
"""

import json
import sys

from edge.persist import read_slot, remove, write_slot


def choose(config_path):
    """(hand over, version): version is None for this image's own firmware."""
    try:
        sys.modules.pop("edge.fwboot", None)  # freed once main has its answer
        with open(config_path) as f:
            fw = json.load(f)["data_dir"] + "/fw/"
    except (OSError, ValueError, KeyError, TypeError):
        return False, None  # edge.config reports a bad config
    if sys.path[0].startswith(fw):  # the chosen version's main: decided already
        return False, sys.path[0][len(fw):]
    cur = read_slot(fw + "current", b"PWfc", True, 64)
    cur = cur.decode() if cur else ""
    tr = read_slot(fw + "trial", b"PWft", True, 200)
    if tr:
        new, prev, boots, trial_s = tr.decode().split("\n")
        if new != cur:
            remove(fw + "trial")
        elif boots == "0":
            write_slot(fw + "trial", b"PWft", ("%s\n%s\n1\n%s" % (new, prev, trial_s)).encode())
        else:
            print("firmware %s did not confirm on trial: rolling back to %s" % (
                new, prev or "the image's"))
            write_slot(fw + "rolled_back", b"PWrb", new.encode())
            if prev:
                write_slot(fw + "current", b"PWfc", prev.encode())
            else:
                remove(fw + "current")
            remove(fw + "trial")
            cur = prev
    try:
        open(fw + cur + "/edge/main.mpy").close()
    except OSError:
        return False, None  # no version installed (or its files are gone): the image's
    sys.path.insert(0, fw + cur)
    for name in list(sys.modules):
        if name.split(".")[0] in ("edge", "protocols"):
            sys.modules.pop(name)
    return True, cur
