// Functions: every function with its kind, visibility, file:line and argument validators,
// and a runner that calls one with JSON arguments as anonymous, as the admin, or as a given
// identity, through /api/function (the admin endpoint `pulsebase run` uses), showing the
// result, the log lines and the error with its location.

import { api, runFunction } from "../api.js";
import { badge, clear, fmtMs, h } from "../ui.js";
import { decode, encode } from "../values.js";

export function mount(container) {
  const list = h("div.fn-list");
  const runner = h("section.panel.runner");
  container.append(h("header.page-head", h("h1", "Functions"), h("p.muted", "Everything functions/ exports, and a place to run it.")), h("div.fn-layout", list, runner));
  let selected = null;

  api.functions().then(({ functions, httpRoutes }) => {
    const byModule = Map.groupBy ? Map.groupBy(functions, (f) => f.module) : group(functions);
    clear(
      list,
      [...byModule].map(([module, fns]) =>
        h("section.panel.module", h("h3", h("code", `functions/${module}.rhai`)),
          fns.map((f) => h("button.fn-item", { onclick: () => select(f), dataset: { path: f.path } },
            h("span.fn-name", f.name), badge(f.kind, f.kind.replace(/\W/g, "")), f.visibility === "internal" ? badge("internal", "muted") : null,
            h("span.loc", `${f.file}:${f.line}`))))),
      httpRoutes.length ? h("section.panel.module", h("h3", "HTTP routes"), httpRoutes.map((r) => h("div.route", h("code", r.route), h("span.loc", r.declaredAt)))) : null,
    );
    if (functions.length) select(functions.find((f) => f.kind !== "HTTP action") ?? functions[0]);
  });

  function select(f) {
    selected = f;
    for (const b of list.querySelectorAll(".fn-item")) b.classList.toggle("active", b.dataset.path === f.path);
    const argsInput = h("textarea.json-edit#fn-args", { rows: 6, spellcheck: "false" });
    argsInput.value = f.args ? JSON.stringify(Object.fromEntries(f.args.map((a) => [a.name, placeholder(a.type)])), null, 2) : "{}";
    const asSel = h("select#fn-as", h("option", { value: "admin" }, "admin"), h("option", { value: "anonymous" }, "anonymous"), h("option", { value: "identity" }, "a given identity"));
    const identity = h("textarea.json-edit#fn-identity", { rows: 3, spellcheck: "false", hidden: true });
    identity.value = JSON.stringify({ subject: "user_1", issuer: "https://dashboard", name: "Ada" }, null, 2);
    asSel.onchange = () => (identity.hidden = asSel.value !== "identity");
    const out = h("div.run-out#fn-result");
    const runButton = h("button.primary#fn-run", { disabled: f.kind === "HTTP action" }, f.kind === "HTTP action" ? "HTTP actions run through their route" : `Run ${f.kind}`);
    runButton.onclick = async () => {
      let args, as;
      try {
        args = encode(JSON.parse(argsInput.value || "{}"));
        as = asSel.value === "identity" ? JSON.parse(identity.value) : asSel.value;
      } catch (e) {
        clear(out, h("div.error-box", `Not valid JSON: ${e.message}`));
        return;
      }
      clear(out, h("div.loading", "Running…"));
      const r = await runFunction(f.path, args, as);
      clear(
        out,
        h("div.run-meta", r.status === "success" ? badge("success", "ok") : badge("error", "err"), h("span.muted", fmtMs(r.ms))),
        r.status === "success" ? h("pre.json.result", JSON.stringify(encode(decode(r.value)), null, 2)) : h("pre.error-box.run-error", r.errorMessage),
        r.errorData !== undefined && r.status !== "success" ? h("pre.json", "errorData: " + JSON.stringify(r.errorData)) : null,
        h("h4", "Log lines"),
        (r.logLines ?? []).length ? h("pre.logs", r.logLines.join("\n")) : h("p.muted", "none"),
      );
    };
    clear(
      runner,
      h("h2", h("code", f.path)),
      h("div.meta-line", badge(f.kind), badge(f.visibility, "muted"), h("span.loc", `${f.file}:${f.line}`)),
      h("h4", "Arguments"),
      f.args ? (f.args.length ? h("div.schema-line", f.args.map((a) => h("span.field-chip", h("b", a.name), " ", a.type))) : h("p.muted", "none")) : h("p.muted", "no validators: any object"),
      f.returns ? h("p.muted", "returns ", h("code", f.returns)) : null,
      argsInput,
      h("div.run-row", h("label", "Run as ", asSel), runButton),
      identity,
      out,
    );
  }
  return () => {};
}

function group(items) {
  const m = new Map();
  for (const f of items) m.set(f.module, [...(m.get(f.module) ?? []), f]);
  return m;
}

function placeholder(type) {
  if (type.startsWith("optional<")) return null;
  if (type === "string" || type.startsWith("id<")) return "";
  if (type === "number" || type === "int64") return 0;
  if (type === "boolean") return false;
  if (type.startsWith("array<")) return [];
  if (type.startsWith("object") || type.startsWith("record<")) return {};
  return null;
}
