#include "ringlb/dashboard.hpp"

namespace ringlb {
namespace {

// The page, inline: the router has no file to serve it from, and an operator
// opening it must not need anything from outside (no CDN). Text from /status
// goes into the page with textContent only, never as markup.
constexpr std::string_view page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ringlb</title>
<style>
  :root { --fg: #1d2330; --muted: #687083; --line: #e3e6ec; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
         color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 1.5em; padding: 14px 24px;
           background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { margin: 0; font-size: 20px; }
  #summary { color: var(--muted); }
  #summary.error { color: #c0392b; font-weight: 600; }
  main { display: grid; grid-template-columns: 340px 1fr; gap: 20px; padding: 20px 24px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px;
            overflow-x: auto; }
  section h2 { margin: 0 0 10px; font-size: 15px; }
  #events-section { grid-column: 1 / -1; }
  svg { width: 100%; height: auto; }
  #legend { display: flex; flex-wrap: wrap; gap: 6px 14px; margin-top: 8px; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
  th, td { padding: 5px 6px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  th:nth-child(-n+4), td:nth-child(-n+4) { text-align: left; }
  .state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
  .state-up .state { background: #e3f5e8; color: #1e7b3a; }
  .state-suspect .state { background: #fff4d6; color: #8a6100; }
  .state-down .state { background: #fde4e1; color: #b3261e; }
  tr.state-down td { color: #8b93a5; }
  #events { list-style: none; margin: 0; padding: 0; max-height: 260px; overflow: auto; }
  #events li { padding: 3px 0; border-bottom: 1px dashed var(--line); }
  #events time { color: var(--muted); margin-right: 10px; }
  .kind { display: inline-block; min-width: 86px; font-weight: 600; }
  .kind-down, .kind-removed { color: #b3261e; }
  .kind-suspect { color: #8a6100; }
  .kind-up, .kind-added, .kind-replaced, .kind-started { color: #1e7b3a; }
  .kind-failed, .kind-killed { color: #b3261e; }
  .ago { color: var(--muted); margin-left: 8px; font-size: 12px; }
</style>
</head>
<body>
<header><h1>ringlb</h1><span id="summary">reading /status…</span></header>
<main>
  <section>
    <h2>The ring</h2>
    <svg id="ring" viewBox="-110 -110 220 220" role="img" aria-label="share of the key space per replica"></svg>
    <div id="legend"></div>
  </section>
  <section>
    <h2>Replicas</h2>
    <table id="replicas">
      <thead><tr><th>id</th><th>hostname</th><th>address</th><th>state</th><th>share</th>
        <th>req/s</th><th>p99 ms</th><th>requests</th><th>5xx</th><th>failures</th>
        <th>in flight</th><th>heartbeat ms</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="events-section">
    <h2>Events <small id="changes"></small></h2>
    <ol id="events"></ol>
  </section>
</main>
<script>
"use strict";
const POLL_MS = 1000;
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                 "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const colour = id => PALETTE[(id - 1) % PALETTE.length];
let previous = null;  // the last /status, for rates and p99

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// p99 in ms of the requests answered between two polls, from the histogram.
function p99(bounds, before, now) {
  const d = now.map((n, i) => n - (before ? before[i] : 0));
  const total = d.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  let seen = 0;
  for (let i = 0; i < d.length; i++) {
    seen += d[i];
    if (seen >= 0.99 * total) return i < bounds.length ? bounds[i] * 1000 : Infinity;
  }
  return null;
}

function arc(a0, a1, r0, r1) {
  const p = (a, r) => [Math.sin(a) * r, -Math.cos(a) * r].map(v => v.toFixed(3)).join(" ");
  const large = a1 - a0 > Math.PI ? 1 : 0;
  return `M ${p(a0, r1)} A ${r1} ${r1} 0 ${large} 1 ${p(a1, r1)} L ${p(a1, r0)} ` +
         `A ${r0} ${r0} 0 ${large} 0 ${p(a0, r0)} Z`;
}

function drawRing(status) {
  const svg = document.getElementById("ring");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const onRing = status.replicas.filter(r => r.on_ring && r.share > 0);
  let angle = 0;
  for (const r of onRing) {
    const span = r.share * 2 * Math.PI;
    const shape = document.createElementNS(ns, span >= 2 * Math.PI - 1e-9 ? "circle" : "path");
    if (shape.tagName === "circle") {
      shape.setAttribute("r", "85"); shape.setAttribute("fill", "none");
      shape.setAttribute("stroke", colour(r.id)); shape.setAttribute("stroke-width", "30");
    } else {
      shape.setAttribute("d", arc(angle, angle + span, 70, 100));
      shape.setAttribute("fill", colour(r.id));
    }
    shape.setAttribute("data-hostname", r.hostname);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${r.hostname}: ${(r.share * 100).toFixed(1)} % of the key space`;
    shape.append(title);
    svg.append(shape);
    angle += span;
  }
  const label = document.createElementNS(ns, "text");
  label.setAttribute("text-anchor", "middle"); label.setAttribute("dy", "0.35em");
  label.setAttribute("font-size", "16");
  label.textContent = `${onRing.length} on the ring`;
  svg.append(label);
  const legend = document.getElementById("legend");
  legend.replaceChildren(...status.replicas.map(r =>
    el("span", {}, el("span", { class: "swatch", style: `background:${colour(r.id)}` }),
       `${r.hostname} ${(r.share * 100).toFixed(1)} %`)));
}

function render(status, seconds) {
  const ring = status.ring, router = status.router, t = router.totals;
  const onRing = status.replicas.filter(r => r.on_ring).length;
  const summary = document.getElementById("summary");
  summary.className = "";
  summary.textContent = `${onRing} of ${status.replicas.length} replicas on the ring · ` +
    `hash ${ring.scheme}, key ${router.key} · ${t.requests.toLocaleString()} requests, ` +
    `${t.retries} retries, ${t.upstream_failures} upstream failures · ` +
    `${t.connections_active} connections · ringlb ${router.version}`;
  drawRing(status);
  const old = new Map((previous ? previous.replicas : []).map(r => [r.id, r]));
  const rows = status.replicas.map(r => {
    const o = old.get(r.id);
    const rate = o && seconds > 0 ? Math.max(0, r.requests - o.requests) / seconds : null;
    const q = o ? p99(status.duration_bounds_seconds, o.duration_buckets, r.duration_buckets) : null;
    const ms = v => v === null ? "–" : v === Infinity ? "> 10 s" : v.toFixed(1);
    return el("tr", { class: `state-${r.state}`, "data-hostname": r.hostname, "data-state": r.state },
      el("td", {}, el("span", { class: "swatch", style: `background:${colour(r.id)}` }), r.id),
      el("td", {}, r.hostname),
      el("td", {}, r.name ? `${r.name} (${r.address || "resolving"})` : r.address),
      el("td", {}, el("span", { class: "state" },
         r.on_ring || r.state === "down" || r.state === "resolving" ? r.state : `${r.state}, off the ring`)),
      el("td", {}, `${(r.share * 100).toFixed(1)} %`),
      el("td", {}, rate === null ? "–" : rate.toFixed(1)), el("td", {}, ms(q)),
      el("td", {}, r.requests.toLocaleString()), el("td", {}, r.responses["5xx"]),
      el("td", {}, r.failures), el("td", {}, r.in_flight),
      el("td", {}, r.heartbeat_rtt_seconds === null ? "–" : (r.heartbeat_rtt_seconds * 1000).toFixed(1)));
  });
  document.querySelector("#replicas tbody").replaceChildren(...rows);
  const c = status.membership_changes;
  document.getElementById("changes").textContent =
    `· since start: ${c.added} added, ${c.removed} removed, ${c.down} down, ${c.up} up, ${c.moved} moved`;
  // The router's own event log (newest last in /status), shown newest first:
  // a page opened late still sees what happened before it was opened.
  document.getElementById("events").replaceChildren(...status.events.slice().reverse().map(e => {
    const who = e.hostname === null ? "" : `${e.hostname}${e.id === null ? "" : ` (id ${e.id})`}`;
    const ago = Math.max(0, status.monotonic_seconds - e.monotonic_seconds);
    return el("li", { "data-kind": e.kind, "data-hostname": e.hostname ?? "", "data-seq": e.seq },
       el("time", { datetime: new Date(e.time * 1000).toISOString() },
          new Date(e.time * 1000).toLocaleTimeString()),
       el("span", { class: `kind kind-${e.kind}` }, e.kind),
       `${who}${who && e.detail ? ": " : ""}${e.detail}`,
       el("span", { class: "ago" }, ago < 60 ? `${ago.toFixed(1)} s ago` : `${(ago / 60).toFixed(0)} min ago`));
  }));
}

async function poll() {
  try {
    const res = await fetch("status", { cache: "no-store" });
    if (!res.ok) throw new Error(`GET /status answered ${res.status}`);
    const status = await res.json();
    render(status, previous ? status.monotonic_seconds - previous.monotonic_seconds : 0);
    previous = status;
  } catch (e) {
    const summary = document.getElementById("summary");
    summary.className = "error";
    summary.textContent = `cannot read /status: ${e.message}`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}
poll();
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view Dashboard::html() noexcept { return page; }

}  // namespace ringlb
