//! User functions in Rhai: the only crate that knows Rhai.
//!
//! [`Modules`] loads `functions/` (every problem reported at file:line:column); [`Modules::run`]
//! executes one query or mutation against a [`database::Transaction`] in a sandbox and returns
//! an [`Execution`] (result or [`FunctionError`], log lines, read set, whether the identity was
//! read). [`Modules::run_action`] runs an action and [`Modules::run_http_action`] a route of
//! `functions/http.rhai` (no transaction; data, `fetch` and `env` through an [`ActionHost`]).
//! `host_api/` is the complete list of what a script can call.
//!
//! Invariants: scripts reach data only through `host_api/`; queries cannot write, also when
//! nested in a mutation; scripts have no clock (except the frozen `ctx.now()`), no randomness
//! and no I/O, so a query's result depends only on code, arguments, identity and snapshot.
//! Only actions and HTTP actions, which are never cached, read the real clock, the app's
//! environment and the network (through their host).
//!
//! Modules depend one way, from leaves up: values, errors, limits and hints; then the
//! compiled modules (`module_set.rs`) and the sandbox; then the pieces the host API exposes
//! (query builder, HTTP request and response, webhooks); then `host_api/`, the runners, the
//! loader, and [`Modules`] on top. ARCHITECTURE.md (`functions`) lists every file.

mod action;
mod action_ctx;
mod action_host;
mod convert;
mod definition;
mod error;
mod error_report;
mod fetch_api;
mod file_host;
mod hints;
mod host_api;
mod host_error;
mod http_action;
mod http_request;
mod http_response;
mod http_router;
mod index_range;
mod limits;
mod loader;
mod module_set;
mod modules;
mod pagination;
mod path;
mod query_builder;
mod runner;
mod sandbox;
pub mod scheduled;
mod system;
pub mod testing;
mod validation;
pub mod webhook;

pub use action::ActionOutcome;
pub use action_host::{ActionHost, FetchRequest, FetchResponse, NestedCall};
pub use convert::{from_dynamic, to_dynamic};
pub use definition::{Caller, FunctionDef, FunctionKind, Visibility};
pub use error::{ErrorKind, FunctionError, LoadError, LoadErrors};
pub use file_host::FileHost;
pub use http_action::ActionExecution;
pub use http_request::HttpRequest;
pub use http_response::HttpResponse;
pub use http_router::{HttpRoute, HttpRouter, PathMatcher, is_reserved_path};
pub use limits::{ACTION_TIME_LIMIT, USER_TIME_LIMIT};
pub use loader::{ModuleSource, TEST_FILE_SUFFIX, is_test_file, read_test_dir};
pub use module_set::LoadedModule;
pub use modules::Modules;
pub use path::FunctionPath;
pub use runner::{Call, Execution, Ran};
pub use system::PREFIX as SYSTEM_PREFIX;
