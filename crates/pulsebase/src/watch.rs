//! Live sync of the app's files. `serve` watches `auth.config.toml`, `.env.local` and `.env`;
//! `dev` also watches `functions/` and `schema.toml`.
//!
//! Events are debounced (`file_events.rs`), then each kind of change is
//! validated completely before it is swapped in: functions become a new `Modules`, the schema
//! is applied on the Committer (refused if stored data violates it), the auth config replaces
//! the Authenticator's. A broken edit prints one report and the last good version keeps
//! serving. Each successful sync prints one line saying what changed and how long it took
//! (and, in `dev`, whether the typed client code of `codegen/` was regenerated); a sync that
//! follows a failed one says the error is fixed, also when the fixed files are the version that
//! kept serving, so nothing else changed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use application::App;
use authenticator::Authenticator;
use functions::{Modules, is_test_file};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use sync::SyncHub;

use crate::cli::Mode;
use crate::file_events;
use crate::paths::AppPaths;
use crate::schema_file::{self, SchemaFile};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Change {
    Schema,
    Functions,
    Auth,
}

/// The files whose change reloads the auth config, in the order a sync line names them.
const AUTH_FILES: [&str; 3] = [".env", ".env.local", "auth.config.toml"];

/// Whether the last attempt to sync a kind of change failed. A fix is worth a line even when
/// it restores the version that kept serving: the user saw the error and needs to see it go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Previous {
    Synced,
    Failed,
}

impl Previous {
    /// Appended to a sync line after a failed attempt.
    fn suffix(self) -> &'static str {
        match self {
            Previous::Synced => "",
            Previous::Failed => ", error fixed",
        }
    }
}

/// Keeps the watcher alive; dropping it stops watching.
pub struct WatchHandle {
    _watcher: RecommendedWatcher,
}

fn classify(paths: &AppPaths, path: &Path, mode: Mode) -> Option<Change> {
    let name = path.file_name()?.to_str()?;
    if AUTH_FILES.contains(&name) && path.parent() == Some(paths.dir.as_path()) {
        return Some(Change::Auth);
    }
    if mode == Mode::Serve {
        return None;
    }
    if name == "schema.toml" && path.parent() == Some(paths.dir.as_path()) {
        return Some(Change::Schema);
    }
    let functions = paths.functions();
    if path.starts_with(&functions) {
        let relative = path.strip_prefix(&functions).ok()?;
        let hidden = relative.components().any(|c| {
            c.as_os_str()
                .to_str()
                .is_some_and(|s| s.starts_with('_') || s.starts_with('.'))
        });
        // Test files are not modules (`pulsebase test` reads them).
        let is_module = (path.extension().is_some_and(|e| e == "rhai") && !is_test_file(name))
            || path.extension().is_none();
        if !hidden && is_module {
            return Some(Change::Functions);
        }
    }
    None
}

pub fn start(
    paths: &AppPaths,
    mode: Mode,
    app: Arc<App>,
    hub: Arc<SyncHub>,
    auth: Arc<Authenticator>,
) -> notify::Result<WatchHandle> {
    let (mut watcher, mut received) = file_events::watcher()?;
    // Canonical paths: notify reports absolute paths, and `dir` may be relative.
    let dir = paths
        .dir
        .canonicalize()
        .unwrap_or_else(|_| paths.dir.clone());
    let paths = AppPaths::new(&dir);
    watcher.watch(&paths.dir, RecursiveMode::NonRecursive)?;
    if mode == Mode::Dev {
        if !paths.functions().exists() {
            let _ = std::fs::create_dir_all(paths.functions());
        }
        watcher.watch(&paths.functions(), RecursiveMode::Recursive)?;
    }
    tokio::spawn(async move {
        let mut failed: BTreeSet<Change> = BTreeSet::new();
        while let Some(pending) = file_events::next_batch(&mut received).await {
            let mut changes: Vec<Change> = pending
                .iter()
                .filter_map(|p| classify(&paths, p, mode))
                .collect();
            changes.sort();
            changes.dedup();
            for change in changes {
                let previous = if failed.contains(&change) {
                    Previous::Failed
                } else {
                    Previous::Synced
                };
                let synced = match change {
                    Change::Schema => sync_schema(&paths, &app, &hub, previous).await,
                    Change::Functions => sync_functions(&paths, &app, &hub, previous).await,
                    Change::Auth => {
                        let files: BTreeSet<&str> = pending
                            .iter()
                            .filter(|p| classify(&paths, p, mode) == Some(Change::Auth))
                            .filter_map(|p| p.file_name()?.to_str())
                            .collect();
                        sync_auth(&paths, &auth, &hub, &files, previous)
                    }
                };
                if synced {
                    failed.remove(&change);
                } else {
                    failed.insert(change);
                }
            }
        }
    });
    Ok(WatchHandle { _watcher: watcher })
}

