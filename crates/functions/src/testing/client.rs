//! `t`, the handle a test gets ([`TestClient`]): it calls the app's queries and mutations on the
//! test's own database as one identity (or none), runs a closure as a mutation (`t.run`), and
//! reads and moves the test's clock. `t.withIdentity(...)` makes another handle on the same
//! database and clock.
//!
//! A query runs at the latest snapshot, a mutation through the Committer as its own
//! transaction, both exactly as a client's call would run but with the caller trusted, so a
//! test can call internal functions too (as convex-test does). Their `ctx.now()` reads the
//! test's clock. A failed call throws a [`CallError`] into the test.

use std::sync::Arc;

use auth::Identity;
use database::Database;
use parking_lot::Mutex;
use rhai::{Dynamic, EvalAltResult, FnPtr};
use value::{Object, Value};

use crate::convert::{from_dynamic, object_from_dynamic, to_dynamic};
use crate::definition::{Caller, FunctionKind};
use crate::host_api::ctx::Ctx;
use crate::host_error::{HostResult, host_error};
use crate::modules::Modules;
use crate::path::FunctionPath;
use crate::runner::{Call, Execution};
use crate::sandbox::{Enter, Exec, with_current};
use crate::testing::clock::TestClock;
use crate::testing::failure::{CallError, raise};
use crate::testing::state::TestScript;

/// The issuer `t.withIdentity` fills in when the identity names none.
pub const TEST_ISSUER: &str = "https://pulsebase.test";

/// Function log lines kept per test.
const MAX_LOG_LINES: usize = 1_000;

/// What every handle of one test shares: its database, the app's functions, its clock.
pub(crate) struct TestEnv {
    db: Database,
    modules: Arc<Modules>,
    clock: Arc<TestClock>,
    script: Arc<TestScript>,
    /// Log lines of the functions the test called, each prefixed with the function.
    logs: Mutex<Vec<String>>,
}

