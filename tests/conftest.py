"""pytest configuration shared by tests/: make the repo root and tests/ helpers importable."""

import sys
from pathlib import Path

_tests = Path(__file__).parent
sys.path.insert(0, str(_tests.parent))
sys.path.append(str(_tests))
