"""Fixtures for the dashboard tests: a seeded real store (tools/dashboard_demo.py), the API
serving it over HTTP in this process, and Debian's headless chromium through Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools import dashboard_demo

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def demo(tmp_path: Path) -> dashboard_demo.Demo:
    return dashboard_demo.seed(tmp_path / "pw.db")


@pytest.fixture
def base(demo: dashboard_demo.Demo, tmp_path: Path) -> Iterator[str]:
    with dashboard_demo.serve(tmp_path / "pw.db") as url:
        yield url


# per test, not per session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and every later test in the same xdist worker that calls
# asyncio.run() would fail ("cannot be called from a running event loop")
@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(dashboard_demo.CHROMIUM).exists():
        pytest.skip(f"{dashboard_demo.CHROMIUM} missing: apt-get install -y chromium")
    with dashboard_demo.chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=dashboard_demo.VIEWPORT, locale="en-US")
    p = context.new_page()
    p.errors = []  # console errors and uncaught exceptions, for the tests to assert on
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    yield p
    context.close()
