// The dashboard (仪表盘): the figures the seeds name as tiles and Chart.js charts (vendor/),
// from the hub's API. It refreshes live: every alarm change on /alarms/stream redraws it
// (at most once a second), and a slow timer catches what the stream does not carry (cases,
// meters, parking). Uses console.js's helpers (api, t, el, fmt*, ASSET_KINDS, every, app).
"use strict";

const KIND_COLOURS = { lighting: "#f59e0b", cabinet: "#8b5cf6", truck: "#2563eb", manhole: "#0f766e", parking: "#db2777" };

function drawChart(id, config) {
  const canvas = document.getElementById(id);
  const existing = window.Chart.getChart(canvas);
  if (existing) {
    existing.data = config.data;
    existing.update();
    return existing;
  }
  return new window.Chart(canvas, { ...config, options: { animation: false, responsive: true, maintainAspectRatio: false, ...(config.options || {}) } });
}

function tile(key, value, testid) {
  return el("div", { class: "tile", "data-testid": testid }, el("b", {}, value), el("span", {}, t(key)));
}

const sum = (list, key) => list.reduce((n, x) => n + (Number(x[key]) || 0), 0);
const ratio = (a, b) => (b ? `${fmtNumber((a / b) * 100, 1)}%` : "—");

async function loadDashboard() {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const yesterday = new Date(midnight.getTime() - 86400e3);
  const ymd = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  const monthStart = ymd(new Date(midnight.getFullYear(), midnight.getMonth(), 1));
  const tomorrow = ymd(new Date(midnight.getTime() + 86400e3 * 1.5));
  const since = (d) => encodeURIComponent(d.toISOString());
  const [devices, open, cases, lots, zones, rate, energyToday, energyYesterday, violations, evaluation] = await Promise.all([
    fetchAllDevices(),
    api("/alarms?open=true&limit=10000").catch(() => null),
    api("/cases?limit=1000").catch(() => null),
    api("/parking/lots").catch(() => null),
    api("/parking/zones").catch(() => null),
    api(`/lighting/rate?since=${since(midnight)}`).catch(() => null),
    api(`/lighting/energy?since=${since(midnight)}`).catch(() => null),
    api(`/lighting/energy?since=${since(yesterday)}&until=${since(midnight)}`).catch(() => null),
    api(`/trucks/violations?since=${since(midnight)}&limit=1000`).catch(() => null),
    api(`/evaluation?start=${monthStart}&end=${tomorrow}`).catch(() => null),
  ]);
  const city = rate && (rate.find((r) => r.district === null) || null);
  const litRate = city ? city.rate_pct : rate && rate.length ? (100 * sum(rate, "lit_samples")) / Math.max(sum(rate, "due_samples"), 1) : null;
  const depts = (evaluation && evaluation.departments) || [];
  const kindOf = new Map(devices.map((d) => [d.device_id, d.kind]));
  const states = Object.fromEntries(ASSET_KINDS.map((k) => [k, { ok: 0, alarm: 0, offline: 0 }]));
  const alarmsBySource = new Map();
  for (const a of open || []) {
    if (!alarmsBySource.has(a.source_id)) alarmsBySource.set(a.source_id, []);
    alarmsBySource.get(a.source_id).push(a);
  }
  for (const d of devices) {
    if (!states[d.kind]) continue;
    const list = alarmsBySource.get(d.device_id) || [];
    states[d.kind][list.some((a) => a.alarm_type === "offline") ? "offline" : list.length ? "alarm" : "ok"] += 1;
  }
  const areas = [...(lots || []), ...(zones || [])];
  const sensors = areas.reduce((n, a) => n + a.occupied + a.free, 0);
  const occupied = areas.reduce((n, a) => n + a.occupied, 0);
  const openCases = (cases || []).filter((c) => !["closed", "voided", "rejected"].includes(c.status));
  $("#dashboard-tiles").replaceChildren(
    tile("dash.assets", fmtNumber(devices.length, 0), "tile-assets"),
    tile("dash.open_alarms", open ? fmtNumber(open.length, 0) : "—", "tile-alarms"),
    tile("dash.open_cases", cases ? fmtNumber(openCases.length, 0) : "—", "tile-cases"),
    tile("dash.occupancy", sensors ? `${fmtNumber((occupied / sensors) * 100, 0)}%` : "—", "tile-occupancy"),
    tile("dash.lighting_rate", litRate === null || litRate === undefined ? "—" : `${fmtNumber(litRate, 1)}%`, "tile-lighting-rate"),
    tile("dash.energy", energyToday ? `${fmtNumber(sum(energyToday, "energy_kwh"), 1)} / ${energyYesterday ? fmtNumber(sum(energyYesterday, "energy_kwh"), 1) : "—"} kWh` : "—", "tile-energy"),
    tile("dash.closure_rate", evaluation ? ratio(sum(depts, "closed"), sum(depts, "due")) : "—", "tile-closure-rate"),
    tile("dash.on_time_handling_rate", evaluation ? ratio(sum(depts, "handled_on_time"), sum(depts, "due_for_handling")) : "—", "tile-on-time-handling"),
  );
  const violationTypes = [...new Set((violations || []).map((v) => v.alarm_type))].sort();
  drawChart("chart-violations", { type: "bar", data: { labels: violationTypes.map((v) => t(`type.${v}`)), datasets: [{ label: t("trucks.violations"), data: violationTypes.map((v) => violations.filter((x) => x.alarm_type === v).length), backgroundColor: "#2563eb" }] }, options: { plugins: { legend: { display: false } } } });
  const lights = ["green", "yellow", "red"];
  drawChart("chart-lights", { type: "doughnut", data: { labels: lights.map((l) => t(`light.${l}`)), datasets: [{ data: lights.map((l) => openCases.filter((c) => c.light === l).length), backgroundColor: ["#1e9e4a", "#e0a800", "#d33a2c"] }] } });
  const alarmCounts = ASSET_KINDS.map((k) => (open || []).filter((a) => kindOf.get(a.source_id) === k).length);
  drawChart("chart-alarms", { type: "bar", data: { labels: ASSET_KINDS.map((k) => t(`kind.${k}`)), datasets: [{ label: t("dash.open_alarms"), data: alarmCounts, backgroundColor: ASSET_KINDS.map((k) => KIND_COLOURS[k]) }] }, options: { plugins: { legend: { display: false } } } });
  const statuses = STATUSES.filter((s) => (cases || []).some((c) => c.status === s));
  drawChart("chart-cases", { type: "doughnut", data: { labels: statuses.map((s) => t(`status.${s}`)), datasets: [{ data: statuses.map((s) => cases.filter((c) => c.status === s).length) }] } });
  drawChart("chart-parking", { type: "bar", data: { labels: areas.map((a) => a.name || a.id), datasets: [{ label: t("parking.occupancy"), data: areas.map((a) => (a.occupancy === null ? 0 : Math.round(a.occupancy * 100))), backgroundColor: "#db2777" }] }, options: { indexAxis: "y", scales: { x: { min: 0, max: 100 } }, plugins: { legend: { display: false } } } });
  drawChart("chart-assets", { type: "bar", data: { labels: ASSET_KINDS.map((k) => t(`kind.${k}`)), datasets: ["ok", "alarm", "offline"].map((st) => ({ label: t(`state.${st}`), data: ASSET_KINDS.map((k) => states[k][st]), backgroundColor: { ok: "#1e9e4a", alarm: "#d33a2c", offline: "#6b7280" }[st] })) }, options: { scales: { x: { stacked: true }, y: { stacked: true } } } });
  drawFaultsByPriority(open || [], kindOf);
  drawEnergy(energyToday || [], energyYesterday || [], rate || []);
  drawDepartmentRates(depts);
  await drawOccupancyOverDay(lots || []);
  $("#dashboard-at").textContent = fmtTime(new Date().toISOString());
}

