//! Live sync of the app's files. `serve` watches `auth.config.toml`, `.env.local` and `.env`;
//! `dev` also watches `functions/` and `schema.toml`.
//!
//! Events are debounced (editors save in several steps), then each kind of change is
//! validated completely before it is swapped in: functions become a new `Modules`, the schema
//! is applied on the Committer (refused if stored data violates it), the auth config replaces
//! the Authenticator's. A broken edit prints one report and the last good version keeps
//! serving. Each successful sync prints one line saying what changed and how long it took,
//! and in `dev` regenerates the typed client code (`codegen.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use application::App;
use authenticator::Authenticator;
use functions::Modules;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use sync::SyncHub;
use tokio::sync::mpsc;

use crate::paths::AppPaths;
use crate::start::{Mode, load_schema};

/// Quiet time after the last event before a change is processed.
const DEBOUNCE: Duration = Duration::from_millis(40);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Change {
    Schema,
    Functions,
    Auth,
}

/// Keeps the watcher alive; dropping it stops watching.
pub struct WatchHandle {
    _watcher: RecommendedWatcher,
}

fn classify(paths: &AppPaths, path: &Path, mode: Mode) -> Option<Change> {
    let name = path.file_name()?.to_str()?;
    if matches!(name, "auth.config.toml" | ".env" | ".env.local")
        && path.parent() == Some(paths.dir.as_path())
    {
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
        let is_module = path.extension().is_some_and(|e| e == "rhai") || path.extension().is_none();
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
    let (events, mut received) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reads (inotify open/close-nowrite) are not changes; reacting to them would loop,
        // since a sync reads the file it was told about.
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = events.send(path);
            }
        }
    })?;
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
        while let Some(first) = received.recv().await {
            let mut pending: Vec<PathBuf> = vec![first];
            while let Ok(Some(path)) = tokio::time::timeout(DEBOUNCE, received.recv()).await {
                pending.push(path);
            }
            let mut changes: Vec<Change> = pending
                .iter()
                .filter_map(|p| classify(&paths, p, mode))
                .collect();
            changes.sort();
            changes.dedup();
            for change in changes {
                match change {
                    Change::Schema => sync_schema(&paths, &app, &hub).await,
                    Change::Functions => sync_functions(&paths, &app, &hub).await,
                    Change::Auth => sync_auth(&paths, &auth, &hub),
                }
            }
        }
    });
    Ok(WatchHandle { _watcher: watcher })
}

async fn sync_functions(paths: &AppPaths, app: &Arc<App>, hub: &Arc<SyncHub>) {
    let started = Instant::now();
    let dir = paths.functions();
    let loaded = tokio::task::spawn_blocking(move || Modules::load_dir(&dir)).await;
    let modules = match loaded {
        Ok(Ok(modules)) => modules,
        Ok(Err(errors)) => {
            eprintln!("✗ functions/ not synced; the previous version keeps serving:\n{errors}");
            return;
        }
        Err(e) => {
            eprintln!("✗ functions/ not synced: {e}");
            return;
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
    if changed.is_empty() {
        return;
    }
    let n_functions = modules.functions().count();
    app.replace_modules(modules);
    hub.code_changed();
    crate::codegen::dev_regenerate(&paths.dir, app);
    println!(
        "✓ functions synced: {} ({} functions) in {} ms",
        changed.join(", "),
        n_functions,
        started.elapsed().as_millis()
    );
}

async fn sync_schema(paths: &AppPaths, app: &Arc<App>, hub: &Arc<SyncHub>) {
    let started = Instant::now();
    let (schema, text) = match load_schema(&paths.schema()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("✗ schema.toml not applied; the previous schema stays:\n{e:#}");
            return;
        }
    };
    match app.db().apply_schema(schema, text).await {
        Ok(report) => {
            hub.schema_changed();
            crate::codegen::dev_regenerate(&paths.dir, app);
            println!(
                "✓ schema synced: {report} in {} ms",
                started.elapsed().as_millis()
            );
        }
        Err(e) => eprintln!("✗ schema.toml not applied; the previous schema stays:\n{e}"),
    }
}

fn sync_auth(paths: &AppPaths, auth: &Authenticator, hub: &SyncHub) {
    let started = Instant::now();
    match authenticator::load_auth_config(&paths.dir) {
        Ok(config) => {
            let n = config.providers.len();
            auth.set_config(config);
            // Live sessions signed in through a removed provider lose that identity now.
            hub.auth_config_changed();
            println!(
                "✓ auth.config.toml synced: {n} provider(s) in {} ms",
                started.elapsed().as_millis()
            );
        }
        Err(e) => eprintln!("✗ auth.config.toml not applied; the previous providers stay:\n{e}"),
    }
}
