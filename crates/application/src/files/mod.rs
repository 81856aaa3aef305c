//! [`FileStorage`]: the app's stored files. The bytes live in a content-addressed
//! [`BlobStore`] (by default `.pulsebase/storage/` beside the database); each file is a row of
//! the `_storage` system table (`sha256`, `size`, `contentType`), whose `_id` is the storage id
//! apps keep.
//!
//! - An upload (`POST /api/storage/upload?token=...`, or `ctx.storage.store` in an action) is
//!   streamed into a temporary file while it is hashed, then, under the commit lock, promoted
//!   to its content name and recorded by one commit that also claims the upload token, so a
//!   used, expired or forged URL writes nothing (`upload.rs`).
//! - Deleting a row (`ctx.storage.delete`) leaves the bytes; the collector (`gc.rs`) removes
//!   them once the deletion has committed and no other row has the same content. It checks
//!   under the same commit lock, so an upload of identical bytes cannot slip between its check
//!   and its removal, and it never removes while an export or backup holds the store's
//!   readers lock. A start-up sweep removes bytes that a crash left without a row.
//! - `AppFiles` (`file_host.rs`, beside this folder, since it holds the app) is what
//!   `ctx.storage` in functions reaches.

mod gc;
mod upload;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use database::{Database, DbError, Document};
use filestore::{BlobError, BlobStore, Sha256Digest, TokenError, UrlSigner};
use parking_lot::{Condvar, Mutex, RwLock};
use value::Value;

/// The largest upload by default (1 GiB); `PULSEBASE_MAX_UPLOAD_BYTES` changes it.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1 << 30;
/// How long an upload URL stays valid (Convex's is one hour too).
pub const UPLOAD_URL_TTL_MS: u64 = 3_600_000;
/// The system table of stored files.
pub const STORAGE_TABLE: &str = "_storage";
const SECRET_FILE: &str = "secret";

/// Why a file operation was refused; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error(
        "this upload URL was already used; each URL from ctx.storage.generateUploadUrl() takes one upload"
    )]
    UsedToken,
    #[error("{0}")]
    Blob(#[from] BlobError),
    #[error("no stored file has the id {0:?}")]
    NotFound(String),
    #[error("{0:?} is not a storage id (an id<_storage>)")]
    NotAStorageId(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// One stored file as its `_storage` row describes it.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub id: String,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub content_type: Option<String>,
    pub creation_time: f64,
    /// Where the bytes are.
    pub path: PathBuf,
}

/// The app's file store.
pub struct FileStorage {
    blobs: BlobStore,
    signer: UrlSigner,
    /// The server's URL, for the URLs handed to apps (set once the port is bound).
    base_url: RwLock<String>,
    max_upload_bytes: u64,
    /// How long a new upload URL stays valid.
    upload_ttl_ms: std::sync::atomic::AtomicU64,
    /// Held while a blob is promoted and its row committed, and while the collector checks
    /// and removes blobs: the two never interleave.
    commit_lock: Mutex<()>,
    /// Digests whose rows a mutation deleted, waiting for the collector.
    released: Mutex<Vec<Sha256Digest>>,
    wake_collector: Condvar,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FileStorage {
    /// Opens the store in `dir` (created if needed, with its URL-signing secret).
    pub fn open(dir: &Path, max_upload_bytes: u64) -> Result<FileStorage, FileError> {
        let blobs = BlobStore::open(dir)?;
        let secret = dir.join(SECRET_FILE);
        let signer = UrlSigner::load_or_create(&secret).map_err(|source| {
            FileError::Blob(BlobError::Io {
                path: secret.clone(),
                source,
            })
        })?;
        Ok(FileStorage {
            blobs,
            signer,
            base_url: RwLock::new("http://127.0.0.1:3210".to_string()),
            max_upload_bytes,
            upload_ttl_ms: std::sync::atomic::AtomicU64::new(UPLOAD_URL_TTL_MS),
            commit_lock: Mutex::new(()),
            released: Mutex::new(Vec::new()),
            wake_collector: Condvar::new(),
        })
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Held while blobs are promoted and their rows committed (an import of stored files
    /// holds it around each batch), so the collector never removes a blob between the two.
    pub fn commit_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.commit_lock.lock()
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// The URL the server answers at (`http://127.0.0.1:PORT`, or the public URL).
    pub fn set_base_url(&self, url: &str) {
        *self.base_url.write() = url.trim_end_matches('/').to_string();
    }

    /// How long new upload URLs stay valid (an hour unless changed).
    pub fn set_upload_ttl_ms(&self, ttl_ms: u64) {
        self.upload_ttl_ms
            .store(ttl_ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// A new signed, single-use upload URL valid for an hour (by default) from `now_ms`.
    pub fn upload_url(&self, now_ms: u64) -> String {
        let ttl = self
            .upload_ttl_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let token = self.signer.upload_token(now_ms + ttl);
        format!("{}/api/storage/upload?token={token}", self.base_url.read())
    }

    /// An upload URL valid from now, for callers without a function's clock (the dashboard).
    pub fn upload_url_from_now(&self) -> String {
        self.upload_url(now_ms())
    }

    /// The signed URL serving file `id`.
    pub fn file_url(&self, id: &str) -> String {
        format!(
            "{}/api/storage/{id}?sig={}",
            self.base_url.read(),
            self.signer.file_signature(id)
        )
    }

    pub fn check_file_signature(&self, id: &str, signature: &str) -> bool {
        self.signer.check_file_signature(id, signature)
    }

    /// The file `id` at the latest commit, `None` when there is no such file. Blocking.
    pub fn lookup(&self, db: &Database, id: &str) -> Result<Option<StoredFile>, FileError> {
        let catalog = db.catalog();
        match catalog.resolve_id(id) {
            Ok((_, table)) if table.name == STORAGE_TABLE => {}
            _ => return Err(FileError::NotAStorageId(id.chars().take(64).collect())),
        }
        let doc = db.read(|txn| database::Transaction::get(txn, id))??;
        Ok(doc.and_then(|doc| self.describe(&doc)))
    }

    /// A `_storage` document as a [`StoredFile`] (`None` for a row this server cannot have
    /// written).
    pub fn describe(&self, doc: &Document) -> Option<StoredFile> {
        let sha256 = doc
            .fields
            .get("sha256")
            .and_then(Value::as_str)
            .and_then(Sha256Digest::from_base64)?;
        let size = match doc.fields.get("size") {
            Some(Value::Float64(n)) => *n as u64,
            Some(Value::Int64(n)) => *n as u64,
            _ => return None,
        };
        let content_type = doc
            .fields
            .get("contentType")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(StoredFile {
            id: doc.id.to_string(),
            sha256,
            size,
            content_type,
            creation_time: doc.creation_time,
            path: self.blobs.path(&sha256),
        })
    }
}
