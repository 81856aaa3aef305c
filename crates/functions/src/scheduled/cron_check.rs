//! The load checks of `functions/crons.rhai`: one cron table, exported from that module only,
//! and every job naming a mutation or action that takes its arguments, each refusal a load
//! error at the job's line. Apart from `crons.rs` so that the compiled modules can hold a cron
//! table without importing what checks it.

use crate::error::LoadError;
use crate::module_set::ModuleSet;
use crate::scheduled::crons::{CRONS_MODULE, CronJobs};
use crate::scheduled::jobs::check_target;

/// The one exported cron table: only from `functions/crons.rhai`, and only one.
pub(crate) fn check_export(
    file: &str,
    module: &str,
    name: &str,
    jobs: CronJobs,
    previous: Option<CronJobs>,
) -> Result<CronJobs, LoadError> {
    let error = |message: String| LoadError {
        file: file.to_string(),
        line: jobs.line,
        column: 1,
        message,
    };
    if module != CRONS_MODULE {
        return Err(error(format!(
            "`{name}` is a cron table; cron jobs run only from functions/{CRONS_MODULE}.rhai, so move it there"
        )));
    }
    if previous.is_some() {
        return Err(error(format!(
            "`{name}` is a second cron table; export one `cronJobs()` and add every job to it"
        )));
    }
    Ok(jobs)
}

/// Every cron job must name a mutation or action that takes its arguments; one load error
/// at the job's line per job that does not.
pub(crate) fn check_targets(set: &ModuleSet) -> Vec<LoadError> {
    let Some(module) = set.module(CRONS_MODULE) else {
        return Vec::new();
    };
    set.crons()
        .iter()
        .filter_map(|job| {
            check_target(set, &job.path, job.args.clone(), &NoTables)
                .err()
                .map(|message| LoadError {
                    file: module.file.clone(),
                    line: job.line,
                    column: 1,
                    message: format!("cron job {:?}: {message}", job.name),
                })
        })
        .collect()
}

/// Ids in a cron job's arguments are checked when it runs, against the live tables.
struct NoTables;

impl schema::IdTables for NoTables {
    fn table_of(&self, _id: &str) -> Option<String> {
        None
    }
}
