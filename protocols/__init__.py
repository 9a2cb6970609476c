"""Wire contracts shared by the edge firmware and the controller (MicroPython-compatible)."""
