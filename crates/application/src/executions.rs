//! [`Executions`]: what every finished function execution leaves behind, for operators: an
//! [`ExecutionRecord`] (path, kind, caller, duration, outcome, log lines, error) broadcast to
//! live viewers (the dashboard's logs page) and kept in a short history, a structured log
//! event (target `pulsebase::execution`, which `--log-format json` turns into one JSON line
//! per execution), and the per-kind latency histograms and error counts of `/metrics`.
//!
//! The broadcast never waits for a viewer: it is a bounded ring, and a viewer that falls
//! behind loses the oldest records it has not read (it is told how many). The server's own
//! cost per execution is a histogram update (atomics), building the record, and two short
//! uncontended locks (the history ring and the broadcast's tail). The built-in `_system/` functions (the dashboard's own reads and
//! writes) are left out of records and metrics, so watching the dashboard does not fill it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::Identity;
use functions::{Caller, FunctionError};
use parking_lot::Mutex;
use telemetry::{CounterSet, Histogram};
use tokio::sync::broadcast;

/// Records kept for a viewer that opens the logs page after the fact.
const HISTORY: usize = 500;
/// Records a live viewer may fall behind by before it loses the oldest ones.
const LIVE_BUFFER: usize = 1024;
/// Log lines (and bytes of each) a record keeps; the rest is counted, not kept.
const MAX_LOG_LINES: usize = 64;
const MAX_LINE_BYTES: usize = 2048;

/// The kinds measured separately, as `/metrics` labels them; anything else counts as "other".
pub const KINDS: &[&str] = &["query", "mutation", "action", "http_action", "other"];

/// One finished function execution.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    /// Increasing per server run; a viewer can tell what it missed.
    pub id: u64,
    /// When it started, ms since the epoch.
    pub started_at_ms: f64,
    /// `module:function`, or `METHOD /path` for an HTTP action.
    pub path: String,
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// `anonymous`, `user <subject>`, `admin`, or `admin as <subject>`.
    pub caller: String,
    pub duration_ms: f64,
    /// `success` or `error`.
    pub outcome: &'static str,
    /// The error message with its `at functions/FILE.rhai:LINE:COLUMN` frames.
    pub error: Option<String>,
    pub log_lines: Vec<String>,
}

/// What a finished execution reports; [`Executions::record`] builds the record from it.
pub struct Finished<'a> {
    pub path: ExecutedPath<'a>,
    pub kind: &'a str,
    pub caller: Caller,
    pub identity: Option<&'a Identity>,
    pub started: SystemTime,
    pub duration: Duration,
    pub error: Option<&'a FunctionError>,
    pub log_lines: &'a [String],
}

/// What ran: a function (by path) or an HTTP action's route.
#[derive(Clone, Copy)]
pub enum ExecutedPath<'a> {
    Function(&'a functions::FunctionPath),
    /// `METHOD /path` of an HTTP action's route.
    Route(&'a str),
}

impl ExecutedPath<'_> {
    fn is_system(&self) -> bool {
        matches!(self, ExecutedPath::Function(p) if p.module().starts_with(functions::SYSTEM_PREFIX))
    }

    fn text(&self) -> String {
        match self {
            ExecutedPath::Function(p) => p.to_string(),
            ExecutedPath::Route(r) => (*r).to_string(),
        }
    }
}

/// The execution log and function metrics of one server.
pub struct Executions {
    live: broadcast::Sender<Arc<ExecutionRecord>>,
    history: Mutex<VecDeque<Arc<ExecutionRecord>>>,
    next_id: AtomicU64,
    latency: Vec<Histogram>,
    errors: CounterSet,
}

impl Default for Executions {
    fn default() -> Self {
        Executions {
            live: broadcast::channel(LIVE_BUFFER).0,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            next_id: AtomicU64::new(1),
            latency: KINDS.iter().map(|_| Histogram::default()).collect(),
            errors: CounterSet::new(KINDS),
        }
    }
}

/// The label of a function kind (`FunctionKind::as_str`) in [`KINDS`].
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "query" => "query",
        "mutation" => "mutation",
        "action" => "action",
        "HTTP action" | "http_action" => "http_action",
        _ => "other",
    }
}

/// A live subscription to execution records; see [`Executions::subscribe`].
pub struct ExecutionStream {
    receiver: broadcast::Receiver<Arc<ExecutionRecord>>,
}

/// What [`ExecutionStream::next`] yields.
pub enum StreamItem {
    Record(Arc<ExecutionRecord>),
    /// The viewer fell behind and this many records were dropped for it.
    Dropped(u64),
}

