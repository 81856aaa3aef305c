//! [`LoadError`]: a module that cannot be loaded, located at file:line:column; and
//! [`FunctionError`]: a call that failed, in the shape the client surfaces (a message, plus
//! structured `data` when the script threw a non-string value, Convex's `ConvexError`).

use std::fmt;

use value::Value;

/// A problem in a module file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found while loading `functions/`; loading reports them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Why a call failed; decides how the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such function, or the wrong kind (a mutation called as a query).
    NotFound,
    /// An internal function called by a client.
    InternalFunction,
    /// Arguments do not match the function's validators.
    BadArgs,
    /// The script threw, or a database call it made was refused.
    Uncaught,
    /// A sandbox limit (time, operations, reads, writes, sizes).
    Limit,
    /// A failure inside the server, not the function's (the database failed, a stored outcome
    /// cannot be read): logged where it is made; the message says only that and where to look.
    Server,
}

/// A failed call as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionError {
    pub kind: ErrorKind,
    pub message: String,
    /// Structured error data (`throw #{ code: 1 }`), sent as `errorData`.
    pub data: Option<Value>,
}

impl FunctionError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> FunctionError {
        FunctionError {
            kind,
            message: message.into(),
            data: None,
        }
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FunctionError {}
