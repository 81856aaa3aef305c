// Health: live sessions, subscriptions, shared query instances, commits/s, mutation and query
// latency, database and WAL size. Polls /_dashboard/api/health every second; rates and
// percentiles are computed from the difference between two readings of the counters and
// histograms (a percentile is the upper bound of its bucket). The same figures are exported
// at /metrics for Prometheus.

import { api } from "../api.js";
import { clear, fmtBytes, fmtMs, h } from "../ui.js";

const HISTORY = 60;

function percentile(prev, next, q) {
  if (!prev) return null;
  const total = next.count - prev.count;
  if (total <= 0) return null;
  for (let i = 0; i < next.buckets.length; i++) {
    const [le, n] = next.buckets[i];
    if (n - prev.buckets[i][1] >= q * total) return le * 1000;
  }
  return Infinity;
}

export function mount(container) {
  const tiles = h("div.tiles#health-tiles");
  const charts = h("div.charts");
  container.append(h("header.page-head", h("h1", "Health"), h("p.muted", "Updated every second. Also at /metrics in the Prometheus format.")), tiles, charts);
  let prev = null;
  const series = { commits: [], mutations: [], queries: [] };

  async function tick() {
    const now = await api.health();
    const dt = prev ? (now.serverTimeMs - prev.serverTimeMs) / 1000 : null;
    const rate = (a, b) => (dt ? ((b - a) / dt) : null);
    const commitsPerSec = prev ? rate(prev.commits.count, now.commits.count) : null;
    const mutationsPerSec = prev ? rate(prev.functions.mutation.count, now.functions.mutation.count) : null;
    const queriesPerSec = prev ? rate(prev.functions.query.count, now.functions.query.count) : null;
    const fmtRate = (r) => (r === null ? "–" : r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString());
    const p = (h1, q) => fmtMs(percentile(prev?.[h1[0]]?.[h1[1]] ?? (h1[1] ? undefined : prev?.[h1[0]]), h1[1] ? now[h1[0]][h1[1]] : now[h1[0]], q));
    const tile = (label, value, sub) => h("div.tile", h("div.tile-label", label), h("div.tile-value", { dataset: { metric: label } }, value), sub ? h("div.tile-sub", sub) : null);
    clear(
      tiles,
      tile("sessions", String(now.sessions)),
      tile("subscriptions", String(now.subscriptions)),
      tile("query instances", String(now.queryInstances)),
      tile("commits/s", fmtRate(commitsPerSec), `${fmtRate(mutationsPerSec)} mutations/s`),
      tile("mutation latency", p(["functions", "mutation"], 0.5), `p99 ${p(["functions", "mutation"], 0.99)}`),
      tile("query latency", p(["functions", "query"], 0.5), `p99 ${p(["functions", "query"], 0.99)} · ${fmtRate(queriesPerSec)}/s`),
      tile("commit latency", p(["commits"], 0.5), `p99 ${p(["commits"], 0.99)}`),
      tile("database", fmtBytes(now.databaseBytes), `WAL ${fmtBytes(now.walBytes)}`),
    );
    if (prev) {
      for (const [k, v] of [["commits", commitsPerSec], ["mutations", mutationsPerSec], ["queries", queriesPerSec]]) {
        series[k].push(v ?? 0);
        if (series[k].length > HISTORY) series[k].shift();
      }
      clear(charts, ...Object.entries(series).map(([k, values]) => chart(`${k}/s`, values)));
    }
    prev = now;
  }

  tick();
  const timer = setInterval(() => tick().catch(() => {}), 1000);
  return () => clearInterval(timer);
}

/** A small inline SVG line chart of the last minute. */
function chart(title, values) {
  const w = 300, hgt = 70, max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i / (HISTORY - 1)) * w},${hgt - (v / max) * (hgt - 6) - 3}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("class", "spark");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts);
  svg.append(line);
  return h("section.panel.chart", h("div.chart-head", h("span", title), h("b", values.length ? (values[values.length - 1] < 10 ? values[values.length - 1].toFixed(1) : Math.round(values[values.length - 1]).toLocaleString()) : "–")), svg);
}
