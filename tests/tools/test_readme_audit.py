"""The README's audit walkthrough runs as printed, on a store like a demo run's.

The walkthrough is the ``sh`` block between ``<!-- audit-walkthrough:start -->`` and
``<!-- audit-walkthrough:end -->`` in README.md. This test builds a store the way a demo
site fills one (``portwatch init``, ``portwatch device add``, then signed weighings through
the ingest's own verify-and-commit path), lays it out where the walkthrough expects it
(``var/demo/portwatch.db`` under a scratch working directory), and runs every command of
the block in one bash session, in order, with the venv's ``bin`` first on ``PATH``. Each
command must exit 0, except the two marked ``# exits 1``: the verify of the tampered bundle,
which must name the edited entry, and the audit of the tampered store copy, which must name
the edited and the deleted weighing by table and key.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from controller import registry
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.storage import open_store
from ctl_helpers import SITE, signed, weighing_body

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
START, END = "<!-- audit-walkthrough:start -->", "<!-- audit-walkthrough:end -->"
EXPECTS_FAILURE = re.compile(r"#\s*exits 1\b")


def walkthrough() -> list[str]:
    """The commands of the README's audit block: comment lines dropped, a command that
    spans lines (an open quote, a trailing backslash) joined into one."""
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, f"README.md has lost its {START} … {END} markers"
    block = text.split(START, 1)[1].split(END, 1)[0]
    body = re.search(r"```(?:sh|bash)\n(.*?)```", block, re.S)
    assert body, "the audit walkthrough is not a ```sh block"
    commands: list[str] = []
    pending = ""
    for line in body.group(1).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        if _complete(pending):
            commands.append(pending)
            pending = ""
    assert not pending, f"unterminated command in the walkthrough: {pending!r}"
    return commands


def _complete(command: str) -> bool:
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


def _cli(cwd: Path, env: dict[str, str], *args: str) -> None:
    r = subprocess.run(["portwatch", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"portwatch {' '.join(args)}: {r.stdout}{r.stderr}"


def build_demo_store(cwd: Path, env: dict[str, str]) -> None:
    """var/demo/portwatch.db with two weighbridges and three signed weighings each."""
    _cli(cwd, env, "init")
    configs = []
    for dev in ("wb-gate1", "wb-gate2"):
        out = f"var/demo/{dev}.json"
        _cli(cwd, env, "device", "add", dev, "--site", SITE, "--out", out)
        configs.append(json.loads((cwd / out).read_text()))
    msgs = [signed(cfg, seq=seq, body=weighing_body(40000 + 20 * seq + 1000 * n))
            for seq in (1, 2, 3) for n, cfg in enumerate(configs)]
    store = open_store(cwd / "var/demo/portwatch.db")
    try:
        keys = registry.secrets_by_device(store)
        result = commit_batch(store.conn, [check_message(m, site=SITE, keys=keys) for m in msgs])
    finally:
        store.close()
    assert result.stored == 6 and not result.rejected, result


@pytest.fixture
def session(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTWATCH_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PORTWATCH_DB"] = "var/demo/portwatch.db"
    (tmp_path / "var" / "demo").mkdir(parents=True)
    build_demo_store(tmp_path, env)
    return tmp_path, env


def run_in_one_shell(commands: list[str], cwd: Path, env: dict[str, str]) -> list[int]:
    """Run the commands in order in one bash (variables carry over); each one's status."""
    status = cwd / ".walkthrough-status"
    script = ["set -o pipefail"]
    for cmd in commands:
        script += [cmd, f'echo $? >> "{status}"']
    r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    codes = [int(c) for c in status.read_text().split()] if status.exists() else []
    assert len(codes) == len(commands), f"the walkthrough stopped early:\n{r.stdout}{r.stderr}"
    (cwd / ".walkthrough-output").write_text(r.stdout + r.stderr)
    if os.environ.get("PW_WALKTHROUGH_OUT"):  # to copy real output into the README
        Path(os.environ["PW_WALKTHROUGH_OUT"]).write_text(r.stdout + r.stderr)
    return codes


def test_readme_audit_walkthrough_marks_exactly_the_tampered_verify_and_audit_as_failing(
        ) -> None:
    failing = [c for c in walkthrough() if EXPECTS_FAILURE.search(c)]
    assert len(failing) == 2, failing
    assert "ledger verify" in failing[0] and "tampered" in failing[0]
    assert "ledger audit" in failing[1] and "tampered" in failing[1]


def test_readme_audit_walkthrough_runs_as_written(session: tuple[Path, dict[str, str]]) -> None:
    cwd, env = session
    commands = walkthrough()
    codes = run_in_one_shell(commands, cwd, env)
    output = (cwd / ".walkthrough-output").read_text()
    for cmd, code in zip(commands, codes, strict=True):
        expected = 1 if EXPECTS_FAILURE.search(cmd) else 0
        assert code == expected, f"exit {code}, expected {expected}: {cmd}\n{output}"
    tampered = json.loads((cwd / "audit" / "tampered.json").read_text())
    original = json.loads((cwd / "audit" / "ledger.json").read_text())
    changed = [a["idx"] for a, b in zip(original["entries"], tampered["entries"], strict=True)
               if a != b]
    assert len(changed) == 1, changed
    assert f"error: entry {changed[0]}: its bytes hash to" in output
    assert "OK: inclusion proof verifies" in output and "OK: consistency proof verifies" in output
    # the honest store audits clean; the tampered copy names both rows by table and key
    assert "OK: every served row is what the ledger's entries make" in output
    proven = re.search(r"ledger entry \d+ is (\S+) seq (\d+)", output)
    assert proven, output
    dev, seq = proven.groups()
    assert re.search(rf"MISMATCH weighings {dev}/{seq}: edited; net_kg stored (\d+), "
                     r"expected (\d+)", output)
    assert len(re.findall(r"MISMATCH weighings \S+: deleted", output)) == 1
    assert "FAILED: 2 rows differ" in output
