//! File storage on the [`App`]: [`App::enable_files`] turns it on, [`AppFiles`] is the
//! application's [`FileHost`] (what `ctx.storage` reaches), and the collector thread runs
//! here. `AppFiles` holds the app weakly (the modules it is attached to live inside the app)
//! and runs on the calling function's thread: queries and mutations only sign URLs and
//! report released bytes through it; actions, which have no transaction, store, read and
//! delete through it, each its own commit.

use std::sync::{Arc, Weak};

use functions::{FileHost, Modules};

use crate::App;
use crate::files::{FileError, FileStorage, now_ms};

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
        f: impl FnOnce(&App, &FileStorage) -> Result<R, FileError>,
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

impl App {
    /// Turns on file storage: `ctx.storage` in every version of the functions, and the
    /// collector thread that removes unreferenced bytes. First removes bytes a crash left
    /// without a row. Blocking (reads the database).
    pub fn enable_files(self: &Arc<Self>, files: FileStorage) -> Arc<FileStorage> {
        let files = Arc::new(files);
        if self.files.set(files.clone()).is_err() {
            return self.files().cloned().unwrap_or(files);
        }
        let removed = files.sweep(self.db());
        if removed > 0 {
            tracing::info!(removed, "removed stored bytes no file refers to");
        }
        self.attach_files_to(&self.modules());
        let app = Arc::downgrade(self);
        if let Err(e) = std::thread::Builder::new()
            .name("file-collector".into())
            .spawn(move || run_collector(app))
        {
            tracing::error!(error = %e, "cannot start the file collector; deleted files keep their bytes until the next start");
        }
        files
    }

    /// Gives `modules` the app's file storage, when it is enabled.
    pub(crate) fn attach_files_to(self: &Arc<Self>, modules: &Modules) {
        if self.files().is_some() {
            modules.attach_files(Arc::new(AppFiles::new(Arc::downgrade(self))));
        }
    }
}

/// Collects released bytes until the app is gone.
fn run_collector(app: Weak<App>) {
    loop {
        let Some(strong) = app.upgrade() else { return };
        let Some(files) = strong.files().cloned() else {
            return;
        };
        drop(strong);
        files.wait_for_released();
        let Some(strong) = app.upgrade() else { return };
        files.collect(strong.db());
    }
}
