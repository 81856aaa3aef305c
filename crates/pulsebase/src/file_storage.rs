//! Turning on file storage for `dev` and `serve`: the store lives beside the database
//! (`DIR/.pulsebase/storage/` by default, `PULSEBASE_STORAGE_DIR` to move it), uploads are
//! capped at `PULSEBASE_MAX_UPLOAD_BYTES` (1 GiB by default), and the URLs handed to apps
//! start with the served URL, or `PULSEBASE_PUBLIC_URL` behind a proxy. Upload URLs stay
//! valid for an hour (`PULSEBASE_UPLOAD_URL_TTL_MS` shortens it, e.g. for tests).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use application::{App, DEFAULT_MAX_UPLOAD_BYTES, FileStorage};

/// The file store's directory for the database at `data`.
pub fn storage_dir(data: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("PULSEBASE_STORAGE_DIR") {
        return PathBuf::from(dir);
    }
    data.parent()
        .map_or_else(|| PathBuf::from("storage"), |dir| dir.join("storage"))
}

/// The upload limit from `PULSEBASE_MAX_UPLOAD_BYTES`, else 1 GiB.
pub fn max_upload_bytes() -> anyhow::Result<u64> {
    match std::env::var("PULSEBASE_MAX_UPLOAD_BYTES") {
        Ok(text) => text.trim().parse().with_context(|| {
            format!("PULSEBASE_MAX_UPLOAD_BYTES must be a number of bytes, not {text:?}")
        }),
        Err(_) => Ok(DEFAULT_MAX_UPLOAD_BYTES),
    }
}

/// Opens the store for the database at `data` and enables it on `app`, with URLs under
/// `served_url` (unless `PULSEBASE_PUBLIC_URL` says otherwise).
pub async fn enable(app: &Arc<App>, data: &Path, served_url: &str) -> anyhow::Result<()> {
    let dir = storage_dir(data);
    let files = FileStorage::open(&dir, max_upload_bytes()?)
        .with_context(|| format!("opening the file store at {}", dir.display()))?;
    if let Ok(ttl) = std::env::var("PULSEBASE_UPLOAD_URL_TTL_MS") {
        let ttl: u64 = ttl.trim().parse().with_context(|| {
            format!("PULSEBASE_UPLOAD_URL_TTL_MS must be a number of milliseconds, not {ttl:?}")
        })?;
        files.set_upload_ttl_ms(ttl);
    }
    let public = std::env::var("PULSEBASE_PUBLIC_URL").ok();
    files.set_base_url(public.as_deref().unwrap_or(served_url));
    let app = app.clone();
    tokio::task::spawn_blocking(move || app.enable_files(files))
        .await
        .context("enabling file storage")?;
    Ok(())
}
