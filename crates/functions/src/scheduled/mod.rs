//! Scheduled functions and cron jobs, the parts that live with the functions: the rows of
//! `_scheduled_functions` and their reads and writes (`jobs.rs`), the transactions that run a
//! due job (`run.rs`), and the cron table `functions/crons.rhai` exports (`crons.rs`). What
//! scripts call (`ctx.scheduler`, `cronJobs()`) is registered in `host_api/scheduler.rs`; the
//! loop that wakes at due times is the application's (`application/src/scheduler/`), and the
//! test clock's is `testing/scheduled.rs`.

pub(crate) mod cron_check;
pub mod crons;
pub mod jobs;
pub mod run;
