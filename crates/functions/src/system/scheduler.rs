//! `_system/scheduler:cancel`: the dashboard's cancel button for a pending scheduled function,
//! the same change as `ctx.scheduler.cancel(id)` in a mutation (a job that already started or
//! finished keeps its state).

use database::Transaction;
use value::{Object, Value};

use super::args;
use super::errors::bad;
use crate::error::FunctionError;
use crate::scheduled::jobs::cancel_job;

/// `{ id }` → null; an id that names no job fails with that reason. `now_ms` (the call's clock,
/// as a mutation's `ctx.now()`) becomes the job's `completedTime`.
pub(super) fn cancel(
    txn: &mut dyn Transaction,
    args: &Object,
    now_ms: f64,
) -> Result<Value, FunctionError> {
    let id = args::string(args, "id")?;
    cancel_job(txn, id, now_ms).map_err(|e| bad(format!("args.id: {e}")))?;
    Ok(Value::Null)
}
