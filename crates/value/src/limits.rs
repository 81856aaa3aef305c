//! Size and shape limits on values: Convex's documented figures, listed in the README's
//! "Limits" section.
//!
//! Checked wherever a value enters the system: function arguments, documents written and
//! function results. Each failure names the limit and where in the value it was exceeded.

use crate::json::check_field_name;
use crate::value::Value;

/// The value-shape limits. `Limits::default()` holds the documented figures.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_depth: usize,
    pub max_object_fields: usize,
    pub max_array_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 16,
            max_object_fields: 1024,
            max_array_len: 8192,
        }
    }
}

/// A value broke a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{what} is nested more than {limit} levels deep (at {path})")]
    TooDeep {
        what: String,
        limit: usize,
        path: String,
    },
    #[error("{what} has an object with {found} fields at {path} (limit {limit})")]
    TooManyFields {
        what: String,
        found: usize,
        limit: usize,
        path: String,
    },
    #[error("{what} has an array with {found} elements at {path} (limit {limit})")]
    ArrayTooLong {
        what: String,
        found: usize,
        limit: usize,
        path: String,
    },
    #[error("{what} is {found} bytes, over the limit of {}", bytes_text(*.limit))]
    TooLarge {
        what: String,
        found: usize,
        limit: usize,
    },
    #[error("{what} has an invalid field name at {path}: {reason}")]
    BadFieldName {
        what: String,
        path: String,
        reason: String,
    },
}

/// `limit` bytes as a reader would say it: `16 MiB`, else the plain count.
fn bytes_text(limit: usize) -> String {
    if limit >= 1 << 20 && limit.is_multiple_of(1 << 20) {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit} bytes")
    }
}

impl Limits {
    /// Checks depth, fields per object, array length and field names of `value`.
    /// `what` names the value in the error ("argument", "document", "result").
    pub fn check_shape(&self, value: &Value, what: &str) -> Result<(), LimitError> {
        self.walk(value, what, 0, &mut String::new())
    }

    /// Checks the encoded size of `value` against `limit` bytes.
    pub fn check_size(value: &Value, what: &str, limit: usize) -> Result<(), LimitError> {
        let found = value.size();
        if found > limit {
            return Err(LimitError::TooLarge {
                what: what.to_string(),
                found,
                limit,
            });
        }
        Ok(())
    }

    fn walk(
        &self,
        value: &Value,
        what: &str,
        depth: usize,
        path: &mut String,
    ) -> Result<(), LimitError> {
        let at = |path: &str| {
            if path.is_empty() {
                "the top level".to_string()
            } else {
                path.to_string()
            }
        };
        if depth > self.max_depth {
            return Err(LimitError::TooDeep {
                what: what.to_string(),
                limit: self.max_depth,
                path: at(path),
            });
        }
        match value {
            Value::Array(items) => {
                if items.len() > self.max_array_len {
                    return Err(LimitError::ArrayTooLong {
                        what: what.to_string(),
                        found: items.len(),
                        limit: self.max_array_len,
                        path: at(path),
                    });
                }
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.walk(item, what, depth + 1, path)?;
                    path.truncate(len);
                }
            }
            Value::Object(fields) => {
                if fields.len() > self.max_object_fields {
                    return Err(LimitError::TooManyFields {
                        what: what.to_string(),
                        found: fields.len(),
                        limit: self.max_object_fields,
                        path: at(path),
                    });
                }
                for (key, item) in fields {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    check_field_name(key).map_err(|reason| LimitError::BadFieldName {
                        what: what.to_string(),
                        path: path.clone(),
                        reason,
                    })?;
                    self.walk(item, what, depth + 1, path)?;
                    path.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_and_length_limits() {
        let mut v = Value::Null;
        for _ in 0..17 {
            v = Value::Array(vec![v]);
        }
        assert!(matches!(
            Limits::default().check_shape(&v, "document"),
            Err(LimitError::TooDeep { .. })
        ));
        let long = Value::Array(vec![Value::Null; 8193]);
        let err = Limits::default().check_shape(&long, "result").unwrap_err();
        assert!(err.to_string().contains("8193 elements"), "{err}");
    }
}
