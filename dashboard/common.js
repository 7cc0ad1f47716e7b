// What the dashboard's pages share (/dashboard and /dashboard/tfa load it first): building
// elements, durations and dates as people read them, and marking a page loading, ready or
// failed. No library, nothing fetched from elsewhere.
"use strict";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

/// A duration as people read it: "3 h 05 min", "2 d 4 h", "-1 h 30 min".
function duration(ms) {
  if (ms === undefined || ms === null) return "";
  const sign = ms < 0 ? "-" : "";
  let m = Math.round(Math.abs(ms) / 60000);
  const d = Math.floor(m / 1440); m -= d * 1440;
  const h = Math.floor(m / 60); m -= h * 60;
  if (d > 0) return `${sign}${d} d ${h} h`;
  if (h > 0) return `${sign}${h} h ${String(m).padStart(2, "0")} min`;
  return `${sign}${m} min`;
}

/// The day `offset` days from today (UTC), as a date input takes it.
function day(offset) {
  return new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
}

/// Marks the page: `loading` (nothing marked ready), `ready` (every figure asked for drawn, with
/// `shown`, what the title says is shown, and the filters `params`), or `failed`; the title
/// (`title`, then what) and the status say which. Headless browsers and tests wait for
/// data-ready="true" or data-failed on the body.
function mark(title, state, text, shown, params) {
  const body = document.body;
  const status = document.getElementById("status");
  delete body.dataset.ready;
  delete body.dataset.failed;
  delete body.dataset.params;
  body.setAttribute("aria-busy", String(state === "loading"));
  status.className = state === "failed" ? "error" : "";
  status.textContent = text;
  if (state === "loading") {
    document.title = `${title} (loading)`;
  } else if (state === "failed") {
    document.title = `${title} (failed)`;
    body.dataset.failed = text;
  } else {
    document.title = `${title}: ${shown}`;
    body.dataset.params = JSON.stringify(params);
    body.dataset.ready = "true";
  }
}
