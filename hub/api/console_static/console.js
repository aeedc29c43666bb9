// The hub's web console: one page, views per role, Chinese and English, no external resources.
// Every call goes to the hub's own API with the session cookie; the server decides what a
// role may see and do, the console only leaves out what would be refused anyway.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const LIGHTING_TYPES = new Set(["lamp_out", "lit_by_day", "over_voltage", "under_voltage", "over_current",
  "power_abnormal", "flicker", "cabinet_trip", "circuit_dark", "door_open", "contactor_anomaly", "supply_loss",
  "dark_at_night", "command_not_effective", "cable_theft", "power_factor_low", "voltage_trend"]);
const NOTE_ACTIONS = new Set(["reject", "void", "return", "refuse-return", "request-extension", "deny-extension",
  "request-suspension", "deny-suspension", "verify-fail", "feedback"]);
const STATUSES = ["reported", "checking", "registered", "dispatched", "in_progress", "returned", "extension_requested",
  "suspension_requested", "suspended", "handled", "verifying", "verified", "rework", "closed", "rejected", "voided", "merged"];

const app = { me: null, lang: localStorage.getItem("hub.lang") || "zh", dict: {}, timers: [], streams: [], maps: {}, layers: {} };

function t(key) {
  const d = app.dict[app.lang] || {};
  return d[key] !== undefined ? d[key] : key;
}

// Fills {name} placeholders of a translated text.
function tf(key, params) {
  return t(key).replace(/\{(\w+)\}/g, (whole, name) => (params[name] !== undefined ? String(params[name]) : whole));
}

function locale() {
  return app.lang === "zh" ? "zh-CN" : "en-GB";
}

const TIME_FORMAT = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };

function fmtTime(value) {
  if (!value) return "";
  return new Date(value).toLocaleString(locale(), TIME_FORMAT);
}

function fmtNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  return Number(value).toLocaleString(locale(), { maximumFractionDigits: digits });
}

// A department by its code in the console's language; the server's name for codes we lack.
function deptName(code, serverName) {
  if (code && app.dict[app.lang] && app.dict[app.lang][`dept.${code}`] !== undefined) return t(`dept.${code}`);
  return serverName || code || "";
}

function sourceName(source) {
  return source ? t(`source.${source}`) : "";
}

// Notes the hub writes itself (case timeline), recognised and shown in the console's language;
// anything else is a person's words and stays as written.
const SERVER_NOTES = [
  [/^filed from (\w+) alarm (\d+) of (.+)$/, (m) => tf("note.filed_from", { type: t(`type.${m[1]}`), id: m[2], source: m[3] })],
  [/^sensor verification: the fault is no longer reported$/, () => t("note.sensor_verified")],
  [/^sensor verification: (.+)$/, (m) => tf("note.sensor_verification", { rest: m[1] })],
  [/^registered by filing policy$/, () => t("note.registered_by_policy")],
  [/^dispatched by filing policy$/, () => t("note.dispatched_by_policy")],
  [/^(\w+) alarm (\d+) of (\S+) cleared at (\S+) and stayed clear for ([\d.]+) min$/,
    (m) => tf("note.alarm_cleared", { type: t(`type.${m[1]}`), id: m[2], source: m[3], at: fmtTime(m[4]), minutes: m[5] })],
];

function serverText(text) {
  if (!text) return "";
  for (const [pattern, render] of SERVER_NOTES) {
    const m = pattern.exec(text);
    if (m) return render(m);
  }
  return text;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "style") Object.assign(e.style, v); // CSSOM: the CSP refuses style attributes
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : response.statusText;
    if (response.status === 401 && path !== "/auth/login") showLogin();
    throw new ApiError(response.status, detail);
  }
  return data;
}

function applyI18n() {
  document.documentElement.lang = app.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("#lang").textContent = app.lang === "zh" ? "EN" : "中文";
  document.title = t("app.title");
}

function stopLive() {
  app.timers.forEach(clearInterval);
  app.timers = [];
  app.streams.forEach((s) => s.close());
  app.streams = [];
}

function every(ms, fn) {
  app.timers.push(setInterval(fn, ms));
}

function showLogin() {
  stopLive();
  app.me = null;
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  $("#view-login").hidden = false;
  $("#nav").textContent = "";
  $("#who").textContent = "";
  $("#logout").hidden = true;
}

function renderNav() {
  const nav = $("#nav");
  nav.textContent = "";
  for (const view of app.me.views) {
    nav.append(el("a", { href: `#${view}`, "data-view": view, "data-testid": `nav-${view}` }, t(`view.${view}`)));
  }
  const who = app.me.department ? `${app.me.display_name} · ${t(`role.${app.me.role}`)} · ${deptName(app.me.department)}` : `${app.me.display_name} · ${t(`role.${app.me.role}`)}`;
  $("#who").textContent = who;
  $("#logout").hidden = false;
}

