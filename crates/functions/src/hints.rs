//! Rhai's error texts, rephrased where they leave the user guessing: an operator applied to
//! the wrong types ("Function not found: - (i64, &str | ImmutableString | String)"), a method
//! that `ctx`, `ctx.db` or a query does not have, a field read on `()`, and the features the
//! sandbox refuses (`timestamp`, randomness, `eval`, `import`). Rhai's own text is kept, with
//! its type names shortened, so it can still be looked up; the hint follows it.
//!
//! The reasons for the refused features live here too ([`refusal`]), shared by the host API,
//! which refuses the calls it registers, and by the hints for those it does not.

use rhai::EvalAltResult;

pub(crate) const NO_CLOCK: &str = "functions must be deterministic (query results are cached and shared between clients); use ctx.now(), the time the call started";
pub(crate) const NO_RANDOM: &str = "functions must be deterministic (query results are cached and shared between clients); derive values from the arguments, and let ctx.db.insert make ids";
pub(crate) const NO_SLEEP: &str =
    "it would block the server's thread; a function should finish as fast as it can";

/// What a sandboxed-away feature says: what was called and why it is not there.
pub(crate) fn refusal(what: &str, why: &str) -> String {
    format!("{what} is not available in Pulsebase functions: {why}")
}

/// Rhai's name for its string type in signatures.
const RHAI_STRING: &str = "&str | ImmutableString | String";

/// `text` (Rhai's message without its position) with a hint when one helps.
pub(crate) fn explain(error: &EvalAltResult, text: &str) -> String {
    let text = text.replace(RHAI_STRING, "string");
    match error {
        EvalAltResult::ErrorFunctionNotFound(signature, _) => {
            let signature = signature.replace(RHAI_STRING, "string");
            match function_not_found(&signature) {
                Some(Hint::Replace(message)) => message,
                Some(Hint::Append(hint)) => format!("{text}: {hint}"),
                None => text,
            }
        }
        _ if text.contains("for type '()'") => format!(
            "{text}: the value is () (null), e.g. a field that is not set or a document that does not exist; check `if value == () {{ ... }}` first"
        ),
        _ => text,
    }
}

/// A load-time syntax error's text, with the reason for the keywords the sandbox disables.
pub(crate) fn explain_syntax(text: &str) -> String {
    if text.contains("'eval'") {
        return format!(
            "{text}: `eval` is not available in Pulsebase functions; they run only the code in functions/"
        );
    }
    if text.contains("'import'") {
        return format!(
            "{text}: `import` is not available in Pulsebase functions; each file in functions/ is a module, call another module's functions with ctx.runQuery(\"module:name\", args) or ctx.runMutation"
        );
    }
    text.to_string()
}

enum Hint {
    /// The whole message: Rhai's adds nothing.
    Replace(String),
    /// Follows Rhai's message.
    Append(String),
}

const OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "%", "**", "<<", ">>", "&", "|", "^", "<", ">", "<=", ">=", "==", "!=",
    "!", "+=", "-=", "*=", "/=", "%=", "**=", "<<=", ">>=", "&=", "|=", "^=",
];

