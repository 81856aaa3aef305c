//! Comparing two values for `assert_eq` and `expect_error`, and showing them: [`first_difference`]
//! walks both in step and names the first path where they differ (`[0].completed`), and
//! [`readable`] writes a value as plain JSON (integers as numbers, bytes as `{"$bytes": base64}`),
//! which is how failures show both sides.
//!
//! Numbers compare by value: a Rhai integer equals a float with the same value (`1 == 1.0`), since
//! a test that wrote `1` rarely means "an int64, not a number". Object fields compare as sets (the
//! order a map was written in does not matter), arrays element by element.

use base64::Engine as _;
use rhai::Dynamic;
use value::Value;

use crate::convert::from_dynamic;

/// One side of a comparison: a value, or something a script holds that is not one (a
/// function, a `t` handle), known by its Rhai type and text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Side {
    Value(Value),
    Other { type_name: String, text: String },
}

impl Side {
    pub(crate) fn of(value: &Dynamic) -> Side {
        match from_dynamic(value, "the value") {
            Ok(value) => Side::Value(value),
            Err(_) => Side::Other {
                type_name: value.type_name().to_string(),
                text: format!("{value:?}"),
            },
        }
    }

    /// How a failure shows this side in full (cut at `max` characters).
    pub(crate) fn text(&self, max: usize) -> String {
        match self {
            Side::Value(value) => cut(&readable(value).to_string(), max),
            Side::Other { type_name, text } => cut(&format!("{text} (a {type_name})"), max),
        }
    }
}

/// The first difference between two sides; sides that are not values are equal only when
/// they have the same type and text.
pub(crate) fn compare(left: &Side, right: &Side) -> Option<Difference> {
    match (left, right) {
        (Side::Value(l), Side::Value(r)) => first_difference(l, r),
        (l, r) if l == r => None,
        (l, r) => Some(Difference {
            path: String::new(),
            left: l.text(200),
            right: r.text(200),
        }),
    }
}

/// A script value as a failure shows it.
pub(crate) fn readable_dynamic_text(value: &Dynamic) -> String {
    Side::of(value).text(2_000)
}

/// Where two values first differ, and what each side holds there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Difference {
    /// `[0].completed`, or empty for the values themselves.
    pub path: String,
    pub left: String,
    pub right: String,
}

impl Difference {
    /// The path for a message: `at [0].completed`, or `at the top level`.
    pub(crate) fn at(&self) -> String {
        if self.path.is_empty() {
            "at the top level".to_string()
        } else {
            format!("at {}", self.path)
        }
    }
}

/// The first difference between `left` and `right`, or `None` when they are equal.
pub(crate) fn first_difference(left: &Value, right: &Value) -> Option<Difference> {
    let mut path = String::new();
    walk(left, right, &mut path)
}

fn walk(left: &Value, right: &Value, path: &mut String) -> Option<Difference> {
    let differ = |path: &str, l: String, r: String| {
        Some(Difference {
            path: path.to_string(),
            left: l,
            right: r,
        })
    };
    match (left, right) {
        (Value::Array(l), Value::Array(r)) => {
            for (i, (a, b)) in l.iter().zip(r).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(a, b, path);
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            if l.len() != r.len() {
                let shorter = l.len().min(r.len());
                let at = format!("{path}[{shorter}]");
                let side = |items: &[Value]| match items.get(shorter) {
                    Some(item) => short(item),
                    None => format!("nothing (the array has {} elements)", items.len()),
                };
                return differ(&at, side(l), side(r));
            }
            None
        }
        (Value::Object(l), Value::Object(r)) => {
            let mut keys: Vec<&String> = l.keys().chain(r.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let len = path.len();
                path.push_str(&field(key));
                let found = match (l.get(key), r.get(key)) {
                    (Some(a), Some(b)) => walk(a, b, path),
                    (a, b) => {
                        let side = |v: Option<&Value>| v.map_or("no such field".to_string(), short);
                        differ(path, side(a), side(b))
                    }
                };
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        (a, b) if scalars_equal(a, b) => None,
        (a, b) => differ(path, short(a), short(b)),
    }
}

fn scalars_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Int64(a), Value::Float64(b)) | (Value::Float64(b), Value::Int64(a)) => {
            *a as f64 == *b
        }
        (Value::Float64(a), Value::Float64(b)) => a == b || (a.is_nan() && b.is_nan()),
        (a, b) => a == b,
    }
}

