//! `pulsebase test [--dir DIR] [--watch] [FILTER]`: runs the app's tests
//! (`functions/**/*.test.rhai`) on the real engine, each on a fresh database with the app's
//! schema, and prints one line per test and a summary `N passed, N failed`; the exit code is
//! non-zero when a test fails (or none ran). `--watch` runs them again on every save.
//!
//! `suite.rs` runs one round (load the app, open a database per test, run, report), `report.rs`
//! writes the lines, `watch.rs` is the `--watch` loop. The test API itself is
//! `functions::testing`.

mod report;
mod suite;
mod watch;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::TestArgs;

pub async fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.dir.is_dir(),
        "{} is not a directory; pass the app folder with --dir",
        args.dir.display()
    );
    if args.watch {
        return watch::run(args).await;
    }
    let TestArgs { dir, filter, .. } = args;
    let summary = tokio::task::spawn_blocking(move || {
        suite::run(&dir, filter.as_deref(), &mut std::io::stdout())
    })
    .await
    .context("the test run stopped")??;
    Ok(summary.exit_code())
}
