// The release-time dashboard: reads GET /v1/indicators/release-times (with a participant's
// token, given in the page's fragment: /dashboard#token=...) or the public figures (no token:
// a published calendar month, the latest by default), and draws them with no library and
// nothing fetched from elsewhere, so it works offline. With an operator's or an agency's token
// it also reads GET /v1/risk/performance: how risk selection performed, by source.
// Every figure shown carries its raw value in milliseconds (data-ms), as the API gave it.
// The fragment may also choose the filters: #token=...&interval=agency-decision&groupBy=agency.
// When every figure asked for has arrived and is drawn, the body carries data-ready="true"
// (and data-params: the filters, as JSON), the status and the title say what is shown; a
// failure sets data-failed instead. Headless browsers and tests wait for one or the other.
"use strict";

const hash = new URLSearchParams(location.hash.slice(1));
const token = hash.get("token");
const endpoint = token ? "/v1/indicators/release-times" : "/v1/public/indicators/release-times";

// Each interval: its name, and what one row of its figures is, so what its counts count
// (src/indicators/figures.rs: consignment_value and agency_value; src/indicators/request.rs:
// Interval::per_agency, Dimension::per_agency).
// - A consignment's own intervals: one row per consignment whose interval closed (released,
//   for the release times; arrived, for arrival to lodgement; held or queried at all, for holds
//   and queries: the union of every agency's).
// - An agency's intervals (first answer, decision): one row per agency and consignment, the
//   agency's part (all its documents of the consignment, from the first routed to its first
//   answer, or to its decision on the last): a consignment that went to four agencies counts
//   four times.
// - Grouped by agency or agency kind, every interval is read from the agencies' parts: holds and
//   queries are each agency's own; a consignment's own interval counts the consignment once in
//   each agency's row (operators and traders; an agency reads its own parts, one per consignment).
// releaseTime: the consignment's release time, the average WTO TFA Art. 7.6 asks members to
// publish (measured as the WCO Time Release Study does: from arrival, or lodgement, to release).
const INTERVALS = {
  "arrival-to-release": { name: "arrival to release (TRS)", counted: "consignments released", releaseTime: true },
  "lodgement-to-release": { name: "lodgement to release", counted: "consignments released", releaseTime: true },
  "arrival-to-lodgement": { name: "arrival to lodgement", counted: "consignments arrived" },
  "agency-first-answer": { name: "agency: first answer", counted: "agency first answers", perAgency: true },
  "agency-decision": { name: "agency: decision", counted: "agency decisions", perAgency: true },
  "hold": { name: "time on hold", counted: "consignments held", byAgency: "agency holds" },
  "query-trader": { name: "query: trader's turn", counted: "consignments queried", byAgency: "agency queries" },
  "query-agency": { name: "query: agency's turn", counted: "consignments queried", byAgency: "agency queries" },
};
const AGENCY_SEGMENTS = ["agency", "agencyKind"];
const FIGURES = [["count", "count"], ["meanMs", "mean"], ["medianMs", "median"], ["p90Ms", "p90"], ["modeMs", "mode"],
  ["minMs", "min"], ["maxMs", "max"]];

/// What the counts of `interval`'s figures grouped by `groupBy` count.
function counted(interval, groupBy) {
  const i = INTERVALS[interval];
  return AGENCY_SEGMENTS.includes(groupBy) && i.byAgency ? i.byAgency : i.counted;
}

/// What a row of the figures is, when it is not simply a consignment.
function rowsNote(interval, groupBy) {
  const i = INTERVALS[interval];
  if (i.perAgency) {
    return "Each row counted is one agency's part in one consignment (its documents of the consignment): a consignment that went to four agencies counts four times.";
  }
  if (!AGENCY_SEGMENTS.includes(groupBy)) return "Each row counted is one consignment.";
  if (i.byAgency) return "By agency: each agency's own time, once per consignment; a consignment counts in each agency's row.";
  return "By agency: a consignment counts in the row of each agency it went to, so the rows add up to more than the consignments.";
}

