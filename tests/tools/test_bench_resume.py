"""`portwatch bench-resume` runs a real site through outages and reports its figures."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tools.bench_resume import ResumeError, ResumeParams
from tools.cli import app


def test_bench_resume_reports_min_median_max_against_its_baseline(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["bench-resume", "--agents", "2", "--outage-s", "3",
                                 "--repeats", "1", "--workdir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout[r.stdout.index("{"):])
    for phase, outage in (("resume_s", 3.0), ("baseline", 2.0)):
        figures = doc[phase]
        assert figures["samples"] == 2 and figures["outage_s"] == outage
        assert 0 <= figures["min"] <= figures["median"] <= figures["max"] < 60
    assert len(doc["samples_s"]["outage"]) == 2
    assert doc["machine"]["cores"] >= 1


def test_bench_resume_refuses_nonsense_parameters() -> None:
    for params in (ResumeParams(agents=0), ResumeParams(repeats=0), ResumeParams(outage_s=0)):
        try:
            params.check()
        except ResumeError:
            continue
        raise AssertionError(f"{params} accepted")
