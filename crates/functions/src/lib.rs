//! User functions in Rhai: the only crate that knows Rhai.
//!
//! [`Modules`] loads `functions/` (every problem reported at file:line:column); [`Modules::run`]
//! executes one query or mutation against a [`database::Transaction`] in a sandbox and returns
//! an [`Execution`] (result or [`FunctionError`], log lines, read set, whether the identity was
//! read). `host_api.rs` is the complete list of what a script can call.
//!
//! Invariants: scripts reach data only through `host_api.rs`; queries cannot write, also when
//! nested in a mutation; scripts have no clock (except the frozen `ctx.now()`), no randomness
//! and no I/O, so a query's result depends only on code, arguments, identity and snapshot.

mod convert;
mod definition;
mod error;
mod host_api;
mod modules;
mod path;
mod query_builder;
mod runner;
mod sandbox;

pub use convert::{from_dynamic, to_dynamic};
pub use definition::{FunctionDef, FunctionKind, Visibility};
pub use error::{ErrorKind, FunctionError, LoadError, LoadErrors};
pub use modules::{LoadedModule, ModuleSource, Modules};
pub use path::FunctionPath;
pub use runner::{Caller, Execution};
pub use sandbox::USER_TIME_LIMIT;
