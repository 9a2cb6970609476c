"""Every test the README's Guarantees section names exists.

The section's tables back each promise with ``file::test`` (``…::test`` repeats the
previous file, a bare ``file.py`` names a whole file). A renamed or deleted test would leave
a promise that nothing checks: this fails instead.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = re.compile(r"`((?:[\w/]+\.py)|…)(?:::(\w+))?`")


def _guarantees() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Guarantees")
    return text[start:text.index("\n## ", start + 1)]


def _resolve(name: str) -> Path | None:
    for root in (REPO, REPO / "hil_tests", REPO / "tests"):
        if (root / name).is_file():
            return root / name
    hits = [p for p in REPO.glob(f"*/**/{name}") if ".venv" not in p.parts]
    return hits[0] if len(hits) == 1 else None


def test_every_test_the_guarantees_name_exists() -> None:
    missing, checked, current = [], 0, None
    for line in _guarantees().splitlines():
        if not line.startswith("|"):
            continue
        current = None  # "…" refers back within one row only
        for file_ref, test in REF.findall(line):
            if file_ref != "…":
                if not file_ref.startswith(("test_", "tests/", "hil_tests/")) and \
                        "/test_" not in file_ref:
                    continue  # a module named in prose, not a test
                current = _resolve(file_ref)
                if current is None:
                    missing.append(file_ref)
                    continue
            if current is None:
                continue
            checked += 1
            if test and not re.search(rf"^(async )?def {test}\(", current.read_text(
                    encoding="utf-8"), re.M):
                missing.append(f"{current.relative_to(REPO)}::{test}")
    assert checked >= 20, f"only {checked} test references found: did the table change shape?"
    assert missing == [], f"README Guarantees names tests that do not exist: {missing}"
