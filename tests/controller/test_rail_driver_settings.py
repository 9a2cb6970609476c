"""Rail reader driver settings checked at provisioning (controller/drivers.py)."""

from __future__ import annotations

import pytest

from controller.drivers import validate_driver


def test_rail_driver_settings_valid_accepted() -> None:
    d = validate_driver("rail_reader", {"type": "rail", "source": "tcp:127.0.0.1:7200"})
    assert d == {"type": "rail", "source": "tcp:127.0.0.1:7200"}


@pytest.mark.parametrize("driver, needle", [
    ({"type": "rail"}, "needs 'source'"),
    ({"type": "rail", "source": "uart:1:9600:4:5"}, "needs 'source'"),
    ({"type": "rail", "source": "tcp:127.0.0.1:0"}, "port must be"),
    ({"type": "rail", "source": "tcp:h:1", "baud": 9600}, "unknown rail driver setting"),
    ({"type": "tracker", "source": "tcp:h:1"}, "not one a rail_reader device can run"),
])
def test_rail_driver_settings_bad_refused(driver: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        validate_driver("rail_reader", driver)
