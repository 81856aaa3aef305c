//! The type language (`schema::Type`) in TypeScript, as `api.d.ts` and `dataModel.d.ts`
//! write argument, return and document types.

use schema::{ObjectType, Schema, Type};
use value::Value;

use super::syntax::{js_string, property};

/// Maps the type language to TypeScript; knows which tables `Id<..>` may name.
pub(super) struct TypeContext<'a> {
    pub schema: &'a Schema,
}

impl TypeContext<'_> {
    pub fn ts(&self, ty: &Type) -> String {
        match ty {
            Type::Any => "any".into(),
            Type::Null => "null".into(),
            Type::Number => "number".into(),
            Type::Int64 => "bigint".into(),
            Type::Boolean => "boolean".into(),
            Type::String => "string".into(),
            Type::Bytes => "ArrayBuffer".into(),
            Type::Id(table) if self.schema.tables.contains_key(table) => {
                format!("Id<{}>", js_string(table))
            }
            // A validator may name a table the schema does not declare (yet).
            Type::Id(table) => format!("GenericId<{}>", js_string(table)),
            Type::Doc(table) if self.schema.tables.contains_key(table) => {
                format!("Doc<{}>", js_string(table))
            }
            Type::Doc(table) => format!(
                "{{ _id: GenericId<{}>; _creationTime: number; [field: string]: any }}",
                js_string(table)
            ),
            Type::Literal(value) => literal(value),
            Type::Array(item) => format!("Array<{}>", self.ts(item)),
            Type::Record(item) => format!("Record<string, {}>", self.ts(item)),
            Type::Object(object) => self.object(object),
            Type::Union(options) => {
                let options: Vec<String> = options.iter().map(|t| self.ts(t)).collect();
                format!("({})", options.join(" | "))
            }
            Type::Optional(inner) => format!("({} | undefined)", self.ts(inner)),
        }
    }

    pub fn object(&self, object: &ObjectType) -> String {
        if object.fields.is_empty() {
            return "{}".into();
        }
        let fields: Vec<String> = object
            .fields
            .iter()
            .map(|(name, ty)| self.field(name, ty))
            .collect();
        format!("{{ {} }}", fields.join("; "))
    }

    pub fn field(&self, name: &str, ty: &Type) -> String {
        match ty {
            Type::Optional(inner) => format!("{}?: {}", property(name), self.ts(inner)),
            ty => format!("{}: {}", property(name), self.ts(ty)),
        }
    }
}

fn literal(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::String(s) => js_string(s),
        Value::Int64(i) => format!("{i}n"),
        Value::Float64(f) if f.is_finite() => {
            let text = f.to_string();
            if text == "-0" { "0".into() } else { text }
        }
        Value::Float64(_) => "number".into(),
        Value::Bytes(_) => "ArrayBuffer".into(),
        Value::Array(_) | Value::Object(_) => "any".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_valid_typescript() {
        assert_eq!(literal(&Value::Int64(-3)), "-3n");
        assert_eq!(literal(&Value::Float64(2.5)), "2.5");
        assert_eq!(literal(&Value::Float64(f64::NAN)), "number");
        assert_eq!(literal(&Value::String("a\"b".into())), "\"a\\\"b\"");
    }
}
