"""A lot's trace report a person can read: one static HTML page (no script, no CDN) with
the lot, its timeline (the EPCIS events) and an inline SVG of where its cargo went:
vessel -> lot -> trips and rail cars -> destinations, with kg, and on through blends."""

from __future__ import annotations

import html
import sqlite3
from typing import Any

from controller import epcis, trace
from controller.storage import trace_reads as reads

_W, _ROW, _COL = 960, 34, 230  # SVG width, row height, column width (px)


def render(conn: sqlite3.Connection, lot_id: str, *, now_ms: int) -> str:
    """The HTML page of ``lot_id``. NotFound when nothing is recorded about it."""
    fwd = trace.forward(conn, lot_id)
    doc = epcis.document(conn, lot_id, now_ms=now_ms)
    row = reads.lot(conn, lot_id) or {}
    e = html.escape
    facts = "".join(f"<tr><th>{e(k)}</th><td>{e(str(row.get(k)))}</td></tr>" for k in (
        "vessel", "declaration_no", "commodity", "hs_code", "origin_country", "declared_kg",
        "status") if row.get(k) is not None) or "<tr><td>no lot record</td></tr>"
    timeline = "".join(
        f"<tr><td>{e(ev['eventTime'])}</td><td>{e(ev['type'])}</td>"
        f"<td>{e(str(ev.get('bizStep', '')))}</td><td>{e(_what(ev))}</td>"
        f"<td>{'correction declared' if 'errorDeclaration' in ev else ''}</td>"
        f"<td><code>{e(str(doc['pw:ledgerRefs'].get(ev['eventID'], [])))}</code></td></tr>"
        for ev in doc["epcisBody"]["eventList"])
    totals = fwd["totals"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lot {e(lot_id)}: trace report</title>
<style>body{{font:14px sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}</style></head><body>
<h1>Lot {e(lot_id)}</h1>
<table>{facts}</table>
<p>{totals['trips']} truck trips, {totals['cars']} rail cars; by destination (kg):
{e(', '.join(f'{k}: {v}' for k, v in totals['truck_kg_by_destination'].items()) or 'none')};
rail kg: {totals['rail_kg']}</p>
<h2>Where its cargo went</h2>
{_svg(fwd['lot'], row.get('vessel'))}
<h2>Timeline</h2>
<table><tr><th>time (UTC)</th><th>event</th><th>step</th><th>what</th><th>note</th>
<th>ledger entries</th></tr>{timeline}</table>
<p>Every row's ledger entries are in the lot's evidence pack with their inclusion proofs
(portwatch lot evidence {e(lot_id)} --out pack.json; portwatch ledger verify pack.json).</p>
</body></html>
"""


def _what(ev: dict[str, Any]) -> str:
    parts = []
    for field in ("quantityList", "childQuantityList", "inputQuantityList",
                  "outputQuantityList"):
        for q in ev.get(field, []):
            kg = f" {q['quantity']:g} kg" if "quantity" in q else ""
            parts.append(f"{q['epcClass'].rsplit(':', 1)[-1]}{kg}")
    if "parentID" in ev:
        parts.append(f"in {ev['parentID'].split(':', 2)[-1]}")
    for d in ev.get("destinationList", []):
        parts.append(f"to {d['destination'].rsplit(':', 1)[-1]}")
    if "persistentDisposition" in ev:
        parts.append(str(ev["persistentDisposition"]))
    return ", ".join(parts)


def _svg(lot: dict[str, Any], vessel: Any) -> str:
    """Columns: vessel, lot, carriers (trips, cars, blends), destinations."""
    boxes: list[str] = []
    carriers = [(f"trip {t['id']}", t.get("net_kg"), str(t.get("destination")))
                for t in lot["trips"]]
    carriers += [(f"car {c.get('id')}", c.get("net_kg"), "rail") for c in lot["cars"]]
    carriers += [(f"blend {b['lot']['id']}", b.get("kg"), f"blend {b['lot']['id']}")
                 for b in lot["blended_into"]]
    dests = sorted({d for _, _, d in carriers})
    rows = max(len(carriers), len(dests), 1)
    height = rows * _ROW + 20
    mid = 10 + (rows - 1) * _ROW / 2

    def box(x: float, y: float, text: str) -> str:
        return (f'<rect x="{x}" y="{y}" width="{_COL - 30}" height="{_ROW - 8}" rx="4" '
                f'fill="#eef" stroke="#446"/><text x="{x + 6}" y="{y + 17}">'
                f"{html.escape(text)}</text>")

    def line(x1: float, y1: float, x2: float, y2: float, label: str = "") -> str:
        mark = (f'<text x="{(x1 + x2) / 2}" y="{(y1 + y2) / 2 - 3}" font-size="11">'
                f"{html.escape(label)}</text>") if label else ""
        return (f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#446"/>' + mark)

    half = (_ROW - 8) / 2
    boxes.append(box(10, mid, f"vessel {vessel or '?'}"))
    boxes.append(box(10 + _COL, mid, f"lot {lot['id']}"))
    boxes.append(line(10 + _COL - 30, mid + half, 10 + _COL, mid + half))
    for i, (name, kg, dest) in enumerate(carriers):
        y = 10 + i * _ROW
        boxes.append(box(10 + 2 * _COL, y, name))
        boxes.append(line(10 + 2 * _COL - 30, mid + half, 10 + 2 * _COL, y + half,
                          f"{kg} kg" if kg is not None else ""))
        dy = 10 + dests.index(dest) * _ROW
        boxes.append(line(10 + 3 * _COL - 30, y + half, 10 + 3 * _COL, dy + half))
    for j, dest in enumerate(dests):
        boxes.append(box(10 + 3 * _COL, 10 + j * _ROW, dest))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
            f'font-family="sans-serif" font-size="12">{"".join(boxes)}</svg>')