impl TestEnv {
    pub(crate) fn new(
        db: Database,
        modules: Arc<Modules>,
        clock: Arc<TestClock>,
        script: Arc<TestScript>,
    ) -> TestEnv {
        TestEnv {
            db,
            modules,
            clock,
            script,
            logs: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn take_logs(&self) -> Vec<String> {
        std::mem::take(&mut *self.logs.lock())
    }

    fn log(&self, function: &str, lines: Vec<String>) {
        let mut logs = self.logs.lock();
        let room = MAX_LOG_LINES.saturating_sub(logs.len());
        logs.extend(
            lines
                .into_iter()
                .take(room)
                .map(|l| format!("{function}: {l}")),
        );
    }
}

/// What a `t.run` closure did on the Committer's thread.
struct RunOutcome {
    outcome: Result<Dynamic, Box<EvalAltResult>>,
    /// Log lines of the functions it called through `ctx.runQuery`/`ctx.runMutation`.
    logs: Vec<String>,
}

/// `t`: one identity (or none) on a test's database.
#[derive(Clone)]
pub(crate) struct TestClient {
    env: Arc<TestEnv>,
    identity: Option<Identity>,
}

impl TestClient {
    pub(crate) fn anonymous(env: Arc<TestEnv>) -> TestClient {
        TestClient {
            env,
            identity: None,
        }
    }

    /// `t.withIdentity(#{ subject, name, ... })`: `issuer` defaults to [`TEST_ISSUER`],
    /// `subject` to a hash of the given claims, `tokenIdentifier` to `issuer|subject`, as
    /// convex-test fills them.
    pub(crate) fn with_identity(&self, claims: &Dynamic) -> HostResult<TestClient> {
        let mut identity = object_from_dynamic(claims, "t.withIdentity(identity): identity")
            .map_err(host_error)?;
        for field in ["subject", "issuer", "tokenIdentifier"] {
            if let Some(value) = identity.get(field)
                && !matches!(value, Value::String(_))
            {
                return Err(host_error(format!(
                    "t.withIdentity(identity): `{field}` must be a string, not {}",
                    value.type_name()
                )));
            }
        }
        let text = |identity: &Object, field: &str| match identity.get(field) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let subject = text(&identity, "subject")
            .unwrap_or_else(|| claims_hash(&Value::Object(identity.clone())));
        let issuer = text(&identity, "issuer").unwrap_or_else(|| TEST_ISSUER.to_string());
        let token =
            text(&identity, "tokenIdentifier").unwrap_or_else(|| format!("{issuer}|{subject}"));
        identity.insert("subject".to_string(), Value::String(subject));
        identity.insert("issuer".to_string(), Value::String(issuer));
        identity.insert("tokenIdentifier".to_string(), Value::String(token));
        let identity = Identity::acting_as(&Value::Object(identity).to_json())
            .map_err(|e| host_error(format!("t.withIdentity(identity): {e}")))?;
        Ok(TestClient {
            env: self.env.clone(),
            identity: Some(identity),
        })
    }

    pub(crate) fn now(&self) -> f64 {
        self.env.clock.now()
    }

    /// Moves the clock; not inside `t.run`, since what the advance runs may need the Committer.
    pub(crate) fn advance_time(&self, ms: f64) -> HostResult<f64> {
        not_inside_run("t.advanceTime")?;
        self.env.clock.advance(ms).map_err(host_error)
    }

    /// `t.query(path, args)`: runs the query at the latest snapshot.
    pub(crate) fn query(&self, path: &str, args: &Dynamic) -> HostResult<Dynamic> {
        not_inside_run("t.query")?;
        let (path, args) = call_args("t.query", path, args)?;
        let txn = self
            .env
            .db
            .snapshot()
            .map_err(|e| host_error(format!("t.query({path}): {e}")))?;
        let call = Call {
            path: path.clone(),
            kind: FunctionKind::Query,
            caller: Caller::Trusted,
            args,
            identity: self.identity.clone(),
            now_ms: self.now(),
        };
        let execution = self.env.modules.run(call, Box::new(txn)).execution;
        self.outcome(&path, execution)
    }

    /// `t.mutation(path, args)`: runs the mutation as its own transaction on the Committer.
    pub(crate) fn mutation(&self, path: &str, args: &Dynamic) -> HostResult<Dynamic> {
        not_inside_run("t.mutation")?;
        let (path, args) = call_args("t.mutation", path, args)?;
        let slot: Arc<Mutex<Option<Execution>>> = Arc::new(Mutex::new(None));
        let (modules, identity, now, out) = (
            self.env.modules.clone(),
            self.identity.clone(),
            self.now(),
            slot.clone(),
        );
        let function = path.clone();
        self.env
            .db
            .mutate_blocking(
                None,
                Box::new(move |txn| {
                    let call = Call {
                        path: function,
                        kind: FunctionKind::Mutation,
                        caller: Caller::Trusted,
                        args,
                        identity,
                        now_ms: now,
                    };
                    let execution = modules.run(call, Box::new(txn)).execution;
                    let committed = execution.result.is_ok();
                    *out.lock() = Some(execution);
                    if committed {
                        Ok(String::new())
                    } else {
                        Err(String::new())
                    }
                }),
            )
            .map_err(|e| host_error(format!("t.mutation({path}): {e}")))?;
        let execution = slot
            .lock()
            .take()
            .ok_or_else(|| host_error(format!("t.mutation({path}): the mutation did not run")))?;
        self.outcome(&path, execution)
    }

    /// `t.run(|ctx| ...)`: runs a closure of the test file as a mutation (`ctx.db` reads and
    /// writes, `ctx.auth` is this handle's identity), committed when it returns and rolled
    /// back when it throws.
    pub(crate) fn run(&self, body: FnPtr) -> HostResult<Dynamic> {
        not_inside_run("t.run")?;
        let slot: Arc<Mutex<Option<RunOutcome>>> = Arc::new(Mutex::new(None));
        let (script, set, identity, now, out) = (
            self.env.script.clone(),
            self.env.modules.module_set().clone(),
            self.identity.clone(),
            self.now(),
            slot.clone(),
        );
        self.env
            .db
            .mutate_blocking(
                None,
                Box::new(move |txn| {
                    let exec = Arc::new(Exec::new(
                        Box::new(txn),
                        identity,
                        FunctionKind::Mutation,
                        now,
                        set,
                        "t.run".to_string(),
                    ));
                    let outcome = {
                        let _current = Enter::new(exec.clone());
                        body.call::<Dynamic>(
                            &script.engine,
                            &script.ast,
                            (Ctx(exec.clone()).into_dynamic(),),
                        )
                    };
                    // The handles the closure may have kept find the transaction gone.
                    exec.txn.lock().take();
                    let logs = std::mem::take(&mut *exec.logs.lock());
                    let committed = outcome.is_ok();
                    *out.lock() = Some(RunOutcome { outcome, logs });
                    if committed {
                        Ok(String::new())
                    } else {
                        Err(String::new())
                    }
                }),
            )
            .map_err(|e| host_error(format!("t.run: {e}")))?;
        let RunOutcome { outcome, logs } = slot
            .lock()
            .take()
            .ok_or_else(|| host_error("t.run: the closure did not run".to_string()))?;
        self.env.log("t.run", logs);
        outcome
    }

    fn outcome(&self, path: &FunctionPath, execution: Execution) -> HostResult<Dynamic> {
        self.env.log(&path.to_string(), execution.log_lines);
        match execution.result {
            Ok(value) => Ok(to_dynamic(&value)),
            Err(error) => Err(raise(CallError {
                function: path.to_string(),
                message: error.message,
                data: error.data,
            })),
        }
    }
}

/// Refuses a call that would wait for the Committer from inside `t.run`, which holds it.
fn not_inside_run(what: &str) -> HostResult<()> {
    if with_current(|_| ()).is_some() {
        return Err(host_error(format!(
            "{what} cannot be called inside t.run (the closure runs inside a mutation, which would wait for itself); use ctx.db, ctx.runQuery and ctx.runMutation there"
        )));
    }
    Ok(())
}

fn call_args(what: &str, path: &str, args: &Dynamic) -> HostResult<(FunctionPath, Value)> {
    let path = FunctionPath::parse(path);
    let args = if args.is_unit() {
        Value::Object(Object::new())
    } else {
        match from_dynamic(args, "the arguments").map_err(host_error)? {
            object @ Value::Object(_) => object,
            other => {
                return Err(host_error(format!(
                    "{what}(\"{path}\", args): args must be an object map like #{{ text: \"x\" }}, not {}",
                    other.type_name()
                )));
            }
        }
    };
    Ok((path, args))
}

/// A stable subject for claims that name none (the same claims, the same subject).
fn claims_hash(claims: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(claims.to_json_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