impl ExecutionStream {
    /// The next record, or how many were dropped; `None` once the server shuts down.
    pub async fn next(&mut self) -> Option<StreamItem> {
        match self.receiver.recv().await {
            Ok(record) => Some(StreamItem::Record(record)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(StreamItem::Dropped(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Executions {
    /// Live records from now on, and the history before (oldest first).
    pub fn subscribe(self: &Arc<Self>) -> (Vec<Arc<ExecutionRecord>>, ExecutionStream) {
        // Subscribe before copying the history, under its lock: no record falls in between.
        let history = self.history.lock();
        let receiver = self.live.subscribe();
        let past = history.iter().cloned().collect();
        drop(history);
        (past, ExecutionStream { receiver })
    }

    /// Latency histogram of each kind in [`KINDS`] order.
    pub fn latency(&self) -> impl Iterator<Item = (&'static str, &Histogram)> {
        KINDS.iter().copied().zip(&self.latency)
    }

    /// Failed executions by kind.
    pub fn errors(&self) -> Vec<(&'static str, u64)> {
        self.errors.snapshot()
    }

    /// Records a finished execution: in the metrics, the history, the live broadcast, and as
    /// a `pulsebase::execution` log event (off in the text log).
    pub fn record(&self, finished: Finished<'_>) {
        if finished.path.is_system() {
            return;
        }
        let kind = kind_label(finished.kind);
        if let Some(histogram) = KINDS
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.latency.get(i))
        {
            histogram.observe(finished.duration);
        }
        if finished.error.is_some() {
            self.errors.increment(kind);
        }
        let record = Arc::new(ExecutionRecord {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            started_at_ms: finished
                .started
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            path: finished.path.text(),
            kind,
            caller: describe_caller(finished.caller, finished.identity),
            duration_ms: finished.duration.as_secs_f64() * 1000.0,
            outcome: if finished.error.is_some() {
                "error"
            } else {
                "success"
            },
            error: finished.error.map(|e| e.message.clone()),
            log_lines: kept_lines(finished.log_lines),
        });
        tracing::info!(
            target: "pulsebase::execution",
            path = %record.path,
            kind = record.kind,
            caller = %record.caller,
            duration_ms = record.duration_ms,
            outcome = record.outcome,
            error = record.error.as_deref().unwrap_or(""),
            log_lines = ?record.log_lines,
            "function executed"
        );
        {
            let mut history = self.history.lock();
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(record.clone());
        }
        // An error only means nobody is subscribed right now.
        let _ = self.live.send(record);
    }
}

/// Who called, as the logs page shows it.
fn describe_caller(caller: Caller, identity: Option<&Identity>) -> String {
    let subject = identity.map(|i| match i.subject() {
        "" => "(no subject)",
        subject => subject,
    });
    match (caller, subject) {
        (Caller::Trusted, Some(subject)) => format!("admin as {subject}"),
        (Caller::Trusted, None) => "admin".to_string(),
        (Caller::Client, Some(subject)) => format!("user {subject}"),
        (Caller::Client, None) => "anonymous".to_string(),
    }
}

fn kept_lines(lines: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = lines
        .iter()
        .take(MAX_LOG_LINES)
        .map(|line| {
            if line.len() <= MAX_LINE_BYTES {
                return line.clone();
            }
            let mut end = MAX_LINE_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} bytes)", &line[..end], line.len())
        })
        .collect();
    if lines.len() > MAX_LOG_LINES {
        kept.push(format!("… {} more log lines", lines.len() - MAX_LOG_LINES));
    }
    kept
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use functions::FunctionPath;

    fn finished<'a>(path: &'a FunctionPath, error: Option<&'a FunctionError>) -> Finished<'a> {
        Finished {
            path: ExecutedPath::Function(path),
            kind: "mutation",
            caller: Caller::Client,
            identity: None,
            started: SystemTime::now(),
            duration: Duration::from_millis(2),
            error,
            log_lines: &[],
        }
    }

    #[tokio::test]
    async fn a_viewer_gets_history_then_live_records_and_is_told_what_it_missed() {
        let executions = Arc::new(Executions::default());
        executions.record(finished(&FunctionPath::parse("todos:add"), None)); // before any viewer
        let (past, mut stream) = executions.subscribe();
        assert_eq!(past.len(), 1, "kept in the history");
        executions.record(finished(&FunctionPath::parse("todos:add"), None));
        let Some(StreamItem::Record(record)) = stream.next().await else {
            panic!("expected a record");
        };
        assert_eq!(
            (record.path.as_str(), record.kind, record.caller.as_str()),
            ("todos:add", "mutation", "anonymous")
        );
        for _ in 0..LIVE_BUFFER + 10 {
            executions.record(finished(&FunctionPath::parse("todos:add"), None));
        }
        assert!(matches!(stream.next().await, Some(StreamItem::Dropped(10))));
        let (past, _) = executions.subscribe();
        assert_eq!(past.len(), HISTORY);
        let mutation = executions
            .latency()
            .find(|(k, _)| *k == "mutation")
            .unwrap()
            .1;
        assert_eq!(mutation.count(), LIVE_BUFFER as u64 + 12);
    }

    #[test]
    fn system_functions_and_errors() {
        let executions = Arc::new(Executions::default());
        let (_, _stream) = executions.subscribe();
        executions.record(finished(&FunctionPath::parse("_system/tables:list"), None));
        let error = FunctionError::new(functions::ErrorKind::Uncaught, "boom");
        executions.record(finished(&FunctionPath::parse("todos:add"), Some(&error)));
        let (past, _) = executions.subscribe();
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].error.as_deref(), Some("boom"));
        assert!(executions.errors().contains(&("mutation", 1)));
    }
}
