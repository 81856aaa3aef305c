//! [`Document`]: a stored object with its system fields, and its storage form (convex JSON of
//! the whole document, `_id` and `_creationTime` included).

use value::{DocumentId, Object, Value};

use crate::error::DbError;

/// One document as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub id: DocumentId,
    /// Milliseconds since the Unix epoch; strictly increasing across inserts.
    pub creation_time: f64,
    /// User fields only (no `_id` / `_creationTime`).
    pub fields: Object,
}

impl Document {
    /// The value a function sees: user fields plus `_id` and `_creationTime`.
    pub fn to_value(&self) -> Value {
        let mut object = self.fields.clone();
        object.insert("_id".to_string(), Value::String(self.id.to_string()));
        object.insert(
            "_creationTime".to_string(),
            Value::Float64(self.creation_time),
        );
        Value::Object(object)
    }

    pub(crate) fn to_storage(&self) -> String {
        self.to_value().to_json_string()
    }

    pub(crate) fn from_storage(text: &str) -> Result<Document, DbError> {
        let corrupt = |why: &str| DbError::Corrupt(format!("stored document: {why}"));
        let Value::Object(mut fields) =
            Value::from_json_str(text).map_err(|e| corrupt(&e.to_string()))?
        else {
            return Err(corrupt("not an object"));
        };
        let id = match fields.remove("_id") {
            Some(Value::String(id)) => {
                DocumentId::parse(&id).map_err(|e| corrupt(&e.to_string()))?
            }
            _ => return Err(corrupt("missing _id")),
        };
        let creation_time = match fields.remove("_creationTime") {
            Some(Value::Float64(t)) => t,
            _ => return Err(corrupt("missing _creationTime")),
        };
        Ok(Document {
            id,
            creation_time,
            fields,
        })
    }

    /// Size counted against the 1 MiB document limit (system fields included), computed
    /// without building the full value.
    pub fn size(&self) -> usize {
        let fields: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + 1 + v.size())
            .sum();
        // `_id` (string) and `_creationTime` (float) as `Value::size` counts them.
        2 + fields
            + ("_id".len() + 1 + self.id.as_str().len() + 2)
            + ("_creationTime".len() + 1 + 9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use value::TableNumber;

    #[test]
    fn size_matches_the_full_value() {
        let doc = Document {
            id: DocumentId::generate(TableNumber(3)),
            creation_time: 1.5,
            fields: Object::from([
                ("text".to_string(), Value::from("hello")),
                ("n".to_string(), Value::Int64(1)),
            ]),
        };
        assert_eq!(doc.size(), doc.to_value().size());
    }
}
