//! [`ActionHost`]: how an HTTP action reaches data and the app's environment. The application
//! implements it (each `ctx.runMutation` its own commit on the Committer; `env` reads the
//! process environment and the app's env files), so this crate neither commits nor reads the
//! environment itself.

use value::Value;

use crate::error::FunctionError;
use crate::path::FunctionPath;

/// What an action's `ctx.runQuery` / `ctx.runMutation` / `env` reach. Implemented by the
/// application; called on the blocking thread that runs the action.
pub trait ActionHost: Send + Sync {
    /// Runs a query (internal ones included) at the latest snapshot.
    fn run_query(&self, path: &FunctionPath, args: Value) -> NestedCall;
    /// Runs a mutation (internal ones included) as its own transaction and waits for it.
    fn run_mutation(&self, path: &FunctionPath, args: Value) -> NestedCall;
    /// A variable of the app's environment; `Err` when the env files cannot be read.
    fn env_var(&self, name: &str) -> Result<Option<String>, String>;
}

/// The outcome of a query or mutation called from an action.
pub struct NestedCall {
    pub result: Result<Value, FunctionError>,
    pub log_lines: Vec<String>,
}
