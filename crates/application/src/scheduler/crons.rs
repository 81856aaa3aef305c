//! The cron table: for each job of `functions/crons.rhai`, when it runs next and which run
//! (a `_scheduled_functions` job) it started last. Re-synced whenever the functions change:
//! an unchanged job keeps its times, a changed one starts over, a removed one is dropped (it
//! has no future job in the table, so nothing of it runs again).
//!
//! A run is a pending job inserted at its due time; the scheduler runs it like any other.
//! When the previous run is still pending or in progress, the due run is skipped (not queued
//! up), as the issue asks: a slow job never piles up behind itself.

use std::collections::BTreeMap;

use functions::Modules;
use functions::scheduled::crons::CronJob;

struct Entry {
    job: CronJob,
    fingerprint: String,
    /// When the job was (re)loaded: intervals count from here.
    anchor: f64,
    next: Option<f64>,
    /// The job id of the last run started.
    last_run: Option<String>,
}

/// One run to start now.
pub(crate) struct DueRun {
    pub job: CronJob,
    pub time: f64,
    pub last_run: Option<String>,
}

#[derive(Default)]
pub(crate) struct CronTable {
    entries: BTreeMap<String, Entry>,
    /// The functions fingerprint the table was synced with.
    synced: Option<u64>,
}

impl CronTable {
    /// Brings the table in step with `modules`; gives whether anything changed.
    pub(crate) fn sync(&mut self, modules: &Modules, now: f64) -> bool {
        if self.synced == Some(modules.fingerprint()) {
            return false;
        }
        self.synced = Some(modules.fingerprint());
        let mut entries = BTreeMap::new();
        for job in modules.crons() {
            let fingerprint = job.fingerprint();
            let entry = match self.entries.remove(&job.name) {
                Some(old) if old.fingerprint == fingerprint => Entry {
                    job: job.clone(),
                    ..old
                },
                old => {
                    if old.is_some() {
                        tracing::info!(cron = %job.name, "cron job changed; rescheduled");
                    }
                    Entry {
                        next: job.schedule.next_after(now, now),
                        job: job.clone(),
                        fingerprint,
                        anchor: now,
                        last_run: old.and_then(|o| o.last_run),
                    }
                }
            };
            entries.insert(job.name.clone(), entry);
        }
        for name in self.entries.keys() {
            tracing::info!(cron = %name, "cron job removed");
        }
        self.entries = entries;
        true
    }

    /// The runs due by `now`; each job's next time moves past `now` (runs missed while the
    /// server was busy or stopped are not made up, only the latest is started).
    pub(crate) fn take_due(&mut self, now: f64) -> Vec<DueRun> {
        let mut due = Vec::new();
        for entry in self.entries.values_mut() {
            let Some(time) = entry.next.filter(|t| *t <= now) else {
                continue;
            };
            entry.next = entry.job.schedule.next_after(now, entry.anchor);
            due.push(DueRun {
                job: entry.job.clone(),
                time,
                last_run: entry.last_run.clone(),
            });
        }
        due
    }

    /// Records the job id of a run that was started.
    pub(crate) fn started(&mut self, name: &str, id: String) {
        if let Some(entry) = self.entries.get_mut(name) {
            entry.last_run = Some(id);
        }
    }

    /// Each job's next run and last run started, for the dashboard.
    pub(crate) fn runs(&self) -> Vec<super::CronRun> {
        self.entries
            .iter()
            .map(|(name, entry)| super::CronRun {
                name: name.clone(),
                next: entry.next,
                last_run: entry.last_run.clone(),
            })
            .collect()
    }

    /// The earliest next run.
    pub(crate) fn next_time(&self) -> Option<f64> {
        self.entries
            .values()
            .filter_map(|e| e.next)
            .min_by(f64::total_cmp)
    }
}
