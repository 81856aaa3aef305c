//! What every part of an import shares: the batch sizes, the modes, the report, the resume
//! marker, and small readers of prepared documents.

use database::Snapshot;
use filestore::Sha256Digest;
use value::Value;

use super::prepare::Prepared;

/// Most documents (written or deleted) in one commit.
pub const BATCH_DOCS: usize = 2_000;
/// Most bytes of documents in one commit.
pub const BATCH_BYTES: usize = 8 << 20;
/// Problems listed when validation refuses an import.
pub(crate) const MAX_ERRORS: usize = 20;
/// The engine setting that records an import in progress.
pub(crate) const MARKER: &str = "import.in_progress";

/// What to do with tables that already hold documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportMode {
    /// Refuse unless every table imported into is empty (the default, as in Convex).
    RequireEmpty,
    /// Add to what is there.
    Append,
    /// Empty the tables being imported first.
    Replace,
    /// Empty every table of the schema first, also those the import does not mention.
    ReplaceAll,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Documents per table, in import order.
    pub tables: Vec<(String, u64)>,
    pub documents: u64,
    /// Stored files brought in (`_storage` rows with their bytes).
    pub files: u64,
    /// Documents deleted first (`--replace`, `--replace-all`).
    pub deleted: u64,
    pub commits: u64,
    /// Documents an earlier, interrupted run of the same import had already written.
    pub resumed_after: u64,
}

/// Where an interrupted import stood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub fingerprint: String,
    pub file: String,
    /// Documents written so far; `None` while still deleting.
    pub done: Option<u64>,
}

impl Marker {
    pub(crate) fn to_json(&self) -> String {
        serde_json::json!({ "fingerprint": self.fingerprint, "file": self.file, "done": self.done })
            .to_string()
    }

    pub(crate) fn parse(text: &str) -> Option<Marker> {
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Marker {
            fingerprint: json["fingerprint"].as_str()?.to_string(),
            file: json["file"].as_str().unwrap_or_default().to_string(),
            done: json["done"].as_u64(),
        })
    }
}

/// The schema the catalog validates with (system tables included).
pub(crate) fn mapper_schema(snapshot: &Snapshot) -> schema::Schema {
    (*snapshot.catalog().schema).clone()
}

/// The SHA-256 a `_storage` row declares.
pub(crate) fn storage_digest(doc: &Prepared) -> Option<Sha256Digest> {
    doc.fields
        .get("sha256")
        .and_then(Value::as_str)
        .and_then(Sha256Digest::from_base64)
}
