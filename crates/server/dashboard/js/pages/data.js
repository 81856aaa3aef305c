// Data: every table with its document count and indexes (a subscription to
// `_system/tables:list`), the documents of one table page by page along any index and range,
// newest first by default (`_system/documents:page`, cursor-based), a document view, and
// add / edit / delete through `_system/documents:*` mutations, validated against
// schema.toml; a schema error is shown under the field it names. Everything shown is a live
// subscription: a mutation from any client updates it.

import { clear, h, toast, fmtDate } from "../ui.js";
import { encode, short, toEditorText } from "../values.js";

const PAGE_SIZE = 25;

export function mount(container, { sync }) {
  const state = { tables: [], table: null, index: "by_creation_time", order: "desc", range: [], cursors: [null], selected: null };
  const tableList = h("div.table-list");
  const detail = h("div.data-detail");
  const layout = h("div.data-layout", h("section.panel.tables-panel", h("h2", "Tables"), tableList), detail);
  container.append(h("header.page-head", h("h1", "Data"), h("p.muted", "Live view of every table; updates as mutations commit.")), layout);

  let unsubscribePage = null;
  let unsubscribeDoc = null;
  const unsubscribeTables = sync.subscribe("_system/tables:list", {}, (r) => {
    if (r.error) return clear(tableList, h("div.error-box", r.error));
    state.tables = r.value;
    if (!state.table && state.tables.length) selectTable(state.tables[0].name);
    renderTables();
    renderHead();
  });

  function current() {
    return state.tables.find((t) => t.name === state.table);
  }

  function renderTables() {
    clear(
      tableList,
      state.tables.map((t) =>
        h(
          "button.table-item" + (t.name === state.table ? ".active" : ""),
          { onclick: () => selectTable(t.name), dataset: { table: t.name } },
          h("span.table-name", t.name),
          h("span.count", { dataset: { count: t.name } }, String(t.count)),
        ),
      ),
    );
  }

  const head = h("div.detail-head");
  const controls = h("div.controls");
  const grid = h("div.grid-wrap");
  const pager = h("div.pager");
  const docView = h("aside.doc-view");
  clear(detail, head, controls, h("div.grid-and-doc", h("div.grid-col", grid, pager), docView));

  function selectTable(name) {
    state.table = name;
    state.index = "by_creation_time";
    state.order = "desc";
    state.range = [];
    state.cursors = [null];
    state.selected = null;
    renderTables();
    renderHead();
    renderControls();
    subscribePage();
    showDoc(null);
  }

  function renderHead() {
    const t = current();
    if (!t) return clear(head, h("p.muted", "No tables: declare some in schema.toml."));
    clear(
      head,
      h("div.title-row", h("h2", t.name), h("span.badge", `${t.count} document${t.count === 1 ? "" : "s"}`), h("button.primary#add-doc", { onclick: () => openEditor(null) }, "+ Add document")),
      h(
        "div.schema-line",
        t.fields ? t.fields.map((f) => h("span.field-chip", h("b", f.name), " ", f.type)) : h("span.muted", "no fields declared: any document"),
      ),
      h("div.schema-line", t.indexes.map((i) => h("span.index-chip", h("b", i.name), " [", i.fields.join(", "), "]"))),
    );
  }

  function renderControls() {
    const t = current();
    if (!t) return clear(controls);
    const indexSel = h("select#index", { onchange: (e) => { state.index = e.target.value; state.range = []; state.cursors = [null]; renderControls(); subscribePage(); } },
      t.indexes.map((i) => h("option", { value: i.name, selected: i.name === state.index }, i.name)));
    const orderSel = h("select#order", { onchange: (e) => { state.order = e.target.value; state.cursors = [null]; subscribePage(); } },
      h("option", { value: "desc", selected: state.order === "desc" }, "newest first"), h("option", { value: "asc", selected: state.order === "asc" }, "oldest first"));
    const index = t.indexes.find((i) => i.name === state.index);
    const eqInputs = index.fields.slice(0, -1).map((field, i) =>
      h("label.eq", h("span", `${field} =`), h("input", { placeholder: "any", value: state.range[i]?.text ?? "", dataset: { field }, onchange: applyRange })));
    clear(controls, h("label", "Index ", indexSel), h("label", "Order ", orderSel), eqInputs);

    function applyRange() {
      const steps = [];
      for (const input of controls.querySelectorAll("label.eq input")) {
        const text = input.value.trim();
        if (!text) break;
        let value = text;
        try { value = JSON.parse(text); } catch { /* a bare string */ }
        steps.push({ op: "eq", field: input.dataset.field, value, text });
      }
      state.range = steps;
      state.cursors = [null];
      subscribePage();
    }
  }

  function subscribePage() {
    unsubscribePage?.();
    const t = current();
    if (!t) return;
    const cursor = state.cursors[state.cursors.length - 1];
    const args = { table: t.name, index: state.index, order: state.order, numItems: PAGE_SIZE, range: state.range.map(({ op, field, value }) => ({ op, field, value })) };
    if (cursor) args.cursor = cursor;
    clear(grid, h("div.loading", "Loading…"));
    unsubscribePage = sync.subscribe("_system/documents:page", args, (r) => {
      if (r.error) return clear(grid, h("div.error-box", r.error));
      renderPage(r.value);
    });
  }

  function renderPage(result) {
    const t = current();
    const docs = result.page;
    const columns = ["_id", ...(t.fields ? t.fields.map((f) => f.name) : [...new Set(docs.flatMap((d) => Object.keys(d)))].filter((k) => !k.startsWith("_"))), "_creationTime"];
    const table = h(
      "table.docs",
      h("thead", h("tr", columns.map((c) => h("th", c)))),
      h(
        "tbody",
        docs.length
          ? docs.map((d) =>
              h(
                "tr" + (state.selected === d._id ? ".selected" : ""),
                { onclick: () => showDoc(d._id), dataset: { id: d._id } },
                columns.map((c) => h("td", { title: short(d[c]) }, c === "_creationTime" ? fmtDate(d[c]) : short(d[c]))),
              ),
            )
          : h("tr", h("td.empty", { colSpan: columns.length }, "No documents in this range.")),
      ),
    );
    clear(grid, table);
    const page = state.cursors.length;
    clear(
      pager,
      h("button#prev-page", { disabled: page === 1, onclick: () => { state.cursors.pop(); subscribePage(); } }, "← Previous"),
      h("span.muted", `Page ${page}`),
      h("button#next-page", { disabled: result.isDone, onclick: () => { state.cursors.push(result.continueCursor); subscribePage(); } }, "Next →"),
    );
  }

  function showDoc(id) {
    unsubscribeDoc?.();
    unsubscribeDoc = null;
    state.selected = id;
    for (const tr of grid.querySelectorAll("tr[data-id]")) tr.classList.toggle("selected", tr.dataset.id === id);
    if (!id) return clear(docView, h("p.muted.center", "Select a document to see it whole."));
    unsubscribeDoc = sync.subscribe("_system/documents:get", { id }, (r) => {
      if (r.error) return clear(docView, h("div.error-box", r.error));
      const doc = r.value;
      if (!doc) return clear(docView, h("p.muted.center", "This document was deleted."));
      clear(
        docView,
        h("div.doc-head", h("h3", "Document"), h("button#edit-doc", { onclick: () => openEditor(doc) }, "Edit"), h("button.danger#delete-doc", { onclick: () => remove(doc._id) }, "Delete")),
        h("pre.json#doc-json", toEditorText(doc)),
      );
    });
  }

  async function remove(id) {
    if (!confirm(`Delete document ${id}?`)) return;
    try {
      await sync.mutation("_system/documents:delete", { ids: [id] });
      toast("Document deleted");
    } catch (e) {
      toast(e.message, "error");
    }
  }

  function openEditor(doc) {
    const t = current();
    const fields = t.fields ?? [];
    const isText = (type) => type === "string" || type.startsWith("id<") || type === "optional<string>";
    const rows = fields.map((f) => {
      const value = doc?.[f.name];
      const text = value === undefined ? "" : isText(f.type) && typeof value === "string" ? value : JSON.stringify(encode(value));
      const input = h(isText(f.type) ? "input" : "textarea", { value: text, name: f.name, rows: 1, spellcheck: "false" });
      return { f, input, error: h("div.field-error", { dataset: { field: f.name } }) };
    });
    const freeform = t.fields ? null : h("textarea.json-edit", { rows: 12, spellcheck: "false", name: "document" });
    if (freeform) freeform.value = doc ? toEditorText(Object.fromEntries(Object.entries(doc).filter(([k]) => !k.startsWith("_")))) : "{\n  \n}";
    const formError = h("div.form-error");
    const dialog = h(
      "div.modal-back",
      h(
        "form.modal#editor",
        { onsubmit: (e) => { e.preventDefault(); save(); } },
        h("h2", doc ? `Edit ${doc._id}` : `Add a document to ${t.name}`),
        rows.map(({ f, input, error }) => h("div.field-row", h("label", h("b", f.name), h("span.type", f.type)), input, error)),
        freeform,
        h("p.muted.small", "Strings as typed; other values as JSON (numbers, true/false, null, arrays, objects). An empty optional field is left out."),
        formError,
        h("div.modal-actions", h("button", { type: "button", onclick: () => dialog.remove() }, "Cancel"), h("button.primary#save-doc", { type: "submit" }, doc ? "Save" : "Add")),
      ),
    );
    document.body.append(dialog);
    (rows[0]?.input ?? freeform)?.focus();

    async function save() {
      for (const r of rows) r.error.textContent = "";
      formError.textContent = "";
      let document;
      try {
        if (freeform) document = JSON.parse(freeform.value);
        else {
          document = {};
          for (const { f, input } of rows) {
            const text = input.value;
            if (text.trim() === "" && f.type.startsWith("optional<")) continue;
            if (isText(f.type)) document[f.name] = text;
            else {
              try {
                document[f.name] = text.trim() === "" ? undefined : JSON.parse(text);
              } catch {
                document[f.name] = text; // the schema check says what was expected
              }
            }
          }
        }
      } catch (e) {
        formError.textContent = `Not valid JSON: ${e.message}`;
        return;
      }
      try {
        if (doc) await sync.mutation("_system/documents:replace", { id: doc._id, document });
        else await sync.mutation("_system/documents:insert", { table: t.name, document });
        dialog.remove();
        toast(doc ? "Document saved" : "Document added");
      } catch (e) {
        const data = e.data;
        const field = data?.kind === "SchemaValidation" ? String(data.path).split(/[.[]/)[0] : null;
        const row = rows.find((r) => r.f.name === field);
        if (row) row.error.textContent = data.message;
        else formError.textContent = data?.message ?? e.message;
      }
    }
  }

  return () => {
    unsubscribeTables();
    unsubscribePage?.();
    unsubscribeDoc?.();
    document.querySelector(".modal-back")?.remove();
  };
}
