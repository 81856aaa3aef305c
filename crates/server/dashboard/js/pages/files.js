// Files: the stored files of `_storage`, newest first and live (a subscribed
// `_system/documents:page`), each with its size, content type, SHA-256 and a download link
// (a signed URL from /_dashboard/api/files/urls); an upload box (an upload URL from
// /_dashboard/api/files/upload-url, then the same POST a client makes) and a Delete button
// (DELETE /_dashboard/api/files/{id}: the row goes in a commit, the bytes once nothing refers
// to them).

import { api } from "../api.js";
import { clear, fmtBytes, fmtDate, h, toast } from "../ui.js";

const PAGE_SIZE = 25;

export function mount(container, { sync }) {
  const input = h("input#file-input", { type: "file" });
  const uploadButton = h("button.primary#file-upload", { onclick: upload }, "Upload");
  const grid = h("div.grid-wrap#files");
  const pager = h("div.pager");
  container.append(
    h("header.page-head", h("h1", "Files"), h("p.muted", "Stored files (", h("code", "_storage"), "); updates as files are uploaded and deleted.")),
    h("section.panel.stacked", h("div.run-row", input, uploadButton)),
    h("section.panel.stacked", grid, pager),
  );
  const cursors = [null];
  let unsubscribePage = null;
  // Renders finish out of order (each waits for its URLs): only the latest result is drawn.
  let latest = 0;

  function subscribePage() {
    unsubscribePage?.();
    const args = { table: "_storage", order: "desc", numItems: PAGE_SIZE };
    const cursor = cursors[cursors.length - 1];
    if (cursor) args.cursor = cursor;
    clear(grid, h("div.loading", "Loading…"));
    unsubscribePage = sync.subscribe("_system/documents:page", args, async (r) => {
      if (r.error) return clear(grid, h("div.error-box", r.error));
      const seq = ++latest;
      const files = r.value.page;
      let urls = {};
      try {
        if (files.length) urls = (await api.fileUrls(files.map((f) => f._id))).urls;
      } catch (e) {
        if (seq === latest) clear(grid, h("div.error-box", `Could not sign the download links: ${e.message}`));
        return;
      }
      if (seq === latest) render(r.value, files, urls);
    });
  }

  function render(result, files, urls) {
    const columns = ["id", "size", "content type", "sha256", "uploaded", ""];
    clear(
      grid,
      h("table.docs.files",
        h("thead", h("tr", columns.map((c) => h("th", c)))),
        h("tbody", files.length
          ? files.map((f) => h("tr", { dataset: { id: f._id } },
              h("td", h("a.download", { href: urls[f._id], target: "_blank", rel: "noopener" }, f._id)),
              h("td.size", { dataset: { bytes: String(f.size) } }, fmtBytes(f.size)),
              h("td", f.contentType ?? "–"),
              h("td.loc", { title: f.sha256 }, f.sha256),
              h("td", fmtDate(f._creationTime)),
              h("td", h("button.danger.delete-file", { onclick: () => remove(f._id) }, "Delete"))))
          : h("tr", h("td.empty", { colSpan: columns.length }, "No stored files.")))),
    );
    const page = cursors.length;
    clear(
      pager,
      h("button", { disabled: page === 1, onclick: () => { cursors.pop(); subscribePage(); } }, "← Previous"),
      h("span.muted", `Page ${page}`),
      h("button", { disabled: result.isDone, onclick: () => { cursors.push(result.continueCursor); subscribePage(); } }, "Next →"),
    );
  }

  async function upload() {
    const file = input.files[0];
    if (!file) return toast("Choose a file first.", "error");
    uploadButton.disabled = true;
    try {
      const { url } = await api.uploadUrl();
      const res = await fetch(url, { method: "POST", headers: file.type ? { "content-type": file.type } : {}, body: file });
      const body = await res.json().catch(() => null);
      if (!res.ok) throw new Error(body?.message ?? `HTTP ${res.status}`);
      toast(`Stored as ${body.storageId}.`);
      input.value = "";
    } catch (e) {
      toast(`Upload failed: ${e.message}`, "error");
    } finally {
      uploadButton.disabled = false;
    }
  }

  async function remove(id) {
    if (!confirm(`Delete file ${id}? Documents that refer to it keep a dangling id.`)) return;
    try {
      await api.deleteFile(id);
      toast("Deleted.");
    } catch (e) {
      toast(e.message, "error");
    }
  }

  subscribePage();
  return () => unsubscribePage?.();
}
