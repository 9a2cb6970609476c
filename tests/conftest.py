"""pytest configuration shared by tests/: make the repo root and tests/ helpers importable."""

import os
import sys
from pathlib import Path

# CLI output is checked for its content: rich sizes tables to the terminal, which under
# pytest-xdist workers is none (80 columns), and would cut cells short
os.environ["COLUMNS"] = "200"

_tests = Path(__file__).parent
sys.path.insert(0, str(_tests.parent))
sys.path.append(str(_tests))
