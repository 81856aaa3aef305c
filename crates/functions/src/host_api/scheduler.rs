//! `ctx.scheduler` and `cronJobs()`:
//!
//! - mutations and actions: `ctx.scheduler.runAfter(delayMs, path, args)`,
//!   `ctx.scheduler.runAt(timestampMs, path, args)` (args may be left out), each giving the
//!   job's id (an id of `_scheduled_functions`), and `ctx.scheduler.cancel(id)`; queries
//!   refuse all three (they cannot write);
//! - at module level in `functions/crons.rhai`: `cronJobs()` and its `interval`, `cron`,
//!   `hourly`, `daily`, `weekly`, `monthly` (`scheduled/crons.rs`).
//!
//! In a mutation the job is written in the mutation's own transaction, so it exists only if
//! the mutation commits; in an action each call is a small commit of its own, through the
//! [`ActionHost`](crate::ActionHost). The path and the arguments are checked now (and again
//! when the job runs).

use std::sync::Arc;

use rhai::{Dynamic, Engine, Map, NativeCallContext};
use value::Value;

use crate::action_ctx::ActionCtx;
use crate::convert::from_dynamic;
use crate::definition::FunctionKind;
use crate::host_api::ctx::Ctx;
use crate::host_error::{HostResult, host_error, string_arg};
use crate::path::FunctionPath;
use crate::sandbox::Exec;
use crate::scheduled::crons::CronJobs;
use crate::scheduled::jobs::{cancel_job, insert_job};

/// `ctx.scheduler` of a query or mutation.
#[derive(Clone)]
struct Scheduler(Arc<Exec>);

/// `ctx.scheduler` of an action.
#[derive(Clone)]
struct ActionScheduler(ActionCtx);

/// When a job runs: `runAfter`'s delay from now, or `runAt`'s timestamp.
#[derive(Clone, Copy)]
enum When {
    After,
    At,
}

impl When {
    fn name(self) -> &'static str {
        match self {
            When::After => "runAfter",
            When::At => "runAt",
        }
    }

    /// The job's time in ms; a time in the past means "now", as in Convex.
    fn time(self, value: &Dynamic, now_ms: f64) -> HostResult<f64> {
        let number = if value.is_int() {
            value.as_int().unwrap_or_default() as f64
        } else if value.is_float() {
            value.as_float().unwrap_or_default()
        } else {
            return Err(host_error(format!(
                "ctx.scheduler.{}: the first argument must be a number of ms, not {}",
                self.name(),
                value.type_name()
            )));
        };
        if !number.is_finite() {
            return Err(host_error(format!(
                "ctx.scheduler.{}: the time must be a finite number, not {number}",
                self.name()
            )));
        }
        Ok(match self {
            When::After => now_ms + number.max(0.0),
            When::At => number,
        })
    }
}

fn job_args(when: When, args: &Dynamic) -> HostResult<Value> {
    if args.is_unit() {
        return Ok(Value::Object(value::Object::new()));
    }
    from_dynamic(args, "the arguments")
        .map_err(|e| host_error(format!("ctx.scheduler.{}: {e}", when.name())))
}

impl Scheduler {
    fn writable(&self, call: &str) -> HostResult<()> {
        if self.0.read_only || self.0.kind != FunctionKind::Mutation {
            return Err(host_error(format!(
                "ctx.scheduler.{call} is not available in a query; schedule from a mutation or an action"
            )));
        }
        Ok(())
    }

    fn schedule(
        &self,
        when: When,
        time: &Dynamic,
        path: &str,
        args: &Dynamic,
    ) -> HostResult<String> {
        self.writable(when.name())?;
        let time = when.time(time, self.0.now_ms)?;
        let args = job_args(when, args)?;
        let path = FunctionPath::parse(path);
        let modules = self.0.modules.clone();
        let outcome = self
            .0
            .with_txn(|txn| Ok(insert_job(txn, &modules, &path, args, time, None)))?;
        outcome.map_err(|e| host_error(format!("ctx.scheduler.{}({path}): {e}", when.name())))
    }