async function route() {
  if (!app.me) return;
  stopLive();
  const [view, arg] = location.hash.replace(/^#/, "").split("/");
  const name = app.me.views.includes(view) ? view : app.me.views[0];
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name);
  if (!name) return;
  await VIEWS[name](arg);
}

// shared map layers

async function cityLayer(name) {
  if (!(name in app.layers)) {
    app.layers[name] = api(`/city/layers/${name}`).catch(() => null);
  }
  return app.layers[name];
}

async function baseMap(key, container) {
  const map = new CityMap(container);
  app.maps[key] = map;
  const [grids, streets] = await Promise.all([cityLayer("grids"), cityLayer("streets")]);
  if (grids) map.addGeoJSON("grids", grids);
  if (streets) map.addGeoJSON("streets", streets, (f) => ({ className: f.properties && f.properties.road_class === "main" ? "" : "minor", title: f.properties && f.properties.name }));
  return map;
}

// cases

function lightDot(light) {
  return el("span", { class: `light ${light || ""}`, title: light ? t(`light.${light}`) : "" });
}

async function viewCases(caseId) {
  const form = $("#case-filters");
  const select = form.elements.status;
  if (select.options.length === 1) {
    for (const s of STATUSES) select.append(el("option", { value: s, "data-i18n": `status.${s}` }, t(`status.${s}`)));
  }
  if (app.me.role === "department") {
    form.elements.department.value = app.me.department;
    form.elements.department.disabled = true;
  }
  form.onsubmit = (e) => { e.preventDefault(); loadCases(); };
  await loadCases();
  if (caseId) await showCase(Number(caseId));
  else $("#case-detail").hidden = true;
  every(15000, loadCases);
}

async function loadCases() {
  const form = $("#case-filters");
  const q = new URLSearchParams();
  const f = form.elements;
  if (f.status.value) q.append("status", f.status.value);
  if (f.department.value && !f.department.disabled) q.append("department", f.department.value);
  if (f.light.value) q.append("light", f.light.value);
  if (f.open.checked) q.append("open", "true");
  q.append("limit", "200");
  const cases = await api(`/cases?${q}`);
  const body = $("#case-rows");
  body.textContent = "";
  if (!cases.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "hint" }, t("cases.empty"))));
  for (const c of cases) {
    body.append(el("tr", { "data-case-id": c.id, "data-testid": "case-row", class: location.hash === `#cases/${c.id}` ? "selected" : "", onclick: () => { location.hash = `#cases/${c.id}`; } },
      el("td", {}, lightDot(c.light)), el("td", {}, c.case_number),
      el("td", {}, c.class_name || c.class_code), el("td", { "data-testid": "case-status" }, t(`status.${c.status}`)),
      el("td", {}, deptName(c.department, c.department_name)), el("td", {}, fmtTime(c.stage_due_at))));
  }
}

async function showCase(id) {
  const box = $("#case-detail");
  box.hidden = false;
  let detail, actions;
  try {
    [detail, actions] = await Promise.all([api(`/cases/${id}`), api(`/cases/${id}/actions`)]);
  } catch (err) {
    box.textContent = err.message;
    return;
  }
  box.textContent = "";
  box.dataset.caseId = id;
  box.dataset.status = detail.status;
  const facts = el("dl", { class: "facts" },
    el("dt", {}, t("cases.number")), el("dd", { "data-testid": "case-number" }, detail.case_number),
    el("dt", {}, t("cases.status")), el("dd", { "data-testid": "detail-status", "data-status": detail.status }, lightDot(detail.light), " ", t(`status.${detail.status}`)),
    el("dt", {}, t("cases.class")), el("dd", {}, `${detail.class_code} ${detail.class_name || ""}`),
    el("dt", {}, t("cases.department")), el("dd", { "data-testid": "detail-department" }, deptName(detail.department, detail.department_name)),
    el("dt", {}, t("cases.source")), el("dd", { "data-testid": "detail-source" }, sourceName(detail.source)),
    el("dt", {}, t("cases.grid")), el("dd", {}, detail.grid_code || ""),
    el("dt", {}, t("cases.reported")), el("dd", {}, fmtTime(detail.reported_at)),
    el("dt", {}, t("cases.due")), el("dd", {}, fmtTime(detail.stage_due_at)),
    el("dt", {}, t("cases.description")), el("dd", {}, detail.description));
  box.append(el("h2", {}, detail.case_number), facts, actionBar(detail, actions));
  const chartBox = el("div", {}, el("h3", {}, t("cases.evidence")));
  const mapBox = el("div", {}, el("h3", {}, t("cases.map")), el("div", { class: "map", "data-testid": "case-map" }));
  box.append(el("div", { class: "detail-grid" }, chartBox, mapBox));
  box.append(el("h3", {}, t("cases.timeline")), timeline(detail.events));
  drawEvidence(chartBox, detail);
  const map = await baseMap("case", $(".map", mapBox));
  if (detail.lat !== null && detail.lon !== null) {
    map.addPoint("case", detail.lon, detail.lat, "case", detail.address || detail.case_number);
    map.centreOn(detail.lon, detail.lat, 1500);
  } else map.fit();
}

