//! The collector: removes a blob once no `_storage` row refers to its bytes.
//!
//! A mutation that deletes a row reports the digest ([`FileStorage::released`]) while it is
//! still running, before its commit. The collector thread therefore first waits for every
//! job queued on the Committer so far (an empty job that fails, so nothing commits): after
//! that, the deleting mutation has committed or rolled back. It then takes the commit lock
//! (no upload promotes or records meanwhile) and the store's GC lock (no export or backup is
//! copying), reads the latest snapshot, and removes each digest no row has. A digest whose
//! check cannot run now is kept for the next round; a crash between commit and removal
//! leaves a blob without a row, which [`FileStorage::sweep`] removes at the next start.

use std::time::Duration;

use database::{Database, MutationOutcome};
use filestore::Sha256Digest;
use value::Value;

use super::{FileStorage, STORAGE_TABLE};

/// How often a waiting collector retries while an export or backup holds the store.
const RETRY: Duration = Duration::from_secs(1);
/// Released digests gathered before one round runs.
const DEBOUNCE: Duration = Duration::from_millis(20);

impl FileStorage {
    /// A deleted row's bytes (base64 SHA-256, as stored) may now be unreferenced.
    pub fn released(&self, sha256: &str) {
        if let Some(digest) = Sha256Digest::from_base64(sha256) {
            self.release(digest);
        }
    }

    pub(crate) fn release(&self, digest: Sha256Digest) {
        self.released.lock().push(digest);
        self.wake_collector.notify_one();
    }

    /// Removes, among `digests`, the blobs no `_storage` row refers to at the latest commit.
    /// The caller holds the commit lock. Returns the digests it could not check (the store is
    /// being exported or backed up, or the read failed), to be tried again.
    fn remove_unreferenced_locked(
        &self,
        db: &Database,
        digests: &[Sha256Digest],
    ) -> Vec<Sha256Digest> {
        let gc_lock = match self.blobs.try_gc_lock() {
            Ok(Some(lock)) => lock,
            Ok(None) => return digests.to_vec(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot lock the file store for removal");
                return digests.to_vec();
            }
        };
        let snapshot = match db.full_snapshot() {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the database to collect files");
                return digests.to_vec();
            }
        };
        let mut retry = Vec::new();
        for digest in digests {
            let key = [Value::String(digest.base64())];
            match snapshot.index_has(STORAGE_TABLE, "by_sha256", &key) {
                Ok(true) => {}
                Ok(false) => match self.blobs.remove(digest) {
                    Ok(()) => {
                        tracing::debug!(sha256 = %digest.hex(), "removed an unreferenced file")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot remove an unreferenced file");
                        retry.push(*digest);
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check whether a file is referenced");
                    retry.push(*digest);
                }
            }
        }
        drop(gc_lock);
        retry
    }

    /// [`Self::remove_unreferenced_locked`] for a caller that holds the commit lock and
    /// knows no deletion is in flight for these digests; what cannot be checked now goes to
    /// the collector.
    pub(crate) fn remove_if_unreferenced(&self, db: &Database, digests: &[Sha256Digest]) {
        for digest in self.remove_unreferenced_locked(db, digests) {
            self.release(digest);
        }
    }

    /// One round of the collector for the digests released so far. Blocking.
    pub fn collect(&self, db: &Database) {
        let pending: Vec<Sha256Digest> = std::mem::take(&mut *self.released.lock());
        if pending.is_empty() {
            return;
        }
        // Every mutation queued before this point, the deleting ones included, is done.
        let barrier: database::MutationFn = Box::new(|_| Err(String::new()));
        match db.mutate_blocking(None, barrier) {
            Ok(MutationOutcome::Failed { .. }) => {}
            Ok(_) | Err(_) => {
                self.released.lock().extend(pending);
                return;
            }
        }
        let retry = {
            let _commit = self.commit_lock.lock();
            self.remove_unreferenced_locked(db, &pending)
        };
        if !retry.is_empty() {
            self.released.lock().extend(retry);
        }
    }

    /// At start-up, before anything uploads: removes every blob no row refers to (left by a
    /// crash between a deletion's commit and the removal, or by an upload whose commit never
    /// happened). Returns how many were removed.
    pub fn sweep(&self, db: &Database) -> usize {
        let blobs = match self.blobs.list() {
            Ok(blobs) => blobs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the file store");
                return 0;
            }
        };
        let before = blobs.len();
        let _commit = self.commit_lock.lock();
        let _ = self.remove_unreferenced_locked(db, &blobs);
        let after = self.blobs.list().map_or(before, |left| left.len());
        before.saturating_sub(after)
    }

    /// Waits (at most a second) until some bytes were released, then a moment more so a
    /// burst of deletions is collected in one round.
    pub(crate) fn wait_for_released(&self) {
        {
            let mut released = self.released.lock();
            if released.is_empty() {
                self.wake_collector.wait_for(&mut released, RETRY);
            }
        }
        std::thread::sleep(DEBOUNCE);
    }
}
