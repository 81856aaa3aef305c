//! [`BlobStore`]: content-addressed files under a root directory, `ab/abcdef…` by the hex of
//! their SHA-256, so identical bytes are stored once however many `_storage` rows share them.
//!
//! Writing goes through a [`BlobWriter`] into `tmp/`, hashing and counting as it goes and
//! refusing past its size limit; [`BlobWriter::finish`] fsyncs it into a [`StagedBlob`], and
//! [`BlobStore::promote`] renames it to its name (and fsyncs the directory), or drops it when
//! that content is already stored. Dropping an unfinished writer or an unpromoted staged blob
//! deletes its temporary file. Temporary files left by a crash are removed by
//! [`BlobStore::open`].
//!
//! Removal is guarded by a lock file: exports and backups hold it shared
//! ([`BlobStore::readers_guard`]) while they copy blobs, and the collector removes blobs only
//! while holding it exclusively ([`BlobStore::try_gc_lock`]). It is a file lock, so it also
//! holds between a server and a `pulsebase backup` run from another process.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use rand::RngCore;

use crate::digest::Sha256Digest;
use crate::spool::Spool;

const TMP_DIR: &str = "tmp";
const LOCK_FILE: &str = ".gc.lock";

/// Why a blob could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("cannot write the file store at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Content-addressed blobs under one directory.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating) the store at `root` and removes temporary files a crash left.
    pub fn open(root: &Path) -> Result<BlobStore, BlobError> {
        let tmp = root.join(TMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        let store = BlobStore {
            root: root.to_path_buf(),
        };
        let removed = store.clean_temp()?;
        if removed > 0 {
            tracing::info!(removed, "removed unfinished uploads left by an earlier run");
        }
        Ok(store)
    }

    /// The store at `root` as another process sees it (a backup while the server runs):
    /// nothing is created or cleaned; `None` when there is no store there.
    pub fn attach(root: &Path) -> Option<BlobStore> {
        root.is_dir().then(|| BlobStore {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path(&self, digest: &Sha256Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, digest: &Sha256Digest) -> bool {
        self.path(digest).is_file()
    }

    /// A writer for a new blob of at most `limit` bytes.
    pub fn writer(&self, limit: u64) -> Result<BlobWriter, BlobError> {
        let mut name = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut name);
        let name: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let path = self.root.join(TMP_DIR).join(format!("{name}.part"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok(BlobWriter {
            file: Some(Spool::new(file)),
            path,
            hasher: digest::Context::new(&digest::SHA256),
            size: 0,
            limit,
        })
    }

    /// Gives a staged blob its name; a blob with the same content already stored is kept and
    /// the staged copy removed. Returns the digest.
    pub fn promote(&self, mut staged: StagedBlob) -> Result<Sha256Digest, BlobError> {
        let target = self.path(&staged.digest);
        let temp = std::mem::take(&mut staged.path);
        if target.is_file() {
            std::fs::remove_file(&temp).map_err(io_error(&temp))?;
            return Ok(staged.digest);
        }
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        std::fs::rename(&temp, &target).map_err(io_error(&target))?;
        // The rename is durable once the directory entry is.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&dir))?;
        Ok(staged.digest)
    }

    /// Removes a blob (no error when it is already gone).
    pub fn remove(&self, digest: &Sha256Digest) -> Result<(), BlobError> {
        let path = self.path(digest);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Every stored blob.
    pub fn list(&self) -> Result<Vec<Sha256Digest>, BlobError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.root).map_err(io_error(&self.root))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.len() != 2 || !entry.path().is_dir() {
                continue;
            }
            let inner = std::fs::read_dir(entry.path()).map_err(io_error(&entry.path()))?;
            for blob in inner.flatten() {
                if let Some(digest) = Sha256Digest::from_hex(&blob.file_name().to_string_lossy()) {
                    out.push(digest);
                }
            }
        }
        Ok(out)
    }

    /// Removes every temporary file; returns how many. Only safe when no upload is running
    /// (at startup).
    pub fn clean_temp(&self) -> Result<usize, BlobError> {
        let tmp = self.root.join(TMP_DIR);
        let mut removed = 0;
        for entry in std::fs::read_dir(&tmp).map_err(io_error(&tmp))?.flatten() {
            if std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn lock_file(&self) -> Result<File, BlobError> {
        let path = self.root.join(LOCK_FILE);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))
    }

    /// Holds blob removal off while an export or backup copies blobs (blocks while the
    /// collector is removing).
    pub fn readers_guard(&self) -> Result<ReadersGuard, BlobError> {
        let file = self.lock_file()?;
        file.lock_shared()
            .map_err(io_error(&self.root.join(LOCK_FILE)))?;
        Ok(ReadersGuard { _file: file })
    }

    /// The collector's right to remove blobs, or `None` while an export or backup holds
    /// [`BlobStore::readers_guard`].
    pub fn try_gc_lock(&self) -> Result<Option<GcLock>, BlobError> {
        let file = self.lock_file()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(GcLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error(&self.root.join(LOCK_FILE))(e)),
        }
    }
}

/// Held by an export or backup while it copies blobs; released on drop.
pub struct ReadersGuard {
    _file: File,
}

/// Held by the collector while it removes blobs; released on drop.
pub struct GcLock {
    _file: File,
}

/// A blob being written: hashed and counted as the bytes arrive.
pub struct BlobWriter {
    /// `None` once finished.
    file: Option<Spool>,
    path: PathBuf,
    hasher: digest::Context,
    size: u64,
    limit: u64,
}

impl BlobWriter {
    /// Appends bytes; refuses (and the drop removes the file) past the size limit.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        let Some(file) = self.file.as_mut() else {
            return Err(io_error(&self.path)(std::io::Error::other(
                "writer already finished",
            )));
        };
        file.write(chunk).map_err(io_error(&self.path))
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes and fsyncs the file; the result still has to be promoted to be stored.
    pub fn finish(mut self) -> Result<StagedBlob, BlobError> {
        let path = std::mem::take(&mut self.path);
        let file = self.file.take();
        let staged = StagedBlob {
            path: path.clone(),
            digest: sha256_of(self.hasher.clone()),
            size: self.size,
        };
        if let Some(file) = file {
            let file = file.finish().map_err(io_error(&path))?;
            file.sync_all().map_err(io_error(&path))?;
        }
        Ok(staged)
    }
}

