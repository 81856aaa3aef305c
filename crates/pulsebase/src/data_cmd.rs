//! `pulsebase export`, `import`, `backup` and `restore` (README.md, "Export, import and
//! backups"). The work is in the `snapshot` crate; this file decides where it runs:
//!
//! - export and backup read the app's database file directly, also while a server runs
//!   from DIR (a WAL read transaction does not disturb it; the file store's readers lock
//!   keeps its collector off the files being copied); `export --url` asks a server instead;
//! - import goes through the running server when there is one (its Committer must make the
//!   commits, so subscribers see them), else opens the database itself;
//! - restore refuses while a server runs from DIR.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use application::FileStorage;
use database::{Database, Snapshot};
use filestore::BlobStore;
use snapshot::{ImportMode, ImportOptions, ImportReport};

use crate::cli::{BackupArgs, ExportArgs, ImportArgs, RestoreArgs};
use crate::file_storage;
use crate::paths::AppPaths;
use crate::schema_file;

fn timestamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `--path`: a `.zip` path, or an existing folder to put `snapshot_<time>.zip` in.
fn export_path(path: Option<&Path>) -> PathBuf {
    let name = format!("snapshot_{}.zip", timestamp());
    match path {
        None => PathBuf::from(name),
        Some(p) if p.is_dir() => p.join(name),
        Some(p) => p.to_path_buf(),
    }
}

pub async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let paths = AppPaths::new(&args.dir);
    let dest = export_path(args.path.as_deref());
    anyhow::ensure!(
        !dest.exists(),
        "{} already exists; choose another --path",
        dest.display()
    );
    if let Some(url) = &args.url {
        let key = paths.read_admin_key()?;
        let url = format!(
            "{}/api/admin/export?includeFileStorage={}",
            url.trim_end_matches('/'),
            args.include_file_storage
        );
        let mut response = reqwest::Client::new()
            .get(&url)
            .header("Authorization", format!("Convex {key}"))
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        if !response.status().is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("the server refused the export: {body}");
        }
        let partial = dest.with_extension("zip.partial");
        let mut file = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let mut bytes = 0u64;
        while let Some(chunk) = response.chunk().await.context("receiving the export")? {
            bytes += chunk.len() as u64;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
        }
        file.sync_all().await?;
        std::fs::rename(&partial, &dest)?;
        println!("exported to {} ({bytes} bytes)", dest.display());
        return Ok(ExitCode::SUCCESS);
    }
    let database = paths.database();
    let storage = file_storage::storage_dir(&database);
    let include = args.include_file_storage;
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let blobs = if include {
            BlobStore::attach(&storage)
        } else {
            None
        };
        let _guard = blobs.as_ref().map(BlobStore::readers_guard).transpose()?;
        let snapshot = Snapshot::open_file(&database).with_context(|| {
            format!(
                "cannot read the database at {} (start the app once with pulsebase dev first)",
                database.display()
            )
        })?;
        Ok(snapshot::export_zip(&snapshot, blobs.as_ref(), &dest)?)
    })
    .await??;
    println!(
        "exported {} tables, {} documents{} at ts {} to {}",
        report.tables,
        report.documents,
        if include {
            format!(", {} files", report.files)
        } else {
            String::new()
        },
        report.ts,
        report.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let paths = AppPaths::new(&args.dir);
    anyhow::ensure!(args.file.is_file(), "{} is not a file", args.file.display());
    let mode = if args.append {
        ImportMode::Append
    } else if args.replace {
        ImportMode::Replace
    } else if args.replace_all {
        ImportMode::ReplaceAll
    } else {
        ImportMode::RequireEmpty
    };
    let server = args.url.clone().or_else(|| paths.running_server_url());
    let report = match server {
        Some(url) => import_through(&paths, &url, &args, mode).await?,
        None => {
            let SchemaFile { schema, text } = schema_file::load(&paths.schema())?;
            let database = paths.database();
            let options = ImportOptions {
                format: None,
                table: args.table.clone(),
                mode,
            };
            let file = args.file.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<ImportReport> {
                let (db, _) = Database::open(&database, schema, &text)
                    .with_context(|| format!("opening the database at {}", database.display()))?;
                let dir = file_storage::storage_dir(&database);
                let files = FileStorage::open(&dir, file_storage::max_upload_bytes()?)?;
                Ok(snapshot::import_file(&db, Some(&files), &file, &options)?)
            })
            .await??
        }
    };
    print_import(&report);
    Ok(ExitCode::SUCCESS)
}

