//! Reading what an import brings: the tables of a Convex-format ZIP (`<table>/documents.jsonl`,
//! `_tables/documents.jsonl`, `_storage/documents.jsonl` and `_storage/<id>` files), or one
//! table from a `.jsonl`, `.json` (an array) or `.csv` file. Rows come out as JSON objects with
//! their line number, in file order, as often as asked: validation reads everything once, the
//! write pass again, so nothing but the current row is held in memory (a `.json` array is
//! parsed whole, and is refused past [`MAX_JSON_ARRAY_BYTES`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use schema::{Schema, Type};
use zip::ZipArchive;

use crate::SnapshotError;

/// A `.json` array is read whole; past this, use JSON lines.
pub(crate) const MAX_JSON_ARRAY_BYTES: u64 = 64 << 20;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    Zip,
    JsonLines,
    JsonArray,
    Csv,
}

impl ImportFormat {
    /// The format a file name says (`.zip`, `.jsonl`/`.ndjson`, `.json`, `.csv`).
    pub fn from_path(path: &Path) -> Option<ImportFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "zip" => ImportFormat::Zip,
            "jsonl" | "ndjson" => ImportFormat::JsonLines,
            "json" => ImportFormat::JsonArray,
            "csv" => ImportFormat::Csv,
            _ => return None,
        })
    }
}

/// Where one table's rows are.
#[derive(Clone, Debug)]
pub(crate) enum Rows {
    ZipEntry { index: usize },
    File { format: ImportFormat },
}

/// One table of the import.
#[derive(Clone, Debug)]
pub(crate) struct TableInput {
    pub name: String,
    pub rows: Rows,
}

/// Everything an import file holds.
pub(crate) struct Source {
    pub path: PathBuf,
    pub tables: Vec<TableInput>,
    /// Table numbers of the exporting deployment by name (`_tables/documents.jsonl`, and the
    /// number of the `_storage` ids), to follow references between tables.
    pub source_tables: HashMap<u32, String>,
    /// `_storage/<id>` file entries by storage id.
    pub storage_files: HashMap<String, usize>,
    /// A `generated_schema.jsonl` in the legacy (pre-"uniform") format was found.
    pub legacy_schema: Vec<String>,
}