fn sha256_of(hasher: digest::Context) -> Sha256Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(hasher.finish().as_ref());
    Sha256Digest(out)
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            self.file.take();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A complete, fsynced temporary file waiting for [`BlobStore::promote`].
pub struct StagedBlob {
    path: PathBuf,
    pub digest: Sha256Digest,
    pub size: u64,
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        (dir, store)
    }

    #[test]
    fn identical_content_is_stored_once() {
        let (_dir, store) = store();
        let mut first = None;
        for _ in 0..2 {
            let mut w = store.writer(100).expect("writer");
            w.write(b"hello ").expect("write");
            w.write(b"world").expect("write");
            let digest = store.promote(w.finish().expect("finish")).expect("promote");
            assert_eq!(*first.get_or_insert(digest), digest);
        }
        let digest = first.expect("a digest");
        assert_eq!(store.list().expect("list"), vec![digest]);
        assert_eq!(
            std::fs::read(store.path(&digest)).expect("read"),
            b"hello world"
        );
        assert_eq!(store.clean_temp().expect("clean"), 0, "no temp file left");
        store.remove(&digest).expect("remove");
        store.remove(&digest).expect("removing twice is fine");
        assert!(store.list().expect("list").is_empty());
    }

    #[test]
    fn too_large_and_abandoned_writes_leave_nothing() {
        let (_dir, store) = store();
        let mut w = store.writer(4).expect("writer");
        assert!(matches!(
            w.write(b"too long"),
            Err(BlobError::TooLarge { limit: 4 })
        ));
        drop(w);
        let w = store.writer(10).expect("writer");
        let staged = w.finish().expect("finish");
        drop(staged);
        assert_eq!(store.clean_temp().expect("clean"), 0);
        assert!(store.list().expect("list").is_empty());
    }

    /// Past one buffer the bytes go through the file thread and early writeback: the file
    /// and its digest must still be exactly the bytes written, in order.
    #[test]
    fn a_large_blob_is_written_whole_and_in_order() {
        let (_dir, store) = store();
        let data: Vec<u8> = (0..(40u32 << 20) / 4)
            .flat_map(|i| i.to_le_bytes())
            .collect();
        let mut w = store.writer(u64::MAX).expect("writer");
        // Uneven chunks, as an HTTP body arrives.
        for chunk in data.chunks(376_813) {
            w.write(chunk).expect("write");
        }
        let staged = w.finish().expect("finish");
        assert_eq!(staged.size, data.len() as u64);
        let expected = digest::digest(&digest::SHA256, &data);
        assert_eq!(staged.digest.0.as_slice(), expected.as_ref());
        let digest = store.promote(staged).expect("promote");
        assert!(std::fs::read(store.path(&digest)).expect("read") == data);
    }

    #[test]
    fn a_large_blob_refused_part_way_leaves_nothing() {
        let (_dir, store) = store();
        let mut w = store.writer(3 << 20).expect("writer");
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..3 {
            w.write(&chunk).expect("within the limit");
        }
        assert!(matches!(w.write(&chunk), Err(BlobError::TooLarge { .. })));
        drop(w);
        assert_eq!(store.clean_temp().expect("clean"), 0, "no temp file left");
        assert!(store.list().expect("list").is_empty());
    }

    #[test]
    fn readers_hold_off_the_collector() {
        let (_dir, store) = store();
        let guard = store.readers_guard().expect("guard");
        assert!(store.try_gc_lock().expect("try").is_none());
        drop(guard);
        let gc = store.try_gc_lock().expect("try");
        assert!(gc.is_some());
    }
}
