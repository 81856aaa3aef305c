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
/// `_scheduled_functions` is Convex's scheduled-job table (`name` is the function's path,
/// `args` a one-element array holding the arguments, times in ms since the epoch), plus
/// `cron`, the cron job that made a run; its `by_state` index is what the scheduler reads.
pub const SYSTEM_TABLES: &[SystemTable] = &[
    SystemTable {
        name: "_storage",
        fields: &[
            ("sha256", "string"),
            ("size", "number"),
            ("contentType", "optional<string>"),
        ],
        indexes: &[("by_sha256", &["sha256"])],
    },
    SystemTable {
        name: "_scheduled_functions",
        fields: &[
            ("name", "string"),
            ("args", "array<any>"),
            ("scheduledTime", "number"),
            ("completedTime", "optional<number>"),
            (
                "state",
                "object{kind: 'pending' | 'inProgress' | 'success' | 'failed' | 'canceled', error?: string}",
            ),
            ("cron", "optional<string>"),
        ],
        indexes: &[("by_state", &["state.kind", "scheduledTime"])],
    },
];

/// Whether `name` is reserved for system tables (they all start with `_`).
pub fn is_system_table(name: &str) -> bool {
    name.starts_with('_')
}

/// Whether `name` is one of the system tables the engine defines.
pub fn is_known_system_table(name: &str) -> bool {
    SYSTEM_TABLES.iter().any(|t| t.name == name)
}
