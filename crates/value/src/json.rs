//! "Convex JSON": the wire form of a [`Value`] that the official `convex` client encodes and
//! decodes.
//!
//! Plain JSON numbers are float64; int64, bytes and the special floats (NaN, ±∞, -0) travel
//! as single-key objects (`$integer`, `$bytes`, `$float`) holding little-endian base64. Object
//! keys must be printable ASCII and must not start with `$`, because the client rejects
//! anything else and a rejected value desynchronises its socket.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number};

use crate::value::{Object, Value};

/// Why a JSON text is not a valid convex JSON value, with the path to the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("at {path}: {reason}")]
    Invalid { path: String, reason: String },
}

fn invalid(path: &str, reason: impl Into<String>) -> JsonError {
    JsonError::Invalid {
        path: if path.is_empty() {
            "the top level".to_string()
        } else {
            path.to_string()
        },
        reason: reason.into(),
    }
}

/// Whether `key` may be an object field name on the wire (the client's own rule).
pub(crate) fn check_field_name(key: &str) -> Result<(), String> {
    if key.starts_with('$') {
        return Err(format!(
            "field name {key:?} starts with '$', which is reserved for encoded values"
        ));
    }
    if key.len() > 1024 {
        return Err(format!(
            "field name is {} bytes long (limit 1024)",
            key.len()
        ));
    }
    if let Some(c) = key.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "field name {key:?} contains {c:?}; field names must be printable ASCII"
        ));
    }
    Ok(())
}

/// Serialises as convex JSON directly (no intermediate `serde_json::Value`), which is how
/// documents are stored and results are sent.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let special = |serializer: S, tag: &str, payload: String| {
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(tag, &payload)?;
            map.end()
        };
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Boolean(b) => serializer.serialize_bool(*b),
            Value::String(s) => serializer.serialize_str(s),
            Value::Float64(f) if f.is_finite() && !(*f == 0.0 && f.is_sign_negative()) => {
                serializer.serialize_f64(*f)
            }
            Value::Float64(f) => special(serializer, "$float", STANDARD.encode(f.to_le_bytes())),
            Value::Int64(i) => special(serializer, "$integer", STANDARD.encode(i.to_le_bytes())),
            Value::Bytes(b) => special(serializer, "$bytes", STANDARD.encode(b)),
            Value::Array(items) => serializer.collect_seq(items),
            Value::Object(fields) => serializer.collect_map(fields),
        }
    }
}

impl Value {
    /// The convex JSON text of the value.
    pub fn to_json_string(&self) -> String {
        // Serialising a `Value` cannot fail: keys are strings and floats are finite here.
        serde_json::to_string(self).unwrap_or_else(|_| "null".to_string())
    }

    /// Encodes the value as convex JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Float64(f) => {
                let is_plain = f.is_finite() && !(*f == 0.0 && f.is_sign_negative());
                match Number::from_f64(*f) {
                    Some(n) if is_plain => serde_json::Value::Number(n),
                    _ => special("$float", STANDARD.encode(f.to_le_bytes())),
                }
            }
            Value::Int64(i) => special("$integer", STANDARD.encode(i.to_le_bytes())),
            Value::Bytes(b) => special("$bytes", STANDARD.encode(b)),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(fields) => {
                let mut map = Map::with_capacity(fields.len());
                for (k, v) in fields {
                    map.insert(k.clone(), v.to_json());
                }
                serde_json::Value::Object(map)
            }
        }
    }

    /// Convex's clean JSON (the HTTP API's `json` format): readable and lossy. An int64 is
    /// its decimal text (`"5"`), a non-finite float `"NaN"`, `"Infinity"` or `"-Infinity"`,
    /// bytes their base64 text; everything else as in convex JSON.
    pub fn to_clean_json(&self) -> serde_json::Value {
        match self {
            Value::Int64(i) => serde_json::Value::String(i.to_string()),
            Value::Float64(f) if f.is_nan() => serde_json::Value::String("NaN".into()),
            Value::Float64(f) if f.is_infinite() => {
                let text = if *f > 0.0 { "Infinity" } else { "-Infinity" };
                serde_json::Value::String(text.into())
            }
            Value::Float64(f) => Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Value::Bytes(b) => serde_json::Value::String(STANDARD.encode(b)),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_clean_json).collect())
            }
            Value::Object(fields) => {
                let mut map = Map::with_capacity(fields.len());
                for (k, v) in fields {
                    map.insert(k.clone(), v.to_clean_json());
                }
                serde_json::Value::Object(map)
            }
            other => other.to_json(),
        }
    }

    /// Decodes convex JSON, refusing anything the official client would not produce.
    pub fn from_json(json: &serde_json::Value) -> Result<Value, JsonError> {
        decode(json, &mut String::new())
    }

    /// Parses convex JSON text.
    pub fn from_json_str(text: &str) -> Result<Value, JsonError> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid("", format!("not JSON: {e}")))?;
        Value::from_json(&json)
    }
}

fn special(tag: &str, payload: String) -> serde_json::Value {
    let mut map = Map::with_capacity(1);
    map.insert(tag.to_string(), serde_json::Value::String(payload));
    serde_json::Value::Object(map)
}

fn decode(json: &serde_json::Value, path: &mut String) -> Result<Value, JsonError> {
    Ok(match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) => Value::Float64(f),
            None => return Err(invalid(path, format!("number {n} is not a float64"))),
        },
        serde_json::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(decode(item, path)?);
                path.truncate(len);
            }
            Value::Array(out)
        }
        serde_json::Value::Object(map) => {
            if map.len() == 1
                && let Some((key, payload)) = map.iter().next()
                && key.starts_with('$')
            {
                return decode_special(key, payload, path);
            }
            let mut out = Object::new();
            for (key, item) in map {
                check_field_name(key).map_err(|reason| invalid(path, reason))?;
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                out.insert(key.clone(), decode(item, path)?);
                path.truncate(len);
            }
            Value::Object(out)
        }
    })
}

