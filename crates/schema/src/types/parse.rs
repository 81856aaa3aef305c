//! Reading a type expression: a small recursive-descent parser over the text, with the byte
//! offset of every error and a "did you mean" for misspelt type names.

use value::Value;

use super::{ObjectType, Type, TypeParseError};

impl Type {
    /// Parses a type expression.
    pub fn parse(text: &str) -> Result<Type, TypeParseError> {
        let mut parser = Parser { text, pos: 0 };
        let ty = parser.union()?;
        parser.skip_ws();
        if parser.pos < text.len() {
            return Err(parser.error(format!(
                "unexpected {:?} after the type",
                &text[parser.pos..]
            )));
        }
        Ok(ty)
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

const TYPE_NAMES: [&str; 14] = [
    "any", "null", "number", "float64", "int64", "boolean", "string", "bytes", "id", "doc",
    "array", "object", "optional", "record",
];

impl<'a> Parser<'a> {
    fn error(&self, message: String) -> TypeParseError {
        TypeParseError {
            offset: self.pos,
            message,
        }
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }

    fn eat(&mut self, token: char) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(token) {
            self.pos += token.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: char, context: &str) -> Result<(), TypeParseError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(format!("expected '{token}' {context}")))
        }
    }

    fn ident(&mut self) -> &'a str {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += len;
        &self.text[start..start + len]
    }

    fn union(&mut self) -> Result<Type, TypeParseError> {
        let mut options = vec![self.primary()?];
        while self.eat('|') {
            options.push(self.primary()?);
        }
        Ok(if options.len() == 1 {
            options.remove(0)
        } else {
            Type::Union(options)
        })
    }

    fn primary(&mut self) -> Result<Type, TypeParseError> {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        if rest.starts_with('"') || rest.starts_with('\'') {
            return self.string_literal();
        }
        if rest.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            let len = rest
                .find(|c: char| !(c == '-' || c == '.' || c == 'e' || c.is_ascii_digit()))
                .unwrap_or(rest.len());
            let number: f64 = rest[..len]
                .parse()
                .map_err(|_| self.error(format!("{:?} is not a number literal", &rest[..len])))?;
            self.pos += len;
            return Ok(Type::Literal(Value::Float64(number)));
        }
        if self.eat('(') {
            let inner = self.union()?;
            self.expect(')', "to close the parenthesis")?;
            return Ok(inner);
        }
        let start = self.pos;
        let name = self.ident();
        Ok(match name {
            "any" => Type::Any,
            "null" => Type::Null,
            "number" | "float64" => Type::Number,
            "int64" => Type::Int64,
            "boolean" => Type::Boolean,
            "string" => Type::String,
            "bytes" => Type::Bytes,
            "true" => Type::Literal(Value::Boolean(true)),
            "false" => Type::Literal(Value::Boolean(false)),
            "id" | "doc" => {
                self.expect('<', &format!("after {name} (write {name}<TABLE>)"))?;
                // `id<"_storage">` (Convex's spelling) and `id<_storage>` mean the same.
                let quote = ['"', '\''].into_iter().find(|q| self.eat(*q));
                let table = self.ident();
                if let Some(quote) = quote {
                    self.expect(
                        quote,
                        &format!("to close the quoted table name in {name}<...>"),
                    )?;
                }
                if table.is_empty() {
                    return Err(self.error(format!("expected a table name in {name}<TABLE>")));
                }
                self.expect('>', &format!("to close {name}<TABLE>"))?;
                if name == "id" {
                    Type::Id(table.to_string())
                } else {
                    Type::Doc(table.to_string())
                }
            }
            "array" | "optional" => {
                self.expect('<', &format!("after {name} (write {name}<TYPE>)"))?;
                let inner = Box::new(self.union()?);
                self.expect('>', &format!("to close {name}<...>"))?;
                if name == "array" {
                    Type::Array(inner)
                } else {
                    Type::Optional(inner)
                }
            }
            "record" => {
                self.expect('<', "after record (write record<string, TYPE>)")?;
                let key = self.ident();
                if key != "string" {
                    return Err(self.error(
                        "record keys must be string: write record<string, TYPE>".to_string(),
                    ));
                }
                self.expect(',', "after the key type of record<string, TYPE>")?;
                let inner = Box::new(self.union()?);
                self.expect('>', "to close record<...>")?;
                Type::Record(inner)
            }
            "object" => self.object()?,
            "" => {
                self.pos = start;
                return Err(self.error("expected a type".to_string()));
            }
            unknown => {
                self.pos = start;
                let hint = suggest(unknown)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(self.error(format!(
                    "unknown type `{unknown}`{hint}; types are string, number, int64, boolean, null, bytes, any, id<T>, array<T>, optional<T>, record<string, T>, object{{..}}, literals and unions T | U"
                )));
            }
        })
    }

    fn object(&mut self) -> Result<Type, TypeParseError> {
        self.expect('{', "after object (write object{field: TYPE, ...})")?;
        let mut object = ObjectType::default();
        loop {
            if self.eat('}') {
                return Ok(Type::Object(object));
            }
            let name = self.ident();
            if name.is_empty() {
                return Err(self.error("expected a field name or '}'".to_string()));
            }
            let optional = self.eat('?');
            self.expect(':', &format!("after field name `{name}`"))?;
            let mut ty = self.union()?;
            if optional {
                ty = Type::Optional(Box::new(ty));
            }
            if object.fields.insert(name.to_string(), ty).is_some() {
                return Err(self.error(format!("field `{name}` is declared twice")));
            }
            if !self.eat(',') {
                self.expect('}', "or ',' between object fields")?;
                return Ok(Type::Object(object));
            }
        }
    }

    fn string_literal(&mut self) -> Result<Type, TypeParseError> {
        let quote = self.text[self.pos..].chars().next().unwrap_or('"');
        let body_start = self.pos + 1;
        match self.text[body_start..].find(quote) {
            Some(len) => {
                self.pos = body_start + len + 1;
                Ok(Type::Literal(Value::String(
                    self.text[body_start..body_start + len].to_string(),
                )))
            }
            None => Err(self.error("unterminated string literal".to_string())),
        }
    }
}

