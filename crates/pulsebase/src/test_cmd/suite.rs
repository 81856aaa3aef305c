//! One round of `pulsebase test`: load the app as `dev` does (`schema.toml`, `functions/`), find
//! the test files, and run each test on its own database, a fresh SQLite file with the app's
//! schema in a temporary folder that is removed afterwards. Tests run one after another, in file
//! order and then in the order each file declares them.
//!
//! The folder is in memory where the system offers one (`/dev/shm`) unless `TMPDIR` says
//! otherwise: a database's creation and shutdown sync it to disk several times, which on a busy
//! disk took 70 ms a test (1.4 s for the example app's 19 tests) against 3 ms in memory.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use database::Database;
use functions::testing::{TestClock, TestFile, TestOutcome, run_test};
use functions::{Modules, read_test_dir};

use crate::paths::AppPaths;
use crate::schema_file::{self, SchemaFile};
use crate::test_cmd::report::{self, Summary};

/// Runs every test of the app in `dir` whose `module: name` contains `filter`, writing the
/// report to `out`. `Err` when the app itself does not load (its schema or functions).
pub fn run(dir: &Path, filter: Option<&str>, out: &mut dyn Write) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let paths = AppPaths::new(dir);
    let SchemaFile { schema, text } = schema_file::load(&paths.schema())?;
    let modules = Arc::new(
        Modules::load_dir(&paths.functions())
            .map_err(|errors| anyhow::anyhow!("functions/ does not load:\n{errors}"))?,
    );
    let sources = read_test_dir(&paths.functions())
        .map_err(|errors| anyhow::anyhow!("the test files cannot be read:\n{errors}"))?;
    let scratch = scratch_dir()?;
    let mut summary = Summary::default();
    for source in sources {
        let file = match TestFile::load(source) {
            Ok(file) => file,
            Err(error) => {
                report::file_failed(out, &error)?;
                summary.failed += 1;
                continue;
            }
        };
        for case in &file.tests {
            let title = format!("{}: {}", file.module, case.name);
            if filter.is_some_and(|f| !title.contains(f)) {
                continue;
            }
            let database = scratch.path().join(format!("{}.sqlite3", summary.ran()));
            let outcome = match Database::open(&database, schema.clone(), &text) {
                Ok((db, _)) => run_test(
                    &file,
                    case,
                    &modules,
                    db,
                    Arc::new(TestClock::starting_now()),
                ),
                Err(e) => TestOutcome::not_started(
                    &file,
                    case,
                    format!("cannot open the test database: {e}"),
                ),
            };
            remove_database(&database);
            report::test_done(out, &title, &outcome)?;
            summary.count(&outcome);
        }
    }
    summary.elapsed = started.elapsed();
    report::summary(out, &summary)?;
    Ok(summary)
}

/// The temporary folder of one round's databases (see the module doc for where).
fn scratch_dir() -> anyhow::Result<tempfile::TempDir> {
    let in_memory = Path::new("/dev/shm");
    let parent = if std::env::var_os("TMPDIR").is_none() && in_memory.is_dir() {
        in_memory.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix("pulsebase-test-");
    builder
        .tempdir_in(&parent)
        .or_else(|_| builder.tempdir())
        .context("cannot create a temporary folder for the test databases")
}

/// Removes a test's database files as soon as it is done, so a long suite keeps one at a time.
fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}
