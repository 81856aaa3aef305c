//! `_system/scheduler:cancel`: the dashboard's cancel button for a pending scheduled function,
//! the same change as `ctx.scheduler.cancel(id)` in a mutation (a job that already started or
//! finished keeps its state).

use database::Transaction;
use value::{Object, Value};

use super::args;
use super::errors::bad;
use crate::error::FunctionError;
use crate::scheduled::jobs::cancel_job;

/// `{ id }` → null; an id that names no job fails with that reason.
pub(super) fn cancel(txn: &mut dyn Transaction, args: &Object) -> Result<Value, FunctionError> {
    let id = args::string(args, "id")?;
    // System functions get no clock of their own; the cancel time is the wall clock's, as a
    // mutation's `ctx.now()` would be.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64);
    cancel_job(txn, id, now_ms).map_err(|e| bad(format!("args.id: {e}")))?;
    Ok(Value::Null)
}
