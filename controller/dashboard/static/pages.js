// The pages. Each is render(main, params) -> {refresh(topic)} (what to redraw on an event).
import { api, can, session } from "./api.js";
import { el, fmtAge, fmtDuration, fmtKg, fmtTime } from "./dom.js";
import { lineChart } from "./chart.js";
import { bbox, extentOf, siteMap, trackLine, truck } from "./map.js";
import { t } from "./i18n.js";

const INSTRUMENTS = new Set(["weighbridge", "rail_reader", "lab"]);
const ERROR_KEYS = ["outbox_crc_errors", "emit_errors", "mem_errors", "bad_downlink",
  "bad_commands", "outbox_full", "acks_beyond", "refused"];
const DAY = 86_400_000;

function errorBox(e) {
  return el("p", { class: "error", role: "alert", "data-testid": "error" }, `${t("error")}: ${e.message}`);
}

// a problem flag: icon + text + colour class (never colour alone)
function flag(level, text) {
  return el("span", { class: `flag flag-${level}` }, level === "crit" ? "✖ " : "⚠ ", text);
}

function table(headers, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, headers.map((h) => (h instanceof Node ? h : el("th", { scope: "col" }, h))))),
    el("tbody", {}, rows));
}

function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [el("dt", {}, k),
    el("dd", {}, v === null || v === undefined || v === "" ? "—" : v)]));
}

