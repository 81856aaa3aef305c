//! [`AppFiles`]: the application's [`FileHost`], what `ctx.storage` reaches. It holds the app
//! weakly (the modules it is attached to live inside the app) and runs on the calling
//! function's thread: queries and mutations only sign URLs and report released bytes here;
//! actions, which have no transaction, store, read and delete through it, each its own commit.

use std::sync::Weak;

use functions::FileHost;

use super::{FileError, now_ms};
use crate::App;

/// `ctx.storage`'s way into the app's [`super::FileStorage`].
pub struct AppFiles {
    app: Weak<App>,
}

impl AppFiles {
    pub(crate) fn new(app: Weak<App>) -> AppFiles {
        AppFiles { app }
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&App, &super::FileStorage) -> Result<R, FileError>,
    ) -> Result<R, String> {
        let app = self
            .app
            .upgrade()
            .ok_or_else(|| "the server is shutting down".to_string())?;
        let files = app
            .files()
            .cloned()
            .ok_or_else(|| "file storage is not configured on this server".to_string())?;
        f(&app, &files).map_err(|e| e.to_string())
    }
}

impl FileHost for AppFiles {
    fn upload_url(&self, now: f64) -> String {
        let now = if now > 0.0 { now as u64 } else { now_ms() };
        self.with(|_, files| Ok(files.upload_url(now)))
            .unwrap_or_default()
    }

    fn file_url(&self, storage_id: &str) -> String {
        self.with(|_, files| Ok(files.file_url(storage_id)))
            .unwrap_or_default()
    }

    fn released(&self, sha256: &str) {
        let _ = self.with(|_, files| {
            files.released(sha256);
            Ok(())
        });
    }

    fn store(&self, bytes: Vec<u8>, content_type: Option<String>) -> Result<String, String> {
        self.with(|app, files| files.store_bytes(app.db(), &bytes, content_type))
    }

    fn read(&self, storage_id: &str, max_bytes: usize) -> Result<Option<Vec<u8>>, String> {
        self.with(|app, files| {
            let Some(file) = files.lookup(app.db(), storage_id)? else {
                return Ok(None);
            };
            if file.size > max_bytes as u64 {
                return Err(FileError::Blob(filestore::BlobError::TooLarge {
                    limit: max_bytes as u64,
                }));
            }
            let bytes = std::fs::read(&file.path).map_err(|source| {
                FileError::Blob(filestore::BlobError::Io {
                    path: file.path.clone(),
                    source,
                })
            })?;
            Ok(Some(bytes))
        })
        .map_err(|e| format!("ctx.storage.get({storage_id:?}): {e}; serve large files with ctx.storage.getUrl instead"))
    }

    fn delete(&self, storage_id: &str) -> Result<(), String> {
        self.with(|app, files| files.delete(app.db(), storage_id))
    }

    fn url_if_exists(&self, storage_id: &str) -> Result<Option<String>, String> {
        self.with(|app, files| {
            Ok(files
                .lookup(app.db(), storage_id)?
                .map(|f| files.file_url(&f.id)))
        })
    }
}
