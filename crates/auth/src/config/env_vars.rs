//! `${NAME}` references in `auth.config.toml` values, resolved through the lookup the caller
//! passes (the process environment, `.env.local`, `.env`), so secrets and per-deployment
//! domains stay out of the file.

use super::error::AuthConfigErrorKind;

/// Replaces each `${NAME}` with `env(NAME)`.
pub(super) fn substitute(
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, AuthConfigErrorKind> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(AuthConfigErrorKind::BadEnvReference(
            "`${` without a closing `}`",
        ))?;
        let name = &after[..end];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(AuthConfigErrorKind::BadEnvReference(
                "the name inside ${...} is not a variable name",
            ));
        }
        match env(name) {
            None => {
                return Err(AuthConfigErrorKind::MissingEnvVar {
                    name: name.to_owned(),
                });
            }
            Some(v) if v.trim().is_empty() => {
                return Err(AuthConfigErrorKind::EmptyEnvVar {
                    name: name.to_owned(),
                });
            }
            Some(v) => out.push_str(v.trim()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