/// The closest known type name, for "did you mean" hints.
fn suggest(unknown: &str) -> Option<&'static str> {
    let lower = unknown.to_ascii_lowercase();
    match lower.as_str() {
        "str" | "text" => return Some("string"),
        "int" | "integer" | "bigint" | "i64" => return Some("int64"),
        "float" | "double" | "f64" => return Some("number"),
        "bool" => return Some("boolean"),
        "list" => return Some("array"),
        _ => {}
    }
    TYPE_NAMES
        .iter()
        .copied()
        .filter(|name| strsim::levenshtein(&lower, name) <= 2)
        .min_by_key(|name| strsim::levenshtein(&lower, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_whole_language() {
        for text in [
            "string",
            "optional<id<users>>",
            "array<object{a: number, b?: string}>",
            "'admin' | 'user' | null",
            "record<string, int64>",
            "(string | number)",
            "object{}",
        ] {
            let ty = Type::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(Type::parse(&ty.to_string()).expect("display reparses"), ty);
        }
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        let err = Type::parse("array<strin>").unwrap_err();
        assert_eq!(err.offset, 6);
        assert!(
            err.message.contains("did you mean `string`"),
            "{}",
            err.message
        );
        assert!(
            Type::parse("array<string")
                .unwrap_err()
                .message
                .contains("close")
        );
        assert!(Type::parse("int").unwrap_err().message.contains("int64"));
    }

    #[test]
    fn doc_parses_like_id() {
        assert_eq!(
            Type::parse("array<doc<todos>>"),
            Ok(Type::Array(Box::new(Type::Doc("todos".to_string()))))
        );
        assert_eq!(Type::Doc("todos".into()).to_string(), "doc<todos>");
        assert!(
            Type::parse("doc<>")
                .unwrap_err()
                .message
                .contains("doc<TABLE>")
        );
        assert!(
            Type::parse("dco<todos>")
                .unwrap_err()
                .message
                .contains("`doc`")
        );
    }
}
