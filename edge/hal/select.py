"""Pick the HAL for the platform this firmware runs on."""

import sys


def load():
    """Return the HAL module: ESP32 on an esp32 board, unix everywhere else."""
    if sys.platform == "esp32":
        from edge.hal import esp32
        return esp32
    from edge.hal import unix
    return unix
