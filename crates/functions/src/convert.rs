//! Conversion between Convex [`Value`]s and Rhai [`Dynamic`]s.
//!
//! null ↔ `()`, int64 ↔ integer, float64 ↔ float, boolean, string, bytes ↔ blob,
//! array ↔ array, object ↔ object map. A Rhai `char` becomes a one-character string; function
//! pointers and host handles (`ctx`, query builders) are not values and are refused with the
//! path where they were found.
//!
//! Also plain JSON (a request body, a webhook payload) as a script value: JSON has no integers,
//! so every number becomes a float, as in JavaScript.

use rhai::{Array, Blob, Dynamic, FnPtr, ImmutableString, Map};
use value::{Object, Value};

/// Nesting limit for JSON turned into script values.
const MAX_JSON_DEPTH: usize = 64;

/// Converts a value for a script.
pub fn to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Int64(i) => Dynamic::from_int(*i),
        Value::Float64(f) => Dynamic::from_float(*f),
        Value::Boolean(b) => Dynamic::from_bool(*b),
        Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Bytes(b) => Dynamic::from_blob(b.clone()),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        Value::Object(fields) => {
            let mut map = Map::new();
            for (k, v) in fields {
                map.insert(k.as_str().into(), to_dynamic(v));
            }
            Dynamic::from_map(map)
        }
    }
}

/// Converts a script value; `what` names it in the error ("the result", "args").
pub fn from_dynamic(value: &Dynamic, what: &str) -> Result<Value, String> {
    convert(value, &Path::Root(what), 0)
}

/// Where a value sits in what is converted (`args.items[2].name`). Written out only for an
/// error: every document a script writes passes through here, most of them valid.
enum Path<'a> {
    Root(&'a str),
    Field(&'a Path<'a>, &'a str),
    Item(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(what) => f.write_str(what),
            Path::Field(parent, key) => write!(f, "{parent}.{key}"),
            Path::Item(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

fn convert(value: &Dynamic, path: &Path<'_>, depth: usize) -> Result<Value, String> {
    if depth > 64 {
        return Err(format!("{path} is nested too deeply"));
    }
    if value.is_shared() {
        return convert(&value.flatten_clone(), path, depth);
    }
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::Int64(i));
    }
    if let Ok(f) = value.as_float() {
        return Ok(Value::Float64(f));
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Boolean(b));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if value.is_string() {
        return Ok(Value::String(
            value.clone().cast::<ImmutableString>().to_string(),
        ));
    }
    if value.is_blob() {
        return Ok(Value::Bytes(value.clone().cast::<Blob>()));
    }
    if value.is_array() {
        let array = value
            .read_lock::<Array>()
            .ok_or_else(|| format!("{path} could not be read"))?;
        return array
            .iter()
            .enumerate()
            .map(|(i, item)| convert(item, &Path::Item(path, i), depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if value.is_map() {
        let map = value
            .read_lock::<Map>()
            .ok_or_else(|| format!("{path} could not be read"))?;
        let mut object = Object::new();
        for (k, v) in map.iter() {
            object.insert(k.to_string(), convert(v, &Path::Field(path, k), depth + 1)?);
        }
        return Ok(Value::Object(object));
    }
    if value.is::<FnPtr>() {
        return Err(format!(
            "{path} is a function, which cannot be stored or returned"
        ));
    }
    Err(format!(
        "{path} is a {}, which is not a value (use null, numbers, booleans, strings, blobs, arrays or object maps)",
        value.type_name()
    ))
}

/// Converts a script object map (documents, patches) to an [`Object`].
pub fn object_from_dynamic(value: &Dynamic, what: &str) -> Result<Object, String> {
    match from_dynamic(value, what)? {
        Value::Object(o) => Ok(o),
        other => Err(format!(
            "{what} must be an object map like #{{ field: value }}, not {}",
            other.type_name()
        )),
    }
}

/// Plain JSON (numbers are float64, as in JavaScript) as a script value.
pub(crate) fn json_to_dynamic(json: &serde_json::Value) -> Result<Dynamic, String> {
    json_at_depth(json, 0)
}

fn json_at_depth(json: &serde_json::Value, depth: usize) -> Result<Dynamic, String> {
    if depth > MAX_JSON_DEPTH {
        return Err(format!("the JSON is nested deeper than {MAX_JSON_DEPTH}"));
    }
    Ok(match json {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => Dynamic::from_bool(*b),
        serde_json::Value::Number(n) => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        serde_json::Value::Array(items) => Dynamic::from_array(
            items
                .iter()
                .map(|item| json_at_depth(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(fields) => {
            let mut map = Map::new();
            for (k, v) in fields {
                map.insert(k.as_str().into(), json_at_depth(v, depth + 1)?);
            }
            Dynamic::from_map(map)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_roundtrip_through_rhai() {
        let value = Value::Object(Object::from([
            ("i".to_string(), Value::Int64(-3)),
            ("f".to_string(), Value::Float64(1.5)),
            ("b".to_string(), Value::Bytes(vec![1, 2])),
            (
                "a".to_string(),
                Value::Array(vec![Value::Null, Value::from(true), Value::from("s")]),
            ),
        ]));
        assert_eq!(from_dynamic(&to_dynamic(&value), "v"), Ok(value));
    }

    #[test]
    fn functions_are_not_values() {
        let mut map = Map::new();
        map.insert("f".into(), Dynamic::from(FnPtr::new("x").expect("fn ptr")));
        let err = from_dynamic(&Dynamic::from_map(map), "the result").unwrap_err();
        assert!(err.contains("the result.f is a function"), "{err}");
    }

    #[test]
    fn an_error_names_the_path_through_arrays_and_maps() {
        let mut inner = Map::new();
        inner.insert("f".into(), Dynamic::from(FnPtr::new("x").expect("fn ptr")));
        let items: Array = vec![Dynamic::from_int(1), Dynamic::from_map(inner)];
        let mut outer = Map::new();
        outer.insert("items".into(), Dynamic::from_array(items));
        let err = from_dynamic(&Dynamic::from_map(outer), "args").unwrap_err();
        assert!(err.starts_with("args.items[1].f is a function"), "{err}");
    }
}
