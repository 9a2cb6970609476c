"""Lab analyzer driver settings checked at provisioning (controller/drivers.py)."""

from __future__ import annotations

import pytest

from controller.drivers import validate_driver


def test_lab_driver_settings_valid_accepted() -> None:
    d = validate_driver("lab", {"type": "lab", "source": "tcp:127.0.0.1:7300"})
    assert d == {"type": "lab", "source": "tcp:127.0.0.1:7300"}


@pytest.mark.parametrize("driver, needle", [
    ({"type": "lab"}, "needs 'source'"),
    ({"type": "lab", "source": "uart:1:9600:4:5"}, "needs 'source'"),
    ({"type": "lab", "source": "tcp:127.0.0.1:70000"}, "port must be"),
    ({"type": "lab", "source": "tcp:h:1", "poll_ms": 50}, "unknown lab driver setting"),
    ({"type": "rail", "source": "tcp:h:1"}, "not one a lab device can run"),
])
def test_lab_driver_settings_bad_refused(driver: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        validate_driver("lab", driver)