const SEVERITIES = ["critical", "major", "minor", "warning"];

// Open faults by priority (severity, most urgent first), stacked by asset kind. A truck's
// rule violations are not faults of the asset (they are in the violations chart); a truck
// that went silent is.
function drawFaultsByPriority(open, kindOf) {
  const faults = open.filter((a) => kindOf.get(a.source_id) !== "truck" || a.alarm_type === "offline");
  const kinds = ASSET_KINDS.filter((k) => faults.some((a) => kindOf.get(a.source_id) === k));
  drawChart("chart-faults", {
    type: "bar",
    data: {
      labels: SEVERITIES.map((s) => t(`sev.${s}`)),
      datasets: kinds.map((k) => ({
        label: t(`kind.${k}`),
        data: SEVERITIES.map((s) => faults.filter((a) => a.severity === s && kindOf.get(a.source_id) === k).length),
        backgroundColor: KIND_COLOURS[k],
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });
}

// Lamp energy per district today against yesterday (bars), and today's 亮灯率 (a line on
// its own axis), from /lighting/energy and /lighting/rate by district.
function drawEnergy(today, yesterday, rates) {
  const byKey = (list) => new Map(list.map((e) => [e.key, e.energy_kwh]));
  const a = byKey(today), b = byKey(yesterday);
  const rateOf = new Map(rates.filter((r) => r.district !== null).map((r) => [r.district, r.rate_pct]));
  const districts = [...new Set([...a.keys(), ...b.keys()])].filter((k) => k !== null).sort();
  drawChart("chart-energy", {
    type: "bar",
    data: {
      labels: districts,
      datasets: [
        { label: t("dash.today"), data: districts.map((d) => a.get(d) ?? 0), backgroundColor: "#f59e0b", yAxisID: "y" },
        { label: t("dash.yesterday"), data: districts.map((d) => b.get(d) ?? 0), backgroundColor: "#cbd5e1", yAxisID: "y" },
        { type: "line", label: t("dash.lighting_rate"), data: districts.map((d) => rateOf.get(d) ?? null), borderColor: "#1e9e4a", backgroundColor: "#1e9e4a", yAxisID: "rate" },
      ],
    },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "kWh" } }, rate: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "%" } } } },
  });
}

