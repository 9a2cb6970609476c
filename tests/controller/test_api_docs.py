"""The API is documented where users look: every route in the README's table with its
query parameters, and Swagger UI at /docs from local assets only."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from controller.api.app import create_app
from ctl_helpers import SITE

README = Path(__file__).resolve().parents[2] / "README.md"
APP = create_app(db_path=Path("/nonexistent/pw.db"), site=SITE)
UNDOCUMENTED = {"/docs", "/openapi.json", "/redoc"}


def _operations() -> dict[tuple[str, str], list[str]]:
    """(METHOD, path) -> its query parameters, from the app's own OpenAPI document."""
    return {(method.upper(), path): [p["name"] for p in op.get("parameters", [])
                                     if p["in"] == "query"]
            for path, ops in APP.openapi()["paths"].items() if path not in UNDOCUMENTED
            for method, op in ops.items()}


def _table_rows() -> dict[tuple[str, str], str]:
    """(method, path) -> the README table row that documents it."""
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"^\| `(GET|POST|PUT|PATCH|DELETE) ([^`?]+)(\?[^`]*)?` \|", line)
        if m:
            rows[(m.group(1), m.group(2))] = line
    return rows


def test_readme_lists_every_route_with_its_query_parameters() -> None:
    rows = _table_rows()
    served = _operations()
    assert len(served) >= 20
    problems = []
    for (method, path), params in served.items():
        row = rows.get((method, path))
        if row is None:
            problems.append(f"{method} {path} is not in the README's API table")
            continue
        problems += [f"{method} {path}: query parameter {name} is not in its README row"
                     for name in params if f"{name}=" not in row.split("|")[1]]
    problems += [f"the README documents {m} {p}, which the API does not serve"
                 for m, p in rows if (m, p) not in served]
    assert not problems, "\n".join(problems)


def test_docs_page_and_its_assets_are_served_locally() -> None:
    client = TestClient(APP)
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
    found = [u for pair in urls for u in pair if u]
    assert found and not [u for u in found if re.match(r"(https?:)?//", u)], found
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 10_000, asset