impl Source {
    pub(crate) fn open(
        path: &Path,
        format: ImportFormat,
        table: Option<&str>,
    ) -> Result<Source, SnapshotError> {
        let mut source = Source {
            path: path.to_path_buf(),
            tables: Vec::new(),
            source_tables: HashMap::new(),
            storage_files: HashMap::new(),
            legacy_schema: Vec::new(),
        };
        if format != ImportFormat::Zip {
            let name = table.map(str::to_string).or_else(|| {
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_string)
            });
            let Some(name) = name else {
                return Err(SnapshotError::Invalid(
                    "name the table to import into with --table".to_string(),
                ));
            };
            source.tables.push(TableInput {
                name,
                rows: Rows::File { format },
            });
            return Ok(source);
        }
        let mut archive = open_zip(path)?;
        let mut storage_rows = None;
        for index in 0..archive.len() {
            let name = archive.by_index(index)?.name()?.to_string();
            let parts: Vec<&str> = name.trim_start_matches("./").split('/').collect();
            // An optional leading folder (`snapshot/todos/documents.jsonl`) is ignored.
            let parts = if parts.len() == 3 {
                &parts[1..]
            } else {
                &parts[..]
            };
            match parts {
                [table, "documents.jsonl"] if *table == "_tables" => {
                    source.read_table_numbers(&mut archive, index)?;
                }
                [table, "documents.jsonl"] if *table == "_storage" => {
                    // `_tables` lists user tables only; the storage ids name their table too.
                    let mut first = String::new();
                    BufReader::new(archive.by_index(index)?)
                        .read_line(&mut first)
                        .map_err(SnapshotError::io(path))?;
                    let id = serde_json::from_str::<serde_json::Value>(&first)
                        .ok()
                        .and_then(|v| v["_id"].as_str().map(str::to_string));
                    if let Some(number) = id.as_deref().and_then(id_table_number) {
                        source.source_tables.insert(number, "_storage".to_string());
                    }
                    storage_rows = Some(TableInput {
                        name: "_storage".to_string(),
                        rows: Rows::ZipEntry { index },
                    });
                }
                [table, "documents.jsonl"] if table.starts_with('_') => {
                    tracing::info!(entry = %name, "skipping a system table of the export");
                }
                [table, "documents.jsonl"] => {
                    if table.is_empty() {
                        continue;
                    }
                    source.tables.push(TableInput {
                        name: (*table).to_string(),
                        rows: Rows::ZipEntry { index },
                    });
                }
                [table, "generated_schema.jsonl"] => {
                    let mut first = String::new();
                    BufReader::new(archive.by_index(index)?)
                        .read_line(&mut first)
                        .map_err(SnapshotError::io(path))?;
                    if first.trim() != "\"uniform\"" {
                        source.legacy_schema.push((*table).to_string());
                    }
                }
                ["_storage", file] if !file.is_empty() => {
                    let id = file.split('.').next().unwrap_or(file);
                    source.storage_files.insert(id.to_string(), index);
                }
                _ => {}
            }
        }
        if let Some(table) = table {
            source.tables.retain(|t| t.name == table);
            if source.tables.is_empty() {
                return Err(SnapshotError::Invalid(format!(
                    "the ZIP has no table {table:?} (no {table}/documents.jsonl)"
                )));
            }
        } else if let Some(storage) = storage_rows {
            source.tables.insert(0, storage);
        }
        Ok(source)
    }

    fn read_table_numbers(
        &mut self,
        archive: &mut ZipArchive<File>,
        index: usize,
    ) -> Result<(), SnapshotError> {
        let entry = BufReader::new(archive.by_index(index)?);
        for line in entry.lines() {
            let line = line.map_err(SnapshotError::io(&self.path))?;
            if line.trim().is_empty() {
                continue;
            }
            let json: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| SnapshotError::Invalid(format!("_tables/documents.jsonl: {e}")))?;
            if let (Some(name), Some(id)) = (json["name"].as_str(), json["id"].as_u64()) {
                self.source_tables.insert(id as u32, name.to_string());
            }
        }
        Ok(())
    }

    /// Calls `row` with every row of `table` (line number, JSON object), in order.
    pub(crate) fn rows(
        &self,
        table: &TableInput,
        schema: &Schema,
        mut row: impl FnMut(u64, serde_json::Value) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        match &table.rows {
            Rows::ZipEntry { index, .. } => {
                let mut archive = open_zip(&self.path)?;
                let entry = archive.by_index(*index)?;
                json_lines(
                    BufReader::with_capacity(1 << 20, entry),
                    &self.path,
                    &mut row,
                )
            }
            Rows::File {
                format: ImportFormat::JsonLines,
            } => {
                let file = File::open(&self.path).map_err(SnapshotError::io(&self.path))?;
                json_lines(
                    BufReader::with_capacity(1 << 20, file),
                    &self.path,
                    &mut row,
                )
            }
            Rows::File {
                format: ImportFormat::JsonArray,
            } => {
                let file = File::open(&self.path).map_err(SnapshotError::io(&self.path))?;
                let mut text = String::new();
                file.take(MAX_JSON_ARRAY_BYTES + 1)
                    .read_to_string(&mut text)
                    .map_err(SnapshotError::io(&self.path))?;
                if text.len() as u64 > MAX_JSON_ARRAY_BYTES {
                    return Err(SnapshotError::Invalid(format!(
                        "{}: a .json array is read whole and may be at most {} MiB; write one document per line as .jsonl instead",
                        self.path.display(),
                        MAX_JSON_ARRAY_BYTES >> 20
                    )));
                }
                let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    SnapshotError::Invalid(format!("{}: not JSON: {e}", self.path.display()))
                })?;
                let serde_json::Value::Array(items) = json else {
                    return Err(SnapshotError::Invalid(format!(
                        "{}: a .json import must be an array of documents",
                        self.path.display()
                    )));
                };
                for (i, item) in items.into_iter().enumerate() {
                    row(i as u64 + 1, item)?;
                }
                Ok(())
            }
            Rows::File {
                format: ImportFormat::Csv,
            } => csv_rows(&self.path, schema.table(&table.name), &mut row),
            Rows::File {
                format: ImportFormat::Zip,
            } => Err(SnapshotError::Invalid("a ZIP is not one table".to_string())),
        }
    }
}

