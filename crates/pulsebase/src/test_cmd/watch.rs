//! `pulsebase test --watch`: runs the tests, then again each time a file under `functions/`
//! (app code or tests) or `schema.toml` is saved, until Ctrl-C. Changes arrive in batches from
//! `file_events.rs`, as in `dev`; a round that cannot load the app prints why and waits for the
//! next save. The exit code is that of the last round.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::cli::TestArgs;
use crate::file_events;
use crate::paths::AppPaths;
use crate::test_cmd::suite;

pub async fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    // Canonical paths: notify reports absolute paths, and `dir` may be relative.
    let dir = args.dir.canonicalize().unwrap_or_else(|_| args.dir.clone());
    let paths = AppPaths::new(&dir);
    let (mut watcher, mut received) =
        file_events::watcher().context("starting the file watcher")?;
    watcher
        .watch(&paths.dir, RecursiveMode::NonRecursive)
        .context("watching the app folder")?;
    if paths.functions().is_dir() {
        watcher
            .watch(&paths.functions(), RecursiveMode::Recursive)
            .context("watching functions/")?;
    }
    let mut code = round(&dir, args.filter.clone()).await;
    loop {
        println!("watching functions/ and schema.toml for changes (Ctrl-C to stop)");
        let changed = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(code),
            changed = next_change(&paths, &mut received) => changed,
        };
        let Some(changed) = changed else {
            return Ok(code);
        };
        println!("\n{} changed; running the tests again", changed.display());
        code = round(&dir, args.filter.clone()).await;
    }
}

/// Runs one round on a blocking thread; a round that cannot load the app says why.
async fn round(dir: &Path, filter: Option<String>) -> ExitCode {
    let dir = dir.to_path_buf();
    let ran = tokio::task::spawn_blocking(move || {
        suite::run(&dir, filter.as_deref(), &mut std::io::stdout())
    })
    .await;
    match ran {
        Ok(Ok(summary)) => summary.exit_code(),
        Ok(Err(e)) => {
            println!("✗ the tests did not run: {e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("✗ the tests did not run: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The first file of the next batch of changes that concerns the tests (relative to the app
/// folder), or `None` when the watcher stopped.
async fn next_change(
    paths: &AppPaths,
    received: &mut mpsc::UnboundedReceiver<PathBuf>,
) -> Option<PathBuf> {
    loop {
        let batch = file_events::next_batch(received).await?;
        if let Some(path) = batch.into_iter().find(|p| concerns_tests(paths, p)) {
            return Some(
                path.strip_prefix(&paths.dir)
                    .map_or(path.clone(), Path::to_path_buf),
            );
        }
    }
}

/// `schema.toml`, and the `.rhai` files of `functions/` outside `_`/`.` folders (app code and
/// tests alike).
fn concerns_tests(paths: &AppPaths, path: &Path) -> bool {
    if path == paths.schema() {
        return true;
    }
    let Ok(relative) = path.strip_prefix(paths.functions()) else {
        return false;
    };
    let hidden = relative.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.starts_with('_') || s.starts_with('.'))
    });
    !hidden && path.extension().is_some_and(|e| e == "rhai")
}
