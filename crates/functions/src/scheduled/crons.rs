//! Cron jobs: what `functions/crons.rhai` exports, built like Convex's `cronJobs()`:
//! `.interval(name, #{ seconds, minutes, hours }, path, args)`, `.cron(name, "m h dom mon
//! dow", path, args)`, and the helpers `.hourly(name, #{ minuteUTC }, ...)`, `.daily(name,
//! #{ hourUTC, minuteUTC }, ...)`, `.weekly(name, #{ dayOfWeek, hourUTC, minuteUTC }, ...)`,
//! `.monthly(name, #{ day, hourUTC, minuteUTC }, ...)` (the last argument may be left out).
//!
//! Every mistake (a repeated name, a bad expression, a bad field) fails the load of the
//! module at the call's file:line. Cron expressions are 5-field Unix syntax in UTC, parsed and
//! evaluated by the `croner` crate; the helpers are turned into such expressions.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use rhai::{Dynamic, Map, NativeCallContext};
use value::Value;

use crate::convert::from_dynamic;
use crate::host_error::{HostResult, host_error};
use crate::path::FunctionPath;

/// The module whose exported `cronJobs()` value is the app's cron table.
pub const CRONS_MODULE: &str = "crons";

/// When a cron job runs.
#[derive(Clone, Debug)]
pub enum CronSchedule {
    /// Every `ms` milliseconds, counted from when the job was (re)loaded.
    Interval { ms: f64 },
    /// A 5-field Unix cron expression, in UTC.
    Cron { expression: String, cron: Box<Cron> },
}

impl CronSchedule {
    /// Parses a 5-field cron expression (minute hour day-of-month month day-of-week, UTC).
    pub fn parse_cron(expression: &str) -> Result<CronSchedule, String> {
        let fields = expression.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "cron expression {expression:?} has {fields} fields; write 5: minute hour day-of-month month day-of-week (UTC), e.g. \"0 9 * * *\""
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(expression)
            .map_err(|e| format!("cron expression {expression:?} is not valid: {e}"))?;
        Ok(CronSchedule::Cron {
            expression: expression.to_string(),
            cron: Box::new(cron),
        })
    }

    /// The first run strictly after `after_ms`; an interval counts from `anchor_ms` (when the
    /// job was loaded). `None` when the expression never matches again.
    pub fn next_after(&self, after_ms: f64, anchor_ms: f64) -> Option<f64> {
        match self {
            CronSchedule::Interval { ms } => {
                let periods = ((after_ms - anchor_ms) / ms).floor().max(0.0) + 1.0;
                Some(anchor_ms + periods * ms)
            }
            CronSchedule::Cron { cron, .. } => {
                let after = chrono::DateTime::from_timestamp_millis(after_ms.floor() as i64)?;
                let next = cron.find_next_occurrence(&after, false).ok()?;
                Some(next.timestamp_millis() as f64)
            }
        }
    }

    /// A text that differs whenever the schedule does (to tell a changed job on reload).
    pub fn describe(&self) -> String {
        match self {
            CronSchedule::Interval { ms } => format!("every {ms} ms"),
            CronSchedule::Cron { expression, .. } => format!("cron {expression}"),
        }
    }
}

/// One cron job.
#[derive(Clone, Debug)]
pub struct CronJob {
    pub name: String,
    pub schedule: CronSchedule,
    pub path: FunctionPath,
    pub args: Value,
    /// `functions/crons.rhai:LINE`.
    pub declared_at: String,
    pub(crate) line: usize,
}

impl CronJob {
    /// Equal for two versions of a job that run the same function, args and schedule.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}",
            self.schedule.describe(),
            self.path,
            self.args.to_json_string()
        )
    }
}

/// What `cronJobs()` returns and every method adds to.
#[derive(Clone, Debug, Default)]
pub struct CronJobs {
    pub jobs: Vec<CronJob>,
    /// The line of the `cronJobs()` call.
    pub(crate) line: usize,
}

