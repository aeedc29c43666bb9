// The centre's desk (中心工作台): the shift leader's queues and overdue board with 督办, merging
// duplicate reports (案件合并), call-backs (回访), attachments (photos before/after, on site),
// statistics by grid/community/street/department with the hot spots, and the working
// calendar's reach. Each panel calls one route and says so when the caller's role may not.
// Uses console.js's helpers (api, el, t, fmtTime, fmtNumber, deptName, lightDot, $, app).
"use strict";

const pct = (rate) => (rate === null || rate === undefined ? "n/a" : `${fmtNumber(rate * 100, 2)}%`);

function panel(title, testid) {
  const body = el("div", { class: "panel-body" });
  const card = el("section", { class: "card", "data-testid": testid }, el("h2", {}, t(title)), body);
  return [card, body];
}

// Runs one panel's loader; a refusal (403) or failure shows in the panel, not as a broken view.
async function fill(body, loader) {
  body.textContent = "";
  try {
    await loader(body);
  } catch (err) {
    body.append(el("p", { class: "hint", "data-testid": "panel-refused" }, err.status === 403 ? t("centre.refused") : err.message));
  }
}

function table(head, rows, testid) {
  return el("table", { class: "list", "data-testid": testid },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

async function loadSupervision(body) {
  const view = await api("/supervision");
  body.append(table(
    [t("centre.post"), t("centre.total"), t("light.green"), t("light.yellow"), t("light.red")],
    view.queues.map((q) => el("tr", { "data-testid": `queue-${q.post}` },
      el("td", {}, t(`post.${q.post}`)), el("td", {}, q.total), el("td", {}, q.green), el("td", {}, q.yellow), el("td", {}, q.red))),
    "queues"));
  body.append(el("h3", {}, t("centre.overdue")));
  if (!view.overdue.length) {
    body.append(el("p", { class: "hint" }, t("centre.none")));
    return;
  }
  body.append(table(
    ["", t("cases.number"), t("cases.class"), t("cases.department"), t("cases.due"), ""],
    view.overdue.map((c) => {
      const note = el("input", { placeholder: t("centre.urge_note"), size: 14, "data-testid": "urge-note" });
      const error = el("span", { class: "error" });
      const urge = async () => {
        try {
          await api(`/cases/${c.id}/urge`, { method: "POST", body: { note: note.value.trim() || t("centre.urge"), expected_version: c.version } });
        } catch (err) { error.textContent = err.message; return; }
        await fill(body, loadSupervision);
      };
      return el("tr", { "data-testid": "overdue-row", "data-case": c.id },
        el("td", {}, lightDot(c.light)), el("td", {}, el("a", { href: `#cases/${c.id}` }, c.case_number)),
        el("td", {}, `${c.class_code} ${c.class_name || ""}`), el("td", {}, deptName(c.department, c.department_name)),
        el("td", {}, fmtTime(c.stage_due_at)),
        el("td", {}, note, el("button", { type: "button", onclick: urge, "data-testid": "urge" }, t("centre.urge")), error));
    }),
    "overdue-board"));
}

function mergeForm(body) {
  const duplicate = el("input", { type: "number", min: "1", placeholder: t("centre.duplicate"), "data-testid": "merge-duplicate" });
  const into = el("input", { placeholder: t("centre.into"), "data-testid": "merge-into" });
  const out = el("span", { "data-testid": "merge-result" });
  const go = async () => {
    out.className = "";
    try {
      const merged = await api(`/cases/${Number(duplicate.value)}/merge`, { method: "POST", body: { into: into.value.trim() } });
      out.textContent = `${merged.case_number} → ${merged.merged_into}`;
    } catch (err) { out.className = "error"; out.textContent = err.message; }
  };
  body.append(el("div", { class: "filters" }, duplicate, into, el("button", { type: "button", onclick: go, "data-testid": "merge-go" }, t("centre.merge_go")), out));
}

async function loadCallbacks(body) {
  const due = await api("/cases?callback_due=true&limit=50");
  if (!due.length) {
    body.append(el("p", { class: "hint", "data-testid": "callbacks-empty" }, t("centre.none")));
    return;
  }
  body.append(table(
    [t("cases.number"), t("cases.source"), t("cases.description"), t("centre.satisfaction"), ""],
    due.map((c) => {
      const answer = el("select", { "data-testid": "callback-answer" },
        ...["satisfied", "basically_satisfied", "unsatisfied", "unreachable"].map((s) => el("option", { value: s }, t(`sat.${s}`))));
      const note = el("input", { size: 12, placeholder: t("cases.note") });
      const error = el("span", { class: "error" });
      const record = async () => {
        try {
          await api(`/cases/${c.id}/callback`, { method: "POST", body: { satisfaction: answer.value, note: note.value.trim() || undefined } });
        } catch (err) { error.textContent = err.message; return; }
        await fill(body, loadCallbacks);
      };
      return el("tr", { "data-testid": "callback-row", "data-case": c.id },
        el("td", {}, el("a", { href: `#cases/${c.id}` }, c.case_number)), el("td", {}, sourceName(c.source)),
        el("td", {}, c.description), el("td", {}, answer, note),
        el("td", {}, el("button", { type: "button", onclick: record, "data-testid": "callback-go" }, t("centre.callback_go")), error));
    }),
    "callbacks"));
}

function attachmentsForm(body) {
  const caseId = el("input", { type: "number", min: "1", placeholder: t("centre.case_id"), "data-testid": "attach-case" });
  const kind = el("select", { "data-testid": "attach-kind" }, ...["before", "after", "verify", "evidence"].map((k) => el("option", { value: k }, t(`kind.${k}`))));
  const file = el("input", { type: "file", accept: "image/jpeg,image/png,image/webp,application/pdf", "data-testid": "attach-file" });
  const out = el("div", { "data-testid": "attach-list" });
  const error = el("span", { class: "error", "data-testid": "attach-error" });
  const show = async () => {
    out.textContent = "";
    error.textContent = "";
    let list;
    try { list = await api(`/cases/${Number(caseId.value)}/attachments`); } catch (err) { error.textContent = err.message; return; }
    for (const a of list) {
      const link = el("a", { href: a.url, target: "_blank", rel: "noopener" }, `${t(`kind.${a.kind}`)} · ${a.filename || a.content_type} · ${fmtNumber(a.size / 1024, 1)} KiB · ${fmtTime(a.uploaded_at)}`);
      out.append(el("p", { "data-testid": "attachment", "data-kind": a.kind }, link, a.uploaded_by ? ` · ${a.uploaded_by}` : ""));
      if (a.content_type.startsWith("image/")) out.append(el("img", { src: a.url, alt: a.kind, class: "thumb", width: 160 }));
    }
  };
  const upload = async () => {
    error.textContent = "";
    const chosen = file.files[0];
    if (!chosen) return;
    const response = await fetch(`/cases/${Number(caseId.value)}/attachments?kind=${kind.value}&filename=${encodeURIComponent(chosen.name)}`, {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": chosen.type || "application/octet-stream", Accept: "application/json" }, body: chosen,
    });
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      error.textContent = data && data.detail ? String(data.detail) : response.statusText;
      return;
    }
    await show();
  };
  body.append(el("div", { class: "filters" }, caseId, kind, file,
    el("button", { type: "button", onclick: upload, "data-testid": "attach-upload" }, t("centre.upload")),
    el("button", { type: "button", onclick: show, "data-testid": "attach-show" }, t("centre.list")), error), out);
}

function statsForm(body) {
  const level = el("select", { "data-testid": "stats-level" }, ...["grid", "community", "street", "department"].map((l) => el("option", { value: l }, t(`level.${l}`))));
  // Empty dates: the hub counts this month so far in the city's days, whatever the
  // browser's time zone.
  const start = el("input", { type: "date", "data-testid": "stats-start" });
  const end = el("input", { type: "date", "data-testid": "stats-end" });
  const out = el("div", {});
  const rows = (areas) => areas.map((a) => el("tr", { "data-testid": "stats-row", "data-key": a.key },
    el("td", {}, a.name || a.key), el("td", {}, a.reported), el("td", {}, a.registered),
    el("td", {}, pct(a.closure_rate)), el("td", {}, pct(a.on_time_handling_rate)), el("td", {}, pct(a.registration_rate)),
    el("td", {}, pct(a.on_time_dispatch_rate)), el("td", {}, pct(a.satisfaction_rate)),
    el("td", {}, a.top_classes.map(([code, n]) => `${code}×${n}`).join(" "))));
  const head = [t(`level.${level.value}`), t("centre.reported"), t("centre.registered"), t("centre.closure_rate"),
    t("centre.on_time_handling_rate"), t("centre.registration_rate"), t("centre.on_time_dispatch_rate"), t("centre.satisfaction_rate"), t("cases.class")];
  const load = () => fill(out, async (box) => {
    const query = new URLSearchParams({ level: level.value });
    if (start.value) query.set("start", start.value);
    if (end.value) query.set("end", end.value);
    const figures = await api(`/statistics?${query}`);
    head[0] = t(`level.${level.value}`);
    box.append(table(head, rows(figures.areas), "stats-table"));
    box.append(el("h3", {}, t("centre.hot_spots")));
    box.append(table(head.map((h, i) => (i === 0 ? t("level.grid") : h)), rows(figures.hot_spots), "hot-spots"));
  });
  body.append(el("div", { class: "filters" }, level, start, end, el("button", { type: "button", onclick: load, "data-testid": "stats-go" }, t("refresh"))), out);
  return load;
}

async function loadCalendar(body) {
  const cal = await api("/calendar");
  body.append(el("dl", { class: "facts", "data-testid": "calendar" },
    el("dt", {}, t("centre.covers_until")), el("dd", { "data-testid": "calendar-until" }, cal.covers_until || "—"),
    el("dt", {}, t("centre.years")), el("dd", {}, cal.imported_years.join(", ") || "—")));
  if (cal.warning) body.append(el("p", { class: "error", "data-testid": "calendar-warning" }, cal.warning));
}

async function viewCentre() {
  const root = $("#view-centre");
  root.textContent = "";
  const [queues, queuesBody] = panel("centre.queues", "centre-queues");
  const [merge, mergeBody] = panel("centre.merge", "centre-merge");
  const [callbacks, callbacksBody] = panel("centre.callbacks", "centre-callbacks");
  const [attachments, attachmentsBody] = panel("centre.attachments", "centre-attachments");
  const [stats, statsBody] = panel("centre.stats", "centre-stats");
  const [calendar, calendarBody] = panel("centre.calendar", "centre-calendar");
  root.append(queues, merge, callbacks, attachments, stats, calendar);
  mergeForm(mergeBody);
  attachmentsForm(attachmentsBody);
  const loadStats = statsForm(statsBody);
  await Promise.all([fill(queuesBody, loadSupervision), fill(callbacksBody, loadCallbacks), loadStats(), fill(calendarBody, loadCalendar)]);
}

VIEWS.centre = viewCentre;
