//! How `dev` and `serve` stop on SIGTERM or Ctrl-C (README.md, "Hostile clients and bad
//! days"): [`signal`] resolves on the first signal; `server::serve` then stops accepting and
//! drains requests and WebSocket sessions within the shutdown timeout; [`finish`] lets the
//! Committer answer every queued mutation and checkpoint the WAL, within what is left of
//! that timeout. A second signal during all that exits at once (code 130): the operator
//! insists, and every acknowledged mutation is already committed.

use std::time::{Duration, Instant};

use application::App;

/// Resolves on the first SIGTERM or SIGINT, and arms the second one to exit at once.
pub async fn signal() {
    wait_for_signal().await;
    tracing::info!("shutting down (a second signal stops at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// After the server stopped serving: the Committer answers what is queued and checkpoints
/// the WAL, waiting at most until `deadline` (and at least a second).
pub async fn finish(app: &std::sync::Arc<App>, deadline: Instant) {
    let started = Instant::now();
    let timeout = deadline
        .saturating_duration_since(started)
        .max(Duration::from_secs(1));
    let app = app.clone();
    let stopped = tokio::task::spawn_blocking(move || app.db().shutdown(timeout))
        .await
        .unwrap_or(false);
    if stopped {
        tracing::info!(
            "stopped: every acknowledged mutation is in the database file ({} ms to drain the commit queue and checkpoint)",
            started.elapsed().as_millis()
        );
    } else {
        tracing::warn!(
            "the commit queue did not drain within the shutdown timeout; exiting (nothing acknowledged is lost: the WAL holds every commit)"
        );
    }
}
