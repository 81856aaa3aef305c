//! The two error types of this crate: [`SchemaError`] (a problem in `schema.toml`, with file,
//! line and column) and [`ValidationError`] (a value that does not fit a type, with the path
//! to the offending field, the expected type and what was found).

use std::fmt;

/// A value does not match its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("{path}: expected {expected}, found {found}")]
    Mismatch {
        path: String,
        expected: String,
        found: String,
    },
    #[error("missing required field {path} (expected {expected})")]
    MissingField { path: String, expected: String },
    #[error("{path} is not a declared field{}", allowed_list(.allowed))]
    ExtraField { path: String, allowed: Vec<String> },
}

fn allowed_list(allowed: &[String]) -> String {
    if allowed.is_empty() {
        " (no fields are declared)".to_string()
    } else {
        format!(" (declared: {})", allowed.join(", "))
    }
}

/// A problem in `schema.toml`: where it is, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SchemaError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl SchemaError {
    /// Builds an error located at byte `offset` of `text`.
    pub(crate) fn at(
        file: &str,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> SchemaError {
        let (line, column) = line_column(text, offset);
        SchemaError {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
