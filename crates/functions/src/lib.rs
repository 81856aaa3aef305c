//! User functions in Rhai: the only crate that knows Rhai.
//!
//! [`Modules`] loads `functions/` (every problem reported at file:line:column); [`Modules::run`]
//! executes one query or mutation against a [`database::Transaction`] in a sandbox and returns
//! an [`Execution`] (result or [`FunctionError`], log lines, read set, whether the identity was
//! read). [`Modules::run_http_action`] runs a route of `functions/http.rhai` (no transaction;
//! data through an [`ActionHost`]). `host_api.rs` is the complete list of what a script can
//! call.
//!
//! Invariants: scripts reach data only through `host_api.rs`; queries cannot write, also when
//! nested in a mutation; scripts have no clock (except the frozen `ctx.now()`), no randomness
//! and no I/O, so a query's result depends only on code, arguments, identity and snapshot.
//! Only HTTP actions, which are never cached, read the real clock and the app's environment.

mod convert;
mod definition;
mod error;
mod hints;
mod host_api;
mod http_action;
mod http_router;
mod modules;
mod path;
mod query_builder;
mod runner;
mod sandbox;
pub mod webhook;

pub use convert::{from_dynamic, to_dynamic};
pub use definition::{FunctionDef, FunctionKind, Visibility};
pub use error::{ErrorKind, FunctionError, LoadError, LoadErrors};
pub use http_action::{
    ActionExecution, ActionHost, HttpRequest, HttpResponse, NestedCall, RequestIdentity,
};
pub use http_router::{HttpRoute, HttpRouter, PathMatcher, is_reserved_path};
pub use modules::{LoadedModule, ModuleSource, Modules};
pub use path::FunctionPath;
pub use runner::{Caller, Execution};
pub use sandbox::USER_TIME_LIMIT;
