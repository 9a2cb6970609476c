// The shell: login state, navigation by URL hash, the live event stream, the new-alert
// banner, language, wall mode and sound toggles.
import { api, can, login, logout, restore, session } from "./api.js";
import { el } from "./dom.js";
import { lang, setLang, t } from "./i18n.js";
import * as pages from "./pages.js";

const ROUTES = {
  fleet: pages.fleetPage, device: pages.devicePage, alerts: pages.alertsPage, map: pages.mapPage,
  trip: pages.tripPage, lots: pages.lotsPage, lot: pages.lotPage, gate: pages.gatePage,
  login: pages.loginPage,
};
const NAV = ["fleet", "alerts", "map", "gate", "lots"];
const main = document.getElementById("main");
const banner = document.getElementById("banner");
let current = null, stream = null, seenAlert = 0, pendingTimer = null, audio = null;
const prefs = {
  wall: localStorage.getItem("portwatch.wall") === "1" || new URLSearchParams(location.search).has("wall"),
  sound: localStorage.getItem("portwatch.sound") === "1",
};

function route() {
  const [name, ...params] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return { name: ROUTES[name] ? name : "fleet", params };
}

function render() {
  const { name, params } = route();
  if (!session.role && name !== "login") { location.hash = "#/login"; return; }
  drawChrome(name);
  main.replaceChildren();
  current = ROUTES[name](main, params, { onLogin });
  document.title = `portwatch — ${t("nav." + name)}`;
}

function drawChrome(name) {
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  document.body.classList.toggle("wall", prefs.wall);
  const nav = document.getElementById("nav");
  nav.replaceChildren(...(session.role ? NAV.map((n) => el("a", { href: `#/${n}`,
    class: n === name ? "on" : "", "aria-current": n === name ? "page" : null, "data-testid": `nav-${n}` }, t("nav." + n), n === "alerts" ? el("span", { id: "alert-count", class: "count" }) : null)) : []));
  document.getElementById("who").replaceChildren(session.role ? `${session.name} · ${t("role." + session.role)}` : "");
  const tools = document.getElementById("tools");
  tools.replaceChildren(
    el("button", { "data-testid": "lang", title: "中文 / English", onclick: () => { setLang(lang() === "zh" ? "en" : "zh"); render(); } }, lang() === "zh" ? "English" : "中文"),
    el("button", { "data-testid": "wall", "aria-pressed": String(prefs.wall), onclick: () => { prefs.wall = !prefs.wall; localStorage.setItem("portwatch.wall", prefs.wall ? "1" : "0"); render(); } }, t("wall")),
    el("button", { "data-testid": "sound", "aria-pressed": String(prefs.sound), onclick: () => { prefs.sound = !prefs.sound; localStorage.setItem("portwatch.sound", prefs.sound ? "1" : "0"); if (prefs.sound) beep(); drawChrome(name); } }, prefs.sound ? `♪ ${t("sound.on")}` : `♪ ${t("sound.off")}`),
    session.role ? el("button", { "data-testid": "logout", onclick: async () => { await logout(); closeStream(); location.hash = "#/login"; render(); } }, t("logout")) : null);
  updateAlertCount();
}

async function onLogin(token) {
  await login(token);
  await primeAlerts();
  openStream();
  location.hash = "#/fleet";
  render();
}

// -- live updates --------------------------------------------------------------------------

function openStream() {
  closeStream();
  stream = new EventSource("/api/v1/events");
  const live = document.getElementById("live");
  stream.onopen = () => { live.textContent = `● ${t("live")}`; live.className = "live on"; };
  stream.onerror = () => { live.textContent = `○ ${t("reconnecting")}`; live.className = "live off"; };
  for (const topic of ["alert", "device", "trip", "position", "gate"]) {
    stream.addEventListener(topic, () => changed(topic));
  }
  stream.addEventListener("logout", () => window.dispatchEvent(new CustomEvent("pw-logout")));
}

function closeStream() { if (stream) { stream.close(); stream = null; } }

function changed(topic) {
  if (topic === "alert") checkNewAlerts();
  if (!current || !current.topics.includes(topic)) return;
  if (current.throttle) {
    if (pendingTimer) return;
    pendingTimer = setTimeout(() => { pendingTimer = null; current.refresh(topic); }, current.throttle);
  } else current.refresh(topic);
}

let openCount = null;
function updateAlertCount() {
  const span = document.getElementById("alert-count");
  if (span && openCount !== null) span.textContent = openCount ? ` ${openCount}` : "";
}

async function primeAlerts() {
  const rows = await api("/alerts?all=true&limit=1");
  seenAlert = rows.length ? rows[0].id : 0;
}

async function checkNewAlerts() {
  try {
    const active = await api("/alerts?state=active&limit=1000");
    openCount = active.filter((a) => a.state === "open").length;
    updateAlertCount();
    const fresh = active.filter((a) => a.id > seenAlert).sort((a, b) => a.id - b.id);
    if (!fresh.length) return;
    seenAlert = fresh[fresh.length - 1].id;
    showBanner(fresh);
  } catch { /* the next event tries again */ }
}

function showBanner(fresh) {
  const a = fresh[fresh.length - 1];
  const icon = a.severity === "critical" ? "✖" : "⚠";
  banner.className = `banner sev-${a.severity}`;
  banner.replaceChildren(el("strong", {}, `${icon} ${t("banner.new")}${fresh.length > 1 ? ` (${fresh.length})` : ""}: `),
    `${a.code} · ${a.device_id || ""} · ${t("sev." + a.severity)} `,
    el("a", { href: "#/alerts/open", onclick: hideBanner }, t("banner.view")), " ",
    el("button", { onclick: hideBanner, "aria-label": t("banner.close") }, "×"));
  banner.hidden = false;
  if (prefs.sound) beep();
}

function hideBanner() { banner.hidden = true; }

function beep() {
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.15;
    o.connect(g).connect(audio.destination);
    o.start(); o.stop(audio.currentTime + 0.25);
  } catch { /* no audio device: the banner is enough */ }
}

window.addEventListener("pw-logout", () => {
  closeStream(); session.role = null; sessionStorage.removeItem("portwatch.token");
  if (!location.hash.startsWith("#/login")) location.hash = "#/login";
});
window.addEventListener("hashchange", render);

(async () => {
  if (await restore()) {
    await primeAlerts().catch(() => {});
    openStream();
    checkNewAlerts();
  }
  render();
})();

export { can };