// 结案率 and 按期处置率 per department this month (DOMAIN.md's formulas, from /evaluation);
// a department with nothing due has no bar (n/a, not 0 %).
function drawDepartmentRates(depts) {
  const shown = depts.filter((d) => d.closure_rate !== null || d.on_time_handling_rate !== null);
  const pct = (v) => (v === null || v === undefined ? null : Math.round(v * 1000) / 10);
  drawChart("chart-rates", {
    type: "bar",
    data: {
      labels: shown.map((d) => deptName(d.department, d.department_name)),
      datasets: [
        { label: t("eval.closure_rate"), data: shown.map((d) => pct(d.closure_rate)), backgroundColor: "#2563eb" },
        { label: t("dash.on_time_handling_rate_short"), data: shown.map((d) => pct(d.on_time_handling_rate)), backgroundColor: "#0f766e" },
      ],
    },
    options: { scales: { y: { min: 0, max: 100, title: { display: true, text: "%" } } } },
  });
}

const LOT_COLOURS = ["#db2777", "#2563eb", "#0f766e", "#f59e0b", "#8b5cf6", "#1e9e4a", "#d33a2c", "#6b7280"];
const MAX_LOTS = 8;
const HOUR_MS = 3600e3;

// Occupancy of each lot over the last 24 hours (hourly, from /parking/lots/{id}/history),
// ending with its occupancy now. The busiest lots first when there are many.
async function drawOccupancyOverDay(lots) {
  const now = Date.now();
  const start = new Date(Math.floor((now - 24 * HOUR_MS) / HOUR_MS) * HOUR_MS);
  const shown = [...lots].sort((a, b) => (b.occupancy || 0) - (a.occupancy || 0) || a.id.localeCompare(b.id)).slice(0, MAX_LOTS);
  const q = `start=${encodeURIComponent(start.toISOString())}&end=${encodeURIComponent(new Date(now).toISOString())}&bucket_min=60`;
  const histories = await Promise.all(shown.map((lot) => api(`/parking/lots/${encodeURIComponent(lot.id)}/history?${q}`).catch(() => [])));
  const times = [];
  for (let at = start.getTime(); at < now; at += HOUR_MS) times.push(at);
  const pct = (v) => (v === null || v === undefined ? null : Math.round(v * 1000) / 10);
  const hhmm = (ms) => new Date(ms).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit", hour12: false });
  drawChart("chart-occupancy-day", {
    type: "line",
    data: {
      labels: [...times.map(hhmm), t("dash.now")],
      datasets: shown.map((lot, i) => {
        const byStart = new Map(histories[i].map((b) => [new Date(b.start).getTime(), b.occupancy]));
        return {
          label: lot.name || lot.id,
          data: [...times.map((at) => pct(byStart.get(at))), pct(lot.occupancy)],
          borderColor: LOT_COLOURS[i % LOT_COLOURS.length],
          backgroundColor: LOT_COLOURS[i % LOT_COLOURS.length],
          spanGaps: true,
          pointRadius: 1,
        };
      }),
    },
    options: { scales: { y: { min: 0, max: 100, title: { display: true, text: "%" } } } },
  });
}

// Redraw on every alarm change (at most once a second), and every 30 s for the rest.
function liveDashboard() {
  let pending = null;
  const soon = () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      if (!$("#view-dashboard").hidden) loadDashboard().catch(() => null);
    }, 1000);
  };
  const stream = new EventSource("/alarms/stream");
  app.streams.push(stream);
  stream.onopen = () => $("#dashboard-live").classList.add("on");
  stream.onerror = () => $("#dashboard-live").classList.remove("on");
  for (const change of ["raised", "updated", "acknowledged", "cleared"]) stream.addEventListener(change, soon);
}

async function viewDashboard() {
  await loadDashboard();
  liveDashboard();
  every(30000, loadDashboard);
}

