"""A board's network settings and the firmware key in the device config, checked.

Run at a board's boot by edge/hal/esp32_net.py (through edge/boot.py, before edge.main
loads the agent: this code is gone from the heap by then) and on the host by
`portwatch firmware deploy`; edge.config.check leaves these settings alone.
"""

from edge.config import ConfigError, _need, unhex

# a board's network (edge/hal/esp32_net.py): seconds per attempt, attempts, the NTP server
NET_DEFAULTS = {"net_timeout_s": 20, "net_retries": 3, "ntp_host": "pool.ntp.org"}
NET_LIMITS = {"net_timeout_s": (1, 300), "net_retries": (1, 100)}
PHYS = ("LAN8720", "IP101", "RTL8201", "DP83848", "KSZ8041", "KSZ8081")  # network.PHY_*


def _pin(d, key, where, optional=False):
    v = d.get(key)
    if v is None and optional:
        return
    if type(v) is not int or not 0 <= v <= 48:
        raise ConfigError("%s: %r must be a GPIO number (0-48)" % (where, key))


def check_network(cfg):
    """Check and fill a board's network settings: ``wifi`` {ssid, password}, ``ethernet``
    {phy, phy_addr, mdc, mdio, power, ref_clk} (used instead of WiFi when present),
    ``net_timeout_s``, ``net_retries``, ``ntp_host``; and ``fw_pub``, the firmware key's
    public key (130 hex digits) that bundles must be signed with. Returns ``cfg``."""
    wifi = cfg.get("wifi")
    if wifi is not None:
        if not isinstance(wifi, dict):
            raise ConfigError("'wifi' must be an object: {\"ssid\": ..., \"password\": ...}")
        ssid = _need(wifi, "ssid", str, "wifi")
        pw = _need(wifi, "password", str, "wifi")
        if not 1 <= len(ssid.encode()) <= 32:
            raise ConfigError("wifi: 'ssid' must have 1 to 32 bytes")
        if pw and not 8 <= len(pw) <= 63:
            raise ConfigError("wifi: 'password' must have 8 to 63 characters (WPA2), "
                              "or be \"\" for an open network")
    eth = cfg.get("ethernet")
    if eth is not None:
        if not isinstance(eth, dict):
            raise ConfigError("'ethernet' must be an object: {\"phy\": \"LAN8720\", ...}")
        if eth.get("phy") not in PHYS:
            raise ConfigError("ethernet: 'phy' must be one of " + ", ".join(PHYS))
        eth.setdefault("phy_addr", 0)
        if type(eth["phy_addr"]) is not int or not 0 <= eth["phy_addr"] <= 31:
            raise ConfigError("ethernet: 'phy_addr' must be 0-31 (the PHY's strap address)")
        _pin(eth, "mdc", "ethernet")
        _pin(eth, "mdio", "ethernet")
        _pin(eth, "power", "ethernet", True)
        _pin(eth, "ref_clk", "ethernet", True)
    for key in NET_DEFAULTS:
        v = cfg.setdefault(key, NET_DEFAULTS[key])
        if key in NET_LIMITS:
            lo, hi = NET_LIMITS[key]
            if type(v) is not int or not lo <= v <= hi:
                raise ConfigError("%r must be a whole number from %d to %d" % (key, lo, hi))
        elif not isinstance(v, str) or not v:
            raise ConfigError("%r must be a host name or address" % key)
    pub = cfg.get("fw_pub")
    if pub is not None:
        if not isinstance(pub, str) or len(pub) != 130 or not pub.startswith("04"):
            raise ConfigError("'fw_pub' must be the firmware key's public key: 130 hex digits "
                              "starting 04 (`portwatch firmware keygen` prints it)")
        unhex(pub, "fw_pub")
    return cfg
