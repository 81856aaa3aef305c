//! Runs the scheduler on one node of a deployment. On a database only this process uses it
//! starts at once. On a shared one (several nodes on PostgreSQL) the node that holds the
//! scheduler lease runs it, so scheduled jobs and cron runs happen once: the others try to
//! take the lease every few seconds and take over when its holder dies or is cut off (which
//! frees it). A holder that finds its lease taken by another node exits, since a scheduler
//! cannot be stopped half-way and two must never run together.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use application::App;
use database::Lease;

/// How often a node without the lease tries to take it, and the holder checks it still has
/// it. A dead holder's jobs wait at most about this long for another node.
const TRY_EVERY: Duration = Duration::from_secs(2);
const LEASE: &str = "scheduler";

pub async fn start(app: &Arc<App>) -> anyhow::Result<()> {
    if !app.db().is_shared() {
        app.start_scheduler()
            .await
            .context("starting the scheduler of scheduled functions and cron jobs")?;
        return Ok(());
    }
    let app = app.clone();
    tokio::spawn(async move { hold(app).await });
    Ok(())
}

/// Takes the lease (waiting for it), runs the scheduler, and keeps checking the lease.
async fn hold(app: Arc<App>) {
    let mut lease = loop {
        if let Some(lease) = take(&app).await {
            break lease;
        }
        tokio::time::sleep(TRY_EVERY).await;
    };
    tracing::info!("this node holds the scheduler lease: it runs scheduled functions and crons");
    if let Err(e) = app.start_scheduler().await {
        tracing::error!(error = %e, "starting the scheduler failed");
    }
    loop {
        tokio::time::sleep(TRY_EVERY).await;
        let checked = tokio::task::spawn_blocking(move || {
            let held = lease.held();
            (held, lease)
        })
        .await;
        lease = match checked {
            Ok((true, kept)) => kept,
            // Lost with its connection (or with the check, which panicked).
            Ok((false, _)) | Err(_) => continue_or_exit(&app).await,
        };
    }
}

/// The lease was lost with its connection: take it again, retrying while the database is
/// unreachable (no other node can commit then either), or exit if another node took it.
async fn continue_or_exit(app: &Arc<App>) -> Box<dyn Lease> {
    loop {
        let db = app.clone();
        let taken = tokio::task::spawn_blocking(move || db.db().try_lease(LEASE)).await;
        match taken {
            Ok(Ok(Some(lease))) => return lease,
            Ok(Ok(None)) => {
                tracing::error!(
                    "another node took the scheduler lease while this one ran the scheduler; exiting so that only one node runs scheduled jobs (restart this node to serve again)"
                );
                std::process::exit(1);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot reach the database to renew the scheduler lease; retrying");
            }
            Err(e) => tracing::warn!(error = %e, "renewing the scheduler lease failed; retrying"),
        }
        tokio::time::sleep(TRY_EVERY).await;
    }
}

/// One attempt at taking the lease; `None` when another node holds it or it failed.
async fn take(app: &Arc<App>) -> Option<Box<dyn Lease>> {
    let db = app.clone();
    match tokio::task::spawn_blocking(move || db.db().try_lease(LEASE)).await {
        Ok(Ok(lease)) => lease,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "taking the scheduler lease failed; retrying");
            None
        }
        Err(_) => None,
    }
}
