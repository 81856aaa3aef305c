//! The list of system tables the engine defines ([`SYSTEM_TABLES`]) and the name rules, a leaf
//! so that `schema.rs` can recognise `id<_storage>` without importing the module that turns the
//! list into table definitions (`system_tables.rs`).

/// One engine-defined table.
pub struct SystemTable {
    pub name: &'static str,
    /// Field name and type expression, as in `schema.toml`.
    pub fields: &'static [(&'static str, &'static str)],
    /// Index name and the fields it orders by (then `_creationTime`, `_id`).
    pub indexes: &'static [(&'static str, &'static [&'static str])],
}

/// Every system table. `_storage` is Convex's file metadata: `sha256` (base64 of the
/// SHA-256 of the bytes), `size` in bytes, and the `contentType` the upload declared.
pub const SYSTEM_TABLES: &[SystemTable] = &[SystemTable {
    name: "_storage",
    fields: &[
        ("sha256", "string"),
        ("size", "number"),
        ("contentType", "optional<string>"),
    ],
    indexes: &[("by_sha256", &["sha256"])],
}];

/// Whether `name` is reserved for system tables (they all start with `_`).
pub fn is_system_table(name: &str) -> bool {
    name.starts_with('_')
}

/// Whether `name` is one of the system tables the engine defines.
pub fn is_known_system_table(name: &str) -> bool {
    SYSTEM_TABLES.iter().any(|t| t.name == name)
}
