//! System tables: tables whose names start with `_`, defined by the engine rather than by
//! `schema.toml`. They are stored, indexed, read and subscribed to like user tables (so a
//! query of `ctx.db.system.query("_storage")` is reactive), but only the engine's own
//! operations write them (`ctx.storage.delete`, an upload), never `ctx.db.insert/patch/...`.
//!
//! Adding one is adding an entry to [`SYSTEM_TABLES`]: its fields in the same type language as
//! `schema.toml`, and its indexes. [`Schema::with_system_tables`] merges them into the user's
//! schema, which is what the database's catalog validates against; `id<_storage>` (also
//! written `id<"_storage">`) names one in `schema.toml` and in validators.

use std::collections::BTreeMap;

use value::FieldPath;

use crate::schema::{IndexDef, Schema, TableDef};
use crate::system_list::{SYSTEM_TABLES, SystemTable, is_system_table};
use crate::types::{ObjectType, Type};

impl SystemTable {
    fn definition(&self) -> TableDef {
        let mut document = ObjectType::default();
        for (field, ty) in self.fields {
            // The definitions above are constants; the test below parses every one of them.
            let ty = Type::parse(ty).unwrap_or(Type::Any);
            document.fields.insert((*field).to_string(), ty);
        }
        let indexes = self
            .indexes
            .iter()
            .map(|(name, fields)| {
                (
                    (*name).to_string(),
                    IndexDef {
                        name: (*name).to_string(),
                        fields: fields.iter().map(|f| FieldPath::new(*f)).collect(),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        TableDef {
            name: self.name.to_string(),
            document: Some(document),
            indexes,
        }
    }
}

impl Schema {
    /// This schema plus the engine's system tables: what the database validates against.
    pub fn with_system_tables(&self) -> Schema {
        let mut merged = self.clone();
        for table in SYSTEM_TABLES {
            merged
                .tables
                .insert(table.name.to_string(), table.definition());
        }
        merged
    }

    /// The user-declared tables only (system tables left out).
    pub fn user_tables(&self) -> impl Iterator<Item = &TableDef> {
        self.tables.values().filter(|t| !is_system_table(&t.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_table_definition_parses() {
        for table in SYSTEM_TABLES {
            assert!(is_system_table(table.name), "{}", table.name);
            for (field, ty) in table.fields {
                assert!(Type::parse(ty).is_ok(), "{}.{field}: {ty}", table.name);
            }
            for (index, fields) in table.indexes {
                for field in *fields {
                    assert!(
                        table.fields.iter().any(|(f, _)| f == field),
                        "{}.{index} indexes undeclared {field}",
                        table.name
                    );
                }
            }
        }
    }

    #[test]
    fn merged_schema_has_storage_and_user_tables() {
        let user = Schema::parse(
            "[tables.files]\nfields = { file = \"id<_storage>\", quoted = 'id<\"_storage\">' }\n",
            "schema.toml",
        )
        .expect("id<_storage> is accepted");
        let merged = user.with_system_tables();
        assert!(merged.table("_storage").is_some());
        assert!(merged.table("files").is_some());
        assert_eq!(merged.user_tables().count(), 1);
        let file = &user.tables["files"]
            .document
            .as_ref()
            .expect("fields")
            .fields;
        assert_eq!(file["file"], Type::Id("_storage".into()));
        assert_eq!(file["quoted"], Type::Id("_storage".into()));
    }
}
