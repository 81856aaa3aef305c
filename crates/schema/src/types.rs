//! The type language shared by `schema.toml` fields and function argument validators:
//! `"string"`, `"optional<array<id<todos>>>"`, `"object{a: number, b?: string}"`,
//! `"'admin' | 'user'"`. This file defines [`Type`] and writes it back as text (`Display`, the
//! inverse of parsing); `parse` reads the text ([`Type::parse`]) and `validate` checks values
//! against a type ([`Type::validate`], [`ObjectType::validate_fields`]).
//!
//! `doc<TABLE>` (function validators only, e.g. `returns: "array<doc<todos>>"`) is a document
//! read from TABLE: it checks the system fields `_id` and `_creationTime` and leaves the other
//! fields alone, since every stored document passed `schema.toml` when it was written. Its
//! purpose is the client type: codegen turns it into `Doc<"todos">`.

mod parse;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use value::Value;

/// A field or argument type.
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    Any,
    Null,
    Number,
    Int64,
    Boolean,
    String,
    Bytes,
    /// A document id of the named table.
    Id(String),
    /// A document of the named table, with `_id` and `_creationTime` (validators only).
    Doc(String),
    Literal(Value),
    Array(Box<Type>),
    /// `record<string, T>`: an object with arbitrary field names and values of one type.
    Record(Box<Type>),
    Object(ObjectType),
    Union(Vec<Type>),
    /// Only meaningful as an object field: the field may be absent.
    Optional(Box<Type>),
}

/// The declared fields of an object type; fields not listed are refused.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ObjectType {
    pub fields: BTreeMap<String, Type>,
}

/// Tells validation which table an id string belongs to (`None`: not a valid id).
pub trait IdTables {
    fn table_of(&self, id: &str) -> Option<String>;
}

/// A type expression that did not parse: byte offset into the expression and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeParseError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Any => f.write_str("any"),
            Type::Null => f.write_str("null"),
            Type::Number => f.write_str("number"),
            Type::Int64 => f.write_str("int64"),
            Type::Boolean => f.write_str("boolean"),
            Type::String => f.write_str("string"),
            Type::Bytes => f.write_str("bytes"),
            Type::Id(t) => write!(f, "id<{t}>"),
            Type::Doc(t) => write!(f, "doc<{t}>"),
            Type::Literal(Value::String(s)) => write!(f, "{s:?}"),
            Type::Literal(v) => write!(f, "{v}"),
            Type::Array(t) => write!(f, "array<{t}>"),
            Type::Record(t) => write!(f, "record<string, {t}>"),
            Type::Optional(t) => write!(f, "optional<{t}>"),
            Type::Object(o) => {
                f.write_str("object{")?;
                for (i, (name, t)) in o.fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}: {t}")?;
                }
                f.write_str("}")
            }
            Type::Union(options) => {
                for (i, t) in options.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{t}")?;
                }
                Ok(())
            }
        }
    }
}