const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// An integer field of a helper's schedule map within `low..=high` (`default` when absent).
fn field(
    map: &Map,
    what: &str,
    name: &str,
    low: i64,
    high: i64,
    default: Option<i64>,
) -> HostResult<i64> {
    let value = match map.get(name) {
        Some(v) if v.is_int() => v.as_int().unwrap_or_default(),
        Some(v) if v.is_float() => {
            let f = v.as_float().unwrap_or_default();
            if f.fract() != 0.0 {
                return Err(host_error(format!(
                    "{what}: `{name}` must be a whole number, not {f}"
                )));
            }
            f as i64
        }
        Some(v) => {
            return Err(host_error(format!(
                "{what}: `{name}` must be a number, not {}",
                v.type_name()
            )));
        }
        None => match default {
            Some(d) => d,
            None => return Err(host_error(format!("{what}: `{name}` is required"))),
        },
    };
    if !(low..=high).contains(&value) {
        return Err(host_error(format!(
            "{what}: `{name}` must be between {low} and {high}, not {value}"
        )));
    }
    Ok(value)
}

/// Refuses fields a helper does not know (a typo would otherwise be silently ignored).
fn known_fields(map: &Map, what: &str, known: &[&str]) -> HostResult<()> {
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(host_error(format!(
            "{what}: unknown field `{unknown}`; it takes {}",
            known.join(", ")
        )));
    }
    Ok(())
}

impl CronJobs {
    pub(crate) fn new(line: usize) -> CronJobs {
        CronJobs {
            jobs: Vec::new(),
            line,
        }
    }

    fn add(
        &mut self,
        call: &NativeCallContext,
        name: &str,
        schedule: CronSchedule,
        path: &str,
        args: Dynamic,
    ) -> HostResult<CronJobs> {
        let line = call.call_position().line().unwrap_or(0);
        if name.trim().is_empty() {
            return Err(host_error(
                "crons: give every cron job a name (the first argument)".to_string(),
            ));
        }
        if let Some(first) = self.jobs.iter().find(|j| j.name == name) {
            return Err(host_error(format!(
                "crons: the name {name:?} is already used by the cron job at line {}; names are unique",
                first.line
            )));
        }
        if !path.contains(':') {
            return Err(host_error(format!(
                "crons: {path:?} is not a function path; write \"module:function\", e.g. \"presence:clearStale\""
            )));
        }
        let args = if args.is_unit() {
            Value::Object(value::Object::new())
        } else {
            from_dynamic(&args, "the cron job's arguments").map_err(host_error)?
        };
        if !matches!(args, Value::Object(_)) {
            return Err(host_error(format!(
                "crons: the arguments of {name:?} must be a map like #{{}}, not {}",
                args.type_name()
            )));
        }
        let file = call.call_source().unwrap_or("functions/crons.rhai");
        self.jobs.push(CronJob {
            name: name.to_string(),
            schedule,
            path: FunctionPath::parse(path),
            args,
            declared_at: format!("{file}:{line}"),
            line,
        });
        Ok(self.clone())
    }

    pub(crate) fn interval(
        &mut self,
        call: &NativeCallContext,
        name: &str,
        every: Map,
        path: &str,
        args: Dynamic,
    ) -> HostResult<CronJobs> {
        let what = format!("crons.interval({name:?})");
        known_fields(&every, &what, &["seconds", "minutes", "hours"])?;
        let mut ms = 0.0;
        for (unit, factor) in [("seconds", 1e3), ("minutes", 60e3), ("hours", 3600e3)] {
            match every.get(unit) {
                None => {}
                Some(v) if v.is_int() => ms += v.as_int().unwrap_or_default() as f64 * factor,
                Some(v) if v.is_float() => ms += v.as_float().unwrap_or_default() * factor,
                Some(v) => {
                    return Err(host_error(format!(
                        "{what}: `{unit}` must be a number, not {}",
                        v.type_name()
                    )));
                }
            }
        }
        if !ms.is_finite() || ms < 1000.0 {
            return Err(host_error(format!(
                "{what}: the interval must be at least 1 second, e.g. #{{ seconds: 30 }} or #{{ hours: 1 }}"
            )));
        }
        self.add(call, name, CronSchedule::Interval { ms }, path, args)
    }

    pub(crate) fn cron(
        &mut self,
        call: &NativeCallContext,
        name: &str,
        expression: &str,
        path: &str,
        args: Dynamic,
    ) -> HostResult<CronJobs> {
        let schedule = CronSchedule::parse_cron(expression)
            .map_err(|e| host_error(format!("crons.cron({name:?}): {e}")))?;
        self.add(call, name, schedule, path, args)
    }

