//! [`Schema`]: the tables, field types and indexes declared in `schema.toml`, parsed with
//! every error located at file:line:column, and the document check every write goes through.
//!
//! ```toml
//! [tables.todos]
//! fields = { text = "string", userId = "string", completed = "boolean" }
//! indexes = { by_user = ["userId"] }
//! ```
//! A table without `fields` accepts any document (schemaless). Every table also has the system
//! indexes `by_id` and `by_creation_time`; user indexes order by their fields, then
//! `_creationTime`, then `_id`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use value::{FieldPath, Object};

use crate::error::{SchemaError, ValidationError};
use crate::types::{IdTables, ObjectType, Type};

/// Index names every table has; users may not declare them.
pub const SYSTEM_INDEXES: [&str; 2] = ["by_id", "by_creation_time"];
const MAX_INDEX_FIELDS: usize = 15;
const MAX_INDEXES_PER_TABLE: usize = 32;
const MAX_NAME_LEN: usize = 64;

/// The whole declared schema.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Schema {
    pub tables: BTreeMap<String, TableDef>,
}

/// One table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    pub name: String,
    /// `None` when the table declares no fields and accepts any document.
    pub document: Option<ObjectType>,
    pub indexes: BTreeMap<String, IndexDef>,
}

/// One user-declared index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexDef {
    pub name: String,
    pub fields: Vec<FieldPath>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    #[serde(default)]
    tables: BTreeMap<Spanned<String>, Spanned<RawTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    fields: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    #[serde(default)]
    indexes: BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>,
}

impl Schema {
    /// Parses the text of `schema.toml`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Schema, SchemaError> {
        let raw: RawSchema = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            SchemaError::at(file, text, offset, e.message().trim().to_string())
        })?;
        let err = |offset: usize, message: String| SchemaError::at(file, text, offset, message);

        let table_names: Vec<String> = raw.tables.keys().map(|k| k.get_ref().clone()).collect();
        let mut tables = BTreeMap::new();
        for (name, raw_table) in raw.tables {
            let name_offset = name.span().start;
            let name = name.into_inner();
            check_identifier(&name, "table").map_err(|m| err(name_offset, m))?;
            if name.starts_with('_') {
                return Err(err(
                    name_offset,
                    format!(
                        "table name `{name}` may not start with '_' (reserved for system tables)"
                    ),
                ));
            }
            let raw_table = raw_table.into_inner();

            let document = match raw_table.fields {
                None => None,
                Some(fields) => {
                    let mut object = ObjectType::default();
                    for (field, ty_text) in fields {
                        let field_offset = field.span().start;
                        let field = field.into_inner();
                        check_field_name(&field).map_err(|m| err(field_offset, m))?;
                        // +1 skips the opening quote so the column points into the expression.
                        let ty_offset = ty_text.span().start + 1;
                        let ty = Type::parse(ty_text.get_ref()).map_err(|e| {
                            err(
                                ty_offset + e.offset,
                                format!("in the type of field `{name}.{field}`: {}", e.message),
                            )
                        })?;
                        check_id_tables(&ty, &table_names).map_err(|m| {
                            err(
                                ty_offset,
                                format!("in the type of field `{name}.{field}`: {m}"),
                            )
                        })?;
                        object.fields.insert(field, ty);
                    }
                    Some(object)
                }
            };

            if raw_table.indexes.len() > MAX_INDEXES_PER_TABLE {
                return Err(err(
                    name_offset,
                    format!(
                        "table `{name}` declares {} indexes (limit {MAX_INDEXES_PER_TABLE})",
                        raw_table.indexes.len()
                    ),
                ));
            }
            let mut indexes = BTreeMap::new();
            for (index_name, fields) in raw_table.indexes {
                let index_offset = index_name.span().start;
                let index_name = index_name.into_inner();
                check_identifier(&index_name, "index").map_err(|m| err(index_offset, m))?;
                if SYSTEM_INDEXES.contains(&index_name.as_str()) {
                    return Err(err(
                        index_offset,
                        format!(
                            "`{index_name}` is a built-in index of every table; choose another name"
                        ),
                    ));
                }
                let fields_offset = fields.span().start;
                let fields = fields.into_inner();
                if fields.is_empty() {
                    return Err(err(
                        fields_offset,
                        format!(
                            "index `{name}.{index_name}` lists no fields; use the built-in `by_creation_time` or list the fields to index"
                        ),
                    ));
                }
                if fields.len() > MAX_INDEX_FIELDS {
                    return Err(err(
                        fields_offset,
                        format!(
                            "index `{name}.{index_name}` has {} fields (limit {MAX_INDEX_FIELDS}, plus the implicit _creationTime)",
                            fields.len()
                        ),
                    ));
                }
                let mut paths: Vec<FieldPath> = Vec::new();
                for field in fields {
                    let field_offset = field.span().start;
                    let field = field.into_inner();
                    check_index_field(&field, document.as_ref(), &table_names).map_err(|m| {
                        err(field_offset, format!("index `{name}.{index_name}`: {m}"))
                    })?;
                    let path = FieldPath::new(field.clone());
                    if paths.contains(&path) {
                        return Err(err(
                            field_offset,
                            format!("index `{name}.{index_name}` lists `{field}` twice"),
                        ));
                    }
                    paths.push(path);
                }
                indexes.insert(
                    index_name.clone(),
                    IndexDef {
                        name: index_name,
                        fields: paths,
                    },
                );
            }
            tables.insert(
                name.clone(),
                TableDef {
                    name,
                    document,
                    indexes,
                },
            );
        }
        Ok(Schema { tables })
    }

    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.get(name)
    }

    /// Checks (and converts, see [`Type::validate`]) a document about to be written to
    /// `table`. System fields `_id` and `_creationTime` must already be removed.
    pub fn validate_document(
        &self,
        table: &str,
        doc: Object,
        ids: &dyn IdTables,
    ) -> Result<Object, ValidationError> {
        let Some(def) = self.tables.get(table) else {
            return Err(ValidationError::Mismatch {
                path: table.to_string(),
                expected: "a table declared in schema.toml".to_string(),
                found: format!("undeclared table {table:?} (add [tables.{table}] to schema.toml)"),
            });
        };
        let Some(object) = &def.document else {
            return Ok(doc);
        };
        match object.validate_fields(doc, "", ids)? {
            value::Value::Object(doc) => Ok(doc),
            _ => unreachable_object(),
        }
    }
}