function actionBar(detail, actions) {
  const bar = el("div", { class: "actions", "data-testid": "case-actions" });
  if (!actions.actions.length) {
    bar.append(el("span", { class: "hint" }, t("cases.no_actions")));
    return bar;
  }
  const note = el("input", { placeholder: t("cases.note"), "data-testid": "action-note", size: 18 });
  const dept = el("select", { "data-testid": "action-department" },
    ...Object.entries(actions.departments).map(([code, name]) => el("option", { value: code, selected: code === detail.department }, deptName(code, name))));
  const hours = el("input", { type: "number", min: "0.5", step: "0.5", value: "8", size: 4, "data-testid": "action-hours" });
  const error = el("span", { class: "error", "data-testid": "action-error" });
  for (const action of actions.actions) {
    bar.append(el("button", { type: "button", "data-action": action, "data-testid": `action-${action}`, onclick: () => act(detail, action, { note, dept, hours, error }) }, t(`action.${action}`)));
  }
  bar.append(note);
  if (actions.actions.includes("dispatch")) bar.append(dept);
  if (actions.actions.includes("request-extension")) bar.append(hours);
  bar.append(error);
  return bar;
}

async function act(detail, action, inputs) {
  const body = { expected_version: detail.version };
  const note = inputs.note.value.trim();
  if (note) body.note = note;
  else if (NOTE_ACTIONS.has(action)) body.note = t(`action.${action}`);
  if (action === "dispatch") body.department = inputs.dept.value;
  if (action === "request-extension") body.extension_h = Number(inputs.hours.value);
  if (action === "attach-evidence") body.evidence = note || t("action.attach-evidence");
  if (action === "merge") { body.into = note; delete body.note; } // the note box names the surviving case
  if (action === "callback") body.satisfaction = ["satisfied", "basically_satisfied", "unsatisfied", "unreachable"].includes(note) ? note : "satisfied";
  try {
    await api(`/cases/${detail.id}/${action}`, { method: "POST", body });
  } catch (err) {
    inputs.error.textContent = err.message;
    return;
  }
  await loadCases();
  await showCase(detail.id);
}

function timeline(events) {
  const list = el("ol", { class: "timeline", "data-testid": "case-timeline" });
  for (const e of events) {
    const role = t(`wfrole.${e.actor_role}`);
    const who = e.actor_id ? `${e.actor_id} (${role})` : role;
    list.append(el("li", { "data-action": e.action }, el("time", {}, fmtTime(e.at)), el("b", {}, t(`action.${e.action.replace(/_/g, "-")}`)), ` → ${t(`status.${e.to_status}`)} · ${who}`, e.note ? ` · ${serverText(e.note)}` : ""));
  }
  return list;
}

const PREFERRED_FIELDS = ["power_w", "current_a", "voltage_v", "tilt_deg", "water_level_cm", "speed_kmh", "dim_pct", "occupied"];

async function drawEvidence(box, detail) {
  let readings = (detail.evidence && detail.evidence.readings) || [];
  let points = readings.map((r) => ({ ts: r.ts, values: r.values || r }));
  if (points.length < 2 && detail.device_id) {
    const end = new Date(new Date(detail.reported_at).getTime() + 3600e3).toISOString();
    const start = new Date(new Date(detail.reported_at).getTime() - 6 * 3600e3).toISOString();
    try {
      const page = await api(`/devices/${encodeURIComponent(detail.device_id)}/readings?start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}&limit=2000`);
      points = page.readings.map((r) => ({ ts: r.ts, values: r }));
    } catch (err) { /* no readings: say so below */ }
  }
  const fields = new Set();
  for (const p of points) for (const [k, v] of Object.entries(p.values)) if (typeof v === "number" || typeof v === "boolean") fields.add(k);
  const field = PREFERRED_FIELDS.find((f) => fields.has(f)) || [...fields].find((f) => f !== "seq");
  if (!field || points.length < 1) {
    box.append(el("p", { class: "hint", "data-testid": "evidence-empty" }, t("cases.no_readings")));
    return;
  }
  box.append(lineChart(points.map((p) => [new Date(p.ts).getTime(), Number(p.values[field])]).filter((p) => !Number.isNaN(p[1])), field));
}

