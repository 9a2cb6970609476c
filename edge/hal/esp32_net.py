"""A board's network and clock at boot: WiFi station or Ethernet, then NTP.

Boot-only: edge/boot.py runs ``up_from_config`` and drops this module before the agent's
modules load. The settings are checked by edge/config_net.py (``wifi``, ``ethernet``,
``ntp_host``, ``net_timeout_s``, ``net_retries``): see README, Deploy to a board.

The clock comes from NTP (``ntptime``), not from the controller: the protocol has no time
message (a device's clock is only judged, ``device_clock_off``), and the clock must be
right before the first event is signed, which may be long before the broker is reachable
(events are stored offline with their ``ts``). A site without NTP on its LAN points
``ntp_host`` at any host that answers NTP (the controller's host running chrony, say).
Without any answer the agent still starts: its events are then flagged by the controller
(``device_time_old``, ``device_clock_off``) rather than lost.

Tested under the unix port with fake ``network``, ``machine`` and ``ntptime`` modules
(tests/edge/test_esp32_net.py): the calls and the retry/timeout logic, not a radio.
"""

import time

# network.WLAN.status() values by name, as the ESP32 port has them (others are the
# radio's disconnect reasons: printed as numbers)
_STATUS = ("STAT_IDLE", "STAT_CONNECTING", "STAT_GOT_IP", "STAT_NO_AP_FOUND",
           "STAT_WRONG_PASSWORD", "STAT_BEACON_TIMEOUT", "STAT_ASSOC_FAIL",
           "STAT_HANDSHAKE_TIMEOUT", "STAT_CONNECT_FAIL")
POLL_MS = 250


def status_name(network, code):
    """``code`` of ``WLAN.status()`` as its name (``STAT_WRONG_PASSWORD``) when known."""
    for name in _STATUS:
        if getattr(network, name, None) == code:
            return name
    return str(code)


def _wait(nic, timeout_ms):
    """True once ``nic`` is connected, False after ``timeout_ms``."""
    t0 = time.ticks_ms()
    while not nic.isconnected():
        if time.ticks_diff(time.ticks_ms(), t0) >= timeout_ms:
            return False
        time.sleep_ms(POLL_MS)
    return True


def wifi(network, cfg, log, timeout_s, retries):
    """Join ``cfg``'s WiFi as a station: each attempt waits ``timeout_s``, then the next
    starts over (disconnect, connect); the interface when connected, else None (left
    active: the ESP32's WLAN goes on reconnecting by itself)."""
    w = network.WLAN(network.STA_IF)
    w.active(True)
    if cfg.get("hostname") and hasattr(network, "hostname"):
        network.hostname(cfg["hostname"])
    for attempt in range(1, retries + 1):
        log("wifi: joining %r, attempt %d of %d" % (cfg["ssid"], attempt, retries))
        w.connect(cfg["ssid"], cfg["password"])
        if _wait(w, timeout_s * 1000):
            log("wifi: connected, address", w.ifconfig()[0])
            return w
        log("wifi: not connected after %d s, status %s" % (timeout_s,
                                                          status_name(network, w.status())))
        w.disconnect()
        time.sleep_ms(min(1000 * attempt, 5000))  # the AP may be rebooting: back off a bit
    return None


# PHY chips the ESP32 port knows (network.PHY_<name>)
PHYS = ("LAN8720", "IP101", "RTL8201", "DP83848", "KSZ8041", "KSZ8081")


def ethernet(network, machine, cfg, log, timeout_s, retries):
    """Bring up the ESP32's internal Ethernet MAC with ``cfg``'s PHY; the interface once
    connected (link and address), else None."""
    kw = {"mdc": machine.Pin(cfg["mdc"]), "mdio": machine.Pin(cfg["mdio"]),
          "phy_type": getattr(network, "PHY_" + cfg["phy"]), "phy_addr": cfg["phy_addr"]}
    if cfg.get("power") is not None:
        kw["power"] = machine.Pin(cfg["power"])
    if cfg.get("ref_clk") is not None:  # the board's 50 MHz clock out of a GPIO (WT32-ETH01: no)
        kw["ref_clk"] = machine.Pin(cfg["ref_clk"])
        kw["ref_clk_mode"] = machine.Pin.OUT
    lan = network.LAN(**kw)
    for attempt in range(1, retries + 1):
        log("ethernet: %s at %d, attempt %d of %d" % (cfg["phy"], cfg["phy_addr"], attempt,
                                                       retries))
        lan.active(True)
        if _wait(lan, timeout_s * 1000):
            log("ethernet: connected, address", lan.ifconfig()[0])
            return lan
        log("ethernet: no link or address after %d s (cable, switch port, DHCP?)" % timeout_s)
        lan.active(False)
    return None


def set_time(ntptime, host, log, retries):
    """Set the RTC (UTC) from NTP ``host``; True when set."""
    ntptime.host = host
    for attempt in range(1, retries + 1):
        try:
            ntptime.settime()
            log("clock: set from NTP", host)
            return True
        except (OSError, OverflowError, IndexError) as exc:  # timeout, bad or short reply
            log("clock: NTP %s attempt %d of %d failed: %r" % (host, attempt, retries, exc))
    log("clock: NOT set (events will carry a wrong ts and be flagged): check ntp_host")
    return False


def up(cfg, log, network=None, machine=None, ntptime=None):
    """The network of the checked config ``cfg`` (Ethernet when it has ``ethernet``, else
    WiFi), then the clock; the interface or None."""
    if not cfg.get("ethernet") and not cfg.get("wifi"):
        log("network: the config has neither wifi nor ethernet: add one (README, Deploy to "
            "a board)")
        return None
    if network is None:
        import network
    timeout_s, retries = cfg["net_timeout_s"], cfg["net_retries"]  # edge/config_net.py
    if cfg.get("ethernet"):
        if machine is None:
            import machine
        nic = ethernet(network, machine, cfg["ethernet"], log, timeout_s, retries)
    else:
        nic = wifi(network, cfg["wifi"], log, timeout_s, retries)
    if nic is None:
        log("network: down after %d attempts; the agent starts offline" % retries)
        return None
    if ntptime is None:
        import ntptime
    set_time(ntptime, cfg["ntp_host"], log, retries)
    return nic


def up_from_config(path, log):
    """``up`` with the config file at ``path``, checked by edge.config and
    edge.config_net (a bad setting: ConfigError naming it)."""
    import edge.config
    import edge.config_net

    return up(edge.config_net.check_network(edge.config.load(path)), log)
