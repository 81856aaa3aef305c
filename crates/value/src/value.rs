//! [`Value`]: Convex's eight value types, their total order and their size accounting.
//!
//! The order is Convex's: null < int64 < float64 < boolean < string < bytes < array < object
//! (a missing field, "undefined", sorts before all of them; see [`crate::key`]). Floats are
//! ordered by IEEE-754 `total_cmp`, so NaN and -0 have a fixed place and equality is reflexive.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// A Convex object: field names in sorted (byte) order, as Convex stores them.
pub type Object = BTreeMap<String, Value>;

/// One Convex value.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Int64(i64),
    Float64(f64),
    Boolean(bool),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Object(Object),
}

impl Value {
    /// Position of the type in Convex's cross-type order (undefined would be 0).
    pub fn type_rank(&self) -> u8 {
        match self {
            Value::Null => 1,
            Value::Int64(_) => 2,
            Value::Float64(_) => 3,
            Value::Boolean(_) => 4,
            Value::String(_) => 5,
            Value::Bytes(_) => 6,
            Value::Array(_) => 7,
            Value::Object(_) => 8,
        }
    }

    /// The type's name as error messages and schema.toml spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int64(_) => "int64",
            Value::Float64(_) => "number",
            Value::Boolean(_) => "boolean",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Approximate encoded size in bytes, the figure the size limits are checked against.
    pub fn size(&self) -> usize {
        match self {
            Value::Null | Value::Boolean(_) => 1,
            Value::Int64(_) | Value::Float64(_) => 9,
            Value::String(s) => s.len() + 2,
            Value::Bytes(b) => b.len() + 2,
            Value::Array(items) => 2 + items.iter().map(Value::size).sum::<usize>(),
            Value::Object(fields) => {
                2 + fields
                    .iter()
                    .map(|(k, v)| k.len() + 1 + v.size())
                    .sum::<usize>()
            }
        }
    }

    /// Looks up a dotted field path (`"a.b"`) inside an object value.
    pub fn get_path(&self, path: &FieldPath) -> Option<&Value> {
        let mut current = self;
        for part in path.parts() {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Int64(a), Value::Int64(b)) => a.cmp(b),
            (Value::Float64(a), Value::Float64(b)) => a.total_cmp(b),
            (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
            (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Array(a), Value::Array(b)) => a.cmp(b),
            (Value::Object(a), Value::Object(b)) => {
                // Field by field: name first, then value; a shorter object that is a prefix
                // of a longer one sorts first.
                let mut left = a.iter();
                let mut right = b.iter();
                loop {
                    match (left.next(), right.next()) {
                        (None, None) => return Ordering::Equal,
                        (None, Some(_)) => return Ordering::Less,
                        (Some(_), None) => return Ordering::Greater,
                        (Some((ka, va)), Some((kb, vb))) => {
                            let ord = ka.as_bytes().cmp(kb.as_bytes()).then_with(|| va.cmp(vb));
                            if ord != Ordering::Equal {
                                return ord;
                            }
                        }
                    }
                }
            }
            _ => self.type_rank().cmp(&other.type_rank()),
        }
    }
}

impl fmt::Display for Value {
    /// Renders the value as convex JSON, which is how users see values in errors and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Float64(n)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int64(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

/// A dotted path to a (possibly nested) field, as index definitions and filters name them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn new(path: impl Into<String>) -> Self {
        FieldPath(path.into())
    }

    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_type_order_follows_convex() {
        let ordered = [
            Value::Null,
            Value::Int64(i64::MAX),
            Value::Float64(f64::NEG_INFINITY),
            Value::Boolean(false),
            Value::Boolean(true),
            Value::String(String::new()),
            Value::Bytes(vec![]),
            Value::Array(vec![]),
            Value::Object(Object::new()),
        ];
        for pair in ordered.windows(2) {
            assert!(pair[0] < pair[1], "{:?} < {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn floats_use_total_order() {
        assert!(Value::Float64(-0.0) < Value::Float64(0.0));
        assert_eq!(Value::Float64(f64::NAN), Value::Float64(f64::NAN));
        assert!(Value::Float64(f64::INFINITY) < Value::Float64(f64::NAN));
    }

    #[test]
    fn nested_paths_resolve() {
        let mut inner = Object::new();
        inner.insert("b".into(), Value::from(1.0));
        let mut outer = Object::new();
        outer.insert("a".into(), Value::Object(inner));
        let doc = Value::Object(outer);
        assert_eq!(
            doc.get_path(&FieldPath::new("a.b")),
            Some(&Value::from(1.0))
        );
        assert_eq!(doc.get_path(&FieldPath::new("a.c")), None);
    }
}