function lineChart(series, label) {
  const W = 400, H = 160, L = 40, B = 20;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.dataset.testid = "evidence-chart";
  svg.setAttribute("data-testid", "evidence-chart");
  series.sort((a, b) => a[0] - b[0]);
  const xs = series.map((p) => p[0]), ys = series.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - 8);
  const sy = (y) => 8 + (1 - (y - y0) / (y1 - y0)) * (H - B - 16);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.appendChild(n);
    return n;
  };
  add("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B });
  add("line", { class: "axis", x1: L, y1: 0, x2: L, y2: H - B });
  add("text", { x: 2, y: 12 }, y1.toFixed(1));
  add("text", { x: 2, y: H - B }, y0.toFixed(1));
  add("text", { x: L + 4, y: 12 }, label);
  add("text", { x: L, y: H - 4 }, fmtTime(x0));
  add("text", { x: W - 4, y: H - 4, "text-anchor": "end" }, fmtTime(x1));
  add("polyline", { points: series.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ") });
  if (series.length === 1) add("circle", { cx: sx(series[0][0]), cy: sy(series[0][1]), r: 3, fill: "#1f5fbf" });
  return svg;
}

// evaluation

async function viewEvaluation() {
  const form = $("#eval-form");
  if (!form.elements.start.value) {
    const now = new Date();
    const first = new Date(now.getFullYear(), now.getMonth(), 1);
    const tomorrow = new Date(now.getTime() + 86400e3);
    const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    form.elements.start.value = iso(first);
    form.elements.end.value = iso(tomorrow);
  }
  form.onsubmit = (e) => { e.preventDefault(); loadEvaluation(); };
  await loadEvaluation();
}

async function loadEvaluation() {
  const f = $("#eval-form").elements;
  const data = await api(`/evaluation?start=${f.start.value}&end=${f.end.value}`);
  const body = $("#eval-rows");
  body.textContent = "";
  const na = (v) => v === null || v === undefined;
  const pct = (v) => (na(v) ? "n/a" : `${(v * 100).toFixed(1)}%`);
  for (const d of data.departments) {
    body.append(el("tr", { "data-testid": "eval-row" }, el("td", {}, deptName(d.department, d.department_name)), el("td", {}, d.registered),
      el("td", {}, d.closed), el("td", {}, pct(d.closure_rate)), el("td", {}, pct(d.on_time_closure_rate)), el("td", {}, pct(d.rework_rate)),
      el("td", {}, d.overdue_open), el("td", {}, na(d.composite) ? "n/a" : d.composite.toFixed(1)), el("td", {}, na(d.grade) ? "n/a" : d.grade)));
  }
}

// lighting faults, live

const faults = new Map();
const devices = new Map();

async function loadDevices(kind) {
  for (const d of await api(`/devices?kind=${kind}&limit=10000`)) devices.set(d.device_id, d);
}

function isLightingAlarm(a) {
  if (LIGHTING_TYPES.has(a.alarm_type)) return true;
  const d = devices.get(a.source_id);
  return a.alarm_type === "offline" && d && (d.kind === "lighting" || d.kind === "cabinet");
}

async function viewFaults() {
  faults.clear();
  const map = await baseMap("faults", $("#faults-map"));
  await Promise.all([loadDevices("lighting"), loadDevices("cabinet")]);
  for (const d of devices.values()) if (d.kind === "lighting") map.addPoint("lamps", d.lon, d.lat, "lamp", d.name || d.device_id);
  map.fit();
  const open = await api("/alarms?open=true&limit=1000");
  for (const a of open) if (isLightingAlarm(a)) faults.set(a.id, a);
  renderFaults();
  await loadOpenCommands();
  every(10000, loadOpenCommands);
  const stream = new EventSource("/alarms/stream");
  app.streams.push(stream);
  stream.onopen = () => $("#faults-live").classList.add("on");
  stream.onerror = () => $("#faults-live").classList.remove("on");
  for (const change of ["raised", "updated", "acknowledged", "cleared"]) {
    stream.addEventListener(change, async (e) => {
      const doc = JSON.parse(e.data);
      const a = doc.alarm;
      if (!a) return;
      if (!devices.has(a.source_id) && a.source_kind === "device") {
        try { const d = await api(`/devices/${encodeURIComponent(a.source_id)}`); devices.set(d.device_id, d); } catch (err) { /* unknown source */ }
      }
      if (!isLightingAlarm(a)) return;
      if (a.state === "cleared") faults.delete(a.id);
      else faults.set(a.id, a);
      renderFaults();
    });
  }
}

function renderFaults() {
  const map = app.maps.faults;
  map.clear("faults");
  const body = $("#fault-rows");
  body.textContent = "";
  const canAck = ["admin", "centre", "lighting_crew"].includes(app.me.role);
  const list = [...faults.values()].sort((a, b) => b.id - a.id);
  for (const a of list) {
    const d = devices.get(a.source_id);
    if (d) map.addPoint("faults", d.lon, d.lat, `fault ${a.state}`, `${t(`type.${a.alarm_type}`)} · ${a.source_id}`, null, String(a.id));
    const ack = canAck && a.state === "active" ? el("button", { type: "button", "data-testid": "ack", onclick: async (e) => { e.stopPropagation(); await api(`/alarms/${a.id}/acknowledge`, { method: "POST", body: {} }); } }, t("alarms.acknowledge")) : "";
    body.append(el("tr", { "data-testid": "fault-row", "data-alarm-id": a.id, "data-source": a.source_id, onclick: () => d && map.centreOn(d.lon, d.lat, 800) },
      el("td", { class: `sev-${a.severity}` }, t(`sev.${a.severity}`)), el("td", {}, t(`type.${a.alarm_type}`)),
      el("td", {}, d && d.name ? `${d.name} (${a.source_id})` : a.source_id), el("td", {}, fmtTime(a.raised_at)),
      el("td", {}, t(`alarm.state.${a.state}`)), el("td", {}, ack)));
  }
  $("#faults-count").textContent = String(list.length);
}

// Lighting commands not yet carried out (pending or sent), each cancellable by a crew.
async function loadOpenCommands() {
  const body = $("#command-rows");
  if (!body) return;
  const [pending, sent] = await Promise.all([
    api("/lighting/commands?state=pending&limit=200").catch(() => []),
    api("/lighting/commands?state=sent&limit=200").catch(() => []),
  ]);
  const canCancel = ["admin", "centre", "lighting_crew"].includes(app.me.role);
  body.textContent = "";
  for (const c of [...pending, ...sent]) {
    const level = c.params && c.params.dim_pct !== undefined ? ` ${c.params.dim_pct}%` : "";
    const cancel = canCancel ? el("button", { type: "button", "data-testid": "cancel-command", onclick: async () => {
      await api(`/lighting/commands/${encodeURIComponent(c.command_id)}`, { method: "DELETE" });
      await loadOpenCommands();
    } }, t("commands.cancel")) : "";
    body.append(el("tr", { "data-testid": "command-row", "data-command-id": c.command_id },
      el("td", {}, c.device_id), el("td", {}, `${c.action}${level}`), el("td", {}, c.state),
      el("td", {}, fmtTime(c.created_at)), el("td", {}, cancel)));
  }
  $("#commands-count").textContent = String(pending.length + sent.length);
}

// muck trucks

async function viewTrucks() {
  const map = await baseMap("trucks", $("#trucks-map"));
  const [sites, permits] = await Promise.all([api("/trucks/sites"), api("/trucks/permits")]);
  map.addGeoJSON("sites", sites, (f) => ({ className: f.properties.site_type, title: f.properties.name || f.id }));
  for (const p of permits) {
    if (!p.route || p.route.length < 2) continue;
    map.addPath("corridors", p.route, "", 2 * p.corridor_m);
    map.addPath("corridors", p.route, "axis");
  }
  map.layer("track");
  map.layer("trucks");
  await loadPositions(true);
  await loadViolations();
  every(5000, () => loadPositions(false));
  every(15000, loadViolations);
}

async function loadPositions(fit) {
  const map = app.maps.trucks;
  const data = await api("/trucks/positions");
  map.clear("trucks");
  for (const f of data.features) {
    const [lon, lat] = f.geometry.coordinates;
    const p = f.properties;
    map.addPoint("trucks", lon, lat, `truck ${p.state}`, `${p.plate || p.device_id} · ${p.speed_kmh} km/h · ${p.state}`, () => showTrack(p.device_id), p.device_id);
  }
  $("#truck-count").textContent = String(data.features.length);
  if (fit) map.fit();
}

async function showTrack(deviceId) {
  offerDriverMessage(deviceId);
  const map = app.maps.trucks;
  const track = await api(`/trucks/${encodeURIComponent(deviceId)}/track?max_points=2000`);
  map.clear("track");
  if (track.geometry.coordinates.length > 1) map.addPath("track", track.geometry.coordinates, "");
}

// A text to the driver (JT/T 808 0x8300 through the gateway), for enforcement; the terminal's
// answer comes back as a cmd/ack, polled until it arrives.
function offerDriverMessage(deviceId) {
  const form = $("#driver-message");
  if (!["admin", "enforcement"].includes(app.me.role)) return;
  form.hidden = false;
  form.dataset.truck = deviceId;
  $("#driver-message-truck").textContent = deviceId;
  $("#driver-message-status").textContent = "";
  form.onsubmit = async (event) => {
    event.preventDefault();
    const truck = form.dataset.truck;
    const status = $("#driver-message-status");
    const body = { text: form.elements.text.value, emergency: form.elements.emergency.checked };
    try {
      const sent = await api(`/trucks/${encodeURIComponent(truck)}/messages`, { method: "POST", body });
      status.textContent = t("trucks.message.sent");
      form.elements.text.value = "";
      for (let tries = 0; tries < 15 && form.dataset.truck === truck; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const answer = await api(`/trucks/${encodeURIComponent(truck)}/messages/${encodeURIComponent(sent.command_id)}`);
        if (answer.result) {
          status.textContent = `${t("trucks.message.answer")}: ${t(`command.result.${answer.result}`)}${answer.detail ? ` · ${answer.detail}` : ""}`;
          return;
        }
      }
      if (form.dataset.truck === truck) status.textContent = t("trucks.message.unanswered");
    } catch (error) {
      status.textContent = error.message;
    }
  };
}

async function loadViolations() {
  const list = await api("/trucks/violations?limit=100");
  const body = $("#violation-rows");
  body.textContent = "";
  for (const v of list) {
    body.append(el("tr", { "data-testid": "violation-row", onclick: () => showTrack(v.source_id) }, el("td", { class: `sev-${v.severity}` }, t(`type.${v.alarm_type}`)),
      el("td", {}, v.source_id), el("td", {}, fmtTime(v.raised_at)), el("td", {}, t(`alarm.state.${v.state}`))));
  }
}

// parking

async function viewParking() {
  const map = await baseMap("parking", $("#parking-map"));
  const [lots, zones] = await Promise.all([cityLayer("lots"), cityLayer("zones")]);
  app.parkingShapes = { lots, zones };
  map.layer("areas");
  await loadParking(true);
  every(10000, () => loadParking(false));
}

function occupancyColour(occ) {
  if (occ === null || occ === undefined) return "#cbd5e1";
  if (occ >= 0.9) return "#d33a2c";
  if (occ >= 0.7) return "#e0a800";
  return "#1e9e4a";
}

async function loadParking(fit) {
  const map = app.maps.parking;
  const [lots, zones] = await Promise.all([api("/parking/lots"), api("/parking/zones")]);
  const byId = new Map([...lots, ...zones].map((a) => [a.id, a]));
  map.clear("areas");
  for (const kind of ["lots", "zones"]) {
    const shapes = app.parkingShapes[kind];
    if (shapes) map.addGeoJSON("areas", shapes, (f) => {
      const a = byId.get(f.id);
      return { fill: occupancyColour(a && a.occupancy), title: a ? `${a.name} ${a.occupied}/${a.capacity}` : f.id };
    });
  }
  const body = $("#parking-rows");
  body.textContent = "";
  for (const a of [...lots, ...zones]) {
    const occ = a.occupancy === null ? "—" : `${Math.round(a.occupancy * 100)}%`;
    body.append(el("tr", { "data-testid": "parking-row", "data-area": a.id, onclick: () => map.centreOn(a.lon, a.lat, 600) },
      el("td", {}, a.name), el("td", {}, t(a.kind === "lot" ? "parking.lot" : "parking.zone")), el("td", {}, a.capacity),
      el("td", { "data-testid": "parking-occupied" }, a.occupied), el("td", {}, a.free),
      el("td", {}, el("div", { class: "bar", title: occ }, el("i", { style: { width: `${Math.round((a.occupancy || 0) * 100)}%`, background: occupancyColour(a.occupancy) } })), occ)));
  }
  $("#parking-at").textContent = fmtTime(new Date().toISOString());
  if (fit) map.fit();
}

// the overview map (一张图): every asset kind as a layer, coloured by its open alarms

const ASSET_KINDS = ["lighting", "cabinet", "truck", "manhole", "parking"];
const overview = { devices: new Map(), alarms: new Map(), hidden: new Set() };

async function fetchAllDevices() {
  const all = [];
  for (let offset = 0; ; offset += 10000) {
    const page = await api(`/devices?limit=10000&offset=${offset}`);
    all.push(...page);
    if (page.length < 10000) return all;
  }
}

function openAlarmsOf(id) {
  return [...overview.alarms.values()].filter((a) => a.source_id === id);
}

function assetState(id) {
  const open = openAlarmsOf(id);
  if (open.some((a) => a.alarm_type === "offline")) return "offline";
  return open.length ? "alarm" : "ok";
}

function recolour(id) {
  const state = assetState(id);
  const d = overview.devices.get(id);
  const map = app.maps.overview;
  if (d && map && map.updatePoint(d.kind, id, { state, className: `asset ${d.kind} st-${state}` })) return;
  for (const c of document.querySelectorAll(`#overview-map circle[data-id="${CSS.escape(id)}"]`)) {
    c.classList.remove("st-ok", "st-alarm", "st-offline");
    c.classList.add(`st-${state}`);
  }
}

function layerToggles(map) {
  const box = $("#overview-layers");
  box.textContent = "";
  for (const kind of ASSET_KINDS) {
    const count = [...overview.devices.values()].filter((d) => d.kind === kind).length;
    const input = el("input", { type: "checkbox", checked: !overview.hidden.has(kind), "data-testid": `layer-${kind}` });
    input.addEventListener("change", () => {
      if (input.checked) overview.hidden.delete(kind); else overview.hidden.add(kind);
      map.layer(kind).setAttribute("display", input.checked ? "inline" : "none");
    });
    map.layer(kind).setAttribute("display", overview.hidden.has(kind) ? "none" : "inline");
    box.append(el("label", {}, input, ` ${t(`kind.${kind}`)} (${count})`));
  }
}

async function viewOverview() {
  const map = await baseMap("overview", $("#overview-map"));
  const [devices, open, lots, zones, trucks] = await Promise.all([
    fetchAllDevices(),
    api("/alarms?open=true&limit=10000").catch(() => []),
    cityLayer("lots"), cityLayer("zones"),
    api("/trucks/positions").catch(() => null),
  ]);
  overview.devices = new Map(devices.map((d) => [d.device_id, d]));
  overview.alarms = new Map(open.map((a) => [a.id, a]));
  const areaState = (f) => (devices.some((d) => d.kind === "parking" && [(d.attributes || {}).lot_id, (d.attributes || {}).zone_id].includes(f.id) && assetState(d.device_id) !== "ok") ? "st-alarm" : "");
  for (const layer of [lots, zones]) if (layer) map.addGeoJSON("parking", layer, (f) => ({ className: areaState(f), title: (f.properties && f.properties.name) || f.id }));
  const truckAt = new Map(((trucks && trucks.features) || []).map((f) => [f.id, f]));
  for (const kind of ASSET_KINDS) map.layer(kind);
  const points = Object.fromEntries(ASSET_KINDS.map((k) => [k, []]));
  for (const d of devices) {
    if (!ASSET_KINDS.includes(d.kind)) continue;
    let { lon, lat } = d;
    let title = `${t(`kind.${d.kind}`)} · ${d.name || d.device_id}`;
    const position = truckAt.get(d.device_id);
    if (position) {
      [lon, lat] = position.geometry.coordinates;
      title += ` · ${fmtNumber(position.properties.speed_kmh)} km/h · ${fmtNumber(position.properties.heading_deg, 0)}°`;
    }
    if (lon === null || lat === null || lon === undefined || lat === undefined) continue;
    const state = assetState(d.device_id);
    points[d.kind].push({ id: d.device_id, lon, lat, state, className: `asset ${d.kind} st-${state}`, title });
  }
  // clustered at low zoom when a layer has many points in view (map.js, supercluster)
  for (const kind of ASSET_KINDS) map.setPoints(kind, points[kind], showAsset, KIND_COLOURS[kind]);
  layerToggles(map);
  map.fit();
  const stream = new EventSource("/alarms/stream");
  app.streams.push(stream);
  stream.onopen = () => $("#overview-live").classList.add("on");
  stream.onerror = () => $("#overview-live").classList.remove("on");
  for (const change of ["raised", "updated", "acknowledged", "cleared"]) {
    stream.addEventListener(change, (e) => {
      const a = JSON.parse(e.data).alarm;
      if (!a) return;
      if (a.state === "cleared") overview.alarms.delete(a.id); else overview.alarms.set(a.id, a);
      recolour(a.source_id);
      if ($("#overview-detail").dataset.id === a.source_id) showAsset(a.source_id);
    });
  }
  every(30000, async () => {
    const fresh = await api("/trucks/positions").catch(() => null);
    for (const f of (fresh && fresh.features) || []) {
      map.updatePoint("truck", f.id, { lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1] });
    }
  });
}

async function showAsset(id) {
  const box = $("#overview-detail");
  box.dataset.id = id;
  const d = overview.devices.get(id) || { device_id: id };
  const caseIds = [...new Set(openAlarmsOf(id).map((a) => a.case_id).filter((c) => c))];
  const [latest, cases] = await Promise.all([
    api(`/devices/${encodeURIComponent(id)}/latest`).catch(() => null),
    Promise.all(caseIds.map((c) => api(`/cases/${c}`).catch(() => null))).then((list) => list.filter((c) => c)),
  ]);
  box.textContent = "";
  const state = assetState(id);
  box.append(el("h2", { "data-testid": "asset-title" }, d.name || id),
    el("dl", { class: "facts" },
      el("dt", {}, t("overview.id")), el("dd", {}, id),
      el("dt", {}, t("overview.kind")), el("dd", {}, t(`kind.${d.kind}`)),
      el("dt", {}, t("overview.state")), el("dd", { "data-testid": "asset-state" }, el("span", { class: `key ${state}` }), " ", t(`state.${state}`))));
  const values = latest && (latest.values || latest);
  if (values && typeof values === "object") {
    box.append(el("h3", {}, t("overview.latest"), latest.ts ? ` · ${fmtTime(latest.ts)}` : ""));
    box.append(el("dl", { class: "facts", "data-testid": "asset-latest" },
      ...Object.entries(values).filter(([k, v]) => k !== "ts" && k !== "device_id" && (typeof v !== "object" || v === null))
        .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "number" ? fmtNumber(v, 2) : String(v))])));
  }
  const alarms = openAlarmsOf(id);
  box.append(el("h3", {}, t("overview.alarms")), el("ul", { "data-testid": "asset-alarms" },
    ...(alarms.length ? alarms.map((a) => el("li", { class: `sev-${a.severity}` }, `${t(`type.${a.alarm_type}`)} · ${t(`sev.${a.severity}`)} · ${fmtTime(a.raised_at)}`)) : [el("li", { class: "hint" }, t("none"))])));
  if (cases.length) {
    box.append(el("h3", {}, t("view.cases")), el("ul", { "data-testid": "asset-cases" },
      ...cases.map((c) => el("li", {}, el("a", { href: `#cases/${c.id}` }, c.case_number), ` · ${t(`status.${c.status}`)}`))));
  }
}

