//! [`IndexRangeBuilder`]: the `q` of `withIndex(name, |q| q.eq(..).gte(..))`, and the
//! [`KeyRange`] it builds. Ranges follow Convex: `eq` on a prefix of the index fields in order,
//! then at most one lower (`gt`/`gte`) and one upper (`lt`/`lte`) bound on the next field.
//! Every index ends with `_creationTime`, which can be bounded too. A bound is converted the
//! way the field's declared type stores it (an integer literal bounds a `number` field).

use database::{DbError, Transaction};
use rhai::Dynamic;
use schema::Type;
use value::key::{encode_component, prefix_end};
use value::{FieldPath, KeyRange, Value};

use crate::convert::from_dynamic;

/// A range under construction inside a `withIndex` callback (`q` in `|q| q.eq(..)`).
#[derive(Clone)]
pub(crate) struct IndexRangeBuilder {
    index: String,
    /// The index fields followed by `_creationTime`.
    fields: Vec<FieldPath>,
    types: Vec<Option<Type>>,
    eqs: Vec<Value>,
    lower: Option<(Value, bool)>,
    upper: Option<(Value, bool)>,
}

impl IndexRangeBuilder {
    /// An empty range (the whole index) over `index` of `table`, with the declared type of each
    /// of its fields.
    pub(crate) fn for_index(
        txn: &mut dyn Transaction,
        table: &str,
        index: &str,
    ) -> Result<IndexRangeBuilder, DbError> {
        let info = txn.catalog().index(table, index)?;
        let mut fields = info.fields.clone();
        fields.push(FieldPath::new("_creationTime"));
        let def = txn.catalog().schema.table(table).cloned();
        let types = fields
            .iter()
            .map(|f| {
                if f.as_str() == "_creationTime" {
                    return Some(Type::Number);
                }
                field_type(def.as_ref()?.document.as_ref()?, f)
            })
            .collect();
        Ok(IndexRangeBuilder {
            index: index.to_string(),
            fields,
            types,
            eqs: Vec::new(),
            lower: None,
            upper: None,
        })
    }

    fn describe_fields(&self) -> String {
        self.fields
            .iter()
            .map(FieldPath::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn next_field(&self, op: &str, field: &str) -> Result<usize, String> {
        let position = self.eqs.len();
        let expected = self.fields.get(position).map(FieldPath::as_str);
        if expected != Some(field) {
            let hint = match expected {
                Some(e) => format!("the next field of the index is {e:?}"),
                None => "every field of the index already has an eq".to_string(),
            };
            return Err(format!(
                "withIndex({:?}): {op}({field:?}, ...) is out of order: {hint}; the index orders by [{}], and eq must come first, in that order, before one range",
                self.index,
                self.describe_fields()
            ));
        }
        Ok(position)
    }

    /// Converts the value the way the field's declared type would store it.
    fn coerce(&self, position: usize, value: &Dynamic) -> Result<Value, String> {
        let value = from_dynamic(value, "index bound")?;
        match &self.types[position] {
            Some(ty) => Ok(ty.validate(value.clone(), "", &NoIds).unwrap_or(value)),
            None => Ok(value),
        }
    }

    pub(crate) fn eq(&mut self, field: &str, value: &Dynamic) -> Result<Self, String> {
        if self.lower.is_some() || self.upper.is_some() {
            return Err(format!(
                "withIndex({:?}): eq({field:?}) cannot follow a range bound; put eq first",
                self.index
            ));
        }
        let position = self.next_field("eq", field)?;
        let value = self.coerce(position, value)?;
        self.eqs.push(value);
        Ok(self.clone())
    }

    pub(crate) fn bound(&mut self, op: &str, field: &str, value: &Dynamic) -> Result<Self, String> {
        let position = self.next_field(op, field)?;
        let value = self.coerce(position, value)?;
        let (slot, inclusive) = match op {
            "gt" => (&mut self.lower, false),
            "gte" => (&mut self.lower, true),
            "lt" => (&mut self.upper, false),
            _ => (&mut self.upper, true),
        };
        if slot.is_some() {
            return Err(format!(
                "withIndex({:?}): {op}({field:?}) repeats a bound that is already set",
                self.index
            ));
        }
        *slot = Some((value, inclusive));
        Ok(self.clone())
    }

    /// The key range the bounds select.
    pub(crate) fn range(&self) -> KeyRange {
        let mut prefix = Vec::new();
        for value in &self.eqs {
            encode_component(&mut prefix, Some(value));
        }
        let with = |value: &Value| {
            let mut key = prefix.clone();
            encode_component(&mut key, Some(value));
            key
        };
        let start = match &self.lower {
            None => Some(prefix.clone()),
            Some((v, true)) => Some(with(v)),
            Some((v, false)) => prefix_end(&with(v)),
        };
        let end = match &self.upper {
            None => prefix_end(&prefix),
            Some((v, false)) => Some(with(v)),
            Some((v, true)) => prefix_end(&with(v)),
        };
        match start {
            Some(start) => KeyRange { start, end },
            // `gt` of the largest possible key: nothing qualifies.
            None => KeyRange {
                start: vec![0xFF],
                end: Some(vec![0xFF]),
            },
        }
    }
}

/// The id lookup for converting a bound, which has no tables at hand; `coerce` keeps the value
/// as given whenever validation fails.
struct NoIds;
impl schema::IdTables for NoIds {
    fn table_of(&self, id: &str) -> Option<String> {
        value::DocumentId::parse(id).ok().map(|_| String::new())
    }
}

/// The declared type of a (possibly nested) field, if the schema declares it.
fn field_type(document: &schema::ObjectType, field: &FieldPath) -> Option<Type> {
    let mut object = document;
    let mut parts = field.parts().peekable();
    while let Some(part) = parts.next() {
        let mut ty = object.fields.get(part)?;
        if let Type::Optional(inner) = ty {
            ty = inner;
        }
        if parts.peek().is_none() {
            return Some(ty.clone());
        }
        match ty {
            Type::Object(inner) => object = inner,
            _ => return None,
        }
    }
    None
}