fn decode_special(key: &str, payload: &serde_json::Value, path: &str) -> Result<Value, JsonError> {
    let text = payload
        .as_str()
        .ok_or_else(|| invalid(path, format!("{key} must hold a base64 string")))?;
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| invalid(path, format!("{key} holds invalid base64: {e}")))?;
    let eight = |bytes: Vec<u8>| -> Result<[u8; 8], JsonError> {
        bytes
            .try_into()
            .map_err(|_| invalid(path, format!("{key} must hold exactly 8 bytes")))
    };
    match key {
        "$integer" => Ok(Value::Int64(i64::from_le_bytes(eight(bytes)?))),
        "$float" => {
            let f = f64::from_le_bytes(eight(bytes)?);
            if f.is_finite() && !(f == 0.0 && f.is_sign_negative()) {
                return Err(invalid(
                    path,
                    "$float may only encode NaN, ±Infinity or -0; send other numbers as plain JSON",
                ));
            }
            Ok(Value::Float64(f))
        }
        "$bytes" => Ok(Value::Bytes(bytes)),
        other => Err(invalid(
            path,
            format!(
                "{other:?} is not a supported encoded value (expected $integer, $float or $bytes)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(v: Value) -> Value {
        Value::from_json(&v.to_json()).expect("decodes")
    }

    #[test]
    fn clean_json_is_convexs_readable_format() {
        let mut fields = Object::new();
        fields.insert("n".into(), Value::Int64(-314));
        fields.insert("f".into(), Value::Float64(2.5));
        fields.insert("b".into(), Value::Bytes(vec![0, 16, 131]));
        let value = Value::Array(vec![
            Value::Object(fields),
            Value::Float64(f64::NAN),
            Value::Float64(f64::NEG_INFINITY),
            Value::Float64(-0.0),
            Value::Null,
            Value::Boolean(true),
        ]);
        assert_eq!(
            value.to_clean_json(),
            json!([{"n": "-314", "f": 2.5, "b": "ABCD"}, "NaN", "-Infinity", -0.0, null, true])
        );
    }

    #[test]
    fn wire_examples_from_the_client() {
        assert_eq!(
            Value::Int64(1).to_json(),
            json!({"$integer": "AQAAAAAAAAA="})
        );
        assert_eq!(
            Value::Int64(-5).to_json(),
            json!({"$integer": "+/////////8="})
        );
        assert_eq!(
            Value::Float64(f64::NAN).to_json(),
            json!({"$float": "AAAAAAAA+H8="})
        );
        assert_eq!(
            Value::Float64(-0.0).to_json(),
            json!({"$float": "AAAAAAAAAIA="})
        );
        assert_eq!(
            Value::Float64(f64::NEG_INFINITY).to_json(),
            json!({"$float": "AAAAAAAA8P8="})
        );
        assert_eq!(
            Value::Bytes(vec![1, 2, 3, 255]).to_json(),
            json!({"$bytes": "AQID/w=="})
        );
        assert_eq!(Value::Float64(3.0).to_json(), json!(3.0));
    }

    #[test]
    fn direct_serialisation_matches_the_json_value() {
        let v = Value::Object(Object::from([
            (
                "a".to_string(),
                Value::Array(vec![
                    Value::Int64(-5),
                    Value::Float64(1.5),
                    Value::Float64(-0.0),
                ]),
            ),
            ("b".to_string(), Value::Bytes(vec![1, 2])),
            ("c".to_string(), Value::from("q\"uote")),
            ("d".to_string(), Value::Float64(3.0)),
        ]));
        assert_eq!(v.to_json_string(), v.to_json().to_string());
    }

    #[test]
    fn stored_text_gives_back_the_exact_float() {
        // Documents are stored as this text and index keys are computed from what is read
        // back; a float off by one unit in the last place (serde_json's default parser) left a
        // stale index entry behind after a patch.
        for bits in 0..20_000u64 {
            let f = 1_796_481_744_804.123_f64 + bits as f64 * 0.000_244_140_625 / 3.0;
            let text = Value::Float64(f).to_json_string();
            let back = Value::from_json_str(&text).expect("decodes");
            assert!(
                matches!(back, Value::Float64(g) if g.to_bits() == f.to_bits()),
                "{text}"
            );
        }
    }

    #[test]
    fn values_roundtrip() {
        for v in [
            Value::Null,
            Value::Int64(i64::MIN),
            Value::Float64(1.5),
            Value::Float64(f64::INFINITY),
            Value::Bytes(vec![0, 1]),
            Value::Array(vec![Value::Null, Value::from("x")]),
        ] {
            assert_eq!(roundtrip(v.clone()), v);
        }
    }

    #[test]
    fn rejects_what_the_client_would_reject() {
        assert!(
            Value::from_json(&json!({"$float": "AAAAAAAA8D8="})).is_err(),
            "1.0 as $float"
        );
        assert!(Value::from_json(&json!({"$set": []})).is_err());
        assert!(Value::from_json(&json!({"é": 1})).is_err());
        assert!(Value::from_json(&json!({"a": {"$b": 1, "c": 2}})).is_err());
        let err = Value::from_json(&json!({"a": [1, {"$x": 1, "y": 2}]})).unwrap_err();
        assert!(err.to_string().contains("a[1]"), "{err}");
    }
}