/// `signature` is Rhai's "name (type, type)".
fn function_not_found(signature: &str) -> Option<Hint> {
    let (name, args) = signature.split_once(" (")?;
    let args: Vec<&str> = args
        .strip_suffix(')')?
        .split(", ")
        .filter(|a| !a.is_empty())
        .collect();
    match name {
        "timestamp" => return Some(Hint::Replace(refusal("timestamp()", NO_CLOCK))),
        "rand" | "random" => {
            return Some(Hint::Replace(refusal(&format!("{name}()"), NO_RANDOM)));
        }
        _ => {}
    }
    if OPERATORS.contains(&name) {
        return Some(Hint::Append(match args.as_slice() {
            [a] => format!("cannot apply `{name}` to {}", describe(a)),
            [a, b] => {
                let mut hint = format!(
                    "cannot apply `{name}` to {} and {}",
                    describe(a),
                    describe(b)
                );
                let number = |t: &str| t == "i64" || t == "f64";
                if *a == "()" || *b == "()" {
                    hint.push_str(
                        "; one side is () (null), e.g. a field that is not set: check for () first",
                    );
                } else if (*a == "string" && number(b)) || (number(a) && *b == "string") {
                    hint.push_str("; convert the string with parse_int(s) or parse_float(s), or the number with to_string()");
                } else if (*a == "i64" && *b == "f64") || (*a == "f64" && *b == "i64") {
                    hint.push_str("; convert one side with to_float() or to_int()");
                }
                hint
            }
            _ => return None,
        }));
    }
    let receiver = args.first()?;
    let methods = match *receiver {
        "Ctx" => "ctx has db, auth, runQuery(path, args), runMutation(path, args), now()",
        "Db" => {
            "ctx.db has get(id), query(table), normalizeId(table, id), and in mutations insert(table, doc), patch(id, fields), replace(id, doc), delete(id)"
        }
        "Auth" => "ctx.auth has getUserIdentity()",
        "Query" => {
            "a query has withIndex(name, |q| ...), order(\"asc\" or \"desc\"), filter(|doc| ...), then collect(), take(n), first(), unique() or paginate(#{ numItems, cursor })"
        }
        "IndexRange" => "an index range has eq(field, value), then gt, gte, lt, lte(field, value)",
        _ => return None,
    };
    Some(Hint::Append(format!(
        "no method `{name}` with these arguments; {methods}"
    )))
}

/// A Rhai type name as a user would say it.
fn describe(rhai_type: &str) -> String {
    match rhai_type {
        "i64" => "an integer".into(),
        "f64" => "a float".into(),
        "string" => "a string".into(),
        "bool" => "a boolean".into(),
        "()" => "() (null)".into(),
        "char" => "a character".into(),
        "array" => "an array".into(),
        "map" => "an object map".into(),
        "blob" => "a blob".into(),
        "Fn" => "a function".into(),
        "Ctx" => "ctx".into(),
        "Db" => "ctx.db".into(),
        "Query" => "a query".into(),
        other => format!("a value of type {other}"),
    }
}

#[cfg(test)]
mod tests {
    use rhai::Position;

    use super::*;

    fn not_found(signature: &str) -> String {
        let error = EvalAltResult::ErrorFunctionNotFound(signature.into(), Position::NONE);
        explain(&error, &format!("Function not found: {signature}"))
    }

    #[test]
    fn operators_on_the_wrong_types_say_what_was_mixed() {
        assert_eq!(
            not_found("- (i64, &str | ImmutableString | String)"),
            "Function not found: - (i64, string): cannot apply `-` to an integer and a string; convert the string with parse_int(s) or parse_float(s), or the number with to_string()"
        );
        assert!(
            not_found("+ ((), i64)")
                .contains("cannot apply `+` to () (null) and an integer; one side is () (null)")
        );
        assert!(not_found("! (i64)").ends_with("cannot apply `!` to an integer"));
    }

    #[test]
    fn missing_methods_on_host_handles_list_what_exists() {
        let text = not_found("foo (Db)");
        assert!(
            text.starts_with("Function not found: foo (Db): no method `foo`"),
            "{text}"
        );
        assert!(text.contains("ctx.db has get(id), query(table)"), "{text}");
        // Unknown functions of the script's own keep Rhai's text.
        assert_eq!(
            not_found("helper (i64)"),
            "Function not found: helper (i64)"
        );
    }

    #[test]
    fn refused_features_point_to_the_alternative() {
        assert!(not_found("timestamp (i64)").contains("use ctx.now()"));
        assert!(not_found("rand ()").contains("must be deterministic"));
        assert!(
            explain_syntax("reserved keyword 'eval' is disabled")
                .contains("`eval` is not available")
        );
        assert!(explain_syntax("reserved keyword 'import' is disabled").contains("ctx.runQuery"));
    }
}