async function figures(params) {
  const r = await fetch(`${endpoint}?${new URLSearchParams(params)}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const body = await r.json();
  if (!r.ok) throw new Error(`${body.code}: ${body.detail}`);
  return body;
}

function figureCell(cell, key, group) {
  if (cell.suppressed) return el("td", { class: "suppressed" }, "suppressed");
  const v = cell[key];
  if (v === undefined) return el("td", {}, "");
  const text = key === "count" ? String(v) : duration(v);
  return el("td", { "data-group": group, "data-figure": key, "data-ms": String(v) }, text);
}

function label(group) {
  const values = Object.values(group);
  return values.length ? values.join(" / ") : "all";
}

/// The period of an answer, in words: the public figures' month, or a participant's dates.
function periodText(f) {
  return f.minCount ? `lodged in ${f.from.slice(0, 7)}` : `lodged from ${f.from.slice(0, 10)} to ${f.to.slice(0, 10)}`;
}

/// The overall figures: of the answer with no segment (`f`), where each consignment counts once
/// (grouped by agency, a consignment's interval would count it once per agency).
function drawOverall(f) {
  const o = f.overall;
  const interval = INTERVALS[f.interval];
  const noun = counted(f.interval, "");
  const box = document.getElementById("overall");
  box.replaceChildren(el("h2", {}, interval.name),
    el("p", { class: "method", id: "overall-counted" }, `Counted: ${noun}, of the consignments ${periodText(f)}. ${rowsNote(f.interval, "")}`));
  const kpis = el("div", { class: "kpis" });
  const mean = interval.releaseTime ? "mean release time (TFA Art. 7.6)" : "mean";
  for (const [key, name] of [["meanMs", mean], ["medianMs", "median"], ["p90Ms", "90th percentile"], ["count", noun]]) {
    const v = o[key];
    const shown = o.suppressed ? "suppressed" : key === "count" ? String(v ?? 0) : duration(v);
    kpis.append(el("div", { class: key === "meanMs" ? "kpi main" : "kpi" },
      el("div", { class: "value", "data-overall": key, "data-ms": String(v ?? "") }, shown),
      el("div", { class: "label", "data-label": `overall-${key}` }, name)));
  }
  box.append(kpis);
}

function drawGroups(f) {
  const table = document.getElementById("groups");
  const groupBy = f.groupBy.join(",");
  const noun = counted(f.interval, groupBy);
  document.getElementById("groups-counted").textContent = `Counts: ${noun}. ${rowsNote(f.interval, groupBy)}`;
  const headers = FIGURES.map(([k, n]) => k === "count" ? el("th", { "data-label": "groups-count" }, noun) : el("th", {}, n));
  const head = el("tr", {}, el("th", {}, "segment"), ...headers, el("th", {}, "outliers"), el("th", {}, "mean without"));
  const rows = f.groups.map((g) => {
    const name = label(g.group);
    return el("tr", { "data-row": name }, el("td", {}, name), ...FIGURES.map(([k]) => figureCell(g, k, name)),
      el("td", {}, g.outliers ? String(g.outliers.count) : ""),
      g.withoutOutliers && g.withoutOutliers.meanMs !== undefined
        ? el("td", { "data-group": name, "data-figure": "meanWithoutOutliersMs", "data-ms": String(g.withoutOutliers.meanMs) }, duration(g.withoutOutliers.meanMs))
        : el("td", {}, ""));
  });
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));

  // Each segment: a bar from min to p90, the median marked, the mean as a dot.
  const shown = f.groups.filter((g) => !g.suppressed && g.p90Ms !== undefined);
  const width = 900, row = 26, left = 200;
  const max = Math.max(1, ...shown.map((g) => g.p90Ms));
  const x = (v) => left + (Math.max(0, v) / max) * (width - left - 20);
  const chart = svg("svg", { width: String(width), height: String(row * shown.length + 10), role: "img", "aria-label": "median and p90 per segment" });
  shown.forEach((g, i) => {
    const y = 5 + i * row;
    chart.append(svg("text", { x: "0", y: String(y + 15) }, label(g.group)));
    // The public figures give no extremes: the bar then starts at the median.
    const low = g.minMs ?? g.medianMs;
    chart.append(svg("rect", { x: String(x(low)), y: String(y + 4), width: String(Math.max(1, x(g.p90Ms) - x(low))), height: "14", fill: "#9cc3e4" }));
    chart.append(svg("rect", { x: String(x(g.medianMs) - 1), y: String(y + 1), width: "3", height: "20", fill: "#123a5c" }));
    chart.append(svg("circle", { cx: String(x(g.meanMs)), cy: String(y + 11), r: "4", fill: "#0b6e4f" }));
  });
  document.getElementById("bars").replaceChildren(chart);
}

/// The period asked for: from and to (a participant's), or the month (the public's, when one
/// is chosen; else the latest published).
function period(params) {
  if (token) return { from: params.from, to: params.to };
  return params.month ? { month: params.month } : {};
}

const CHANNELS = ["red", "yellow", "green", "unselected"];

/// The interval's figures by risk channel, strictest first.
async function drawChannels(params) {
  // Operators' and the public's: a trader's or an agency's token is refused it (403), and the
  // section is hidden.
  const section = document.getElementById("by-channel");
  const q = new URLSearchParams({ ...period(params), interval: params.interval, groupBy: "riskChannel" });
  const r = await fetch(`${endpoint}?${q}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (r.status === 403) { section.hidden = true; return; }
  const f = await r.json();
  if (!r.ok) throw new Error(`${f.code}: ${f.detail}`);
  section.hidden = false;
  document.getElementById("channel-interval").textContent = INTERVALS[params.interval].name;
  const noun = counted(params.interval, "riskChannel");
  const rank = (g) => { const i = CHANNELS.indexOf(g.group.riskChannel); return i < 0 ? CHANNELS.length : i; };
  const rows = [...f.groups].sort((a, b) => rank(a) - rank(b)).map((g) => {
    const name = g.group.riskChannel;
    const cell = (key) => g.suppressed ? el("td", { class: "suppressed" }, "suppressed")
      : el("td", { "data-channel": name, "data-figure": key, "data-ms": String(g[key] ?? "") }, key === "count" ? String(g[key] ?? 0) : duration(g[key]));
    return el("tr", {}, el("td", {}, name), cell("count"), cell("meanMs"), cell("medianMs"), cell("p90Ms"));
  });
  document.getElementById("channels").replaceChildren(
    el("thead", {}, el("tr", {}, el("th", {}, "channel"), el("th", { "data-label": "channels-count" }, noun), el("th", {}, "mean"), el("th", {}, "median"), el("th", {}, "p90"))),
    el("tbody", {}, ...rows));
}

/// How selection performed (operators: every agency; an agency: its own). Others are refused
/// it, and the section stays hidden.
async function drawSelection(params) {
  const section = document.getElementById("selection");
  if (!token) return;
  const q = new URLSearchParams({ from: params.from, to: params.to });
  const r = await fetch(`/v1/risk/performance?${q}`, { headers: { Authorization: `Bearer ${token}` } });
  if (r.status === 403) return;
  const p = await r.json();
  if (!r.ok) throw new Error(`${p.code}: ${p.detail}`);
  section.hidden = false;
  const pct = (v) => v === undefined || v === null ? "" : `${(100 * v).toFixed(1)}%`;
  document.getElementById("selection-model").textContent = p.modelVersion
    ? `Live model: version ${p.modelVersion}, precision at the budget ${pct(p.modelPrecisionAtBudget)} on the findings held back when it was trained.`
    : "No model is live: selection is by the rules and the random share.";
  const rows = [];
  for (const a of p.agencies) {
    rows.push(el("tr", { class: "agency" }, el("td", {}, a.agency), el("td", {}, "all"), el("td", {}, String(a.documents)),
      el("td", {}, `red ${pct(a.realized.red)} / yellow ${pct(a.realized.yellow)}`),
      el("td", {}, a.target ? `red ${pct(a.target.red)} / yellow ${pct(a.target.yellow)}` : "no budget"), el("td", {}, ""), el("td", {}, "")));
    for (const s of a.bySource) {
      rows.push(el("tr", {}, el("td", {}, ""), el("td", {}, s.source), el("td", {}, String(s.inspections)), el("td", {}, ""), el("td", {}, ""),
        el("td", {}, `${s.irregularities} of ${s.findings}`),
        el("td", { "data-agency": a.agency, "data-source": s.source, "data-hit-rate": String(s.hitRate ?? "") }, pct(s.hitRate))));
    }
  }
  document.getElementById("hit-rates").replaceChildren(
    el("thead", {}, el("tr", {}, el("th", {}, "agency"), el("th", {}, "source"), el("th", {}, "documents / inspections"), el("th", {}, "realized"),
      el("th", {}, "target"), el("th", {}, "irregular of findings"), el("th", {}, "hit rate"))),
    el("tbody", {}, ...rows));
}

/// Every interval's overall mean, slowest first, each count with what it counts (they differ:
/// consignments, or agencies' parts).
async function drawSlowest(params) {
  const results = [];
  for (const interval of Object.keys(INTERVALS)) {
    const f = await figures({ ...period(params), interval });
    if (!f.overall.suppressed && f.overall.meanMs !== undefined) results.push([interval, f.overall]);
  }
  results.sort((a, b) => b[1].meanMs - a[1].meanMs);
  const rows = results.map(([interval, o]) => el("tr", {},
    el("td", {}, INTERVALS[interval].name),
    el("td", { "data-interval": interval, "data-figure": "meanMs", "data-ms": String(o.meanMs) }, duration(o.meanMs)),
    el("td", {}, duration(o.p90Ms)), el("td", {}, String(o.count)),
    el("td", { "data-counted": interval }, counted(interval, ""))));
  document.getElementById("slowest").replaceChildren(
    el("thead", {}, el("tr", {}, el("th", {}, "interval"), el("th", {}, "mean"), el("th", {}, "p90"), el("th", {}, "count"), el("th", {}, "counted"))),
    el("tbody", {}, ...rows));
}

function drawTrend(f) {
  const cells = (f.trendCells || []).filter((c) => !c.suppressed && c.meanMs !== undefined);
  const width = 900, height = 220, pad = 40;
  const chart = svg("svg", { width: String(width), height: String(height), role: "img", "aria-label": "mean per period" });
  if (cells.length) {
    const max = Math.max(1, ...cells.map((c) => c.meanMs));
    const step = cells.length > 1 ? (width - 2 * pad) / (cells.length - 1) : 0;
    const points = cells.map((c, i) => [pad + i * step, height - pad - (Math.max(0, c.meanMs) / max) * (height - 2 * pad)]);
    chart.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: "#123a5c", "stroke-width": "2" }));
    cells.forEach((c, i) => {
      chart.append(svg("circle", { cx: String(points[i][0]), cy: String(points[i][1]), r: "3", fill: "#0b6e4f", "data-period": c.period, "data-ms": String(c.meanMs) }));
    });
    chart.append(svg("text", { x: String(pad), y: String(height - 10) }, cells[0].period));
    chart.append(svg("text", { x: String(width - pad - 70), y: String(height - 10) }, cells[cells.length - 1].period));
    chart.append(svg("text", { x: "0", y: "14" }, duration(max)));
  }
  document.getElementById("trend").replaceChildren(chart);
}

