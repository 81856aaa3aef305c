//! System functions: the built-in queries and mutations under the reserved `_system/` module
//! namespace, written in Rust, that the dashboard subscribes to and calls over the same sync
//! protocol as any client. Only the admin may call them (`Caller::Trusted`); to anyone else
//! they are as absent as a function that does not exist.
//!
//! They run through [`Modules::run`](crate::Modules::run) like user functions, against the
//! same [`Transaction`], so their reads are recorded in a read set and a subscribed system
//! query is invalidated by the same commits as any other query; their writes pass the same
//! schema validation as a script's. `tables.rs` lists tables, `documents.rs` reads documents
//! page by page, `writes.rs` adds, replaces and deletes them, `scheduler.rs` cancels a
//! scheduled function; `args.rs` reads their arguments.

mod args;
mod documents;
mod errors;
mod scheduler;
mod tables;
mod writes;

use database::Transaction;
use value::{Object, Value};

use crate::definition::{Caller, FunctionKind};
use crate::error::{ErrorKind, FunctionError};
use crate::path::FunctionPath;
use crate::runner::{Call, Execution, Ran};

/// The module prefix every system function's path starts with.
pub const PREFIX: &str = "_system/";

/// One system function: its path, kind and what it does.
struct SystemFunction {
    path: &'static str,
    kind: FunctionKind,
    /// The call's arguments and its clock (`ctx.now()` of a script's call).
    run: fn(&mut dyn Transaction, &Object, f64) -> Result<Value, FunctionError>,
}

const FUNCTIONS: &[SystemFunction] = &[
    SystemFunction {
        path: "_system/tables:list",
        kind: FunctionKind::Query,
        run: tables::list,
    },
    SystemFunction {
        path: "_system/documents:page",
        kind: FunctionKind::Query,
        run: documents::page,
    },
    SystemFunction {
        path: "_system/documents:get",
        kind: FunctionKind::Query,
        run: documents::get,
    },
    SystemFunction {
        path: "_system/documents:insert",
        kind: FunctionKind::Mutation,
        run: writes::insert,
    },
    SystemFunction {
        path: "_system/documents:replace",
        kind: FunctionKind::Mutation,
        run: writes::replace,
    },
    SystemFunction {
        path: "_system/documents:delete",
        kind: FunctionKind::Mutation,
        run: writes::delete,
    },
    SystemFunction {
        path: "_system/scheduler:cancel",
        kind: FunctionKind::Mutation,
        run: scheduler::cancel,
    },
];

/// Whether `path` names the reserved system namespace.
pub(crate) fn is_system(path: &FunctionPath) -> bool {
    path.module().starts_with(PREFIX)
}

/// The kind of the system function at `path`, if there is one.
pub(crate) fn kind_of(path: &FunctionPath) -> Option<FunctionKind> {
    let text = path.to_string();
    FUNCTIONS.iter().find(|f| f.path == text).map(|f| f.kind)
}

/// Runs the system function `call` names, in `txn`. The identity is not used: system
/// functions act on the data as the admin, whoever the admin acts as. The call's clock is
/// passed on (cancelling a scheduled function records it as `completedTime`).
pub(crate) fn run(call: Call, mut txn: Box<dyn Transaction + Send>) -> Ran {
    txn.take_read_set();
    let result = dispatch(&call, txn.as_mut());
    let read_set = txn.take_read_set();
    Ran {
        execution: Execution {
            result,
            log_lines: Vec::new(),
            read_set,
            read_identity: false,
        },
        txn: Some(txn),
    }
}

fn dispatch(call: &Call, txn: &mut dyn Transaction) -> Result<Value, FunctionError> {
    let (path, kind) = (&call.path, call.kind);
    let text = path.to_string();
    let found = FUNCTIONS.iter().find(|f| f.path == text);
    let function = match (found, call.caller) {
        (Some(function), Caller::Trusted) => function,
        // To a client, system functions do not exist, exactly like internal ones.
        (_, Caller::Client) => {
            return Err(FunctionError::new(
                ErrorKind::NotFound,
                format!(
                    "Could not find public function for '{path}': `_system/` functions are for the admin (the dashboard) only"
                ),
            ));
        }
        (None, Caller::Trusted) => {
            let known: Vec<&str> = FUNCTIONS.iter().map(|f| f.path).collect();
            return Err(FunctionError::new(
                ErrorKind::NotFound,
                format!(
                    "Could not find system function '{path}' (there are: {})",
                    known.join(", ")
                ),
            ));
        }
    };
    if function.kind != kind {
        return Err(FunctionError::new(
            ErrorKind::NotFound,
            format!(
                "'{path}' is a {}, not a {}; call it as a {}",
                function.kind.as_str(),
                kind.as_str(),
                function.kind.as_str()
            ),
        ));
    }
    let Value::Object(args) = &call.args else {
        return Err(errors::bad(format!(
            "{path} takes an object of arguments, not {}",
            call.args.type_name()
        )));
    };
    (function.run)(txn, args, call.now_ms)
}
