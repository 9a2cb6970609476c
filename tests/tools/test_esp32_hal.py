"""The ESP32 HAL's network bring-up, clock and peripherals under the real MicroPython.

There is no board here: this MOCKS the WiFi radio, the Ethernet PHY, the UARTs, the I2C
bus, the watchdog and NTP with small fake ``network``, ``machine`` and ``ntptime`` modules
(tests/esp32_fakes/, put first on MICROPYPATH by this test). What is checked is what
edge/hal/esp32_net.py and edge/hal/esp32.py ask of them, and the retry and timeout logic
(run against the real clock); not the radio, the wiring or the ESP-IDF drivers.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from tools.firmware import REPO, micropython_binary

FAKES = REPO / "tests" / "esp32_fakes"


def _run(scenario: str) -> dict[str, Any]:
    env = {**os.environ, "MICROPYPATH": f"{FAKES}:{REPO}:.frozen"}
    done = subprocess.run([micropython_binary(), str(FAKES / "run_scenario.py"), scenario],
                          capture_output=True, text=True, env=env, timeout=60)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return result


def test_wifi_retries_after_its_timeout_logs_the_status_then_sets_the_clock() -> None:
    r = _run("wifi_second_attempt")
    assert r["up"] is True
    assert r["net"] == [["WLAN", 0], ["active", True],
                        ["connect", "port-ops", "correct horse"], ["disconnect"],
                        ["connect", "port-ops", "correct horse"]]
    assert "wifi: not connected after 1 s, status STAT_WRONG_PASSWORD" in r["log"]
    assert r["ms"] >= 1000 + 1000  # the first attempt's timeout, then a 1 s back-off
    assert r["ntp"] == ["10.20.0.2"]
    assert r["log"][-1] == "clock: set from NTP 10.20.0.2"


def test_wifi_that_never_joins_gives_up_after_its_retries_and_starts_offline() -> None:
    r = _run("wifi_never")
    assert r["up"] is False
    assert [c[0] for c in r["net"]].count("connect") == 2  # net_retries
    assert r["ms"] >= 2 * 1000  # each attempt waited its net_timeout_s
    assert r["ntp"] == []  # no clock without a network
    assert r["log"][-1] == "network: down after 2 attempts; the agent starts offline"


def test_ntp_is_retried_when_a_reply_is_lost() -> None:
    r = _run("wifi_ntp_retry")
    assert r["up"] is True and r["ntp"] == ["10.20.0.2", "10.20.0.2"]
    assert any("attempt 1 of 2 failed" in line for line in r["log"])
    assert r["log"][-1] == "clock: set from NTP 10.20.0.2"


def test_ethernet_is_set_up_with_the_configured_phy_and_pins() -> None:
    r = _run("ethernet")
    assert r["up"] is True
    assert r["net"][0] == ["LAN", [["mdc", "Pin(23)"], ["mdio", "Pin(18)"], ["phy_addr", "1"],
                                   ["phy_type", "0"], ["power", "Pin(12)"]]]
    assert r["net"][1] == ["active", True]
    assert "ethernet: connected, address 10.20.0.31" in r["log"]


def test_hal_opens_rs485_gnss_uart_i2c_and_keeps_the_watchdog_fed_at_the_repl() -> None:
    calls = _run("hal")["machine"]
    # RS-485: UART2 8N1, the transceiver's DE pin high only while the frame goes out
    assert calls[0][:2] == ["UART", 2] and ["baudrate", "9600"] in calls[0][2]
    assert ["parity", "None"] in calls[0][2] and ["stop", "1"] in calls[0][2]
    assert calls[1:6] == [["Pin", 4, 3, 0], ["Pin.value", 4, 1], ["UART.write", "\x01\x03"],
                          ["UART.flush"], ["Pin.value", 4, 0]]
    assert calls[6][:2] == ["UART", 1] and ["tx", "25"] in calls[6][2]  # the GNSS receiver
    assert calls[7] == ["I2C", 0, [["freq", "100000"], ["scl", "Pin(22)"], ["sda", "Pin(21)"]]]
    assert calls[8:] == [["WDT", 30000], ["WDT.feed"], ["Timer", 0], ["Timer.init", 10000, 1],
                         ["WDT.feed"]]
