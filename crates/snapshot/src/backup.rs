//! `pulsebase backup` and `pulsebase restore`.
//!
//! A backup is one ZIP: `backup.json` (format, commit `ts`, counts), `data.sqlite3` (a
//! consistent copy made with SQLite's `VACUUM INTO` while the server keeps committing),
//! `storage/secret` (so restored file URLs stay valid) and `storage/<sha256>` for every file
//! the copied database refers to. It runs beside a live server, from another process: the
//! database copy is a read transaction, and the file store's readers lock is held from
//! before the copy until the last file is in, so the collector cannot remove a file the copy
//! still lists. The ZIP is written as `FILE.partial` and renamed when complete.
//!
//! Restore unpacks into a temporary folder beside the data, checks every file against its
//! SHA-256, and only then moves it into place. It refuses when data exists unless `force` is
//! given, and even then keeps the previous data in `.pulsebase/before-restore-<time>/`.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use database::{Snapshot, copy_database};
use filestore::{BlobStore, Sha256Digest};
use value::Value;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::SnapshotError;

const MANIFEST: &str = "backup.json";
const FORMAT: &str = "pulsebase-backup";
const DATABASE_ENTRY: &str = "data.sqlite3";
const SECRET_ENTRY: &str = "storage/secret";

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupReport {
    pub path: PathBuf,
    /// The commit the copy reflects.
    pub ts: u64,
    pub files: u64,
    pub bytes: u64,
}

/// What a restore put in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    pub ts: u64,
    pub files: u64,
    /// Where the data that was there before went (with `force`).
    pub previous: Option<PathBuf>,
}

fn stamp() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn stored() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .unix_permissions(0o600)
        .large_file(true)
}

/// Backs up the database at `database` and the file store at `storage` into `dest`.
pub fn backup(database: &Path, storage: &Path, dest: &Path) -> Result<BackupReport, SnapshotError> {
    if dest.exists() {
        return Err(SnapshotError::Invalid(format!(
            "{} already exists; choose a new file name for the backup",
            dest.display()
        )));
    }
    if !database.is_file() {
        return Err(SnapshotError::Invalid(format!(
            "there is no SQLite database at {} to back up (an app stored in PostgreSQL with --database-url is backed up with PostgreSQL's own tools, such as pg_dump; see README.md, \"PostgreSQL and several nodes\")",
            database.display()
        )));
    }
    let blobs = BlobStore::attach(storage);
    let _guard = blobs.as_ref().map(BlobStore::readers_guard).transpose()?;
    let copy = dest.with_extension("sqlite3.partial");
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_file(&copy);
    let result = (|| {
        copy_database(database, &copy)?;
        let snapshot = Snapshot::open_file(&copy)?;
        let digests = storage_digests(&snapshot)?;
        let ts = snapshot.ts();
        drop(snapshot);
        let file = File::create(&partial).map_err(SnapshotError::io(&partial))?;
        let mut zip = ZipWriter::new(BufWriter::with_capacity(1 << 20, file));
        let manifest = serde_json::json!({
            "format": FORMAT, "version": 1, "ts": ts, "createdAt": stamp(), "files": digests.len(),
        });
        zip.start_file(MANIFEST, stored())?;
        zip.write_all(manifest.to_string().as_bytes())
            .map_err(SnapshotError::io(&partial))?;
        zip.start_file(DATABASE_ENTRY, stored())?;
        let mut db_file = File::open(&copy).map_err(SnapshotError::io(&copy))?;
        let mut bytes = std::io::copy(&mut db_file, &mut zip).map_err(SnapshotError::io(&copy))?;
        if let Some(blobs) = &blobs {
            let secret = blobs.root().join("secret");
            if secret.is_file() {
                zip.start_file(SECRET_ENTRY, stored())?;
                let mut f = File::open(&secret).map_err(SnapshotError::io(&secret))?;
                std::io::copy(&mut f, &mut zip).map_err(SnapshotError::io(&secret))?;
            }
            for digest in &digests {
                let path = blobs.path(digest);
                let mut f = File::open(&path).map_err(SnapshotError::io(&path))?;
                zip.start_file(format!("storage/{}", digest.hex()), stored())?;
                bytes += std::io::copy(&mut f, &mut zip).map_err(SnapshotError::io(&path))?;
            }
        } else if !digests.is_empty() {
            return Err(SnapshotError::Invalid(format!(
                "the database lists {} stored files but there is no file store at {}",
                digests.len(),
                storage.display()
            )));
        }
        let mut out = zip.finish()?;
        out.flush().map_err(SnapshotError::io(&partial))?;
        out.get_ref()
            .sync_all()
            .map_err(SnapshotError::io(&partial))?;
        std::fs::rename(&partial, dest).map_err(SnapshotError::io(dest))?;
        Ok(BackupReport {
            path: dest.to_path_buf(),
            ts,
            files: digests.len() as u64,
            bytes,
        })
    })();
    let _ = std::fs::remove_file(&copy);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Every distinct file the snapshot's `_storage` rows refer to.
fn storage_digests(snapshot: &Snapshot) -> Result<Vec<Sha256Digest>, SnapshotError> {
    let mut digests = std::collections::BTreeSet::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = snapshot.documents("_storage", after.as_deref(), 1_000)?;
        for row in &rows {
            if let Some(digest) = row
                .document
                .fields
                .get("sha256")
                .and_then(Value::as_str)
                .and_then(Sha256Digest::from_base64)
            {
                digests.insert(digest);
            }
        }
        match rows.last() {
            Some(last) if rows.len() == 1_000 => after = Some(last.key.clone()),
            _ => return Ok(digests.into_iter().collect()),
        }
    }
}