/// `ObjectType::validate_fields` always returns an object; this keeps the match exhaustive
/// without a panic path.
fn unreachable_object() -> Result<Object, ValidationError> {
    Err(ValidationError::Mismatch {
        path: String::new(),
        expected: "object".to_string(),
        found: "a non-object".to_string(),
    })
}

fn check_identifier(name: &str, what: &str) -> Result<(), String> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_LEN
        && !name.chars().all(|c| c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{what} name `{name}` is not valid: use letters, digits and '_', starting with a letter, at most {MAX_NAME_LEN} characters"
        ))
    }
}

fn check_field_name(name: &str) -> Result<(), String> {
    if name.starts_with('_') {
        return Err(format!(
            "field `{name}` starts with '_', which is reserved for system fields like _id and _creationTime"
        ));
    }
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "field name `{name}` is not valid: use letters, digits and '_', at most {MAX_NAME_LEN} characters"
        ));
    }
    Ok(())
}

fn check_index_field(
    field: &str,
    document: Option<&ObjectType>,
    tables: &[String],
) -> Result<(), String> {
    if field.split('.').any(|p| p.starts_with('_')) {
        return Err(format!(
            "`{field}` cannot be indexed: system fields are always the last index columns"
        ));
    }
    let Some(mut object) = document else {
        return Ok(());
    };
    let mut parts = field.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(mut ty) = object.fields.get(part) else {
            let close = object
                .fields
                .keys()
                .min_by_key(|k| strsim::levenshtein(part, k))
                .filter(|k| strsim::levenshtein(part, k) <= 2);
            let hint = match close {
                Some(k) => format!(" (did you mean `{k}`?)"),
                // Indexing another table's field by naming the table is a common first try.
                None if tables.iter().any(|t| t == part) => format!(
                    "; `{part}` is a table: an index covers its own table's fields only, so index the field that holds an id<{part}> and read that document with ctx.db.get"
                ),
                None => format!(
                    "; declare it in `fields` first, or index one of: {}",
                    object
                        .fields
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(format!(
                "field `{field}` is not declared in the table's fields{hint}"
            ));
        };
        if parts.peek().is_none() {
            return Ok(());
        }
        if let Type::Optional(inner) = ty {
            ty = inner;
        }
        match ty {
            Type::Object(inner) => object = inner,
            Type::Any => return Ok(()),
            Type::Id(table) => {
                return Err(format!(
                    "`{field}` goes inside `{part}`, which is {}, not an object; an index cannot follow an id into table `{table}`: index `{part}` and read that document with ctx.db.get",
                    Type::Id(table.clone())
                ));
            }
            other => {
                return Err(format!(
                    "`{field}` goes inside `{part}`, which is {other}, not an object"
                ));
            }
        }
    }
    Ok(())
}

/// Every `id<T>` names a declared table; `doc<T>` (a whole document) is for function
/// validators, not for stored fields.
fn check_id_tables(ty: &Type, tables: &[String]) -> Result<(), String> {
    match ty {
        Type::Id(table)
            if !tables.contains(table) && !crate::system_list::is_known_system_table(table) =>
        {
            let hint = tables
                .iter()
                .min_by_key(|t| strsim::levenshtein(table, t))
                .filter(|t| strsim::levenshtein(table, t) <= 2)
                .map(|t| format!("did you mean id<{t}>?"))
                .unwrap_or_else(|| {
                    format!(
                        "declare it with [tables.{table}] or name one of: {}",
                        tables.join(", ")
                    )
                });
            Err(format!(
                "id<{table}> names a table that schema.toml does not declare ({hint})"
            ))
        }
        Type::Doc(table) => Err(format!(
            "doc<{table}> is for function validators such as `returns`; a field refers to another document with id<{table}>"
        )),
        Type::Array(t) | Type::Record(t) | Type::Optional(t) => check_id_tables(t, tables),
        Type::Union(options) => options.iter().try_for_each(|t| check_id_tables(t, tables)),
        Type::Object(o) => o
            .fields
            .values()
            .try_for_each(|t| check_id_tables(t, tables)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use value::Value;

    const EXAMPLE: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean" }
indexes = { by_user = ["userId"] }

[tables.users]
fields = { name = "string", tokenIdentifier = "string", role = "optional<string>" }
indexes = { by_token = ["tokenIdentifier"] }

[tables.events]
"#;

    struct Ids;
    impl IdTables for Ids {
        fn table_of(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn err(text: &str) -> String {
        Schema::parse(text, "schema.toml").unwrap_err().to_string()
    }

    #[test]
    fn parses_the_design_example() {
        let schema = Schema::parse(EXAMPLE, "schema.toml").expect("parses");
        assert_eq!(schema.tables.len(), 3);
        let todos = schema.table("todos").expect("todos");
        assert_eq!(
            todos.indexes["by_user"].fields,
            vec![FieldPath::new("userId")]
        );
        assert!(schema.table("events").expect("events").document.is_none());
    }

    #[test]
    fn errors_carry_file_line_and_column() {
        assert_eq!(
            err("[tables.todos]\nfields = { text = \"strng\" }\n"),
            "schema.toml:2:20: in the type of field `todos.text`: unknown type `strng` (did you mean `string`?); types are string, number, int64, boolean, null, bytes, any, id<T>, array<T>, optional<T>, record<string, T>, object{..}, literals and unions T | U"
        );
        let e = err(
            "[tables.todos]\nfields = { text = \"string\" }\nindexes = { by_text = [\"txt\"] }\n",
        );
        assert!(
            e.starts_with("schema.toml:3:24:") && e.contains("did you mean `text`"),
            "{e}"
        );
        let e = err("[tables.todos]\nfeilds = {}\n");
        assert!(
            e.starts_with("schema.toml:2:1:") && e.contains("unknown field"),
            "{e}"
        );
        assert!(err("[tables.todos]\nindexes = { by_id = [\"a\"] }\n").contains("built-in"));
        assert!(err("[tables.t]\nfields = { u = \"id<nope>\" }\n").contains("does not declare"));
        assert!(err("[tables.t]\nfields = { _x = \"string\" }\n").contains("reserved"));
        assert!(err("[tables.t]\nfields = { d = \"doc<t>\" }\n").contains("id<t>"));
        assert!(err("[tables.todos\n").starts_with("schema.toml:1:"));
    }

    #[test]
    fn table_and_field_mistakes_come_with_a_fix() {
        let e = err(
            "[tables.users]\nfields = { name = \"string\" }\n[tables.notes]\nfields = { owner = \"id<user>\" }\n",
        );
        assert!(
            e.starts_with("schema.toml:4:21:") && e.contains("(did you mean id<users>?)"),
            "{e}"
        );
        let e = err("[tables.notes]\nfields = { owner = \"array<id<widgets>>\" }\n");
        assert!(
            e.contains("declare it with [tables.widgets] or name one of: notes"),
            "{e}"
        );
        let e = err(
            "[tables.users]\nfields = { name = \"string\" }\n[tables.notes]\nfields = { text = \"string\" }\nindexes = { by_user = [\"users.name\"] }\n",
        );
        assert!(
            e.starts_with("schema.toml:5:24:") && e.contains("`users` is a table"),
            "{e}"
        );
        let e = err(
            "[tables.notes]\nfields = { text = \"string\", n = \"number\" }\nindexes = { by_x = [\"priority\"] }\n",
        );
        assert!(e.contains("index one of: n, text"), "{e}");
        let e = err(
            "[tables.users]\nfields = { name = \"string\" }\n[tables.notes]\nfields = { owner = \"id<users>\" }\nindexes = { by_owner_name = [\"owner.name\"] }\n",
        );
        assert!(
            e.contains("cannot follow an id into table `users`: index `owner`"),
            "{e}"
        );
    }

    #[test]
    fn documents_are_validated_with_paths() {
        let schema = Schema::parse(EXAMPLE, "schema.toml").expect("parses");
        let doc = Object::from([
            ("text".to_string(), Value::from("a")),
            ("userId".to_string(), Value::from("u")),
            ("completed".to_string(), Value::from(1.0)),
        ]);
        let e = schema
            .validate_document("todos", doc, &Ids)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "completed: expected boolean, found number 1.0");
        let e = schema
            .validate_document("nope", Object::new(), &Ids)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[tables.nope]"), "{e}");
        assert!(
            schema
                .validate_document(
                    "events",
                    Object::from([("any".to_string(), Value::Null)]),
                    &Ids
                )
                .is_ok()
        );
    }
}
