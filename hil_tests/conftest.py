"""Hardware-in-the-loop fixtures: a whole site of real processes per test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # hil_tests/delivery.py

from tools.firmware import DEFAULT_HEAP
from tools.rig import Rig

# CLI output is checked for its content: rich sizes tables to the terminal, which under
# pytest-xdist workers is none (80 columns), and would cut cells short
os.environ["COLUMNS"] = "200"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """Mosquitto + controller running; add devices with rig.add_weighbridge().

    MQTT runs over TLS; PW_RIG_TLS=0 runs a test in clear, to measure what TLS costs
    (README, Firmware heap).
    """
    r = Rig(tmp_path / "site", heap=os.environ.get("PW_AGENT_HEAP", DEFAULT_HEAP),
            tls=os.environ.get("PW_RIG_TLS", "1") != "0")
    try:
        r.start()
    except BaseException:
        r.stop()  # a half-started site must not leave a broker behind
        raise
    try:
        yield r
    finally:
        r.stop()
        for agent in r.agents.values():  # shown on failure: the firmware's own account
            print(f"--- {agent.device_id} log ---\n{agent.log_text()[-4000:]}")
        if r.controller_log.exists():
            print(f"--- controller log ---\n{r.controller_log.read_text()[-4000:]}")