/// `.name` for identifier-like keys, `["odd key"]` for the others.
fn field(key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!(".{key}")
    } else {
        format!("[{}]", serde_json::Value::String(key.to_string()))
    }
}

/// One side at the point of difference: its JSON, cut short if long.
fn short(value: &Value) -> String {
    cut(&readable(value).to_string(), 200)
}

/// The JSON a failure shows: integers and floats as plain numbers, bytes as
/// `{"$bytes": base64}`, non-finite floats as strings.
pub(crate) fn readable(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Int64(i) => serde_json::Value::from(*i),
        Value::Float64(f) => serde_json::Number::from_f64(*f)
            .map_or_else(|| serde_json::Value::String(f.to_string()), Into::into),
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(b) => serde_json::json!({
            "$bytes": base64::engine::general_purpose::STANDARD.encode(b)
        }),
        Value::Array(items) => items.iter().map(readable).collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| (k.clone(), readable(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// `text`, or its first `max` characters and how much was left out.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} more bytes)", &text[..at], text.len() - at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use value::Object;

    fn todo(text: &str, completed: bool) -> Value {
        Value::Object(Object::from([
            ("text".to_string(), Value::from(text)),
            ("completed".to_string(), Value::Boolean(completed)),
        ]))
    }

    #[test]
    fn names_the_first_differing_path() {
        let left = Value::Array(vec![todo("a", false), todo("b", true)]);
        let right = Value::Array(vec![todo("a", false), todo("b", false)]);
        let d = first_difference(&left, &right).expect("a difference");
        assert_eq!(d.path, "[1].completed");
        assert_eq!((d.left.as_str(), d.right.as_str()), ("true", "false"));
        assert_eq!(first_difference(&left, &left.clone()), None);
    }

    #[test]
    fn missing_fields_and_elements_are_named() {
        let left = Value::Array(vec![todo("a", false)]);
        let right = Value::Array(vec![]);
        let d = first_difference(&left, &right).expect("a difference");
        assert_eq!(d.path, "[0]");
        assert_eq!(d.right, "nothing (the array has 0 elements)");

        let mut extra = Object::new();
        extra.insert("my key".to_string(), Value::Null);
        let d = first_difference(&Value::Object(Object::new()), &Value::Object(extra))
            .expect("a difference");
        assert_eq!(d.path, "[\"my key\"]");
        assert_eq!(
            (d.left.as_str(), d.right.as_str()),
            ("no such field", "null")
        );
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(
            first_difference(&Value::Int64(1), &Value::Float64(1.0)),
            None
        );
        let d = first_difference(&Value::Int64(1), &Value::Float64(1.5)).expect("differ");
        assert_eq!((d.path.as_str(), d.at().as_str()), ("", "at the top level"));
        assert_eq!(
            first_difference(&Value::Float64(f64::NAN), &Value::Float64(f64::NAN)),
            None
        );
        assert!(first_difference(&Value::from("1"), &Value::Int64(1)).is_some());
    }

    #[test]
    fn readable_json_has_plain_numbers_and_long_text_is_cut() {
        let value = Value::Array(vec![Value::Int64(3), Value::Bytes(vec![1, 2])]);
        assert_eq!(readable(&value).to_string(), r#"[3,{"$bytes":"AQI="}]"#);
        assert_eq!(cut("abcdef", 3), "abc… (3 more bytes)");
        assert_eq!(cut("abc", 3), "abc");
    }
}
