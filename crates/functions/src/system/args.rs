//! Reading a system function's arguments: each reader names the argument and what it should
//! be when it is missing or of the wrong type.

use value::{Object, Value};

use super::errors::bad;
use crate::error::FunctionError;

/// A required string argument.
pub(crate) fn string<'a>(args: &'a Object, name: &str) -> Result<&'a str, FunctionError> {
    match args.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(bad(format!(
            "args.{name}: expected string, found {}",
            other.type_name()
        ))),
        None => Err(bad(format!(
            "missing required argument args.{name} (a string)"
        ))),
    }
}

/// An optional string argument (absent or null means `None`).
pub(crate) fn opt_string<'a>(
    args: &'a Object,
    name: &str,
) -> Result<Option<&'a str>, FunctionError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string(args, name).map(Some),
    }
}

/// An optional whole number argument within `1..=max`.
pub(crate) fn opt_count(
    args: &Object,
    name: &str,
    max: usize,
) -> Result<Option<usize>, FunctionError> {
    let n = match args.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Int64(n)) => *n as f64,
        Some(Value::Float64(n)) => *n,
        Some(other) => {
            return Err(bad(format!(
                "args.{name}: expected number, found {}",
                other.type_name()
            )));
        }
    };
    if !(n >= 1.0 && n.fract() == 0.0 && n <= max as f64) {
        return Err(bad(format!(
            "args.{name}: expected a whole number from 1 to {max}, found {n}"
        )));
    }
    Ok(Some(n as usize))
}

/// A required object argument.
pub(crate) fn object<'a>(args: &'a Object, name: &str) -> Result<&'a Object, FunctionError> {
    match args.get(name) {
        Some(Value::Object(o)) => Ok(o),
        Some(other) => Err(bad(format!(
            "args.{name}: expected object, found {}",
            other.type_name()
        ))),
        None => Err(bad(format!(
            "missing required argument args.{name} (an object)"
        ))),
    }
}

/// An optional array argument (absent or null is empty).
pub(crate) fn opt_array<'a>(args: &'a Object, name: &str) -> Result<&'a [Value], FunctionError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(bad(format!(
            "args.{name}: expected array, found {}",
            other.type_name()
        ))),
    }
}
