//! The type language: parsing (`"optional<array<id<todos>>>"`), display, and validation of
//! values against a type.
//!
//! Validation also converts: Rhai integer literals are int64, so a value typed `number`
//! accepts an int64 that a float64 represents exactly (|n| ≤ 2^53) and stores it as a float64.
//! This keeps `#{ count: 0 }` in a script meaning what `{ count: 0 }` means in Convex.
//!
//! `doc<TABLE>` (function validators only, e.g. `returns: "array<doc<todos>>"`) is a document
//! read from TABLE: it checks the system fields `_id` and `_creationTime` and leaves the other
//! fields alone, since every stored document passed `schema.toml` when it was written. Its
//! purpose is the client type: codegen turns it into `Doc<"todos">`.

use std::collections::BTreeMap;
use std::fmt;

use value::{Object, Value};

use crate::error::ValidationError;

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

const MAX_SAFE_INTEGER: i64 = 1 << 53;

impl Type {
    /// Parses a type expression.
    pub fn parse(text: &str) -> Result<Type, TypeParseError> {
        let mut parser = Parser { text, pos: 0 };
        let ty = parser.union()?;
        parser.skip_ws();
        if parser.pos < text.len() {
            return Err(parser.error(format!(
                "unexpected {:?} after the type",
                &text[parser.pos..]
            )));
        }
        Ok(ty)
    }

    /// Checks `value` against the type at `path`, returning it with int64 → number
    /// conversions applied.
    pub fn validate(
        &self,
        value: Value,
        path: &str,
        ids: &dyn IdTables,
    ) -> Result<Value, ValidationError> {
        if self.accepts(&value, ids, false) {
            return Ok(value);
        }
        self.convert(value, path, ids)
    }

    /// Whether the value fits without conversion (`lenient` allows int64 → number).
    fn accepts(&self, value: &Value, ids: &dyn IdTables, lenient: bool) -> bool {
        match (self, value) {
            (Type::Any, _) => true,
            (Type::Null, Value::Null) => true,
            (Type::Number, Value::Float64(_)) => true,
            (Type::Number, Value::Int64(i)) => lenient && i.abs() <= MAX_SAFE_INTEGER,
            (Type::Int64, Value::Int64(_)) => true,
            (Type::Boolean, Value::Boolean(_)) => true,
            (Type::String, Value::String(_)) => true,
            (Type::Bytes, Value::Bytes(_)) => true,
            (Type::Id(table), Value::String(s)) => {
                ids.table_of(s).as_deref() == Some(table.as_str())
            }
            (Type::Doc(table), Value::Object(fields)) => {
                check_system_fields(table, fields, "", ids).is_ok()
            }
            (Type::Literal(expected), v) => match (expected, v) {
                (Value::Float64(f), Value::Int64(i)) => lenient && *f == *i as f64,
                _ => expected == v,
            },
            (Type::Array(item), Value::Array(items)) => {
                items.iter().all(|v| item.accepts(v, ids, lenient))
            }
            (Type::Record(item), Value::Object(fields)) => {
                fields.values().all(|v| item.accepts(v, ids, lenient))
            }
            (Type::Object(object), Value::Object(fields)) => {
                fields.keys().all(|k| object.fields.contains_key(k))
                    && object
                        .fields
                        .iter()
                        .all(|(name, ty)| match (ty, fields.get(name)) {
                            (Type::Optional(_), None) => true,
                            (_, None) => false,
                            (ty, Some(v)) => ty.accepts(v, ids, lenient),
                        })
            }
            (Type::Union(options), v) => options.iter().any(|t| t.accepts(v, ids, lenient)),
            (Type::Optional(inner), v) => inner.accepts(v, ids, lenient),
            _ => false,
        }
    }

