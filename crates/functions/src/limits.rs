//! The limits of one call that several modules share: the sandbox sets them on the engine, the
//! error report names them in its messages, and the argument and result checks apply the size
//! cap. Each breach fails only the call that hit it. The list of every limit is in
//! ARCHITECTURE.md ("Limits").

use std::time::Duration;

/// Wall-clock budget of user code per top-level call: 1 s, like Convex. Time spent in database
/// calls (and, in an HTTP action, in nested calls) is not counted.
pub const USER_TIME_LIMIT: Duration = Duration::from_secs(1);

/// Wall-clock limit of an action (and an HTTP action), nested `ctx.runAction` calls and
/// `fetch` waits included: 10 minutes, like Convex. Actions may wait on the network, so their
/// clock is the wall clock, not user time.
pub const ACTION_TIME_LIMIT: Duration = Duration::from_secs(600);

/// Hard cap on Rhai operations per call, a backstop behind the time budget.
pub(crate) const MAX_OPERATIONS: u64 = 5_000_000_000;

/// Nested function calls per top-level call, counted across `ctx.runQuery` /
/// `ctx.runMutation` / `ctx.runAction` (see `ModuleSet::call`). Rhai's default for release builds, which keeps
/// deep recursion well inside a 2 MiB thread stack.
pub(crate) const MAX_CALL_DEPTH: usize = 64;

/// Arguments and results are at most 16 MiB.
pub(crate) const MAX_VALUE_BYTES: usize = 16 << 20;

/// Text one Rhai value may hold (Rhai counts the strings of an array or map together).
pub(crate) const MAX_STRING_BYTES: usize = 16 << 20;

/// Elements of one Rhai array, fields of one Rhai object map.
pub(crate) const MAX_CONTAINER_ITEMS: usize = 100_000;