    fn cancel(&self, id: &Dynamic) -> HostResult<()> {
        self.writable("cancel")?;
        let id = string_arg(id, "ctx.scheduler.cancel(id): id")?;
        let now = self.0.now_ms;
        self.0
            .with_txn(|txn| Ok(cancel_job(txn, &id, now)))?
            .map_err(|e| host_error(format!("ctx.scheduler.cancel: {e}")))
    }
}

impl ActionScheduler {
    fn schedule(
        &self,
        when: When,
        time: &Dynamic,
        path: &str,
        args: &Dynamic,
    ) -> HostResult<String> {
        let time = when.time(time, self.0.now())?;
        let args = job_args(when, args)?;
        let path = FunctionPath::parse(path);
        self.0
            .host()
            .schedule(&path, args, time)
            .map_err(|e| host_error(format!("ctx.scheduler.{}({path}): {e}", when.name())))
    }

    fn cancel(&self, id: &Dynamic) -> HostResult<()> {
        let id = string_arg(id, "ctx.scheduler.cancel(id): id")?;
        self.0
            .host()
            .cancel(&id)
            .map_err(|e| host_error(format!("ctx.scheduler.cancel: {e}")))
    }
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Scheduler>("Scheduler");
    engine.register_type_with_name::<ActionScheduler>("ActionScheduler");
    engine.register_get("scheduler", |ctx: &mut Ctx| Scheduler(ctx.0.clone()));
    engine.register_get("scheduler", |ctx: &mut ActionCtx| {
        ActionScheduler(ctx.clone())
    });
    for when in [When::After, When::At] {
        let name = when.name();
        engine.register_fn(
            name,
            move |s: Scheduler, t: Dynamic, path: &str, args: Dynamic| {
                s.schedule(when, &t, path, &args)
            },
        );
        engine.register_fn(name, move |s: Scheduler, t: Dynamic, path: &str| {
            s.schedule(when, &t, path, &Dynamic::UNIT)
        });
        engine.register_fn(
            name,
            move |s: ActionScheduler, t: Dynamic, path: &str, args: Dynamic| {
                s.schedule(when, &t, path, &args)
            },
        );
        engine.register_fn(name, move |s: ActionScheduler, t: Dynamic, path: &str| {
            s.schedule(when, &t, path, &Dynamic::UNIT)
        });
    }
    engine.register_fn("cancel", |s: Scheduler, id: Dynamic| s.cancel(&id));
    engine.register_fn("cancel", |s: ActionScheduler, id: Dynamic| s.cancel(&id));

    register_crons(engine);
}

fn register_crons(engine: &mut Engine) {
    engine.register_type_with_name::<CronJobs>("CronJobs");
    engine.register_fn("cronJobs", |call: NativeCallContext| {
        CronJobs::new(call.call_position().line().unwrap_or(0))
    });
    engine.register_fn(
        "interval",
        |c: NativeCallContext, j: &mut CronJobs, name: &str, every: Map, path: &str, a: Dynamic| {
            j.interval(&c, name, every, path, a)
        },
    );
    engine.register_fn(
        "cron",
        |c: NativeCallContext, j: &mut CronJobs, name: &str, expr: &str, path: &str, a: Dynamic| {
            j.cron(&c, name, expr, path, a)
        },
    );
    for kind in ["hourly", "daily", "weekly", "monthly"] {
        engine.register_fn(
            kind,
            move |c: NativeCallContext,
                  j: &mut CronJobs,
                  name: &str,
                  at: Map,
                  path: &str,
                  a: Dynamic| { j.helper(&c, kind, name, at, path, a) },
        );
    }
    // Without arguments: `args` defaults to #{}.
    engine.register_fn(
        "interval",
        |c: NativeCallContext, j: &mut CronJobs, name: &str, every: Map, path: &str| {
            j.interval(&c, name, every, path, Dynamic::UNIT)
        },
    );
    engine.register_fn(
        "cron",
        |c: NativeCallContext, j: &mut CronJobs, name: &str, expr: &str, path: &str| {
            j.cron(&c, name, expr, path, Dynamic::UNIT)
        },
    );
    for kind in ["hourly", "daily", "weekly", "monthly"] {
        engine.register_fn(
            kind,
            move |c: NativeCallContext, j: &mut CronJobs, name: &str, at: Map, path: &str| {
                j.helper(&c, kind, name, at, path, Dynamic::UNIT)
            },
        );
    }
}
