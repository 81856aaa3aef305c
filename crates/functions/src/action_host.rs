//! [`ActionHost`]: how an action (or HTTP action) reaches data, the network and the app's
//! environment. The application implements it (each `ctx.runMutation` its own commit on the
//! Committer; `env` reads the process environment and the app's env files; `fetch` goes through
//! the server's outbound client and its address policy), so this crate neither commits, nor
//! reads the environment, nor opens a socket itself.

use std::sync::Arc;
use std::time::Duration;

use value::Value;

use crate::error::FunctionError;
use crate::path::FunctionPath;

/// What an action's `ctx.runQuery` / `ctx.runMutation` / `env` / `fetch` reach. Implemented
/// by the application; called on the thread that runs the action.
pub trait ActionHost: Send + Sync {
    /// Runs a query (internal ones included) at the latest snapshot.
    fn run_query(&self, path: &FunctionPath, args: Value) -> NestedCall;
    /// Runs a mutation (internal ones included) as its own transaction and waits for it.
    fn run_mutation(&self, path: &FunctionPath, args: Value) -> NestedCall;
    /// A variable of the app's environment; `Err` when the env files cannot be read.
    fn env_var(&self, name: &str) -> Result<Option<String>, String>;
    /// Sends an outbound request and reads its answer (blocking); `Err` is the message the
    /// script's error carries (`fetch to URL refused: ...`).
    fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, String>;
    /// The tables of the current schema, to check `id<table>` in an action's arguments and
    /// result (an action has no transaction of its own to ask).
    fn id_tables(&self) -> Arc<dyn schema::IdTables + Send + Sync>;
}

/// The outcome of a query or mutation called from an action.
pub struct NestedCall {
    pub result: Result<Value, FunctionError>,
    pub log_lines: Vec<String>,
}

/// `fetch(url, #{ method, headers, body, timeout })` as the host receives it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FetchRequest {
    pub url: String,
    /// Uppercase; `GET` unless the script said otherwise.
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The script's `timeout` (ms), if it set one.
    pub timeout: Option<Duration>,
    /// What is left of the action's time limit: no request outlives its action.
    pub time_left: Option<Duration>,
}

/// The answer to a `fetch`, body read in full.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FetchResponse {
    pub status: u16,
    pub status_text: String,
    /// The URL that answered, after redirects.
    pub url: String,
    /// Lowercase names; repeated headers joined with `, `.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}