    /// Converts a value that does not fit exactly, or explains the first mismatch.
    fn convert(
        &self,
        value: Value,
        path: &str,
        ids: &dyn IdTables,
    ) -> Result<Value, ValidationError> {
        let mismatch = |value: &Value| ValidationError::Mismatch {
            path: path.to_string(),
            expected: self.to_string(),
            found: describe(value),
        };
        match (self, value) {
            (Type::Number, Value::Int64(i)) if i.abs() <= MAX_SAFE_INTEGER => {
                Ok(Value::Float64(i as f64))
            }
            (Type::Literal(Value::Float64(f)), Value::Int64(i)) if *f == i as f64 => {
                Ok(Value::Float64(*f))
            }
            (Type::Optional(inner), value) => inner.validate(value, path, ids),
            (Type::Id(table), Value::String(s)) => Err(match ids.table_of(&s) {
                Some(actual) => ValidationError::Mismatch {
                    path: path.to_string(),
                    expected: self.to_string(),
                    found: format!("an id of table {actual:?}"),
                },
                None => ValidationError::Mismatch {
                    path: path.to_string(),
                    expected: format!("an id of table {table:?}"),
                    found: describe(&Value::String(s)),
                },
            }),
            (Type::Doc(table), Value::Object(fields)) => {
                check_system_fields(table, &fields, path, ids)?;
                Ok(Value::Object(fields))
            }
            (Type::Array(item), Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| item.validate(v, &format!("{path}[{i}]"), ids))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            (Type::Record(item), Value::Object(fields)) => {
                let mut out = Object::new();
                for (k, v) in fields {
                    let v = item.validate(v, &join(path, &k), ids)?;
                    out.insert(k, v);
                }
                Ok(Value::Object(out))
            }
            (Type::Object(object), Value::Object(fields)) => {
                object.validate_fields(fields, path, ids)
            }
            (Type::Union(options), value) => {
                match options.iter().find(|t| t.accepts(&value, ids, true)) {
                    Some(t) => t.validate(value, path, ids),
                    None => Err(mismatch(&value)),
                }
            }
            (_, value) => Err(mismatch(&value)),
        }
    }
}

impl ObjectType {
    /// Validates an object's fields: every declared non-optional field present, no others.
    pub fn validate_fields(
        &self,
        mut fields: Object,
        path: &str,
        ids: &dyn IdTables,
    ) -> Result<Value, ValidationError> {
        if let Some(extra) = fields.keys().find(|k| !self.fields.contains_key(*k)) {
            return Err(ValidationError::ExtraField {
                path: join(path, extra),
                allowed: self.fields.keys().cloned().collect(),
            });
        }
        for (name, ty) in &self.fields {
            match fields.remove(name) {
                Some(v) => {
                    let v = ty.validate(v, &join(path, name), ids)?;
                    fields.insert(name.clone(), v);
                }
                None if matches!(ty, Type::Optional(_)) => {}
                None => {
                    return Err(ValidationError::MissingField {
                        path: join(path, name),
                        expected: ty.to_string(),
                    });
                }
            }
        }
        Ok(Value::Object(fields))
    }
}

