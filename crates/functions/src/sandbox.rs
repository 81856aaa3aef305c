//! The sandboxed Rhai [`Engine`] and the per-execution state its hooks consult.
//!
//! The engine starts raw: what a script can call is added by `host_api::register` alone (Rhai's
//! core language, strings, maths, arrays, blobs and maps, and the host API), and nothing that
//! reaches the outside world: no clock (`timestamp()` is refused, pointing to `ctx.now()`), no
//! randomness, no `sleep`, no `eval`, no `import`, no file or network access. Determinism
//! matters because query results are cached and shared between sessions.
//!
//! Limits (`limits.rs`): an operation cap, a wall-clock budget of user-code time per call (time
//! spent in database calls is not counted, as in Convex), call depth, expression depth, and
//! string, array and map sizes. Each breach fails only the call that hit it. Actions (and HTTP
//! actions) have a deadline instead of a user-time budget: 10 minutes of wall-clock time,
//! shared with the actions they call, because they wait on the network; the operation cap
//! still ends an endless loop.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth::Identity;
use database::{DbError, Transaction};
use parking_lot::Mutex;
use rhai::{Dynamic, Engine};

use crate::definition::FunctionKind;
use crate::host_error::{HostResult, db_error, host_error};
use crate::limits::{
    ACTION_TIME_LIMIT, MAX_CALL_DEPTH, MAX_CONTAINER_ITEMS, MAX_OPERATIONS, MAX_STRING_BYTES,
    USER_TIME_LIMIT,
};
use crate::module_set::ModuleSet;

/// Log lines kept per call (an HTTP action's include those of its nested calls).
const MAX_LOG_LINES: usize = 256;
const MAX_LOG_LINE: usize = 4096;

/// The state of one function execution, shared by every host handle (`ctx`, `ctx.db`, query
/// builders) the script holds. Handles that outlive the call find the transaction gone.
pub(crate) struct Exec {
    /// The transaction, lent for the call and taken back when it returns. A mutex because
    /// host handles are `Send + Sync`; it is never contended (one thread runs a call).
    pub txn: Mutex<Option<Box<dyn Transaction + Send>>>,
    pub identity: Option<Identity>,
    pub identity_read: AtomicBool,
    pub logs: Mutex<Vec<String>>,
    pub kind: FunctionKind,
    /// Writes are refused (a query, also when run inside a mutation by `ctx.runQuery`).
    pub read_only: bool,
    /// Frozen clock for `ctx.now()`.
    pub now_ms: f64,
    pub modules: Arc<ModuleSet>,
    /// What is running (`module:name`, or the route of an HTTP action), for limit messages.
    pub function: String,
    started: Instant,
    /// Nanoseconds spent inside database calls, excluded from the user-time budget.
    db_nanos: AtomicU64,
    /// An action's wall-clock deadline, which replaces the user-time budget.
    deadline: Option<Instant>,
}

impl Exec {
    pub(crate) fn new(
        txn: Box<dyn Transaction + Send>,
        identity: Option<Identity>,
        kind: FunctionKind,
        now_ms: f64,
        modules: Arc<ModuleSet>,
        function: String,
    ) -> Exec {
        Exec {
            txn: Mutex::new(Some(txn)),
            identity,
            identity_read: AtomicBool::new(false),
            logs: Mutex::new(Vec::new()),
            kind,
            read_only: kind == FunctionKind::Query,
            now_ms,
            modules,
            function,
            started: Instant::now(),
            db_nanos: AtomicU64::new(0),
            deadline: None,
        }
    }

    /// The execution of `ctx.runQuery`/`ctx.runMutation` inside `parent`: same identity,
    /// clock and time budget; read-only if either is.
    pub(crate) fn nested(
        parent: &Exec,
        txn: Box<dyn Transaction + Send>,
        kind: FunctionKind,
        function: String,
    ) -> Exec {
        Exec {
            txn: Mutex::new(Some(txn)),
            identity: parent.identity.clone(),
            identity_read: AtomicBool::new(false),
            logs: Mutex::new(Vec::new()),
            kind,
            read_only: parent.read_only || kind == FunctionKind::Query,
            now_ms: parent.now_ms,
            modules: parent.modules.clone(),
            function,
            started: parent.started,
            db_nanos: AtomicU64::new(parent.db_nanos.load(Ordering::Relaxed)),
            deadline: parent.deadline,
        }
    }

    /// The execution of an action or HTTP action (`kind`): no transaction (it reaches data
    /// only through `ctx.runQuery`/`ctx.runMutation`, each its own transaction) and a
    /// wall-clock deadline of [`ACTION_TIME_LIMIT`] from now.
    pub(crate) fn for_action(
        identity: Option<Identity>,
        now_ms: f64,
        modules: Arc<ModuleSet>,
        function: String,
        kind: FunctionKind,
    ) -> Exec {
        let started = Instant::now();
        Exec {
            txn: Mutex::new(None),
            identity,
            identity_read: AtomicBool::new(false),
            logs: Mutex::new(Vec::new()),
            kind,
            read_only: true,
            now_ms,
            modules,
            function,
            started,
            db_nanos: AtomicU64::new(0),
            deadline: started.checked_add(ACTION_TIME_LIMIT),
        }
    }

