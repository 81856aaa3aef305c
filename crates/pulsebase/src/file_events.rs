//! File changes as batches, shared by `dev`'s live sync (`watch.rs`) and `pulsebase test
//! --watch` (`test_cmd/watch.rs`): a notify watcher that sends the path of every change to a
//! channel (reads are left out: a sync or a test run reads the files it was told about, and
//! reacting to that would loop), and [`next_batch`], which waits for a change and then for the
//! quiet after it, since editors save in several steps.

use std::path::PathBuf;
use std::time::Duration;

use notify::RecommendedWatcher;
use tokio::sync::mpsc;

/// Quiet time after the last event before a batch of changes is handed over.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

/// A watcher (watching nothing yet: call `watch` on it) and the channel its changes arrive on.
pub fn watcher() -> notify::Result<(RecommendedWatcher, mpsc::UnboundedReceiver<PathBuf>)> {
    let (events, received) = mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = events.send(path);
            }
        }
    })?;
    Ok((watcher, received))
}

/// The paths of the next batch of changes: the first change and every one that follows it
/// within [`DEBOUNCE`] of the previous. `None` once the watcher is gone.
pub async fn next_batch(received: &mut mpsc::UnboundedReceiver<PathBuf>) -> Option<Vec<PathBuf>> {
    let mut batch = vec![received.recv().await?];
    while let Ok(Some(path)) = tokio::time::timeout(DEBOUNCE, received.recv()).await {
        batch.push(path);
    }
    Some(batch)
}
