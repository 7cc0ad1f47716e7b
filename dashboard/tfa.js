// The TFA monitor's dashboard page: reads GET /v1/indicators/tfa with an operator's token, given
// in the page's fragment (/dashboard/tfa#token=...), and shows each article's indicators for
// the region, each group (importing country, border post, transport mode or document type), the
// region's median of the groups, and the region in the period before; no library, nothing
// fetched from elsewhere. Each value carries its raw figure as the API gave it (data-value:
// a share from 0 to 1, a time in milliseconds, a number per consignment), with its group
// (data-group: the group's name, "region", "median" or "previous") and its indicator (data-key).
// The fragment may choose the filters: #token=...&from=2026-11-01&to=2026-12-01&groupBy=borderPost.
// When the figures are drawn the body carries data-ready="true" (and data-params, the filters
// as JSON); a failure sets data-failed. Headless browsers and tests wait for one or the other.
"use strict";

const hash = new URLSearchParams(location.hash.slice(1));
const token = hash.get("token");

// Each indicator: its article, key, title, unit, and where the API's articles hold it
// (src/indicators/tfa.rs; the country report's list, src/indicators/tfa_report.rs, is the same).
const INDICATORS = [
  ["7.1", "pre-arrival-share", "lodged before the goods arrived", "share", (a) => a.preArrival.share],
  ["7.1", "pre-arrival-lead-median", "lead time before arrival (median)", "time", (a) => a.preArrival.leadTime.medianMs],
  ["7.4", "physical-inspection-share", "parts sent to physical inspection", "share", (a) => a.riskManagement.physicalShare],
  ["7.4", "documentary-check-share", "parts sent to a documentary check", "share", (a) => a.riskManagement.documentaryShare],
  ["7.4", "hit-rate", "inspections that found an irregularity", "share", (a) => hitRate(a.riskManagement.bySource)],
  ["7.4", "standing-instruction-share", "decisions by standing instruction", "share", (a) => a.riskManagement.standingInstructionShare],
  ["7.6", "release-time-mean", "arrival to release (mean)", "time", (a) => a.releaseTime.meanMs],
  ["7.6", "release-time-median", "arrival to release (median)", "time", (a) => a.releaseTime.medianMs],
  ["7.8", "expedited-median", "expedited: lodgement to release (median)", "time", (a) => a.expedited.expedited.medianMs],
  ["7.8", "others-median", "others: lodgement to release (median)", "time", (a) => a.expedited.others.medianMs],
  ["7.8", "expedited-ratio", "expedited over others (medians)", "number", (a) => a.expedited.medianRatio],
  ["8", "agency-spread-median", "first to last agency decision (median)", "time", (a) => a.agencySpread.medianMs],
  ["8", "joint-inspection-share", "joint inspections", "share", (a) => a.jointInspections.share],
  ["10.1", "documents-per-consignment", "documents per consignment", "number", (a) => a.formalities.documentsPerConsignment],
  ["10.1", "amendments-per-consignment", "amendments per consignment", "number", (a) => a.formalities.amendmentsPerConsignment],
  ["10.1", "queries-per-consignment", "queries per consignment", "number", (a) => a.formalities.queriesPerConsignment],
  ["10.1", "resubmitted-share", "resubmitted after a rejection", "share", (a) => a.formalities.resubmittedShare],
  ["10.4", "submitted-once-share", "documents each submitted once", "share", (a) => a.singleWindow.share],
];
/// Irregularities per finding reported, whatever selected the inspection (none before the first).
function hitRate(bySource) {
  const findings = bySource.reduce((n, s) => n + s.findings, 0);
  return findings ? bySource.reduce((n, s) => n + s.irregularities, 0) / findings : undefined;
}

// In the Agreement's order (an array: an object would put "8" first, its keys being numbers).
const ARTICLES = [
  ["7.1", "Art. 7.1 Pre-arrival processing"],
  ["7.4", "Art. 7.4 Risk management"],
  ["7.6", "Art. 7.6 Average release times"],
  ["7.8", "Art. 7.8 Expedited shipments"],
  ["8", "Art. 8 Border agency cooperation"],
  ["10.1", "Art. 10.1 Formalities"],
  ["10.4", "Art. 10.4 Single window"],
];

