//! Checking a value against a [`Type`], with the path, the expected type and what was found
//! in every error.
//!
//! Validation also converts: Rhai integer literals are int64, so a value typed `number`
//! accepts an int64 that a float64 represents exactly (|n| ≤ 2^53) and stores it as a float64.
//! This keeps `#{ count: 0 }` in a script meaning what `{ count: 0 }` means in Convex.

use value::{Object, Value};

use super::{IdTables, ObjectType, Type};
use crate::error::ValidationError;

const MAX_SAFE_INTEGER: i64 = 1 << 53;

impl Type {
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
fn describe(value: &Value) -> String {
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
    fn ids_are_checked_against_their_table() {
        assert!(check("id<todos>", Value::from("todos_1")).is_ok());
        assert!(
            check("id<users>", Value::from("todos_1"))
                .unwrap_err()
                .contains("\"todos\"")
        );
    }
}