const TITLE = "Ventanilla: release-time indicators";

/// Marks the page (`mark`, dashboard/common.js), titled by the interval shown.
function markPage(state, text, params) {
  mark(TITLE, state, text, params ? INTERVALS[params.interval].name : "", params);
}

/// Only the latest request marks the page: an earlier one still in flight draws nothing after.
let shown = 0;

async function show() {
  const run = ++shown;
  const form = document.getElementById("filters");
  offerSegments();
  const params = Object.fromEntries(new FormData(form));
  markPage("loading", "Loading the figures...");
  document.getElementById("segment-name").textContent = form.groupBy.selectedOptions[0].textContent;
  document.getElementById("trend-name").textContent = params.trend;
  document.getElementById("trend-interval").textContent = INTERVALS[params.interval].name;
  try {
    const f = await figures({ ...period(params), interval: params.interval, groupBy: params.groupBy });
    // The overall figures are the answer with no segment's: each consignment once.
    const trend = await figures({ ...period(params), interval: params.interval, trend: params.trend });
    if (run !== shown) return;
    drawOverall(trend);
    drawGroups(f);
    drawTrend(trend);
    if (!token) form.month.value = f.from.slice(0, 7);
    await drawChannels(params);
    await drawSelection(params);
    await drawSlowest(params);
    if (run !== shown) return;
    document.getElementById("method").textContent = `Method: ${f.method}` + (f.minCount
      ? ` Public figures of ${f.from.slice(0, 7)}: cells of fewer than ${f.minCount} rows counted (consignments, or agencies' parts for an agency's intervals), or fewer besides one trader's, are suppressed, and others with them so that none can be computed from the rest; intervals that closed from ${f.closedBefore} on are not counted.`
      : "");
    const o = trend.overall;
    const count = o.suppressed ? "count suppressed" : `${o.count ?? 0} ${counted(params.interval, "")}`;
    markPage("ready", `Shown: ${INTERVALS[params.interval].name}, ${count}, of the consignments ${periodText(f)}.`, params);
  } catch (e) {
    if (run !== shown) return;
    markPage("failed", `The figures could not be read: ${e.message}`);
  }
}

