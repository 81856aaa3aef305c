//! [`FileHost`]: what `ctx.storage` reaches outside the transaction: the signed URLs, the
//! news that a mutation released a file's bytes, and (in actions, which have no transaction)
//! storing, reading and deleting files. The application implements it over its file store
//! and attaches it to the loaded modules ([`crate::Modules::attach_files`]); without one,
//! `ctx.storage` says file storage is not configured.
//!
//! In queries and mutations the `_storage` rows themselves are read and deleted through the
//! call's transaction (so reads are recorded and a deletion commits or rolls back with the
//! mutation); only what lies outside the database goes through here.

/// File storage as the host API sees it.
pub trait FileHost: Send + Sync {
    /// A signed, single-use upload URL, valid for a while from `now_ms`.
    fn upload_url(&self, now_ms: f64) -> String;
    /// The signed URL that serves the stored file `storage_id`.
    fn file_url(&self, storage_id: &str) -> String;
    /// A mutation deleted a `_storage` row whose bytes had this SHA-256 (base64): once the
    /// deletion commits and no other row has the same bytes, they can be removed.
    fn released(&self, sha256: &str);
    /// Actions: stores `bytes` as a new file and returns its storage id.
    fn store(&self, bytes: Vec<u8>, content_type: Option<String>) -> Result<String, String>;
    /// Actions: the bytes of a stored file (`None`: no such file); refuses files over
    /// `max_bytes`.
    fn read(&self, storage_id: &str, max_bytes: usize) -> Result<Option<Vec<u8>>, String>;
    /// Actions: deletes a stored file (its own transaction).
    fn delete(&self, storage_id: &str) -> Result<(), String>;
    /// Actions: the URL of a stored file, `None` when there is no such file.
    fn url_if_exists(&self, storage_id: &str) -> Result<Option<String>, String>;
}
