// Schedules: the cron jobs of functions/crons.rhai (schedule, function, arguments, where
// they are declared, their next run and the id of their last run, from the scheduler), and
// the scheduled functions of `_scheduled_functions` by state, live (a subscribed
// `_system/documents:page` over the `by_state` index), with a Cancel button on pending ones
// (`_system/scheduler:cancel`, the same change as ctx.scheduler.cancel).

import { api } from "../api.js";
import { badge, clear, fmtDate, h, toast } from "../ui.js";
import { short } from "../values.js";

const PAGE_SIZE = 50;
const STATES = ["pending", "inProgress", "success", "failed", "canceled"];
const STATE_BADGE = { pending: "", inProgress: "query", success: "ok", failed: "err", canceled: "muted" };

export function mount(container, { sync }) {
  const cronBox = h("div#cron-jobs", h("div.loading", "Loading…"));
  const tabs = h("div.tabs#job-states");
  const grid = h("div.grid-wrap#jobs");
  const pager = h("div.pager");
  container.append(
    h("header.page-head", h("h1", "Schedules"), h("p.muted", "Cron jobs and scheduled functions; updates as jobs are scheduled, run and finish.")),
    h("section.panel.stacked", h("h2", "Cron jobs"), cronBox),
    h("section.panel.stacked", h("h2", "Scheduled functions"), tabs, grid, pager),
  );
  const state = { kind: "pending", cursors: [null] };
  let crons = [];
  let unsubscribePage = null;

  // The cron table lives in the scheduler, not in a table: read it again every few seconds.
  async function loadCrons() {
    crons = (await api.functions()).crons ?? [];
    renderCrons();
  }
  loadCrons();
  const timer = setInterval(loadCrons, 5000);

  function renderCrons() {
    if (!crons.length) return clear(cronBox, h("p.muted", "No cron jobs: declare them in ", h("code", "functions/crons.rhai"), "."));
    clear(
      cronBox,
      h("table.docs.crons",
        h("thead", h("tr", ["name", "schedule", "function", "arguments", "next run", "last run", "declared at"].map((c) => h("th", c)))),
        h("tbody", crons.map((c) => h("tr", { dataset: { cron: c.name } },
          h("td", h("b", c.name)), h("td", { title: c.schedule }, readableSchedule(c.schedule)), h("td", h("code", c.function)), h("td", short(c.args)),
          h("td.next-run", c.nextRun ? fmtDate(c.nextRun) : "–"), h("td.loc", c.lastRun ?? "–"), h("td.loc", c.declaredAt))))),
    );
  }

  function renderTabs() {
    clear(tabs, STATES.map((kind) => h(`button.tab${kind === state.kind ? ".active" : ""}`, { dataset: { state: kind }, onclick: () => { state.kind = kind; state.cursors = [null]; renderTabs(); subscribePage(); } }, kind)));
  }

  function subscribePage() {
    unsubscribePage?.();
    const cursor = state.cursors[state.cursors.length - 1];
    // Pending jobs soonest first; the others most recent first.
    const order = state.kind === "pending" || state.kind === "inProgress" ? "asc" : "desc";
    const args = { table: "_scheduled_functions", index: "by_state", order, numItems: PAGE_SIZE, range: [{ op: "eq", field: "state.kind", value: state.kind }] };
    if (cursor) args.cursor = cursor;
    clear(grid, h("div.loading", "Loading…"));
    unsubscribePage = sync.subscribe("_system/documents:page", args, (r) => {
      if (r.error) return clear(grid, h("div.error-box", r.error));
      renderJobs(r.value);
    });
  }

  function renderJobs(result) {
    const jobs = result.page;
    const columns = ["function", "scheduled for", "state", "completed", "arguments", "cron", "id", ""];
    clear(
      grid,
      h("table.docs.jobs",
        h("thead", h("tr", columns.map((c) => h("th", c)))),
        h("tbody", jobs.length
          ? jobs.map((job) => h("tr", { dataset: { id: job._id, state: job.state.kind } },
              h("td", h("code", job.name)),
              h("td", fmtDate(job.scheduledTime)),
              h("td", badge(job.state.kind, STATE_BADGE[job.state.kind]), job.state.error ? h("div.err-text.small", job.state.error) : null),
              h("td", job.completedTime ? fmtDate(job.completedTime) : "–"),
              h("td", { title: short(job.args[0]) }, short(job.args[0])),
              h("td", job.cron ?? "–"),
              h("td.loc", job._id),
              h("td", job.state.kind === "pending" ? h("button.cancel-job", { onclick: () => cancel(job._id) }, "Cancel") : null)))
          : h("tr", h("td.empty", { colSpan: columns.length }, `No ${state.kind} scheduled functions.`)))),
    );
    const page = state.cursors.length;
    clear(
      pager,
      h("button", { disabled: page === 1, onclick: () => { state.cursors.pop(); subscribePage(); } }, "← Previous"),
      h("span.muted", `Page ${page}`),
      h("button", { disabled: result.isDone, onclick: () => { state.cursors.push(result.continueCursor); subscribePage(); } }, "Next →"),
    );
  }

  async function cancel(id) {
    try {
      await sync.mutation("_system/scheduler:cancel", { id });
      toast("Canceled.");
    } catch (e) {
      toast(e.message, "error");
    }
  }

  renderTabs();
  subscribePage();
  return () => {
    unsubscribePage?.();
    clearInterval(timer);
  };
}

/** "every 30000 ms" → "every 30 s"; cron expressions stay as they are. */
function readableSchedule(text) {
  const m = /^every ([\d.]+) ms$/.exec(text);
  if (!m) return text;
  const ms = Number(m[1]);
  const units = [[86_400_000, "d"], [3_600_000, "h"], [60_000, "min"], [1_000, "s"]];
  const [size, unit] = units.find(([size]) => ms >= size && ms % size === 0) ?? [1, "ms"];
  return `every ${ms / size} ${unit}`;
}
