//! [`TestFile`]: one `functions/**/*.test.rhai` file, compiled on its own engine and run once at
//! the top level to collect the tests it declares (`test("name", |t| { ... })`). Problems are
//! [`LoadError`]s at file:line:column, like a module's.
//!
//! The engine of a test file is the sandbox's, with the whole host API (so `t.run` closures can
//! use `ctx.db`) and the test API of `host_api/testing.rs`, and with its hooks replaced by the
//! test's own: a time limit per test instead of the per-call budget of a function, and `print`
//! going to the test's output. The app's functions run on the app's engine, with their own
//! limits, as in the server.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, ParseError, Scope};

use crate::error::LoadError;
use crate::error_report::describe_error;
use crate::loader::ModuleSource;
use crate::testing::failure::TestTimeout;
use crate::testing::state::{TestCase, TestScript, TestState};
use crate::{hints, host_api, sandbox};

/// How long one test (or a file's top level) may run, all its calls included.
pub const TEST_TIME_LIMIT: Duration = Duration::from_secs(10);

/// A loaded test file and the tests it declares, in the order it declares them.
pub struct TestFile {
    /// The module the file is named after (`todos` for `functions/todos.test.rhai`).
    pub module: String,
    /// How reports name the file, `functions/todos.test.rhai`.
    pub file: String,
    pub tests: Vec<TestCase>,
    /// How long each test may run ([`TEST_TIME_LIMIT`] unless changed).
    pub time_limit: Duration,
    pub(crate) script: Arc<TestScript>,
    pub(crate) state: Arc<TestState>,
}

impl TestFile {
    /// Compiles `source` and runs its top level to collect its tests.
    pub fn load(source: ModuleSource) -> Result<TestFile, LoadError> {
        let ModuleSource {
            module,
            file,
            source,
        } = source;
        let state = Arc::new(TestState::default());
        let engine = test_engine(state.clone());
        let error = |line: usize, column: usize, message: String| LoadError {
            file: file.clone(),
            line,
            column,
            message,
        };
        let mut ast = engine
            .compile(&source)
            .map_err(|ParseError(kind, position)| {
                error(
                    position.line().unwrap_or(0),
                    position.position().unwrap_or(0),
                    format!("syntax error: {}", hints::explain_syntax(&kind.to_string())),
                )
            })?;
        ast.set_source(file.as_str());
        state.begin_declaring(TEST_TIME_LIMIT);
        let ran = engine.run_ast_with_scope(&mut Scope::new(), &ast);
        let tests = state.end_declaring();
        if let Err(e) = ran {
            let described = describe_error(&e, &file, None);
            let message = described
                .message
                .strip_prefix("Uncaught Error: ")
                .unwrap_or(&described.message);
            return Err(error(
                described.position.line().unwrap_or(0),
                described.position.position().unwrap_or(0),
                format!("error while loading the test file: {message}"),
            ));
        }
        if tests.is_empty() {
            return Err(error(
                1,
                1,
                "declares no tests; add one with test(\"adds a todo\", |t| { ... })".to_string(),
            ));
        }
        let mut names = BTreeSet::new();
        for case in &tests {
            if !names.insert(case.name.as_str()) {
                return Err(error(
                    case.line,
                    case.column,
                    format!(
                        "a second test named {:?}; give each test of a file its own name",
                        case.name
                    ),
                ));
            }
        }
        Ok(TestFile {
            module,
            file,
            tests,
            time_limit: TEST_TIME_LIMIT,
            script: Arc::new(TestScript { engine, ast }),
            state,
        })
    }
}

/// The engine a test file runs on (see the module doc).
fn test_engine(state: Arc<TestState>) -> Engine {
    let mut engine = sandbox::new_engine();
    host_api::register(&mut engine);
    host_api::testing::register(&mut engine, state.clone());
    let progress = state.clone();
    engine.on_progress(move |ops| {
        // Reading the clock on every operation would cost more than the operation itself.
        if ops % 1024 != 0 || !progress.past_deadline() {
            return None;
        }
        Some(Dynamic::from(TestTimeout {
            limit: progress.time_limit(),
        }))
    });
    let printed = state.clone();
    engine.on_print(move |text| printed.print(text.to_string()));
    engine.on_debug(move |text, _, _| state.print(text.to_string()));
    engine
}
