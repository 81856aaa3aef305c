// Logs: the live stream of function executions (path, kind, caller, duration, outcome, log
// lines, error), newest on top, with filters. The server sends the recent history first,
// then each execution as it finishes; if this page falls behind, the server drops records
// for it and says how many (shown as a gap), rather than slowing down.

import { streamLogs } from "../api.js";
import { badge, clear, fmtMs, fmtTime, h } from "../ui.js";

const MAX_ROWS = 1000;

export function mount(container) {
  const filters = { path: "", kind: "", outcome: "", caller: "" };
  const rows = h("tbody#log-rows");
  const status = h("span.muted#log-status", "connecting…");
  const pathInput = h("input#log-filter-path", { placeholder: "function contains…", oninput: (e) => { filters.path = e.target.value; refilter(); } });
  const callerInput = h("input", { placeholder: "caller contains…", oninput: (e) => { filters.caller = e.target.value; refilter(); } });
  const kindSel = h("select#log-filter-kind", { onchange: (e) => { filters.kind = e.target.value; refilter(); } },
    ["", "query", "mutation", "action", "http_action"].map((k) => h("option", { value: k }, k || "all kinds")));
  const outcomeSel = h("select#log-filter-outcome", { onchange: (e) => { filters.outcome = e.target.value; refilter(); } },
    ["", "success", "error"].map((k) => h("option", { value: k }, k || "all outcomes")));
  let paused = false;
  const pauseBtn = h("button", { onclick: () => { paused = !paused; pauseBtn.textContent = paused ? "Resume" : "Pause"; } }, "Pause");
  container.append(
    h("header.page-head", h("h1", "Logs"), h("p.muted", "Every function execution, live.")),
    h("div.controls", pathInput, callerInput, kindSel, outcomeSel, pauseBtn, h("button", { onclick: () => clear(rows) }, "Clear"), status),
    h("div.grid-wrap.logs-wrap", h("table.docs.logs-table", h("thead", h("tr", ["time", "function", "kind", "caller", "duration", "outcome"].map((c) => h("th", c)))), rows)),
  );

  function matches(r) {
    return (!filters.path || r.path.includes(filters.path)) && (!filters.caller || r.caller.includes(filters.caller)) &&
      (!filters.kind || r.kind === filters.kind) && (!filters.outcome || r.outcome === filters.outcome);
  }

  function refilter() {
    for (const tr of rows.querySelectorAll("tr.log-row")) tr.hidden = !matches(tr.record);
    for (const tr of rows.querySelectorAll("tr.log-detail")) tr.hidden = tr.previousSibling?.hidden ?? false;
  }

  function add(r) {
    const detailLines = [...(r.error ? [r.error] : []), ...r.logLines];
    const tr = h(`tr.log-row.${r.outcome}`, { dataset: { path: r.path } },
      h("td.mono", fmtTime(r.startedAtMs)), h("td.mono", r.path), h("td", badge(r.kind)), h("td", r.caller), h("td.num", fmtMs(r.durationMs)),
      h("td", badge(r.outcome, r.outcome === "success" ? "ok" : "err")));
    tr.record = r;
    tr.hidden = !matches(r);
    const nodes = [tr];
    if (detailLines.length) {
      const detail = h("tr.log-detail", h("td", { colSpan: 6 }, h("pre", { className: r.error ? "err-text" : "" }, detailLines.join("\n"))));
      detail.hidden = tr.hidden;
      nodes.push(detail);
    }
    rows.prepend(...nodes);
    while (rows.childElementCount > MAX_ROWS * 1.5) rows.lastElementChild.remove();
  }

  const abort = new AbortController();
  let received = 0;
  streamLogs({}, (item) => {
    if (item.type === "history") {
      item.records.forEach(add);
      status.textContent = "● live";
    } else if (item.type === "record") {
      received++;
      if (!paused) add(item);
    } else if (item.type === "dropped") {
      rows.prepend(h("tr.gap", h("td", { colSpan: 6 }, `… ${item.count} executions not shown: this page fell behind`)));
    }
  }, abort.signal).catch((e) => {
    if (!abort.signal.aborted) status.textContent = `stream ended: ${e.message}`;
  });
  return () => abort.abort();
}