// manhole covers

async function viewManholes() {
  const map = await baseMap("manholes", $("#manholes-map"));
  map.layer("manhole");
  await loadManholes(true);
  every(30000, () => loadManholes(false));
}

async function loadManholes(fit) {
  const covers = await api("/manholes?limit=10000");
  const map = app.maps.manholes;
  map.clear("manhole");
  const body = $("#manhole-rows");
  body.textContent = "";
  const canRecalibrate = ["admin", "centre"].includes(app.me.role);
  covers.sort((a, b) => (b.open_alarms.length - a.open_alarms.length) || a.device_id.localeCompare(b.device_id));
  let alarmed = 0;
  for (const c of covers) {
    const state = c.open_alarms.includes("offline") ? "offline" : c.open_alarms.length ? "alarm" : "ok";
    if (c.open_alarms.length) alarmed += 1;
    map.addPoint("manhole", c.lon, c.lat, `asset st-${state}`, `${c.device_id} · ${c.open_alarms.map((a) => t(`type.${a}`)).join(", ")}`, null, c.device_id);
    const button = canRecalibrate ? el("button", { type: "button", "data-testid": "recalibrate", onclick: async (e) => {
      e.stopPropagation();
      try {
        await api(`/manholes/${encodeURIComponent(c.device_id)}/recalibrate`, { method: "POST", body: {} });
        e.target.textContent = t("manholes.sent");
        e.target.disabled = true;
        $("#manhole-error").textContent = "";
      } catch (err) { $("#manhole-error").textContent = `${c.device_id}: ${err.message}`; }
    } }, t("manholes.recalibrate")) : "";
    body.append(el("tr", { "data-testid": "manhole-row", "data-device": c.device_id, class: c.open_alarms.length ? "alarmed" : "", onclick: () => map.centreOn(c.lon, c.lat, 600) },
      el("td", {}, c.device_id),
      el("td", {}, c.tilt_deg === null ? "—" : `${fmtNumber(c.tilt_deg)}°`),
      el("td", {}, c.water_level_cm === null ? "—" : `${fmtNumber(c.water_level_cm, 0)} cm`),
      el("td", {}, c.battery_pct === null ? "—" : `${fmtNumber(c.battery_pct, 0)}%`),
      el("td", { "data-testid": "manhole-alarms", class: c.open_alarms.length ? "sev-major" : "" }, c.open_alarms.map((a) => t(`type.${a}`)).join("、") || t("none")),
      el("td", {}, fmtTime(c.last_ts)), el("td", {}, button)));
  }
  $("#manhole-count").textContent = String(covers.length);
  $("#manhole-alarmed").textContent = String(alarmed);
  if (fit) map.fit();
}

