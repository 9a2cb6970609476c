# FAKE `network` module for tests (MicroPython): a WiFi radio and an Ethernet PHY that
# connect when the test says so. tests/tools/test_esp32_hal.py puts this folder first on
# MICROPYPATH; nothing here runs on a board.
STA_IF = 0
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
PHY_LAN8720 = 0
PHY_IP101 = 1

CALLS = []
# connect on this connect() / active(True) call (1st, 2nd...; 0: never), after 2 polls
PLAN = {"connect_on": 1, "status": STAT_WRONG_PASSWORD}


class _Nic:
    def __init__(self):
        self.attempt = 0
        self.polls = 0

    def isconnected(self):
        self.polls += 1
        return self.attempt == PLAN["connect_on"] and self.polls > 2

    def ifconfig(self):
        return ("10.20.0.31", "255.255.255.0", "10.20.0.1", "10.20.0.1")


class WLAN(_Nic):
    def __init__(self, iface):
        _Nic.__init__(self)
        CALLS.append(["WLAN", iface])

    def active(self, on=None):
        CALLS.append(["active", on])

    def connect(self, ssid, password):
        CALLS.append(["connect", ssid, password])
        self.attempt += 1
        self.polls = 0

    def disconnect(self):
        CALLS.append(["disconnect"])

    def status(self):
        return STAT_GOT_IP if self.isconnected() else PLAN["status"]


class LAN(_Nic):
    def __init__(self, **kw):
        _Nic.__init__(self)
        CALLS.append(["LAN", sorted((k, repr(v)) for k, v in kw.items())])

    def active(self, on=None):
        CALLS.append(["active", on])
        if on:
            self.attempt += 1
            self.polls = 0
