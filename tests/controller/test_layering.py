"""The controller's shape, checked: SQL only in controller/storage, imports only downward.

Reads the source with ``ast``; nothing runs. A failure names the file and line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SQL = re.compile(r"^\s*(SELECT\s.*\bFROM\b|SELECT\s+(count|max|min|1)\b|"
                 r"INSERT\s+(OR\s+[A-Z]+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|"
                 r"CREATE\s+(UNIQUE\s+)?(TABLE|INDEX)\b|DROP\s+(TABLE|INDEX)\b|ALTER\s+TABLE\b|"
                 r"BEGIN\b|COMMIT\b|ROLLBACK\b|PRAGMA\s)", re.S)
# the benchmark's raw baseline is a deliberately bare SQLite writer: the machine's ceiling,
# measured without any portwatch layer
SQL_ALLOWED = {"tools/bench_pipelines.py"}
# layer -> the portwatch packages it must not import (higher layers or siblings it skips)
FORBIDDEN = {
    "controller/storage": ("controller.ingest", "controller.api", "controller.supervision",
                           "controller.projections", "controller.registry", "controller.auth",
                           "tools"),
    "controller/ledger": ("controller.ingest", "controller.api", "controller.supervision",
                          "tools"),
    "controller/supervision": ("controller.ingest", "controller.api", "tools"),
    "controller/projections": ("controller.storage", "controller.ingest", "controller.api",
                               "tools"),
    "controller/api": ("controller.ingest.service", "aiomqtt", "paho", "tools"),
    "controller": ("tools", "edge"),
    "protocols": ("controller", "tools", "edge"),
}


def _sources(*roots: str) -> Iterator[Path]:
    for root in roots:
        yield from sorted((REPO / root).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_sql_is_written_only_in_the_storage_package() -> None:
    offenders = []
    for path in _sources("controller", "tools"):
        rel = _rel(path)
        if rel.startswith("controller/storage/") or rel in SQL_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    SQL.match(node.value):
                offenders.append(f"{rel}:{node.lineno}: {node.value.strip()[:50]!r}")
    assert not offenders, "SQL outside controller/storage:\n" + "\n".join(offenders)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{a.name}") for a in node.names)


def test_every_layer_imports_downward() -> None:
    offenders = []
    for layer, banned in FORBIDDEN.items():
        for path in _sources(layer):
            for line, name in _imports(path):
                hit = next((b for b in banned if name == b or name.startswith(b + ".")), None)
                if hit:
                    offenders.append(f"{_rel(path)}:{line} imports {name} (a {layer} module "
                                     f"may not use {hit})")
    assert not offenders, "\n".join(offenders)


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The pattern and the walker do see what they look for."""
    sample = tmp_path / "x.py"
    sample.write_text('import aiomqtt\nq = """\n  SELECT * FROM devices"""\n')
    assert [n for _, n in _imports(sample)] == ["aiomqtt"]
    consts = [n.value for n in ast.walk(ast.parse(sample.read_text()))
              if isinstance(n, ast.Constant)]
    assert any(SQL.match(c) for c in consts)