/// What `doc<TABLE>` checks: `_id` is a string (naming TABLE, when `ids` can tell) and
/// `_creationTime` a number. The document's own fields were checked when it was written.
fn check_system_fields(
    table: &str,
    fields: &Object,
    path: &str,
    ids: &dyn IdTables,
) -> Result<(), ValidationError> {
    match fields.get("_id") {
        Some(Value::String(id)) => match ids.table_of(id) {
            // Result validators cannot tell (`None`) and some callers only know an id is
            // well formed (""); only a different table is a certain mismatch.
            Some(actual) if !actual.is_empty() && actual != table => {
                return Err(ValidationError::Mismatch {
                    path: join(path, "_id"),
                    expected: format!("an id of table {table:?} (doc<{table}>)"),
                    found: format!("an id of table {actual:?}"),
                });
            }
            _ => {}
        },
        Some(other) => {
            return Err(ValidationError::Mismatch {
                path: join(path, "_id"),
                expected: format!("an id of table {table:?} (doc<{table}>)"),
                found: describe(other),
            });
        }
        None => {
            return Err(ValidationError::MissingField {
                path: join(path, "_id"),
                expected: format!("id<{table}>, as every document of doc<{table}> has"),
            });
        }
    }
    match fields.get("_creationTime") {
        Some(Value::Float64(_)) => Ok(()),
        Some(Value::Int64(i)) if i.abs() <= MAX_SAFE_INTEGER => Ok(()),
        Some(other) => Err(ValidationError::Mismatch {
            path: join(path, "_creationTime"),
            expected: "number".to_string(),
            found: describe(other),
        }),
        None => Err(ValidationError::MissingField {
            path: join(path, "_creationTime"),
            expected: format!("number, as every document of doc<{table}> has"),
        }),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// "number 5", "string \"abc\"", "array of 3": what a value is, short enough for an error.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Array(items) => format!("array of {} element(s)", items.len()),
        Value::Object(fields) => {
            let names: Vec<&str> = fields.keys().map(String::as_str).take(5).collect();
            format!("object {{{}}}", names.join(", "))
        }
        Value::Bytes(b) => format!("bytes ({} bytes)", b.len()),
        other => {
            let mut text = other.to_string();
            if text.len() > 60 {
                let mut cut = 57;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push_str("...");
            }
            format!("{} {text}", other.type_name())
        }
    }
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

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

const TYPE_NAMES: [&str; 14] = [
    "any", "null", "number", "float64", "int64", "boolean", "string", "bytes", "id", "doc",
    "array", "object", "optional", "record",
];

impl<'a> Parser<'a> {
    fn error(&self, message: String) -> TypeParseError {
        TypeParseError {
            offset: self.pos,
            message,
        }
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }

    fn eat(&mut self, token: char) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(token) {
            self.pos += token.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: char, context: &str) -> Result<(), TypeParseError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(format!("expected '{token}' {context}")))
        }
    }

    fn ident(&mut self) -> &'a str {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += len;
        &self.text[start..start + len]
    }

    fn union(&mut self) -> Result<Type, TypeParseError> {
        let mut options = vec![self.primary()?];
        while self.eat('|') {
            options.push(self.primary()?);
        }
        Ok(if options.len() == 1 {
            options.remove(0)
        } else {
            Type::Union(options)
        })
    }

    fn primary(&mut self) -> Result<Type, TypeParseError> {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        if rest.starts_with('"') || rest.starts_with('\'') {
            return self.string_literal();
        }
        if rest.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            let len = rest
                .find(|c: char| !(c == '-' || c == '.' || c == 'e' || c.is_ascii_digit()))
                .unwrap_or(rest.len());
            let number: f64 = rest[..len]
                .parse()
                .map_err(|_| self.error(format!("{:?} is not a number literal", &rest[..len])))?;
            self.pos += len;
            return Ok(Type::Literal(Value::Float64(number)));
        }
        if self.eat('(') {
            let inner = self.union()?;
            self.expect(')', "to close the parenthesis")?;
            return Ok(inner);
        }
        let start = self.pos;
        let name = self.ident();
        Ok(match name {
            "any" => Type::Any,
            "null" => Type::Null,
            "number" | "float64" => Type::Number,
            "int64" => Type::Int64,
            "boolean" => Type::Boolean,
            "string" => Type::String,
            "bytes" => Type::Bytes,
            "true" => Type::Literal(Value::Boolean(true)),
            "false" => Type::Literal(Value::Boolean(false)),
            "id" | "doc" => {
                self.expect('<', &format!("after {name} (write {name}<TABLE>)"))?;
                let table = self.ident();
                if table.is_empty() {
                    return Err(self.error(format!("expected a table name in {name}<TABLE>")));
                }
                self.expect('>', &format!("to close {name}<TABLE>"))?;
                if name == "id" {
                    Type::Id(table.to_string())
                } else {
                    Type::Doc(table.to_string())
                }
            }
            "array" | "optional" => {
                self.expect('<', &format!("after {name} (write {name}<TYPE>)"))?;
                let inner = Box::new(self.union()?);
                self.expect('>', &format!("to close {name}<...>"))?;
                if name == "array" {
                    Type::Array(inner)
                } else {
                    Type::Optional(inner)
                }
            }
            "record" => {
                self.expect('<', "after record (write record<string, TYPE>)")?;
                let key = self.ident();
                if key != "string" {
                    return Err(self.error(
                        "record keys must be string: write record<string, TYPE>".to_string(),
                    ));
                }
                self.expect(',', "after the key type of record<string, TYPE>")?;
                let inner = Box::new(self.union()?);
                self.expect('>', "to close record<...>")?;
                Type::Record(inner)
            }
            "object" => self.object()?,
            "" => {
                self.pos = start;
                return Err(self.error("expected a type".to_string()));
            }
            unknown => {
                self.pos = start;
                let hint = suggest(unknown)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(self.error(format!(
                    "unknown type `{unknown}`{hint}; types are string, number, int64, boolean, null, bytes, any, id<T>, array<T>, optional<T>, record<string, T>, object{{..}}, literals and unions T | U"
                )));
            }
        })
    }

    fn object(&mut self) -> Result<Type, TypeParseError> {
        self.expect('{', "after object (write object{field: TYPE, ...})")?;
        let mut object = ObjectType::default();
        loop {
            if self.eat('}') {
                return Ok(Type::Object(object));
            }
            let name = self.ident();
            if name.is_empty() {
                return Err(self.error("expected a field name or '}'".to_string()));
            }
            let optional = self.eat('?');
            self.expect(':', &format!("after field name `{name}`"))?;
            let mut ty = self.union()?;
            if optional {
                ty = Type::Optional(Box::new(ty));
            }
            if object.fields.insert(name.to_string(), ty).is_some() {
                return Err(self.error(format!("field `{name}` is declared twice")));
            }
            if !self.eat(',') {
                self.expect('}', "or ',' between object fields")?;
                return Ok(Type::Object(object));
            }
        }
    }

    fn string_literal(&mut self) -> Result<Type, TypeParseError> {
        let quote = self.text[self.pos..].chars().next().unwrap_or('"');
        let body_start = self.pos + 1;
        match self.text[body_start..].find(quote) {
            Some(len) => {
                self.pos = body_start + len + 1;
                Ok(Type::Literal(Value::String(
                    self.text[body_start..body_start + len].to_string(),
                )))
            }
            None => Err(self.error("unterminated string literal".to_string())),
        }
    }
}

