//! Reading the app's `schema.toml`, shared by startup, the file watcher and `codegen`.

use std::path::Path;

use anyhow::Context as _;
use schema::Schema;

/// A parsed `schema.toml` and the text it was parsed from, which the database stores with it.
pub struct SchemaFile {
    pub schema: Schema,
    pub text: String,
}

/// Reads and parses `path`; a missing file is an empty schema.
pub fn load(path: &Path) -> anyhow::Result<SchemaFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(SchemaFile {
                schema: Schema::default(),
                text: String::new(),
            });
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let schema = Schema::parse(&text, "schema.toml")?;
    Ok(SchemaFile { schema, text })
}
