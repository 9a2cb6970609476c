"""A board's network settings and fw_pub in the device config (edge/config_net.py, after
edge.config.check as edge/hal/esp32_net.py runs them). Runs under pytest and under
MicroPython (tests/mpy_runner.py)."""

from edge.config import ConfigError
from edge.config import check as check_agent
from edge.config_net import check_network
from shared_support import raises


def check(cfg):
    return check_network(check_agent(cfg))

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


def test_config_network_settings_are_left_alone_by_the_agents_check():
    # edge.main's check: the network code is not loaded beside the agent (96 KiB)
    cfg = check_agent(_cfg(wifi={"ssid": "a", "password": "short"}, fw_pub="04"))
    assert "net_retries" not in cfg