/// The median of the groups' values (not the group `unknown`), as the API's `regionMedian`
/// computes those it gives: for every indicator here.
function median(groups, value) {
  const values = groups.filter((g) => g.group !== "unknown").map((g) => value(g.articles)).filter((v) => v !== undefined && v !== null).sort((a, b) => a - b);
  const n = values.length;
  if (!n) return undefined;
  return n % 2 ? values[(n - 1) / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}
const GROUPS = { country: "importing country", borderPost: "border post", transportMode: "transport mode", documentType: "document type" };

function shown(unit, v) {
  if (v === undefined || v === null) return "";
  if (unit === "share") return `${(100 * v).toFixed(1)}%`;
  if (unit === "time") return duration(v);
  return v.toFixed(2);
}

/// A value's cell: its raw figure, its group and its indicator in data attributes.
function cell(group, key, unit, v) {
  if (v === undefined || v === null) return el("td", {}, "");
  return el("td", { "data-group": group, "data-key": key, "data-value": String(v) }, shown(unit, v));
}

/// One table per article: a row per indicator; columns: the region, each group, the region's
/// median of the groups, and the region in the period before.
function draw(f) {
  const groups = f.current.groups;
  const box = document.getElementById("articles");
  box.replaceChildren();
  for (const [article, title] of ARTICLES) {
    const head = el("tr", {}, el("th", {}, "indicator"), el("th", { "data-label": "region" }, "region"),
      ...groups.map((g) => el("th", { "data-label": `group-${g.group}` }, `${g.group} (${g.articles.consignments})`)),
      el("th", {}, "median of the groups"), el("th", {}, "region, period before"));
    const rows = INDICATORS.filter((i) => i[0] === article).map(([, key, name, unit, value]) => {
      return el("tr", { "data-indicator": key }, el("td", {}, name),
        cell("region", key, unit, value(f.current.region)),
        ...groups.map((g) => cell(g.group, key, unit, value(g.articles))),
        cell("median", key, unit, median(groups, value)),
        cell("previous", key, unit, value(f.previous.region)));
    });
    box.append(el("section", { "data-article": article }, el("h2", {}, title), el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows))));
  }
}

const TITLE = "Ventanilla: TFA monitor";

/// Marks the page (`mark`, dashboard/common.js), titled by the grouping shown.
function markPage(state, text, params) {
  mark(TITLE, state, text, params ? `by ${GROUPS[params.groupBy]}` : "", params);
}

let shownRun = 0;

async function show() {
  const run = ++shownRun;
  const params = Object.fromEntries(new FormData(document.getElementById("filters")));
  markPage("loading", "Loading the figures...");
  try {
    if (!token) throw new Error("the TFA monitor is read with an operator's token: open /dashboard/tfa#token=...");
    const r = await fetch(`/v1/indicators/tfa?${new URLSearchParams(params)}`, { headers: { Authorization: `Bearer ${token}` } });
    const f = await r.json();
    if (!r.ok) throw new Error(`${f.code}: ${f.detail}`);
    if (run !== shownRun) return;
    draw(f);
    document.getElementById("method").textContent = `Method: ${f.method} Expedited types: ${f.expeditedTypes.join(", ")}. Joint inspections within ${f.jointInspectionWindowMinutes} minutes. The period before is the one of the same length just before: its consignments have had longer to be released.`;
    markPage("ready", `Shown: ${f.current.region.consignments} consignments lodged from ${params.from} to ${params.to}, by ${GROUPS[params.groupBy]}.`, params);
  } catch (e) {
    if (run !== shownRun) return;
    markPage("failed", `The figures could not be read: ${e.message}`);
  }
}

const form = document.getElementById("filters");
form.from.value = day(-30);
form.to.value = day(1);
for (const [name, pattern] of [["from", /^\d{4}-\d{2}-\d{2}$/], ["to", /^\d{4}-\d{2}-\d{2}$/]]) {
  const v = hash.get(name);
  if (v && pattern.test(v)) form[name].value = v;
}
const groupBy = hash.get("groupBy");
if (groupBy && GROUPS[groupBy]) form.groupBy.value = groupBy;
// The release times, with the same token.
if (token) document.getElementById("release-times-link").href = `/dashboard#token=${encodeURIComponent(token)}`;
form.addEventListener("submit", (e) => {
  e.preventDefault();
  const chosen = new URLSearchParams(token ? { token } : {});
  for (const [k, v] of new FormData(form)) if (v) chosen.set(k, v);
  history.replaceState(null, "", `#${chosen}`);
  show();
});
show();
