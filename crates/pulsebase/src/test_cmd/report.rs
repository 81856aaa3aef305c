//! The lines `pulsebase test` prints: one per test (`ok   todos: adds a todo (3 ms)` or
//! `FAIL ...` followed by `functions/todos.test.rhai:LINE:COL: why`, indented), what a test
//! printed, the log lines of the functions a failed test called, and the summary
//! `N passed, N failed`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use functions::LoadError;
use functions::testing::TestOutcome;

/// The counts of one round.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub elapsed: Duration,
}

impl Summary {
    pub fn ran(&self) -> usize {
        self.passed + self.failed
    }

    pub fn count(&mut self, outcome: &TestOutcome) {
        if outcome.result.is_ok() {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }

    /// Failure when a test failed, and when none ran (a suite that tests nothing is a mistake).
    pub fn exit_code(&self) -> ExitCode {
        if self.failed == 0 && self.passed > 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` indented under a test line.
fn indented(out: &mut dyn Write, text: &str) -> io::Result<()> {
    for line in text.lines() {
        writeln!(out, "     {line}")?;
    }
    Ok(())
}

pub fn test_done(out: &mut dyn Write, title: &str, outcome: &TestOutcome) -> io::Result<()> {
    let ms = outcome.duration.as_millis();
    match &outcome.result {
        Ok(()) => writeln!(out, "ok   {title} ({ms} ms)")?,
        Err(failure) => {
            writeln!(out, "FAIL {title} ({ms} ms)")?;
            indented(out, &failure.to_string())?;
        }
    }
    for line in &outcome.output {
        indented(out, &format!("print: {line}"))?;
    }
    if outcome.result.is_err() {
        for line in &outcome.logs {
            indented(out, &format!("log: {line}"))?;
        }
    }
    out.flush()
}

/// A test file that does not load counts as one failure.
pub fn file_failed(out: &mut dyn Write, error: &LoadError) -> io::Result<()> {
    writeln!(out, "FAIL {} (the test file does not load)", error.file)?;
    indented(out, &error.to_string())?;
    out.flush()
}

pub fn summary(out: &mut dyn Write, summary: &Summary) -> io::Result<()> {
    if summary.ran() == 0 {
        writeln!(
            out,
            "no tests ran: add a test file such as functions/todos.test.rhai with test(\"adds a todo\", |t| {{ ... }}), or change the filter"
        )?;
    }
    writeln!(
        out,
        "{} passed, {} failed ({} ms)",
        summary.passed,
        summary.failed,
        summary.elapsed.as_millis()
    )?;
    out.flush()
}