/// The closest known type name, for "did you mean" hints.
fn suggest(unknown: &str) -> Option<&'static str> {
    let lower = unknown.to_ascii_lowercase();
    match lower.as_str() {
        "str" | "text" => return Some("string"),
        "int" | "integer" | "bigint" | "i64" => return Some("int64"),
        "float" | "double" | "f64" => return Some("number"),
        "bool" => return Some("boolean"),
        "list" => return Some("array"),
        _ => {}
    }
    TYPE_NAMES
        .iter()
        .copied()
        .filter(|name| strsim::levenshtein(&lower, name) <= 2)
        .min_by_key(|name| strsim::levenshtein(&lower, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoIds;
    impl IdTables for NoIds {
        fn table_of(&self, id: &str) -> Option<String> {
            id.strip_prefix("todos_").map(|_| "todos".to_string())
        }
    }

    fn check(ty: &str, value: Value) -> Result<Value, String> {
        Type::parse(ty)
            .expect("parses")
            .validate(value, "args", &NoIds)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_whole_language() {
        for text in [
            "string",
            "optional<id<users>>",
            "array<object{a: number, b?: string}>",
            "'admin' | 'user' | null",
            "record<string, int64>",
            "(string | number)",
            "object{}",
        ] {
            let ty = Type::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(Type::parse(&ty.to_string()).expect("display reparses"), ty);
        }
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        let err = Type::parse("array<strin>").unwrap_err();
        assert_eq!(err.offset, 6);
        assert!(
            err.message.contains("did you mean `string`"),
            "{}",
            err.message
        );
        assert!(
            Type::parse("array<string")
                .unwrap_err()
                .message
                .contains("close")
        );
        assert!(Type::parse("int").unwrap_err().message.contains("int64"));
    }

    #[test]
    fn validation_names_path_expected_and_found() {
        let err = check(
            "object{text: string}",
            Value::Object(Object::from([("text".into(), Value::Float64(5.0))])),
        )
        .unwrap_err();
        assert_eq!(err, "args.text: expected string, found number 5.0");
        let err = check("object{text: string}", Value::Object(Object::new())).unwrap_err();
        assert!(err.contains("missing required field args.text"), "{err}");
        let err = check(
            "object{}",
            Value::Object(Object::from([("x".into(), Value::Null)])),
        )
        .unwrap_err();
        assert!(err.contains("args.x"), "{err}");
        let err = check("array<id<todos>>", Value::Array(vec![Value::from("nope")])).unwrap_err();
        assert!(err.contains("args[0]"), "{err}");
    }

    #[test]
    fn integers_become_numbers_where_a_number_is_expected() {
        assert_eq!(check("number", Value::Int64(3)), Ok(Value::Float64(3.0)));
        assert_eq!(check("int64", Value::Int64(3)), Ok(Value::Int64(3)));
        assert_eq!(
            check("int64 | number", Value::Int64(3)),
            Ok(Value::Int64(3))
        );
        assert!(check("int64", Value::Float64(3.0)).is_err());
        assert!(check("number", Value::Int64(i64::MAX)).is_err());
        assert_eq!(
            check("array<number>", Value::Array(vec![Value::Int64(1)])),
            Ok(Value::Array(vec![Value::Float64(1.0)]))
        );
    }

    #[test]
    fn docs_check_their_system_fields() {
        let doc = |id: Value, creation: Option<Value>| {
            let mut fields = Object::from([
                ("_id".to_string(), id),
                ("text".to_string(), Value::from("a")),
            ]);
            if let Some(c) = creation {
                fields.insert("_creationTime".to_string(), c);
            }
            Value::Object(fields)
        };
        let good = doc(Value::from("todos_1"), Some(Value::Float64(1.5)));
        assert_eq!(check("doc<todos>", good.clone()), Ok(good.clone()));
        assert_eq!(
            check("array<doc<todos>>", Value::Array(vec![good.clone()])),
            Ok(Value::Array(vec![good]))
        );
        assert_eq!(check("doc<todos> | null", Value::Null), Ok(Value::Null));
        // An id the caller cannot place (result validators) is accepted; another table is not.
        assert!(
            check(
                "doc<todos>",
                doc(Value::from("x"), Some(Value::Float64(1.0)))
            )
            .is_ok()
        );
        let err = check(
            "doc<users>",
            doc(Value::from("todos_1"), Some(Value::Float64(1.0))),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "args._id: expected an id of table \"users\" (doc<users>), found an id of table \"todos\""
        );
        let err = check(
            "array<doc<todos>>",
            Value::Array(vec![doc(Value::from("todos_1"), None)]),
        )
        .unwrap_err();
        assert!(err.contains("args[0]._creationTime"), "{err}");
        let err = check("doc<todos>", Value::from("todos_1")).unwrap_err();
        assert_eq!(err, "args: expected doc<todos>, found string \"todos_1\"");
        let err = check("doc<todos>", Value::Object(Object::new())).unwrap_err();
        assert!(err.contains("missing required field args._id"), "{err}");
    }

    #[test]
    fn doc_parses_like_id() {
        assert_eq!(
            Type::parse("array<doc<todos>>"),
            Ok(Type::Array(Box::new(Type::Doc("todos".to_string()))))
        );
        assert_eq!(Type::Doc("todos".into()).to_string(), "doc<todos>");
        assert!(
            Type::parse("doc<>")
                .unwrap_err()
                .message
                .contains("doc<TABLE>")
        );
        assert!(
            Type::parse("dco<todos>")
                .unwrap_err()
                .message
                .contains("`doc`")
        );
    }

    #[test]
    fn ids_are_checked_against_their_table() {
        assert!(check("id<todos>", Value::from("todos_1")).is_ok());
        assert!(
            check("id<users>", Value::from("todos_1"))
                .unwrap_err()
                .contains("\"todos\"")
        );
    }
}