// the dashboard (仪表盘) is in dashboard.js

// audit

async function viewAudit() {
  const rows = await api("/audit?limit=200");
  const body = $("#audit-rows");
  body.textContent = "";
  for (const r of rows) {
    body.append(el("tr", { "data-testid": "audit-row", title: JSON.stringify({ before: r.before, after: r.after }).slice(0, 2000) },
      el("td", {}, fmtTime(r.at)), el("td", {}, `${r.actor} (${r.role})`), el("td", {}, `${r.method} ${r.path}`), el("td", {}, r.status)));
  }
}

const VIEWS = { overview: viewOverview, dashboard: viewDashboard, cases: viewCases, evaluation: viewEvaluation, faults: viewFaults, trucks: viewTrucks, parking: viewParking, manholes: viewManholes, audit: viewAudit };


// start

async function start() {
  app.me = await api("/auth/me");
  $("#view-login").hidden = true;
  renderNav();
  await route();
}

async function boot() {
  app.dict = await fetch("i18n.json").then((r) => r.json());
  applyI18n();
  $("#lang").addEventListener("click", () => {
    app.lang = app.lang === "zh" ? "en" : "zh";
    localStorage.setItem("hub.lang", app.lang);
    applyI18n();
    if (app.me) { renderNav(); route(); }
  });
  $("#logout").addEventListener("click", async () => {
    await api("/auth/logout", { method: "POST" }).catch(() => null);
    showLogin();
  });
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    $("#login-error").textContent = "";
    try {
      await api("/auth/login", { method: "POST", body: { username: f.username.value, password: f.password.value } });
    } catch (err) {
      $("#login-error").textContent = err.status === 429 ? t("login.throttled") : t("login.failed");
      return;
    }
    f.password.value = "";
    await start();
  });
  window.addEventListener("hashchange", route);
  try {
    await start();
  } catch (err) {
    showLogin();
  }
}

boot();
