//! [`Catalog`]: the tables and indexes that exist right now, by name and by number, together
//! with the schema they were created from. Immutable; a schema change builds a new one and
//! swaps the `Arc` (see `schema_change.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use schema::{IdTables, Schema};
use value::{DocumentId, FieldPath, TableNumber};

use crate::error::DbError;

/// Storage's number for an index; read sets and write sets name indexes by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexId(pub u32);

pub(crate) const BY_ID: &str = "by_id";
pub(crate) const BY_CREATION_TIME: &str = "by_creation_time";

/// One index as the catalog knows it. `by_creation_time` has no fields; `by_id` is virtual
/// (documents are stored by id) and exists only so point reads have an index to be read from.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexInfo {
    pub id: IndexId,
    pub name: String,
    pub fields: Vec<FieldPath>,
}

/// One table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableInfo {
    pub name: String,
    pub number: TableNumber,
    pub by_id: IndexId,
    pub by_creation_time: IndexInfo,
    /// User-declared indexes by name.
    pub indexes: BTreeMap<String, IndexInfo>,
}

impl TableInfo {
    /// Every stored index: `by_creation_time` and the user indexes (not the virtual `by_id`).
    pub fn stored_indexes(&self) -> impl Iterator<Item = &IndexInfo> {
        std::iter::once(&self.by_creation_time).chain(self.indexes.values())
    }
}

/// The live tables and indexes plus the schema that declared them.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub schema: Arc<Schema>,
    tables: BTreeMap<String, TableInfo>,
    names_by_number: HashMap<TableNumber, String>,
}

impl Catalog {
    pub(crate) fn new(schema: Arc<Schema>, tables: Vec<TableInfo>) -> Catalog {
        let names_by_number = tables.iter().map(|t| (t.number, t.name.clone())).collect();
        let tables = tables.into_iter().map(|t| (t.name.clone(), t)).collect();
        Catalog {
            schema,
            tables,
            names_by_number,
        }
    }

    /// A table that the schema declares (tables kept only for their old data are not usable).
    pub fn table(&self, name: &str) -> Result<&TableInfo, DbError> {
        match self.tables.get(name) {
            Some(t) if self.schema.table(name).is_some() => Ok(t),
            _ => Err(DbError::UnknownTable {
                table: name.to_string(),
                known: self.schema.user_tables().map(|t| t.name.clone()).collect(),
            }),
        }
    }

    pub fn table_by_number(&self, number: TableNumber) -> Option<&TableInfo> {
        self.tables.get(self.names_by_number.get(&number)?)
    }

    pub fn tables(&self) -> impl Iterator<Item = &TableInfo> {
        self.tables.values()
    }

    /// A readable index of a table by name, including `by_creation_time`.
    pub fn index(&self, table: &str, index: &str) -> Result<&IndexInfo, DbError> {
        let info = self.table(table)?;
        if index == BY_CREATION_TIME {
            return Ok(&info.by_creation_time);
        }
        info.indexes
            .get(index)
            .ok_or_else(|| DbError::UnknownIndex {
                table: table.to_string(),
                index: index.to_string(),
                known: std::iter::once(BY_CREATION_TIME.to_string())
                    .chain(info.indexes.keys().cloned())
                    .collect(),
            })
    }

    /// Parses an id and finds its table.
    pub fn resolve_id(&self, id: &str) -> Result<(DocumentId, &TableInfo), DbError> {
        let parsed =
            DocumentId::parse(id).map_err(|_| DbError::InvalidId(id.chars().take(64).collect()))?;
        let table = self
            .table_by_number(parsed.table())
            .ok_or_else(|| DbError::InvalidId(id.chars().take(64).collect()))?;
        Ok((parsed, table))
    }
}

impl IdTables for Catalog {
    fn table_of(&self, id: &str) -> Option<String> {
        let parsed = DocumentId::parse(id).ok()?;
        self.names_by_number.get(&parsed.table()).cloned()
    }
}
