# Runs under the unix MicroPython with the FAKE network/machine/ntptime of this folder
# first on the path: drives edge/hal/esp32_net.py and edge/hal/esp32.py and prints what
# they did as JSON (tests/tools/test_esp32_hal.py checks it).
import json
import sys
import time

import machine
import network
import ntptime

from edge.hal import esp32, esp32_io, esp32_net

LOG = []


def log(*parts):
    LOG.append(" ".join(str(p) for p in parts))


def net(cfg, connect_on, ntp_fail=0):
    network.PLAN["connect_on"] = connect_on
    ntptime.PLAN["fail"] = ntp_fail
    base = {"net_timeout_s": 1, "net_retries": 2, "ntp_host": "10.20.0.2"}
    base.update(cfg)
    t0 = time.ticks_ms()
    nic = esp32_net.up(base, log)
    return {"up": nic is not None, "ms": time.ticks_diff(time.ticks_ms(), t0),
            "net": network.CALLS, "ntp": ntptime.CALLS, "log": LOG}


def hal():
    port = esp32_io.rs485_open("rs485:2:9600:17:16:4")
    port.write(b"\x01\x03")
    esp32.serial_open("uart:1:9600:25:26")
    esp32_io.i2c_open()
    esp32.feed()
    esp32_io.keep_fed(esp32)
    machine.Timer.last.callback(None)  # the timer fires: the watchdog is fed
    return {"machine": machine.CALLS}


WIFI = {"wifi": {"ssid": "port-ops", "password": "correct horse"}}
ETH = {"ethernet": {"phy": "LAN8720", "phy_addr": 1, "mdc": 23, "mdio": 18, "power": 12}}
SCENARIOS = {
    "wifi_second_attempt": lambda: net(WIFI, 2),
    "wifi_never": lambda: net(WIFI, 0),
    "wifi_ntp_retry": lambda: net(WIFI, 1, ntp_fail=1),
    "ethernet": lambda: net(ETH, 1),
    "hal": hal,
}
print("RESULT " + json.dumps(SCENARIOS[sys.argv[1]]()))