    /// The execution of an action called by `ctx.runAction` inside `parent`: same identity
    /// and deadline.
    pub(crate) fn nested_action(parent: &Exec, function: String) -> Exec {
        Exec {
            txn: Mutex::new(None),
            identity: parent.identity.clone(),
            identity_read: AtomicBool::new(false),
            logs: Mutex::new(Vec::new()),
            kind: FunctionKind::Action,
            read_only: true,
            now_ms: parent.now_ms,
            modules: parent.modules.clone(),
            function,
            started: parent.started,
            db_nanos: AtomicU64::new(0),
            deadline: parent.deadline,
        }
    }

    /// Whether this is an action or an HTTP action (which may use `env`, `fetch`, ...).
    pub(crate) fn is_action(&self) -> bool {
        matches!(self.kind, FunctionKind::Action | FunctionKind::HttpAction)
    }

    /// What is left of an action's wall-clock limit; `None` outside actions.
    pub(crate) fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// Whether the call has run past its time limit.
    fn out_of_time(&self) -> bool {
        match self.deadline {
            Some(deadline) => Instant::now() > deadline,
            None => self.user_time() > USER_TIME_LIMIT,
        }
    }

    /// Runs `f` on the execution's transaction, counting the time as database time.
    pub(crate) fn with_txn<R>(
        &self,
        f: impl FnOnce(&mut dyn Transaction) -> Result<R, DbError>,
    ) -> HostResult<R> {
        let started = Instant::now();
        let mut guard = self.txn.lock();
        let txn = guard.as_mut().ok_or_else(|| {
            host_error("ctx.db was used after the function returned; database handles are only valid during the call".to_string())
        })?;
        let result = f(txn.as_mut()).map_err(db_error);
        drop(guard);
        self.add_db_time(started.elapsed());
        result
    }

    pub(crate) fn add_db_time(&self, spent: Duration) {
        self.db_nanos
            .fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
    }

    fn user_time(&self) -> Duration {
        self.started
            .elapsed()
            .saturating_sub(Duration::from_nanos(self.db_nanos.load(Ordering::Relaxed)))
    }

    /// Appends the log lines of a call made elsewhere (an HTTP action's nested query or
    /// mutation), as many as fit under the per-call cap.
    pub(crate) fn append_logs(&self, lines: Vec<String>) {
        let mut logs = self.logs.lock();
        let room = MAX_LOG_LINES.saturating_sub(logs.len());
        logs.extend(lines.into_iter().take(room));
    }

    pub(crate) fn log(&self, level: &str, text: &str) {
        let mut logs = self.logs.lock();
        if logs.len() >= MAX_LOG_LINES {
            return;
        }
        let mut text = text.to_string();
        if text.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        let is_last = logs.len() + 1 == MAX_LOG_LINES;
        logs.push(if is_last {
            format!("[WARN] log line limit ({MAX_LOG_LINES}) reached; further lines dropped")
        } else {
            format!("[{level}] '{text}'")
        });
    }
}

thread_local! {
    /// The executions running on this thread, innermost last (nested for `ctx.runQuery`).
    static CURRENT: RefCell<Vec<Arc<Exec>>> = const { RefCell::new(Vec::new()) };
}

/// Makes `exec` the current execution of this thread until the guard drops.
pub(crate) struct Enter;

impl Enter {
    pub(crate) fn new(exec: Arc<Exec>) -> Enter {
        CURRENT.with(|c| c.borrow_mut().push(exec));
        Enter
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| {
            c.borrow_mut().pop();
        });
    }
}

pub(crate) fn with_current<R>(f: impl FnOnce(&Exec) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().last().map(|e| f(e)))
}

/// The reason the progress hook stopped a script, recognised by the runner: the function that
/// was running when its call ran out of user time.
#[derive(Clone)]
pub(crate) struct Timeout {
    pub function: String,
    /// It was an action's wall-clock deadline, not a user-time budget.
    pub action: bool,
}

/// A fresh sandboxed engine with nothing to call yet (`host_api::register` adds it all).
pub(crate) fn new_engine() -> Engine {
    let mut engine = Engine::new_raw();
    engine.set_strict_variables(true);
    // Both become load errors at the line that uses them (`hints::explain_syntax` says why).
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.set_max_operations(MAX_OPERATIONS);
    engine.set_max_call_levels(MAX_CALL_DEPTH);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(MAX_STRING_BYTES);
    engine.set_max_array_size(MAX_CONTAINER_ITEMS);
    engine.set_max_map_size(MAX_CONTAINER_ITEMS);
    engine.set_max_modules(0);
    engine.on_progress(|ops| {
        // Reading the clock on every operation would cost more than the operation itself.
        if ops % 1024 != 0 {
            return None;
        }
        with_current(|exec| {
            exec.out_of_time().then(|| {
                Dynamic::from(Timeout {
                    function: exec.function.clone(),
                    action: exec.deadline.is_some(),
                })
            })
        })
        .flatten()
    });
    engine.on_print(|text| {
        with_current(|exec| exec.log("LOG", text));
    });
    engine.on_debug(|text, _, _| {
        with_current(|exec| exec.log("DEBUG", text));
    });
    engine
}