/// Restores `backup` as the database `database` and the file store `storage` (both under
/// the app's `state` folder).
pub fn restore(
    backup: &Path,
    state: &Path,
    database: &Path,
    storage: &Path,
    force: bool,
) -> Result<RestoreReport, SnapshotError> {
    let file = File::open(backup).map_err(SnapshotError::io(backup))?;
    let mut zip = ZipArchive::new(file)?;
    let manifest: serde_json::Value = {
        let mut text = String::new();
        zip.by_name(MANIFEST)
            .map_err(|_| {
                SnapshotError::Invalid(format!(
                    "{} is not a Pulsebase backup (it has no {MANIFEST})",
                    backup.display()
                ))
            })?
            .read_to_string(&mut text)
            .map_err(SnapshotError::io(backup))?;
        serde_json::from_str(&text)
            .map_err(|e| SnapshotError::Invalid(format!("{MANIFEST}: {e}")))?
    };
    if manifest["format"] != FORMAT {
        return Err(SnapshotError::Invalid(format!(
            "{} is not a Pulsebase backup",
            backup.display()
        )));
    }
    let has_data = database.exists() || storage.join("secret").exists();
    if has_data && !force {
        return Err(SnapshotError::Invalid(format!(
            "{} already holds data; restoring would replace it. Stop the server and pass --force (the current data is kept in {}/before-restore-<time>/)",
            state.display(),
            state.display()
        )));
    }
    let work = state.join(format!("restore-{}.partial", stamp()));
    std::fs::create_dir_all(&work).map_err(SnapshotError::io(&work))?;
    let result = unpack(&mut zip, &work);
    let files = match result {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    let previous = if has_data {
        let aside = state.join(format!("before-restore-{}", stamp()));
        std::fs::create_dir_all(&aside).map_err(SnapshotError::io(&aside))?;
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", database.display()));
            if path.exists() {
                let name = path.file_name().map(PathBuf::from).unwrap_or_default();
                std::fs::rename(&path, aside.join(name)).map_err(SnapshotError::io(&path))?;
            }
        }
        if storage.exists() {
            std::fs::rename(storage, aside.join("storage")).map_err(SnapshotError::io(storage))?;
        }
        Some(aside)
    } else {
        None
    };
    if let Some(dir) = database.parent() {
        std::fs::create_dir_all(dir).map_err(SnapshotError::io(dir))?;
    }
    let unpacked_db = work.join(DATABASE_ENTRY);
    std::fs::rename(&unpacked_db, database).map_err(SnapshotError::io(database))?;
    let unpacked_storage = work.join("storage");
    if unpacked_storage.exists() {
        std::fs::rename(&unpacked_storage, storage).map_err(SnapshotError::io(storage))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(RestoreReport {
        ts: manifest["ts"].as_u64().unwrap_or(0),
        files,
        previous,
    })
}

/// Unpacks the database and the files into `work`, checking each file's SHA-256.
fn unpack(zip: &mut ZipArchive<File>, work: &Path) -> Result<u64, SnapshotError> {
    let blobs = BlobStore::open(&work.join("storage"))?;
    let mut files = 0;
    let mut saw_database = false;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        let name = entry.name()?.to_string();
        if name == DATABASE_ENTRY {
            let path = work.join(DATABASE_ENTRY);
            let mut out = File::create(&path).map_err(SnapshotError::io(&path))?;
            std::io::copy(&mut entry, &mut out).map_err(SnapshotError::io(&path))?;
            out.sync_all().map_err(SnapshotError::io(&path))?;
            saw_database = true;
        } else if name == SECRET_ENTRY {
            let path = work.join(SECRET_ENTRY);
            let mut out = File::create(&path).map_err(SnapshotError::io(&path))?;
            std::io::copy(&mut entry, &mut out).map_err(SnapshotError::io(&path))?;
        } else if let Some(hex) = name.strip_prefix("storage/") {
            let expected = Sha256Digest::from_hex(hex).ok_or_else(|| {
                SnapshotError::Invalid(format!("unexpected entry {name} in the backup"))
            })?;
            let mut writer = blobs.writer(u64::MAX)?;
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let n = entry.read(&mut buffer).map_err(SnapshotError::io(work))?;
                if n == 0 {
                    break;
                }
                writer.write(&buffer[..n])?;
            }
            let staged = writer.finish()?;
            if staged.digest != expected {
                return Err(SnapshotError::Invalid(format!(
                    "the backup is damaged: {name} does not match its SHA-256"
                )));
            }
            blobs.promote(staged)?;
            files += 1;
        }
    }
    if !saw_database {
        return Err(SnapshotError::Invalid(format!(
            "the backup has no {DATABASE_ENTRY}"
        )));
    }
    Ok(files)
}
