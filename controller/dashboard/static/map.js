// The site drawn as SVG from GET /api/v1/site: zones as polygons, corridors as bands of
// their width with a centre line, devices at their zones, trucks at their latest fix.
// Coordinates are micro-degrees; the drawing is in metres east and south of the extent's
// centre (an equirectangular projection: exact enough over a port and its hinterland).
import { svg } from "./dom.js";
import { t } from "./i18n.js";

const M_PER_DEG_LAT = 110_574;

export function bbox(points) {
  let s = Infinity, n = -Infinity, w = Infinity, e = -Infinity;
  for (const [la, lo] of points) {
    s = Math.min(s, la); n = Math.max(n, la); w = Math.min(w, lo); e = Math.max(e, lo);
  }
  return { s, n, w, e };
}

export function extentOf(site, which) {
  const zones = which === "port"
    ? site.zones.filter((z) => z.kind === "port_area") : site.zones;
  const pts = zones.flatMap((z) => z.polygon);
  if (which !== "port") for (const c of site.corridors) pts.push(...c.points);
  return pts.length ? bbox(pts) : { s: 0, n: 1, w: 0, e: 1 };
}

export function projection(box) {
  const lat0 = (box.s + box.n) / 2, lon0 = (box.w + box.e) / 2;
  const mLon = M_PER_DEG_LAT * Math.cos((lat0 / 1e6) * Math.PI / 180);
  const P = ([la, lo]) => [((lo - lon0) / 1e6) * mLon, (-(la - lat0) / 1e6) * M_PER_DEG_LAT];
  const [x0, y0] = P([box.n, box.w]), [x1, y1] = P([box.s, box.e]);
  const margin = Math.max(x1 - x0, y1 - y0) * 0.06 + 50;
  return { P, view: [x0 - margin, y0 - margin, x1 - x0 + 2 * margin, y1 - y0 + 2 * margin] };
}

const path = (P, pts, close) =>
  pts.map((p, i) => `${i ? "L" : "M"}${P(p)[0].toFixed(1)},${P(p)[1].toFixed(1)}`).join(" ") +
  (close ? " Z" : "");

function centroid(pts) {
  const b = bbox(pts);
  return [(b.s + b.n) / 2, (b.w + b.e) / 2];
}

// the map of ``site`` fitted to ``box``; returns {root, P, unit} to draw on
export function siteMap(site, box, { testid = "site-map" } = {}) {
  const { P, view } = projection(box);
  // metres per screen pixel, roughly: the map is drawn about 1000 x 600 px at 1366x768
  const unit = Math.max(view[2] / 1000, view[3] / 600);
  const root = svg("svg", {
    viewBox: view.map((v) => v.toFixed(1)).join(" "), class: "map", "data-testid": testid,
    role: "img", "aria-label": site.name, preserveAspectRatio: "xMidYMid meet",
  });
  const zones = svg("g", { class: "zones" });
  const labels = svg("g", { class: "labels" });
  for (const z of site.zones) {
    zones.append(svg("path", { d: path(P, z.polygon, true), class: `zone zone-${z.kind}`,
      "data-zone": z.id }, svg("title", {}, `${z.name} (${t("kind." + z.kind)})`)));
    const b = bbox(z.polygon), [a, c] = [P([b.n, b.w]), P([b.s, b.e])];
    const size = Math.max(c[0] - a[0], c[1] - a[1]);
    if (size > unit * 60 || z.kind === "destination") {
      const [x, y] = P(centroid(z.polygon));
      labels.append(svg("text", { x, y, class: "zone-label", "text-anchor": "middle",
        "font-size": (unit * 13).toFixed(1), "stroke-width": (unit * 3).toFixed(1) },
      z.name || z.id));
    }
  }
  const corridors = svg("g", { class: "corridors" });
  for (const c of site.corridors) {
    const width = Math.max(...c.widths_m, unit * 3);
    corridors.append(svg("path", { d: path(P, c.points, false), class: "corridor-band",
      "stroke-width": width.toFixed(1) }));
    corridors.append(svg("path", { d: path(P, c.points, false), class: "corridor-line",
      "data-corridor": c.id }, svg("title", {}, `${c.name} (${c.widths_m.join("/")} m)`)));
  }
  const devices = svg("g", { class: "devices" });
  const zoneById = Object.fromEntries(site.zones.map((z) => [z.id, z]));
  for (const d of site.devices) {
    const z = zoneById[d.zone];
    if (!z) continue;
    const [x, y] = P(centroid(z.polygon));
    devices.append(svg("rect", { x: x - unit * 4, y: y - unit * 4, width: unit * 8,
      height: unit * 8, class: `device-mark device-${d.kind}`, "data-device": d.id },
    svg("title", {}, `${d.id} (${t("kind." + d.kind)})`)));
  }
  root.append(zones, corridors, devices, labels);
  return { root, P, unit };
}

// a truck: a dot, a ring and a warning sign when it is off its corridor, its plate
export function truck(m, pos, deviating, href) {
  const [x, y] = m.P([pos.lat_e6, pos.lon_e6]);
  const r = m.unit * 7;
  const g = svg("a", { href, class: deviating ? "truck deviating" : "truck",
    "data-testid": "truck", "data-trip": pos.trip_id, "data-lat": pos.lat_e6,
    "data-lon": pos.lon_e6 });
  if (deviating) {
    g.append(svg("circle", { cx: x, cy: y, r: r * 2.2, class: "truck-ring" }));
  }
  g.append(svg("circle", { cx: x, cy: y, r, class: "truck-dot" }));
  g.append(svg("text", { x: x + r * 1.6, y: y + r * 0.5, class: "truck-label",
    "font-size": (m.unit * 12).toFixed(1), "stroke-width": (m.unit * 3).toFixed(1) },
  `${deviating ? "⚠ " : ""}${pos.plate || pos.tracker_id}`));
  g.append(svg("title", {}, `${pos.plate || ""} ${pos.trip_id}` +
    (deviating ? ` — ${t("map.deviation")}` : "")));
  return g;
}

export function trackLine(m, fixes) {
  return svg("path", { d: path(m.P, fixes.map((f) => [f.lat_e6, f.lon_e6]), false),
    class: "track", "data-testid": "track" });
}