function value(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// a table of whatever rows an endpoint answers (its keys as columns)
function autoTable(rows, columns, testid) {
  if (!rows || rows.length === 0) return el("p", { class: "muted" }, t("none"));
  const cols = columns || Object.keys(rows[0]);
  return table(cols, rows.map((r) => el("tr", {}, cols.map((c) =>
    el("td", {}, /_ms$/.test(c) && typeof r[c] === "number" ? fmtTime(r[c]) : value(r[c]))))),
  { "data-testid": testid });
}

// -- fleet ---------------------------------------------------------------------------------

export function deviceProblems(d, calDue, now) {
  const out = [];
  const h = d.health || {};
  if (d.status === "offline") out.push(["crit", t("st.offline")]);
  if (d.status === "stale") out.push(["warn", t("st.stale")]);
  if (d.status === "never") out.push(["warn", t("st.never")]);
  if ((h.backlog || 0) > 50) out.push(["warn", `${t("col.backlog")} ${h.backlog}`]);
  if (h.mem_free !== undefined && h.mem_free < 16_000) out.push(["warn", `${t("col.heap")} ${h.mem_free}`]);
  if (d.clock_suspect) out.push(["warn", t("p.clock")]);
  if (errorCount(h) > 0) out.push(["warn", `${t("col.errors")} ${errorCount(h)}`]);
  if ((d.missing || []).length) out.push(["warn", t("p.missing")]);
  if (calDue !== undefined && d.status !== "decommissioned") {
    if (calDue === null) out.push(["warn", t("p.nocal")]);
    else if (calDue <= now) out.push(["crit", t("p.calexpired")]);
    else if (calDue - now < 30 * DAY) out.push(["warn", t("p.caldue")]);
  }
  return out;
}

export function errorCount(h) {
  let n = 0;
  for (const [k, v] of Object.entries(h || {})) {
    if (typeof v === "number" && (ERROR_KEYS.includes(k) || /_errors$/.test(k))) n += v;
  }
  return n;
}

function linkText(h) {
  if (!h) return "—";
  const lost = h.links_lost || 0, fail = h.connect_failures || 0, resend = h.resends || 0;
  return `${t("link.lost")} ${lost} · ${t("link.fail")} ${fail} · ${t("link.resend")} ${resend}`;
}

function statusCell(status) {
  const icon = { online: "●", offline: "✖", stale: "⚠", never: "○", decommissioned: "—" }[status] || "?";
  return el("span", { class: `status status-${status}` }, icon, " ", t("st." + status));
}

async function loadFleet() {
  const [devices, cals] = await Promise.all([api("/devices"), api("/calibrations")]);
  const due = {};
  for (const c of cals) due[c.device_id] = Math.max(due[c.device_id] || 0, c.expires_ms);
  return devices.map((d) => {
    const instrument = INSTRUMENTS.has(d.kind);
    const calDue = instrument ? (due[d.device_id] ?? null) : undefined;
    return { d, calDue, problems: deviceProblems(d, calDue, Date.now()) };
  });
}

const FLEET_COLS = [
  ["device", (r) => r.d.device_id], ["kind", (r) => r.d.kind], ["state", (r) => r.d.status],
  ["problems", (r) => -r.problems.length], ["seen", (r) => -(r.d.last_seen_ms || 0)],
  ["fw", (r) => r.d.fw_version || ""], ["uptime", (r) => r.d.health?.uptime_s ?? -1],
  ["heap", (r) => r.d.health?.mem_free ?? -1], ["backlog", (r) => r.d.health?.backlog ?? -1],
  ["link", (r) => r.d.health?.links_lost ?? -1], ["clock", (r) => Math.abs(r.d.clock_offset_ms ?? 0)],
  ["errors", (r) => errorCount(r.d.health)], ["cal", (r) => r.calDue ?? Infinity],
];

export function fleetPage(main) {
  const state = { filter: "", status: "all", sort: "problems", dir: 1, rows: [] };
  const body = el("div", {});
  const input = el("input", { type: "search", placeholder: t("fleet.filter"), "aria-label": t("fleet.filter"),
    "data-testid": "fleet-filter", oninput: (e) => { state.filter = e.target.value.toLowerCase(); draw(); } });
  const select = el("select", { "aria-label": t("col.state"), "data-testid": "fleet-status",
    onchange: (e) => { state.status = e.target.value; draw(); } },
  ["all", "problems", "online", "offline", "stale", "never", "decommissioned"].map((s) =>
    el("option", { value: s }, s === "all" ? t("all") : s === "problems" ? t("fleet.problems") : t("st." + s))));
  const summary = el("p", { class: "summary", "data-testid": "fleet-summary" });
  main.append(el("h1", {}, t("nav.fleet")), el("div", { class: "controls" }, input, select), summary, body);

  function draw() {
    const sortFn = FLEET_COLS.find((c) => c[0] === state.sort)[1];
    const rows = state.rows.filter((r) =>
      (!state.filter || `${r.d.device_id} ${r.d.kind} ${r.d.description}`.toLowerCase().includes(state.filter)) &&
      (state.status === "all" || (state.status === "problems" ? r.problems.length > 0 : r.d.status === state.status)))
      .sort((a, b) => {
        const x = sortFn(a), y = sortFn(b);
        return (x < y ? -1 : x > y ? 1 : 0) * state.dir || a.d.device_id.localeCompare(b.d.device_id);
      });
    const nProblems = state.rows.filter((r) => r.problems.length).length;
    summary.replaceChildren(`${state.rows.length} ${t("fleet.devices")} · `,
      nProblems ? flag("warn", `${nProblems} ${t("fleet.withproblems")}`) : `✔ ${t("fleet.allwell")}`);
    const now = Date.now();
    const headers = FLEET_COLS.map(([key]) => el("th", { scope: "col", class: "sortable",
      "aria-sort": state.sort === key ? (state.dir > 0 ? "ascending" : "descending") : "none",
      onclick: () => { state.dir = state.sort === key ? -state.dir : 1; state.sort = key; draw(); } },
    t("col." + key), state.sort === key ? (state.dir > 0 ? " ▲" : " ▼") : ""));
    body.replaceChildren(table(headers, rows.map((r) => {
      const d = r.d, h = d.health || {};
      const crit = r.problems.some((p) => p[0] === "crit");
      return el("tr", { class: r.problems.length ? (crit ? "row-crit" : "row-warn") : "",
        "data-testid": "device-row", "data-device": d.device_id },
      el("td", {}, el("a", { href: `#/device/${encodeURIComponent(d.device_id)}` }, d.device_id)),
      el("td", {}, t("kind." + d.kind)), el("td", {}, statusCell(d.status)),
      el("td", {}, r.problems.length ? r.problems.map((p) => flag(p[0], p[1])) : "✔"),
      el("td", { title: fmtTime(d.last_seen_ms) }, fmtAge(d.last_seen_ms, now)),
      el("td", {}, d.fw_version || "—"), el("td", {}, fmtDuration(h.uptime_s)),
      el("td", {}, h.mem_free ?? "—"), el("td", {}, h.backlog ?? "—"), el("td", {}, linkText(d.health)),
      el("td", {}, d.clock_offset_ms === null || d.clock_offset_ms === undefined ? "—" : `${d.clock_offset_ms} ms`),
      el("td", {}, d.health ? errorCount(h) : "—"),
      el("td", {}, r.calDue === undefined ? "" : r.calDue === null ? t("none") : fmtTime(r.calDue).slice(0, 10)));
    }), { class: "fleet", "data-testid": "fleet-table" }));
  }

  async function refresh() {
    try { state.rows = await loadFleet(); draw(); } catch (e) { body.replaceChildren(errorBox(e)); }
  }
  refresh();
  return { topics: ["device"], refresh };
}

// -- one device ----------------------------------------------------------------------------

export function devicePage(main, [id]) {
  const head = el("div", {}), charts = el("div", { class: "charts" }), admin = el("div", {});
  main.append(el("h1", {}, `${t("device")} ${id}`), head, admin, el("h2", {}, t("device.history")), charts);
  async function refresh() {
    try {
      const [d, health] = await Promise.all([api(`/devices/${encodeURIComponent(id)}`),
        api(`/devices/${encodeURIComponent(id)}/health?limit=300`)]);
      const h = d.health || {};
      head.replaceChildren(kv([[t("col.kind"), t("kind." + d.kind)], [t("col.state"), statusCell(d.status)],
        [t("col.seen"), fmtTime(d.last_seen_ms)], [t("col.fw"), d.fw_version], [t("col.uptime"), fmtDuration(h.uptime_s)],
        [t("col.heap"), h.mem_free], [t("col.backlog"), h.backlog], [t("col.link"), linkText(d.health)],
        [t("col.clock"), d.clock_offset_ms === null ? null : `${d.clock_offset_ms} ms`],
        [t("col.errors"), errorCount(h)], [t("device.description"), d.description],
        [t("device.decommissioned"), d.decommissioned_ms ? fmtTime(d.decommissioned_ms) : null]]));
      const pts = (key) => health.map((s) => [s.received_ms, s.body[key]]).reverse();
      charts.replaceChildren(
        lineChart(pts("mem_free"), { title: t("col.heap"), unit: " B", testid: "chart-heap" }),
        lineChart(pts("backlog"), { title: t("col.backlog"), testid: "chart-backlog" }),
        lineChart(pts("clock_offset_ms"), { title: t("col.clock"), unit: " ms", testid: "chart-clock" }),
        lineChart(health.map((s) => [s.received_ms, errorCount(s.body)]).reverse(),
          { title: t("col.errors"), testid: "chart-errors" }));
      drawAdmin(d);
    } catch (e) { head.replaceChildren(errorBox(e)); }
  }
  function drawAdmin(d) {
    if (!can.admin() || d.status === "decommissioned") { admin.replaceChildren(); return; }
    const reason = el("input", { type: "text", placeholder: t("reason"), "aria-label": t("reason"),
      "data-testid": "decommission-reason" });
    const out = el("span", { class: "result" });
    admin.replaceChildren(el("div", { class: "admin-box" }, el("strong", {}, t("admin.only")), " ",
      reason, el("button", { class: "danger", "data-testid": "decommission", onclick: async () => {
        if (!reason.value.trim()) { out.replaceChildren(flag("warn", t("reason.needed"))); return; }
        try {
          await api(`/devices/${encodeURIComponent(id)}/decommission`, { method: "POST", body: { reason: reason.value.trim() } });
          refresh();
        } catch (e) { out.replaceChildren(errorBox(e)); }
      } }, t("decommission")), out));
  }
  refresh();
  return { topics: ["device"], refresh };
}

// -- alerts --------------------------------------------------------------------------------

const SEV_ICON = { critical: "✖", warning: "⚠", info: "ℹ" };

export function alertsPage(main, params) {
  let tab = params[0] || "open";
  const tabs = el("div", { class: "tabs", role: "tablist" });
  const body = el("div", {});
  main.append(el("h1", {}, t("nav.alerts")), tabs, body);
  function drawTabs() {
    tabs.replaceChildren(...["open", "acknowledged", "resolved"].map((s) =>
      el("a", { href: `#/alerts/${s}`, role: "tab", "aria-selected": String(s === tab),
        class: s === tab ? "tab on" : "tab", "data-testid": `tab-${s}` }, t("al." + s))));
  }
  async function act(a, verb, comment, out) {
    if (!comment.trim()) { out.replaceChildren(flag("warn", t("comment.needed"))); return; }
    try {
      await api(`/alerts/${a.id}/${verb}`, { method: "POST", body: { comment: comment.trim() } });
      refresh();
    } catch (e) { out.replaceChildren(errorBox(e)); }
  }
  function actions(a) {
    if (!can.act() || a.state === "resolved") return el("td", {});
    const comment = el("input", { type: "text", placeholder: t("comment"), "aria-label": t("comment"),
      "data-testid": "comment" });
    const out = el("span", { class: "result" });
    return el("td", { class: "actions" }, comment,
      a.state === "open" ? el("button", { "data-testid": "ack", onclick: () => act(a, "ack", comment.value, out) }, t("ack")) : null,
      el("button", { "data-testid": "resolve", onclick: () => act(a, "resolve", comment.value, out) }, t("resolve")), out);
  }
  async function refresh() {
    drawTabs();
    try {
      const rows = await api(`/alerts?state=${tab}&limit=200`);
      const now = Date.now();
      body.replaceChildren(rows.length === 0 ? el("p", { class: "muted", "data-testid": "no-alerts" }, `✔ ${t("none")}`) :
        table([t("col.id"), t("col.severity"), t("col.code"), t("col.device"), t("col.subject"),
          t("col.raised"), t("col.age"), t("col.who"), can.act() ? t("col.actions") : ""],
        rows.map((a) => el("tr", { class: `sev-${a.severity}`, "data-testid": "alert-row", "data-alert": a.id },
          el("td", {}, a.id), el("td", {}, el("span", { class: `flag sev sev-${a.severity}` },
            SEV_ICON[a.severity] || "•", " ", t("sev." + a.severity))),
          el("td", {}, a.code), el("td", {}, a.device_id ? el("a", { href: `#/device/${encodeURIComponent(a.device_id)}` }, a.device_id) : "—"),
          el("td", {}, subjectLink(a)), el("td", {}, fmtTime(a.raised_ms)), el("td", {}, fmtAge(a.raised_ms, now)),
          el("td", {}, [a.acked_by && `${t("al.acknowledged")}: ${a.acked_by} “${a.ack_comment || ""}”`,
            a.resolved_by && ` ${t("al.resolved")}: ${a.resolved_by}${a.resolve_comment ? ` “${a.resolve_comment}”` : ""}`]
            .filter(Boolean).join(" ") || "—"),
          actions(a))), { "data-testid": "alerts-table" }));
    } catch (e) { body.replaceChildren(errorBox(e)); }
  }
  refresh();
  return { topics: ["alert"], refresh };
}

function subjectLink(a) {
  const trip = a.detail && a.detail.trip_id;
  if (trip) return el("a", { href: `#/trip/${encodeURIComponent(trip)}` }, a.subject || trip);
  return a.subject || "—";
}

// -- live map ------------------------------------------------------------------------------

let siteCache = null;
async function site() { siteCache = siteCache || await api("/site"); return siteCache; }

async function deviatingTrips() {
  const alerts = await api("/alerts?state=active&limit=1000");
  return new Set(alerts.filter((a) => a.code === "corridor_deviation")
    .map((a) => (a.detail && a.detail.trip_id) || (a.subject || "").split("/")[0]));
}

export function mapPage(main, params) {
  let which = params[0] === "port" ? "port" : "site";
  const holder = el("div", { class: "map-holder" }), side = el("div", { class: "map-side" });
  const switcher = el("div", { class: "tabs" });
  main.append(el("h1", {}, t("nav.map")), switcher, el("div", { class: "map-layout" }, holder, side));
  async function refresh() {
    try {
      const [s, live, deviating] = await Promise.all([site(), api("/positions/latest?limit=500"), deviatingTrips()]);
      switcher.replaceChildren(...["site", "port"].map((w) => el("a", { href: `#/map/${w}`,
        class: w === which ? "tab on" : "tab" }, t("map." + w))), el("span", { class: "muted" }, ` ${s.name}`));
      const m = siteMap(s, extentOf(s, which));
      const trucks = live.filter((p) => p.lat_e6 !== null);
      for (const p of trucks) m.root.append(truck(m, p, deviating.has(p.trip_id), `#/trip/${encodeURIComponent(p.trip_id)}`));
      holder.replaceChildren(m.root, legend());
      side.replaceChildren(el("h2", {}, `${t("map.intransit")} (${live.length})`),
        deviating.size ? el("p", {}, flag("crit", `${deviating.size} ${t("map.deviation")}`)) : null,
        el("ul", { class: "trip-list" }, live.map((p) => el("li", { class: deviating.has(p.trip_id) ? "deviating" : "" },
          deviating.has(p.trip_id) ? "⚠ " : "", el("a", { href: `#/trip/${encodeURIComponent(p.trip_id)}` }, p.plate || p.trip_id),
          ` → ${p.destination || "?"} · ${fmtAge(p.received_ms)}`))));
    } catch (e) { holder.replaceChildren(errorBox(e)); }
  }
  refresh();
  return { topics: ["position", "trip", "alert"], refresh, throttle: 2000 };
}

function legend() {
  return el("p", { class: "legend" }, ["port_area", "berth", "silo", "bonded_yard", "rail_yard", "gate",
    "weighbridge", "parking", "destination"].map((k) => el("span", {}, el("i", { class: `sw zone-${k}` }), t("kind." + k))),
  el("span", {}, el("i", { class: "sw corridor" }), t("map.corridor")),
  el("span", {}, el("i", { class: "sw truck" }), t("map.truck")),
  el("span", {}, "⚠ ", t("map.deviation")));
}

// -- one trip ------------------------------------------------------------------------------

export function tripPage(main, [id]) {
  const head = el("div", {}), mapBox = el("div", { class: "map-holder small" }), rest = el("div", {});
  main.append(el("h1", {}, `${t("trip")} ${id}`), el("div", { class: "map-layout" }, mapBox, head), rest);
  async function refresh() {
    try {
      const [s, trip, track] = await Promise.all([site(), api(`/trips/${encodeURIComponent(id)}`),
        api(`/trips/${encodeURIComponent(id)}/track`)]);
      head.replaceChildren(kv([[t("col.plate"), trip.plate], [t("col.lot"), trip.lot ? el("a", { href: `#/lot/${encodeURIComponent(trip.lot)}` }, trip.lot) : null],
        [t("col.state"), t("trip." + trip.status)], [t("col.destination"), trip.destination], [t("map.corridor"), trip.corridor],
        [t("trip.departed"), fmtTime(trip.departed_ms)], [t("trip.arrivedat"), fmtTime(trip.arrived_ts)],
        [t("col.net"), fmtKg(trip.net_kg)], [t("trip.tracker"), trip.tracker_id], [t("trip.fixes"), track.length]]));
      const c = s.corridors.find((x) => x.id === trip.corridor);
      const pts = [...track.map((f) => [f.lat_e6, f.lon_e6]), ...(c ? c.points : [])];
      const m = siteMap(s, pts.length ? bbox(pts) : extentOf(s, "site"), { testid: "trip-map" });
      if (track.length) {
        m.root.append(trackLine(m, track));
        const last = track[track.length - 1];
        const dev = trip.alerts.some((a) => a.code === "corridor_deviation" && a.cleared_ts === null);
        m.root.append(truck(m, { ...last, trip_id: trip.trip_id, plate: trip.plate }, dev, `#/trip/${encodeURIComponent(id)}`));
      }
      mapBox.replaceChildren(m.root);
      const w = trip.departure_weighing;
      rest.replaceChildren(
        el("h2", {}, t("trip.events")), autoTable(trip.events.map((e) => ({ time_ms: e.time_ms, event: e.event, actor: e.actor, detail: e.detail })), null, "trip-events"),
        el("h2", {}, t("nav.alerts")), autoTable(trip.alerts.map((a) => ({ id: a.id, code: a.code, severity: a.severity, raised_ts: fmtTime(a.raised_ts), cleared_ts: fmtTime(a.cleared_ts) })), null, "trip-alerts"),
        el("h2", {}, t("trip.weighings")), w ? autoTable([w], null, "trip-weighing") : el("p", { class: "muted" }, t("none")));
    } catch (e) { head.replaceChildren(errorBox(e)); }
  }
  refresh();
  return { topics: ["position", "trip", "alert"], refresh, throttle: 2000 };
}

// -- lots ----------------------------------------------------------------------------------

export function lotsPage(main) {
  const body = el("div", {});
  main.append(el("h1", {}, t("nav.lots")), body);
  (async () => {
    try {
      const lots = await api("/lots?limit=200");
      body.replaceChildren(lots.length === 0 ? el("p", { class: "muted" }, t("none")) :
        table([t("col.lot"), t("col.state"), t("lot.commodity"), t("lot.vessel"), t("lot.declared")],
          lots.map((l) => el("tr", {}, el("td", {}, el("a", { href: `#/lot/${encodeURIComponent(l.lot_id)}` }, l.lot_id)),
            el("td", {}, l.status === "held" ? flag("crit", t("lot.held")) : l.status), el("td", {}, l.commodity),
            el("td", {}, l.vessel), el("td", {}, fmtKg(l.declared_kg)))), { "data-testid": "lots-table" }));
    } catch (e) { body.replaceChildren(errorBox(e)); }
  })();
  return { topics: [], refresh() {} };
}

export function lotPage(main, [id]) {
  const body = el("div", {});
  main.append(el("h1", {}, `${t("col.lot")} ${id}`), body);
  const enc = encodeURIComponent(id);
  const opt = (p) => p.catch((e) => ({ error: e }));
  async function refresh() {
    const [lot, balance, samples, holds, trace] = await Promise.all([opt(api(`/lots/${enc}`)),
      opt(api(`/lots/${enc}/balance`)), opt(api(`/lots/${enc}/samples?limit=100`)),
      opt(api(`/holds?lot=${enc}&all=true`)), opt(api(`/trace/forward?lot=${enc}&proofs=false`))]);
    const part = (title, data, draw) => [el("h2", {}, title),
      data && data.error ? (data.error.status === 404 ? el("p", { class: "muted" }, t("none")) : errorBox(data.error)) : draw(data)];
    body.replaceChildren(
      ...part(t("lot.status"), lot, (l) => kv([[t("col.state"), l.status === "held" ? flag("crit", t("lot.held")) : l.status],
        [t("lot.commodity"), l.commodity], [t("lot.vessel"), l.vessel], [t("lot.declared"), fmtKg(l.declared_kg)],
        [t("lot.declaration"), l.declaration_no], [t("lot.origin"), l.origin_country]])),
      ...part(t("lot.balance"), balance, (b) => balanceView(b)),
      ...part(t("lot.samples"), samples, (s) => autoTable(s, ["sample_id", "sampled_ts", "moisture_pm", "protein_pm", "impurity_pm", "outlier", "findings"], "lot-samples")),
      ...part(t("lot.holds"), holds, (h) => autoTable(h, ["id", "kind", "reason", "actor", "held_ms", "released_ms"], "lot-holds")),
      ...part(t("lot.trace"), trace, (tr) => traceView(tr)));
  }
  refresh();
  return { topics: ["trip"], refresh, throttle: 5000 };
}

function balanceView(b) {
  const shown = (v) => (v && typeof v === "object" && !Array.isArray(v) && "kg" in v
    ? `${fmtKg(v.kg)}${Object.keys(v).find((k) => /tol/.test(k)) ? ` ± ${fmtKg(v[Object.keys(v).find((k) => /tol/.test(k))])}` : ""}`
    : Array.isArray(v) ? `${v.length}` : v);
  const flat = Object.entries(b).filter(([k]) => k !== "discrepancies").map(([k, v]) => [k, shown(v)]);
  const disc = b.discrepancies || [];
  return el("div", { "data-testid": "lot-balance" }, kv(flat.map(([k, v]) => [k, /_kg$/.test(k) && typeof v === "number" ? fmtKg(v) : value(v)])),
    disc.length ? el("p", {}, disc.map((d) => flag("crit", typeof d === "string" ? d : JSON.stringify(d)))) : null);
}

function traceView(tr) {
  const node = tr.lot || tr;
  const trips = node.trips || [], cars = node.cars || [];
  return el("div", { "data-testid": "lot-trace" },
    el("h3", {}, `${t("lot.trips")} (${trips.length})`),
    trips.length ? table([t("trip"), t("col.destination"), t("col.net"), t("col.when")], trips.map((x) => el("tr", {},
      el("td", {}, el("a", { href: `#/trip/${encodeURIComponent(x.trip_id || x.id)}` }, x.trip_id || x.id)),
      el("td", {}, value(x.destination)), el("td", {}, fmtKg(x.kg ?? x.net_kg)), el("td", {}, fmtTime(x.departed_ms ?? x.time_ms))))) : el("p", { class: "muted" }, t("none")),
    el("h3", {}, `${t("lot.cars")} (${cars.length})`), autoTable(cars.map((c) => Object.fromEntries(Object.entries(c).filter(([k, v]) => k !== "proofs" && (v === null || typeof v !== "object")))), null, "lot-cars"));
}

// -- the out-gate's decisions --------------------------------------------------------------

export function gatePage(main) {
  const body = el("div", {});
  main.append(el("h1", {}, t("nav.gate")), body);
  async function refresh() {
    try {
      const rows = await api("/gate-decisions?limit=100");
      body.replaceChildren(rows.length === 0 ? el("p", { class: "muted" }, t("none")) :
        table([t("col.when"), t("col.device"), t("col.plate"), t("col.lot"), t("col.net"), t("gate.action"), t("gate.reasons")],
          rows.map((g) => el("tr", { class: g.action === "open" ? "" : "row-crit", "data-testid": "gate-row" },
            el("td", {}, fmtTime(g.decided_ms)), el("td", {}, `${g.device_id} #${g.weighing_seq}`), el("td", {}, g.plate || "—"),
            el("td", {}, g.lot ? el("a", { href: `#/lot/${encodeURIComponent(g.lot)}` }, g.lot) : "—"), el("td", {}, fmtKg(g.net_kg)),
            el("td", {}, g.action === "open" ? el("span", { class: "flag flag-ok" }, "✔ ", t("gate.open")) : flag("crit", t("gate.deny"))),
            el("td", {}, g.reasons.length ? g.reasons.map((r) => r.text || r.code).join("; ") : t("gate.cleared")))),
          { "data-testid": "gate-table" }));
    } catch (e) { body.replaceChildren(errorBox(e)); }
  }
  refresh();
  return { topics: ["gate"], refresh };
}

// -- login ---------------------------------------------------------------------------------

export function loginPage(main, _params, { onLogin }) {
  const box = el("textarea", { rows: 3, placeholder: "pwt_…", "aria-label": t("login.token"), "data-testid": "token",
    autocomplete: "off", spellcheck: "false" });
  const out = el("div", {});
  const form = el("form", { class: "login", onsubmit: async (e) => {
    e.preventDefault();
    if (!box.value.trim()) { out.replaceChildren(flag("warn", t("login.empty"))); return; }
    try { await onLogin(box.value); } catch (err) {
      out.replaceChildren(errorBox(err), el("p", {}, t("login.help")));
    }
  } }, el("label", {}, t("login.token"), box), el("button", { type: "submit", "data-testid": "login" }, t("login.go")), out,
  el("p", { class: "muted" }, t("login.help")));
  main.append(el("h1", {}, t("login.title")), form);
  box.focus();
  return { topics: [], refresh() {} };
}

export { session };