/// The table number an id (ours or Convex's) names.
fn id_table_number(id: &str) -> Option<u32> {
    value::DocumentId::parse(id)
        .ok()
        .map(|parsed| parsed.table().0)
        .or_else(|| value::convex_id_table(id))
}

fn open_zip(path: &Path) -> Result<ZipArchive<File>, SnapshotError> {
    let file = File::open(path).map_err(SnapshotError::io(path))?;
    Ok(ZipArchive::new(file)?)
}

/// Opens the `_storage/<id>` entry at `index` and hands its bytes to `read`.
pub(crate) fn with_zip_entry<R>(
    path: &Path,
    index: usize,
    read: impl FnOnce(&mut dyn Read) -> Result<R, SnapshotError>,
) -> Result<R, SnapshotError> {
    let mut archive = open_zip(path)?;
    let mut entry = archive.by_index(index)?;
    read(&mut entry)
}

fn json_lines(
    reader: impl BufRead,
    path: &Path,
    row: &mut impl FnMut(u64, serde_json::Value) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(SnapshotError::io(path))?;
        let number = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        if number == 1 && line.starts_with('\u{feff}') {
            return Err(SnapshotError::Invalid(
                "line 1 starts with a UTF-8 byte order mark; save the file without one".to_string(),
            ));
        }
        let json = serde_json::from_str(&line)
            .map_err(|e| SnapshotError::Invalid(format!("line {number}: not JSON: {e}")))?;
        row(number, json)?;
    }
    Ok(())
}

/// CSV: a header row of field names, then one document per row. A cell becomes what its
/// field is declared as (`boolean`, `int64`, `number`, `string`; an empty cell of an
/// `optional` field is left out); undeclared fields follow Convex: a number if it parses as
/// one, else a string.
fn csv_rows(
    path: &Path,
    table: Option<&schema::TableDef>,
    row: &mut impl FnMut(u64, serde_json::Value) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| SnapshotError::Invalid(format!("{}: {e}", path.display())))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| SnapshotError::Invalid(format!("{}: header row: {e}", path.display())))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let declared = table.and_then(|t| t.document.as_ref());
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = record.map_err(|e| SnapshotError::Invalid(format!("line {line}: {e}")))?;
        if record.len() != headers.len() {
            return Err(SnapshotError::Invalid(format!(
                "line {line}: {} cells for {} columns",
                record.len(),
                headers.len()
            )));
        }
        let mut object = serde_json::Map::new();
        for (name, cell) in headers.iter().zip(record.iter()) {
            let ty = declared.and_then(|d| d.fields.get(name));
            if let Some(value) = csv_cell(cell, ty) {
                object.insert(name.clone(), value);
            }
        }
        row(line, serde_json::Value::Object(object))?;
    }
    Ok(())
}

fn csv_cell(cell: &str, ty: Option<&Type>) -> Option<serde_json::Value> {
    let as_number = |cell: &str| {
        cell.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
    };
    match ty {
        Some(Type::Optional(_)) if cell.is_empty() => None,
        Some(Type::Optional(inner)) => csv_cell(cell, Some(inner)),
        Some(Type::Boolean) => match cell.trim() {
            "true" | "TRUE" | "True" => Some(true.into()),
            "false" | "FALSE" | "False" => Some(false.into()),
            _ => Some(cell.into()),
        },
        Some(Type::Int64) => cell
            .trim()
            .parse::<i64>()
            .ok()
            .map(Into::into)
            .or_else(|| Some(cell.into())),
        Some(Type::Number) => as_number(cell.trim()).or_else(|| Some(cell.into())),
        Some(Type::String) | Some(Type::Id(_)) => Some(cell.into()),
        _ => as_number(cell).or_else(|| Some(cell.into())),
    }
}