    pub(crate) fn helper(
        &mut self,
        call: &NativeCallContext,
        kind: &str,
        name: &str,
        at: Map,
        path: &str,
        args: Dynamic,
    ) -> HostResult<CronJobs> {
        let what = format!("crons.{kind}({name:?})");
        let expression = match kind {
            "hourly" => {
                known_fields(&at, &what, &["minuteUTC"])?;
                let minute = field(&at, &what, "minuteUTC", 0, 59, None)?;
                format!("{minute} * * * *")
            }
            "daily" => {
                known_fields(&at, &what, &["hourUTC", "minuteUTC"])?;
                let hour = field(&at, &what, "hourUTC", 0, 23, None)?;
                let minute = field(&at, &what, "minuteUTC", 0, 59, None)?;
                format!("{minute} {hour} * * *")
            }
            "weekly" => {
                known_fields(&at, &what, &["dayOfWeek", "hourUTC", "minuteUTC"])?;
                let day = at
                    .get("dayOfWeek")
                    .and_then(|d| d.clone().into_string().ok())
                    .and_then(|d| DAYS.iter().position(|name| *name == d.to_lowercase()))
                    .ok_or_else(|| {
                        host_error(format!(
                            "{what}: `dayOfWeek` must be one of {}",
                            DAYS.join(", ")
                        ))
                    })?;
                let hour = field(&at, &what, "hourUTC", 0, 23, None)?;
                let minute = field(&at, &what, "minuteUTC", 0, 59, None)?;
                format!("{minute} {hour} * * {day}")
            }
            _ => {
                known_fields(&at, &what, &["day", "hourUTC", "minuteUTC"])?;
                let day = field(&at, &what, "day", 1, 31, None)?;
                let hour = field(&at, &what, "hourUTC", 0, 23, None)?;
                let minute = field(&at, &what, "minuteUTC", 0, 59, None)?;
                format!("{minute} {hour} {day} * *")
            }
        };
        let schedule = CronSchedule::parse_cron(&expression)
            .map_err(|e| host_error(format!("{what}: {e}")))?;
        self.add(call, name, schedule, path, args)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    fn ms(text: &str) -> f64 {
        chrono::DateTime::<chrono::Utc>::from_str(text)
            .map(|d| d.timestamp_millis() as f64)
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn five_field_expressions_run_in_utc() {
        let daily = CronSchedule::parse_cron("0 9 * * *").expect("valid");
        assert_eq!(
            daily.next_after(ms("2026-03-01T08:59:59Z"), 0.0),
            Some(ms("2026-03-01T09:00:00Z"))
        );
        // Strictly after: a run at 09:00 does not find itself again.
        assert_eq!(
            daily.next_after(ms("2026-03-01T09:00:00Z"), 0.0),
            Some(ms("2026-03-02T09:00:00Z"))
        );
        let mondays = CronSchedule::parse_cron("30 14 * * 1").expect("valid");
        assert_eq!(
            mondays.next_after(ms("2026-03-01T00:00:00Z"), 0.0),
            Some(ms("2026-03-02T14:30:00Z"))
        );
        let steps = CronSchedule::parse_cron("*/15 * * * *").expect("valid");
        assert_eq!(
            steps.next_after(ms("2026-03-01T10:16:00Z"), 0.0),
            Some(ms("2026-03-01T10:30:00Z"))
        );
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for (bad, expect) in [
            ("0 9 * *", "has 4 fields"),
            ("0 0 9 * * *", "has 6 fields"),
            ("61 * * * *", "not valid"),
            ("0 25 * * *", "not valid"),
            ("* * * * funday", "not valid"),
        ] {
            match CronSchedule::parse_cron(bad) {
                Ok(_) => panic!("{bad} was accepted"),
                Err(e) => assert!(e.contains(expect), "{bad}: {e}"),
            }
        }
    }

    #[test]
    fn intervals_count_from_their_anchor() {
        let every = CronSchedule::Interval { ms: 1000.0 };
        assert_eq!(every.next_after(5_000.0, 5_000.0), Some(6_000.0));
        assert_eq!(every.next_after(6_500.0, 5_000.0), Some(7_000.0));
        assert_eq!(every.next_after(7_000.0, 5_000.0), Some(8_000.0));
        // A clock before the anchor still gives the first period.
        assert_eq!(every.next_after(1_000.0, 5_000.0), Some(6_000.0));
    }
}
