"""A board's network settings and fw_pub in the device config (edge/config_net.py, through
edge.config.check). Runs under pytest and under MicroPython (tests/mpy_runner.py)."""

from edge.config import ConfigError, check
from shared_support import raises

PUB = "04" + "ab" * 64


def _cfg(**extra):
    cfg = {"device_id": "wb-1", "site": "s", "kind": "weighbridge", "key_id": "k1",
           "secret_hex": "11" * 32, "data_dir": "data", "mqtt": {"host": "h", "port": 1},
           "driver": {}}
    cfg.update(extra)
    return cfg


def test_config_wifi_is_checked_and_network_defaults_filled():
    cfg = check(_cfg(wifi={"ssid": "port-ops", "password": "correct horse"}, fw_pub=PUB))
    assert (cfg["net_timeout_s"], cfg["net_retries"], cfg["ntp_host"]) == (20, 3,
                                                                          "pool.ntp.org")
    assert check(_cfg(wifi={"ssid": "open-net", "password": ""}))["wifi"]["password"] == ""
    assert "ssid" in str(raises(ConfigError, check, _cfg(wifi={"password": "12345678"})))
    assert "1 to 32 bytes" in str(raises(ConfigError, check,
                                         _cfg(wifi={"ssid": "x" * 33, "password": ""})))
    assert "8 to 63" in str(raises(ConfigError, check,
                                   _cfg(wifi={"ssid": "a", "password": "short"})))
    assert "'wifi' must be an object" in str(raises(ConfigError, check, _cfg(wifi="port-ops")))
    assert "net_retries" in str(raises(ConfigError, check,
                                       _cfg(wifi={"ssid": "a", "password": ""}, net_retries=0)))
    assert "ntp_host" in str(raises(ConfigError, check,
                                    _cfg(wifi={"ssid": "a", "password": ""}, ntp_host="")))


def test_config_ethernet_is_checked():
    eth = {"phy": "LAN8720", "mdc": 23, "mdio": 18, "power": 12}
    assert check(_cfg(ethernet=eth))["ethernet"]["phy_addr"] == 0
    assert "LAN8720" in str(raises(ConfigError, check, _cfg(ethernet={"phy": "W5500"})))
    assert "'mdio' must be a GPIO" in str(raises(ConfigError, check, _cfg(
        ethernet={"phy": "IP101", "mdc": 23})))
    assert "phy_addr" in str(raises(ConfigError, check, _cfg(
        ethernet={"phy": "IP101", "mdc": 23, "mdio": 18, "phy_addr": 32})))


def test_config_fw_pub_must_be_a_public_key():
    assert check(_cfg(fw_pub=PUB))["fw_pub"] == PUB
    assert "130 hex digits" in str(raises(ConfigError, check, _cfg(fw_pub=PUB[:-2])))
    assert "hexadecimal" in str(raises(ConfigError, check, _cfg(fw_pub="04" + "zz" * 64)))


def test_config_without_network_settings_gets_no_network_defaults():
    # the unix agents' configs: edge/config_net.py is not loaded, nothing is added
    assert "net_retries" not in check(_cfg())
