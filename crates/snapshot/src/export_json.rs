//! Convex's export JSON encoding of values (`export_json`, what `npx convex export` writes in
//! `documents.jsonl`): human-readable and lossless. An int64 is a JSON integer (`5`), a
//! finite float64 a JSON number with a fraction or exponent (`5.0`), a non-finite float
//! `{"$float": base64}`, bytes `{"$bytes": base64}`; strings, booleans, null, arrays and
//! objects are themselves. Reading it back: a JSON integer is an int64 (validation turns it
//! into a float where the schema declares `number`), other numbers float64, an object whose
//! first key starts with `$` the internal encoding.

use serde_json::Number;
use value::Value;

/// The export JSON of `value`.
pub fn to_export_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Int64(i) => serde_json::Value::Number(Number::from(*i)),
        Value::Float64(f) if f.is_finite() => match Number::from_f64(*f) {
            Some(n) => serde_json::Value::Number(n),
            None => value.to_json(),
        },
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_export_json).collect()),
        Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_export_json(v)))
                .collect(),
        ),
        other => other.to_json(),
    }
}

/// A value from its export JSON; `Err` names what is wrong.
pub fn from_export_json(json: &serde_json::Value) -> Result<Value, String> {
    Ok(match json {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => Value::Int64(i),
            _ => Value::Float64(
                n.as_f64()
                    .ok_or_else(|| format!("the number {n} is out of range"))?,
            ),
        },
        serde_json::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(from_export_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        serde_json::Value::Object(map) if map.keys().next().is_some_and(|k| k.starts_with('$')) => {
            Value::from_json(json).map_err(|e| e.to_string())?
        }
        serde_json::Value::Object(map) => {
            let mut object = value::Object::new();
            for (k, v) in map {
                object.insert(k.clone(), from_export_json(v)?);
            }
            Value::Object(object)
        }
        other => Value::from_json(other).map_err(|e| e.to_string())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_json_round_trips_every_type() {
        let text = r#"{"a":5,"b":5.0,"c":"s","d":true,"e":null,"f":[1,2.5],"g":{"$bytes":"AQI="},"h":{"x":-3}}"#;
        let json: serde_json::Value = serde_json::from_str(text).expect("json");
        let value = from_export_json(&json).expect("decodes");
        let object = value.as_object().expect("object");
        assert_eq!(object["a"], Value::Int64(5));
        assert_eq!(object["b"], Value::Float64(5.0));
        assert_eq!(object["g"], Value::Bytes(vec![1, 2]));
        assert_eq!(to_export_json(&value).to_string(), text);
        let nan = to_export_json(&Value::Float64(f64::INFINITY));
        assert_eq!(
            from_export_json(&nan).expect("inf"),
            Value::Float64(f64::INFINITY)
        );
    }
}
