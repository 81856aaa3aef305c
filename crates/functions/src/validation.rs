//! The checks on both sides of a handler: arguments before it runs, the result after it
//! returns. Both apply the value limits (size, nesting, field names) and the function's
//! validators, which resolve `id<table>` against the transaction's tables. A bad argument is
//! the caller's error (`BadArgs`); a bad result is the function's (`Uncaught`, or `Limit` for
//! a result too large).

use rhai::Dynamic;
use value::{LimitError, Limits, Value};

use crate::convert::from_dynamic;
use crate::definition::FunctionDef;
use crate::error::{ErrorKind, FunctionError};
use crate::limits::MAX_VALUE_BYTES;

/// The arguments of a call, checked against the size and shape limits and the function's
/// validators (which also convert them, e.g. integers to `number`).
pub(crate) fn check_args(
    def: &FunctionDef,
    function: &str,
    args: Value,
    ids: &dyn schema::IdTables,
) -> Result<Value, FunctionError> {
    let bad = |message: String| {
        FunctionError::new(
            ErrorKind::BadArgs,
            format!("ArgumentValidationError: {message}"),
        )
    };
    let Value::Object(fields) = args else {
        return Err(bad(format!(
            "arguments must be an object, not {}",
            args.type_name()
        )));
    };
    let args = Value::Object(fields);
    Limits::check_size(
        &args,
        &format!("the arguments of {function}"),
        MAX_VALUE_BYTES,
    )
    .map_err(|e| bad(e.to_string()))?;
    Limits::default()
        .check_shape(&args, "the arguments")
        .map_err(|e| bad(e.to_string()))?;
    match &def.args {
        None => Ok(args),
        Some(validator) => {
            let Value::Object(fields) = args else {
                return Err(bad("arguments must be an object".into()));
            };
            validator
                .validate_fields(fields, "args", ids)
                .map_err(|e| bad(e.to_string()))
        }
    }
}

/// The handler's return value as a [`Value`], checked against the limits and the `returns`
/// validator.
pub(crate) fn check_result(
    def: &FunctionDef,
    function: &str,
    value: &Dynamic,
    ids: &dyn schema::IdTables,
) -> Result<Value, FunctionError> {
    let limit = |message: String| FunctionError::new(ErrorKind::Limit, message);
    let value = from_dynamic(value, "the return value")
        .map_err(|e| FunctionError::new(ErrorKind::Uncaught, e))?;
    Limits::check_size(
        &value,
        &format!("the return value of {function}"),
        MAX_VALUE_BYTES,
    )
    .map_err(|e| limit(e.to_string()))?;
    Limits::default()
        .check_shape(&value, "the return value")
        .map_err(|e| match e {
            LimitError::BadFieldName { .. } => {
                FunctionError::new(ErrorKind::Uncaught, e.to_string())
            }
            e => limit(e.to_string()),
        })?;
    match &def.returns {
        None => Ok(value),
        Some(ty) => ty.validate(value, "return value", ids).map_err(|e| {
            FunctionError::new(ErrorKind::Uncaught, format!("ReturnsValidationError: {e}"))
        }),
    }
}

/// Knows no tables: only when the transaction is gone (a handler that panicked it away),
/// where an `id<T>` result cannot be checked and is refused.
pub(crate) struct UnknownIds;
impl schema::IdTables for UnknownIds {
    fn table_of(&self, _: &str) -> Option<String> {
        None
    }
}
