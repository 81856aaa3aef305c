// The dashboard's shell: sign-in with the admin key, the nav list, and the page router
// (`#/data`, `#/functions`, ...). A page is a module exporting `mount(container, ctx)` that
// returns a cleanup function; adding an area is one entry in PAGES
// plus its module (and its line in crates/server/src/dashboard/assets.rs).

import { api, setAdminKey } from "./api.js";
import { SyncClient } from "./sync.js";
import { clear, h, toast } from "./ui.js";

const PAGES = [
  { id: "data", title: "Data", icon: "▦", load: () => import("./pages/data.js") },
  { id: "functions", title: "Functions", icon: "ƒ", load: () => import("./pages/functions.js") },
  { id: "schedules", title: "Schedules", icon: "◷", load: () => import("./pages/schedules.js") },
  { id: "files", title: "Files", icon: "▤", load: () => import("./pages/files.js") },
  { id: "logs", title: "Logs", icon: "≡", load: () => import("./pages/logs.js") },
  { id: "auth", title: "Auth", icon: "◎", load: () => import("./pages/auth.js") },
  { id: "health", title: "Health", icon: "♥", load: () => import("./pages/health.js") },
];

const KEY_STORAGE = "pulsebase.adminKey";
const root = document.getElementById("app");
let session = null; // {key, sync, info}
let cleanup = null;

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  session?.sync.close();
  session = null;
  cleanup?.();
  cleanup = null;
  showSignIn(message);
}

function showSignIn(message) {
  const input = h("input#admin-key", { type: "password", placeholder: "admin key", autocomplete: "off", spellcheck: "false" });
  const error = h("p.signin-error", message ?? "");
  const form = h(
    "form.signin-card",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        await trySignIn(input.value.trim(), error);
      },
    },
    h("div.brand.big", h("img", { src: "favicon.svg", alt: "" }), h("span", "Pulsebase")),
    h("h1", "Sign in to the dashboard"),
    h("p.muted", "Paste the admin key from ", h("code", ".pulsebase/admin_key"), " in your app folder. ", h("code", "pulsebase dev"), " prints a link that signs you in."),
    input,
    h("button.primary#sign-in", { type: "submit" }, "Sign in"),
    error,
  );
  clear(root, h("div.signin", form));
  input.focus();
}

async function trySignIn(key, errorEl) {
  if (!key) {
    errorEl.textContent = "Enter the admin key.";
    return;
  }
  let check;
  try {
    check = await api.check(key);
  } catch (e) {
    errorEl.textContent = `Cannot reach the server: ${e.message}`;
    return;
  }
  if (!check.ok) {
    errorEl.textContent = check.body?.message ?? "That key was refused.";
    sessionStorage.removeItem(KEY_STORAGE);
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  setAdminKey(key, () => signOut("The admin key was refused; sign in again."));
  const status = h("span.conn", "connecting…");
  const sync = new SyncClient(key, {
    onStatus: (s) => {
      status.textContent = s === "live" ? "● live" : "○ reconnecting…";
      status.className = `conn ${s}`;
    },
    onAuthError: () => signOut("The server refused the admin key."),
  });
  session = { key, sync, info: check.body, status };
  showShell();
}

function showShell() {
  const nav = h(
    "nav.nav",
    PAGES.map((p) => h("a.nav-item", { href: `#/${p.id}`, dataset: { page: p.id } }, h("span.nav-icon", p.icon), h("span", p.title))),
  );
  const main = h("main.main#page");
  const side = h(
    "aside.side",
    h("div.brand", h("img", { src: "favicon.svg", alt: "" }), h("span", "Pulsebase")),
    h("div.mode", session.info.mode === "dev" ? "dev server" : "production", " · v", session.info.version),
    nav,
    h("div.side-foot", session.status, h("button.link#sign-out", { onclick: () => signOut("Signed out.") }, "Sign out")),
  );
  clear(root, h("div.shell", side, main));
  route();
}

async function route() {
  if (!session) return;
  const id = location.hash.replace(/^#\/?/, "").split("/")[0] || "data";
  const page = PAGES.find((p) => p.id === id) ?? PAGES[0];
  for (const a of document.querySelectorAll(".nav-item")) a.classList.toggle("active", a.dataset.page === page.id);
  cleanup?.();
  cleanup = null;
  const main = document.getElementById("page");
  clear(main, h("div.loading", "Loading…"));
  try {
    const module = await page.load();
    clear(main);
    cleanup = module.mount(main, { sync: session.sync, info: session.info, hashArgs: location.hash.split("/").slice(2) });
  } catch (e) {
    clear(main, h("div.error-box", `This page failed to load: ${e.message}`));
  }
  document.title = `${page.title} · Pulsebase`;
}

window.addEventListener("hashchange", () => {
  const id = location.hash.replace(/^#\/?/, "").split("/")[0];
  if (session && (!cleanup || id !== document.querySelector(".nav-item.active")?.dataset.page)) route();
});
window.addEventListener("unhandledrejection", (e) => toast(String(e.reason?.message ?? e.reason), "error"));

// `pulsebase dev` prints /_dashboard/#adminKey=KEY: take the key and remove it from the URL.
const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
const fromLink = fragment.get("adminKey");
if (fromLink) history.replaceState(null, "", location.pathname + "#/data");
const stored = fromLink ?? sessionStorage.getItem(KEY_STORAGE);
if (stored) {
  const error = h("p");
  trySignIn(stored, error).then(() => {
    if (!session) showSignIn(error.textContent);
  });
} else {
  showSignIn();
}