use schema_file::SchemaFile;

async fn import_through(
    paths: &AppPaths,
    url: &str,
    args: &ImportArgs,
    mode: ImportMode,
) -> anyhow::Result<ImportReport> {
    let key = paths.read_admin_key()?;
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mode = match mode {
        ImportMode::Append => "append",
        ImportMode::Replace => "replace",
        ImportMode::ReplaceAll => "replace-all",
        ImportMode::RequireEmpty => "",
    };
    let file = tokio::fs::File::open(&args.file).await?;
    let body =
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
    let response = reqwest::Client::new()
        .post(format!("{}/api/admin/import", url.trim_end_matches('/')))
        .query(&[
            ("name", name.as_str()),
            ("mode", mode),
            ("table", args.table.as_deref().unwrap_or("")),
        ])
        .header("Authorization", format!("Convex {key}"))
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {url} (stop it or pass --url)"))?;
    let status = response.status();
    let json: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("the server answered {status} with a body that is not JSON"))?;
    if !status.is_success() {
        anyhow::bail!(
            "{}",
            json["message"]
                .as_str()
                .unwrap_or("the server refused the import")
        );
    }
    Ok(ImportReport {
        tables: json["tables"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["table"].as_str().unwrap_or_default().to_string(),
                    t["documents"].as_u64().unwrap_or(0),
                )
            })
            .collect(),
        documents: json["documents"].as_u64().unwrap_or(0),
        files: json["files"].as_u64().unwrap_or(0),
        deleted: json["deleted"].as_u64().unwrap_or(0),
        commits: json["commits"].as_u64().unwrap_or(0),
        resumed_after: json["resumedAfter"].as_u64().unwrap_or(0),
    })
}

fn print_import(report: &ImportReport) {
    for (table, n) in &report.tables {
        println!("  {table}: {n} documents");
    }
    if report.resumed_after > 0 {
        println!(
            "resumed an interrupted import after {} documents",
            report.resumed_after
        );
    }
    println!(
        "imported {} documents{}{} in {} commit{}",
        report.documents,
        if report.files > 0 {
            format!(" and {} files", report.files)
        } else {
            String::new()
        },
        if report.deleted > 0 {
            format!(" (after deleting {} documents)", report.deleted)
        } else {
            String::new()
        },
        report.commits,
        if report.commits == 1 { "" } else { "s" }
    );
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let paths = AppPaths::new(&args.dir);
    let database = paths.database();
    let storage = file_storage::storage_dir(&database);
    let dest = args.file.clone();
    let report =
        tokio::task::spawn_blocking(move || snapshot::backup(&database, &storage, &dest)).await??;
    println!(
        "backed up the database at ts {} and {} files ({} bytes) to {}",
        report.ts,
        report.files,
        report.bytes,
        report.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let paths = AppPaths::new(&args.dir);
    if let Some(url) = paths.running_server_url() {
        anyhow::bail!(
            "a server is running from {} ({url}); stop it before restoring",
            args.dir.display()
        );
    }
    let database = paths.database();
    let storage = file_storage::storage_dir(&database);
    let state = paths.state.clone();
    let file = args.file.clone();
    let force = args.force;
    let report = tokio::task::spawn_blocking(move || {
        snapshot::restore(&file, &state, &database, &storage, force)
    })
    .await??;
    println!(
        "restored the database at ts {} and {} files into {}",
        report.ts,
        report.files,
        paths.state.display()
    );
    if let Some(previous) = report.previous {
        println!("the data that was there is kept in {}", previous.display());
    }
    Ok(ExitCode::SUCCESS)
}
