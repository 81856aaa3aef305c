//! Running one test: a `t` on a fresh database (the caller opens it with the app's schema;
//! nothing else is in it, so tests never see each other's data) and on the test's clock (the
//! caller makes it, so it can register what the clock's advance should run), the test's closure
//! called with `t`, and its outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use database::Database;
use rhai::Dynamic;

use crate::modules::Modules;
use crate::testing::client::{TestClient, TestEnv};
use crate::testing::clock::TestClock;
use crate::testing::failure::{TestFailure, failure};
use crate::testing::file::TestFile;
use crate::testing::state::TestCase;

/// What became of one test.
pub struct TestOutcome {
    pub name: String,
    pub duration: Duration,
    pub result: Result<(), TestFailure>,
    /// What the test printed (`print`, `debug`).
    pub output: Vec<String>,
    /// The log lines of the functions it called, each prefixed with the function's path.
    pub logs: Vec<String>,
}

impl TestOutcome {
    /// A test that could not start (its database did not open), failed at its declaration.
    pub fn not_started(file: &TestFile, case: &TestCase, why: String) -> TestOutcome {
        TestOutcome {
            name: case.name.clone(),
            duration: Duration::ZERO,
            result: Err(TestFailure {
                file: file.file.clone(),
                line: case.line,
                column: case.column,
                message: why,
            }),
            output: Vec::new(),
            logs: Vec::new(),
        }
    }
}

/// Runs `case` of `file` with the app's `modules` on `db`, which the test owns (and drops),
/// with `clock` as its clock (usually [`TestClock::starting_now`]).
pub fn run_test(
    file: &TestFile,
    case: &TestCase,
    modules: &Arc<Modules>,
    db: Database,
    clock: Arc<TestClock>,
) -> TestOutcome {
    let started = Instant::now();
    let env = Arc::new(TestEnv::new(
        db,
        modules.clone(),
        clock,
        file.script.clone(),
    ));
    let t = Dynamic::from(TestClient::anonymous(env.clone()));
    file.state.begin_test(file.time_limit);
    let outcome = case
        .body
        .call::<Dynamic>(&file.script.engine, &file.script.ast, (t,));
    let output = file.state.end_test();
    let duration = started.elapsed();
    TestOutcome {
        name: case.name.clone(),
        duration,
        result: outcome
            .map(|_| ())
            .map_err(|e| failure(&e, &file.file, (case.line, case.column))),
        output,
        logs: env.take_logs(),
    }
}