/// Loads `functions/` and swaps it in; false when it does not load.
async fn sync_functions(
    paths: &AppPaths,
    app: &Arc<App>,
    hub: &Arc<SyncHub>,
    previous: Previous,
) -> bool {
    let started = Instant::now();
    let dir = paths.functions();
    let loaded = tokio::task::spawn_blocking(move || Modules::load_dir(&dir)).await;
    let modules = match loaded {
        Ok(Ok(modules)) => modules,
        Ok(Err(errors)) => {
            eprintln!("✗ functions/ not synced; the previous version keeps serving:\n{errors}");
            return false;
        }
        Err(e) => {
            eprintln!("✗ functions/ not synced: {e}");
            return false;
        }
    };
    let before: BTreeMap<String, u64> = app
        .modules()
        .modules()
        .map(|m| (m.path.clone(), m.source_hash))
        .collect();
    let after: BTreeMap<String, u64> = modules
        .modules()
        .map(|m| (m.path.clone(), m.source_hash))
        .collect();
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(path, hash)| before.get(*path) != Some(hash))
        .map(|(path, _)| path.clone())
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|p| !after.contains_key(*p))
            .map(|p| format!("{p} (removed)")),
    );
    let n_functions = modules.functions().count();
    if changed.is_empty() {
        // Saving unchanged files is not worth a line, but undoing a broken edit is.
        if previous == Previous::Failed {
            println!(
                "✓ functions back in sync: error fixed, same as the version that kept serving ({n_functions} functions) in {} ms",
                started.elapsed().as_millis()
            );
        }
        return true;
    }
    app.replace_modules(modules);
    hub.code_changed();
    let codegen = codegen_note(&paths.dir, app);
    println!(
        "✓ functions synced: {} ({n_functions} functions) in {} ms{codegen}{}",
        changed.join(", "),
        started.elapsed().as_millis(),
        previous.suffix()
    );
    true
}

/// Regenerates the typed client code; the note for the sync line says whether it changed.
fn codegen_note(dir: &Path, app: &App) -> &'static str {
    if crate::codegen::dev_regenerate(dir, app).is_empty() {
        ""
    } else {
        ", types regenerated"
    }
}

/// Parses `schema.toml` and applies it on the Committer; false when it is broken or refused.
async fn sync_schema(
    paths: &AppPaths,
    app: &Arc<App>,
    hub: &Arc<SyncHub>,
    previous: Previous,
) -> bool {
    let started = Instant::now();
    let SchemaFile { schema, text } = match schema_file::load(&paths.schema()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("✗ schema.toml not applied; the previous schema stays:\n{e:#}");
            return false;
        }
    };
    match app.db().apply_schema(schema, text).await {
        Ok(report) => {
            hub.schema_changed();
            let codegen = codegen_note(&paths.dir, app);
            println!(
                "✓ schema synced: {report} in {} ms{codegen}{}",
                started.elapsed().as_millis(),
                previous.suffix()
            );
            true
        }
        Err(e) => {
            eprintln!("✗ schema.toml not applied; the previous schema stays:\n{e}");
            false
        }
    }
}

/// Reloads the auth config after `files` (some of [`AUTH_FILES`]) changed; false when the
/// result does not load.
fn sync_auth(
    paths: &AppPaths,
    auth: &Authenticator,
    hub: &SyncHub,
    files: &BTreeSet<&str>,
    previous: Previous,
) -> bool {
    let started = Instant::now();
    let named: Vec<&str> = AUTH_FILES
        .iter()
        .copied()
        .filter(|f| files.contains(f))
        .collect();
    let named = if named.is_empty() {
        "auth.config.toml".to_string()
    } else {
        named.join(", ")
    };
    match authenticator::load_auth_config(&paths.dir) {
        Ok(config) => {
            let n = config.providers.len();
            auth.set_config(config);
            // Live sessions signed in through a removed provider lose that identity now.
            hub.auth_config_changed();
            println!(
                "✓ {named} synced: {n} auth provider(s) in {} ms{}",
                started.elapsed().as_millis(),
                previous.suffix()
            );
            true
        }
        Err(e) => {
            eprintln!("✗ {named} not applied; the previous auth providers stay:\n{e}");
            false
        }
    }
}
