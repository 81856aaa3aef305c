//! The dashboard: a web app served at `/_dashboard/` from files compiled into the binary
//! (`assets.rs`; the sources are `crates/server/dashboard/`), the admin-only routes it reads
//! (`api.rs`: functions, auth, health; `logs.rs`: the live execution log; `files.rs`: the
//! Files page's URLs and deletes), and `/metrics` in the Prometheus text format
//! (`metrics.rs`). Their routes are listed in `router.rs` with every other.
//!
//! Every `/_dashboard/api/*` route and `/metrics` (unless `--metrics-public`) checks the admin
//! key server side (`guard.rs`), in constant time, and answers 401 without it. The pages
//! themselves are public files with no data in them; all data comes either from those routes
//! or over the sync WebSocket, where the dashboard authenticates as the admin and subscribes
//! to the built-in `_system/` queries like any reactive client.

pub(crate) mod api;
pub(crate) mod assets;
pub(crate) mod files;
mod guard;
pub(crate) mod logs;
pub(crate) mod metrics;