/// The public figures group a consignment's own intervals by no agency (`404`): those segments
/// are offered with an agency's intervals, holds and queries only.
function offerSegments() {
  if (token) return;
  const form = document.getElementById("filters");
  const consignments = INTERVALS[form.interval.value].releaseTime || form.interval.value === "arrival-to-lodgement";
  for (const option of form.groupBy.options) {
    option.disabled = consignments && AGENCY_SEGMENTS.includes(option.value);
  }
  if (form.groupBy.selectedOptions[0].disabled) form.groupBy.value = "borderPost";
}

document.getElementById("scope").textContent = token ? "Your own figures." : "Public figures, per calendar month: small segments are suppressed.";
// The TFA monitor, with the same token (operators read it).
if (token) document.getElementById("tfa-link").href = `/dashboard/tfa#token=${encodeURIComponent(token)}`;
const form = document.getElementById("filters");
form.from.value = day(-30);
form.to.value = day(1);
if (!token) {
  // The public figures are published per calendar month: a month instead of from and to.
  for (const l of form.querySelectorAll("label.own")) { l.hidden = true; l.querySelector("input").disabled = true; }
  const month = form.querySelector("label.public");
  month.hidden = false;
  form.month.disabled = false;
}
// Filters chosen in the fragment (#token=...&interval=agency-decision&groupBy=agency).
for (const name of ["interval", "groupBy", "trend"]) {
  const v = hash.get(name);
  if (v && [...form[name].options].some((o) => o.value === v)) form[name].value = v;
}
for (const [name, pattern] of [["from", /^\d{4}-\d{2}-\d{2}$/], ["to", /^\d{4}-\d{2}-\d{2}$/], ["month", /^\d{4}-\d{2}$/]]) {
  const v = hash.get(name);
  if (v && pattern.test(v)) form[name].value = v;
}
form.interval.addEventListener("change", offerSegments);
form.addEventListener("submit", (e) => {
  e.preventDefault();
  // The fragment keeps the filters shown, for a reload or a bookmark.
  const chosen = new URLSearchParams(token ? { token } : {});
  for (const [k, v] of new FormData(form)) if (v) chosen.set(k, v);
  history.replaceState(null, "", `#${chosen}`);
  show();
});
show();
