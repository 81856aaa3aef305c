//! How a system function fails: an argument error ([`bad`]), or a database refusal turned
//! into the function's error ([`db_error`]), with the schema violation's field path as data.

use database::DbError;
use value::{Object, Value};

use crate::error::{ErrorKind, FunctionError};

/// An argument error.
pub(crate) fn bad(message: String) -> FunctionError {
    FunctionError::new(
        ErrorKind::BadArgs,
        format!("ArgumentValidationError: {message}"),
    )
}

/// A database refusal as the system function's error. A document that breaks the schema
/// carries `{kind: "SchemaValidation", table, path, message}` as its error data, so the
/// dashboard can show the message next to the field it names.
pub(crate) fn db_error(error: DbError) -> FunctionError {
    match error {
        DbError::Validation { table, error } => {
            let path = match &error {
                schema::ValidationError::Mismatch { path, .. }
                | schema::ValidationError::MissingField { path, .. }
                | schema::ValidationError::ExtraField { path, .. } => path.clone(),
            };
            let message = error.to_string();
            let mut data = Object::new();
            data.insert("kind".into(), Value::String("SchemaValidation".into()));
            data.insert("table".into(), Value::String(table.clone()));
            data.insert(
                "path".into(),
                Value::String(path.trim_start_matches('.').to_string()),
            );
            data.insert("message".into(), Value::String(message.clone()));
            FunctionError {
                kind: ErrorKind::Uncaught,
                message: format!(
                    "document for table {table:?} does not match the schema: {message}"
                ),
                data: Some(Value::Object(data)),
            }
        }
        DbError::Internal(_) | DbError::Corrupt(_) | DbError::Storage(_) => {
            tracing::error!(error = %error, "a system function failed inside the database");
            FunctionError::new(
                ErrorKind::Server,
                "internal server error; see the server log",
            )
        }
        DbError::Limit(message) => FunctionError::new(ErrorKind::Limit, message),
        other => FunctionError::new(ErrorKind::Uncaught, other.to_string()),
    }
}
