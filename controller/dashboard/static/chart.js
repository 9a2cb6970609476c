// A line chart as inline SVG: time on x, one series, min/max labels. No library.
import { svg, fmtTime } from "./dom.js";

export function lineChart(points, { title, unit = "", width = 560, height = 150, testid }) {
  const pad = { l: 64, r: 12, t: 22, b: 24 };
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
    "aria-label": title, "data-testid": testid,
  });
  root.append(svg("text", { x: pad.l, y: 14, class: "chart-title" }, title));
  const pts = points.filter((p) => p[1] !== null && p[1] !== undefined && isFinite(p[1]));
  if (pts.length === 0) {
    root.append(svg("text", { x: width / 2, y: height / 2, class: "chart-empty",
      "text-anchor": "middle" }, "—"));
    return root;
  }
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x1 === x0) { x1 = x0 + 1; }
  if (y1 === y0) { y1 = y0 + 1; y0 = y0 - 1; }
  const w = width - pad.l - pad.r, h = height - pad.t - pad.b;
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * w;
  const Y = (y) => pad.t + h - ((y - y0) / (y1 - y0)) * h;
  root.append(svg("rect", { x: pad.l, y: pad.t, width: w, height: h, class: "chart-frame" }));
  for (const v of [y0, y1]) {
    root.append(svg("text", { x: pad.l - 6, y: Y(v) + 4, "text-anchor": "end",
      class: "chart-label" }, `${Math.round(v).toLocaleString("en-US")}${unit}`));
  }
  root.append(svg("text", { x: pad.l, y: height - 6, class: "chart-label" }, fmtTime(x0)));
  root.append(svg("text", { x: width - pad.r, y: height - 6, "text-anchor": "end",
    class: "chart-label" }, fmtTime(x1)));
  const d = pts.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`)
    .join(" ");
  root.append(svg("path", { d, class: "chart-line" }));
  const last = pts[pts.length - 1];
  root.append(svg("circle", { cx: X(last[0]), cy: Y(last[1]), r: 3, class: "chart-dot" }));
  return root;
}
