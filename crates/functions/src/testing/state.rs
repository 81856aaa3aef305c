//! What a test file's engine shares with the test API it registers: [`TestState`] (the tests
//! `test(...)` declared while the file loaded, the running test's deadline and printed output),
//! [`TestCase`] (one declared test) and [`TestScript`] (the compiled file and its engine, which
//! `t.run` needs to call a closure of the file on the Committer's thread).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rhai::{AST, Engine, FnPtr};

/// Printed lines kept per test.
const MAX_OUTPUT_LINES: usize = 1_000;

/// One `test("name", |t| { ... })` of a test file.
#[derive(Clone)]
pub struct TestCase {
    pub name: String,
    /// Where `test(...)` was called.
    pub line: usize,
    pub column: usize,
    pub(crate) body: FnPtr,
}

/// A compiled test file and the engine it runs on.
pub(crate) struct TestScript {
    pub engine: Engine,
    pub ast: AST,
}

/// The state the test engine's registered functions and hooks share.
#[derive(Default)]
pub(crate) struct TestState {
    /// Open while the file's top level runs: `test(...)` is declared only then.
    declaring: AtomicBool,
    cases: Mutex<Vec<TestCase>>,
    /// When the running test (or the file's top level) must stop, and the limit that set it.
    deadline: Mutex<Option<(Instant, Duration)>>,
    /// What the running test printed.
    output: Mutex<Vec<String>>,
}

impl TestState {
    /// Starts the file's top level: `test(...)` declares until [`TestState::end_declaring`].
    pub(crate) fn begin_declaring(&self, limit: Duration) {
        self.declaring.store(true, Ordering::Release);
        *self.deadline.lock() = Some((Instant::now() + limit, limit));
    }

    /// Ends the top level and hands over the declared tests.
    pub(crate) fn end_declaring(&self) -> Vec<TestCase> {
        self.declaring.store(false, Ordering::Release);
        *self.deadline.lock() = None;
        std::mem::take(&mut *self.cases.lock())
    }

    /// Records a `test(...)`; `false` when it is not called at the top level of the file.
    pub(crate) fn declare(&self, case: TestCase) -> bool {
        if !self.declaring.load(Ordering::Acquire) {
            return false;
        }
        self.cases.lock().push(case);
        true
    }

    /// Starts running a test that may run for `limit`.
    pub(crate) fn begin_test(&self, limit: Duration) {
        *self.deadline.lock() = Some((Instant::now() + limit, limit));
        self.output.lock().clear();
    }

    /// Ends the running test and hands over what it printed.
    pub(crate) fn end_test(&self) -> Vec<String> {
        *self.deadline.lock() = None;
        std::mem::take(&mut *self.output.lock())
    }

    /// Whether the running code is past its deadline.
    pub(crate) fn past_deadline(&self) -> bool {
        self.deadline
            .lock()
            .is_some_and(|(deadline, _)| Instant::now() > deadline)
    }

    /// The time limit of the running code.
    pub(crate) fn time_limit(&self) -> Duration {
        self.deadline
            .lock()
            .map_or(Duration::ZERO, |(_, limit)| limit)
    }

    /// A line the running test printed (`print`, `debug`).
    pub(crate) fn print(&self, line: String) {
        let mut output = self.output.lock();
        if output.len() < MAX_OUTPUT_LINES {
            output.push(line);
        }
    }
}
