// Auth: the providers in force (auth.config.toml and, in dev, the built-in issuer), each
// with its key cache (keys held, last fetch, last error) and live sessions, the refused
// tokens by reason, and a box to paste a token and read `pulsebase auth check`'s report.

import { api } from "../api.js";
import { badge, clear, fmtDate, h } from "../ui.js";

export function mount(container) {
  const providers = h("div.cards#providers");
  const rejections = h("div");
  const tokenInput = h("textarea.json-edit#token-input", { rows: 4, placeholder: "eyJhbGciOi…", spellcheck: "false" });
  const report = h("div#token-report");
  container.append(
    h("header.page-head", h("h1", "Auth"), h("p.muted", "Identity providers, their keys, and why a token is refused.")),
    providers,
    h("section.panel", h("h2", "Refused tokens"), rejections),
    h("section.panel", h("h2", "Check a token"), tokenInput,
      h("div.run-row", h("button.primary#token-check", { onclick: check }, "Explain")), report),
  );

  async function load() {
    const s = await api.auth();
    const when = (t) => (t ? fmtDate(t * 1000) : "never");
    clear(
      providers,
      s.providers.length ? s.providers.map((p) => h("section.panel.card.provider",
        h("div.title-row", h("h3", p.label), badge(p.kind)),
        h("dl",
          h("dt", "issuer"), h("dd", h("code", p.issuer)),
          h("dt", "application ID"), h("dd", p.applicationId ?? "–"),
          h("dt", "keys cached"), h("dd", `${p.keys.keysCached}${p.keys.keyIds.length ? ` (${p.keys.keyIds.join(", ")})` : ""}`),
          h("dt", "last fetch"), h("dd", p.keys.source === "fixed" ? "held in the server" : when(p.keys.lastFetchAt)),
          h("dt", "fresh until"), h("dd", p.keys.freshUntil ? fmtDate(p.keys.freshUntil * 1000) : "–"),
          h("dt", "last error"), h("dd", p.keys.lastError ? h("span.err-text", `${p.keys.lastError} (${when(p.keys.lastErrorAt)})`) : "none"),
          h("dt", "live sessions"), h("dd.sessions", String(p.liveSessions)),
        ))) : h("p.muted", "No providers: add one to auth.config.toml."),
    );
    clear(rejections, s.rejections.length ? h("div.schema-line", s.rejections.map((r) => h("span.field-chip", h("b", r.reason), " ", String(r.count)))) : h("p.muted", "None since the server started."));
  }

  async function check() {
    const token = tokenInput.value.trim();
    if (!token) return;
    try {
      const r = await api.authCheck(token);
      clear(report, h("div.run-meta", r.accepted ? badge("accepted", "ok") : badge("refused", "err")), h("pre.logs#token-report-text", r.report));
    } catch (e) {
      clear(report, h("div.error-box", e.message));
    }
  }

  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}
