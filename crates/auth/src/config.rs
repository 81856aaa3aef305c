//! `auth.config.toml`: the providers an app trusts, parsed from text with every mistake
//! reported as `file:line:column: what is wrong: how to fix it`.
//!
//! The parse works on toml's spanned document (`DeTable`) rather than serde structs so that
//! each error points at the offending key or value, unknown keys get a spelling suggestion
//! (`applicationId` → `applicationID`), and `${VAR}` references are resolved through a lookup
//! function the caller provides (process env, `.env.local`, `.env`). No file is read here.
//!
//! This file walks the document (keys, provider tables, which keys each type takes);
//! `error` holds the error types, `urls` turns issuer and JWKS values into checked URLs and
//! sources, `env_vars` resolves `${VAR}`.

mod env_vars;
mod error;
mod urls;

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use self::env_vars::substitute;
pub use self::error::{AuthConfigError, AuthConfigErrorKind};
use self::urls::{issuer_url, jwks_source};
use crate::keys::KeyAlgorithm;
use crate::provider::Provider;

/// The parsed configuration: providers in file order (the first match wins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthConfig {
    /// Trusted providers, in file order.
    pub providers: Vec<Provider>,
}

const TOP_LEVEL_KEYS: [&str; 1] = ["providers"];
const PROVIDER_KEYS: [&str; 6] = [
    "type",
    "domain",
    "issuer",
    "jwks",
    "algorithm",
    "applicationID",
];
const PROVIDER_KEYS_TEXT: &str = "type, domain, issuer, jwks, algorithm, applicationID";
const TYPES: [&str; 2] = ["customJwt", "oidc"];

/// An error before it learns its file name and line.
struct Located {
    span: Range<usize>,
    kind: AuthConfigErrorKind,
}

fn at(span: Range<usize>, kind: AuthConfigErrorKind) -> Located {
    Located { span, kind }
}

impl AuthConfig {
    /// No providers: every token is rejected with `NoProvidersConfigured`.
    pub fn empty() -> AuthConfig {
        AuthConfig::default()
    }

    /// Parses the text of `auth.config.toml`. `file_label` names the file in errors; `env`
    /// resolves `${VAR}`. An empty file, or one without `providers`, means no providers.
    pub fn parse(
        text: &str,
        file_label: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AuthConfig, AuthConfigError> {
        parse_located(text, env).map_err(|e| {
            let (line, column) = line_column(text, e.span.start);
            AuthConfigError {
                file: file_label.to_owned(),
                line,
                column,
                kind: e.kind,
            }
        })
    }
}

fn parse_located(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<AuthConfig, Located> {
    let root = DeTable::parse(text).map_err(|e| {
        at(
            e.span().unwrap_or(0..0),
            AuthConfigErrorKind::Syntax(e.message().trim().to_owned()),
        )
    })?;
    let mut providers = Vec::new();
    for (key, value) in in_file_order(root.get_ref()) {
        if !TOP_LEVEL_KEYS.contains(&key.get_ref().as_ref()) {
            return Err(unknown_key(key, &TOP_LEVEL_KEYS, "providers"));
        }
        let DeValue::Array(items) = value.get_ref() else {
            return Err(at(value.span(), AuthConfigErrorKind::ProvidersNotAList));
        };
        for item in items.iter() {
            let DeValue::Table(table) = item.get_ref() else {
                return Err(at(item.span(), AuthConfigErrorKind::ProvidersNotAList));
            };
            providers.push(parse_provider(table, item.span(), env)?);
        }
    }
    Ok(AuthConfig { providers })
}

/// toml's map is sorted by key; errors should come in the order a reader meets them.
fn in_file_order<'t, 'i>(
    table: &'t DeTable<'i>,
) -> Vec<(&'t Spanned<DeString<'i>>, &'t Spanned<DeValue<'i>>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

fn unknown_key(
    key: &Spanned<DeString<'_>>,
    known: &[&'static str],
    expected: &'static str,
) -> Located {
    at(
        key.span(),
        AuthConfigErrorKind::UnknownKey {
            key: key.get_ref().to_string(),
            suggestion: suggest(key.get_ref(), known),
            expected,
        },
    )
}

/// A provider table's string values after `${VAR}` substitution, with their spans.
struct Fields {
    table_span: Range<usize>,
    values: Vec<(&'static str, String, Range<usize>)>,
}

impl Fields {
    fn get(&self, key: &str) -> Option<(&str, Range<usize>)> {
        self.values
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, v, span)| (v.as_str(), span.clone()))
    }

    fn require(
        &self,
        key: &'static str,
        provider: &'static str,
        hint: &'static str,
    ) -> Result<(&str, Range<usize>), Located> {
        self.get(key).ok_or_else(|| {
            at(
                self.table_span.clone(),
                AuthConfigErrorKind::MissingKey {
                    provider,
                    key,
                    hint,
                },
            )
        })
    }
}

fn parse_provider(
    table: &DeTable<'_>,
    table_span: Range<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, Located> {
    let mut fields = Fields {
        table_span,
        values: Vec::new(),
    };
    for (key, value) in in_file_order(table) {
        let Some(known) = PROVIDER_KEYS.iter().find(|k| **k == key.get_ref().as_ref()) else {
            return Err(unknown_key(key, &PROVIDER_KEYS, PROVIDER_KEYS_TEXT));
        };
        let DeValue::String(raw) = value.get_ref() else {
            return Err(at(
                value.span(),
                AuthConfigErrorKind::NotAString {
                    key: (*known).to_owned(),
                },
            ));
        };
        let resolved = substitute(raw, env).map_err(|kind| at(value.span(), kind))?;
        fields.values.push((known, resolved, value.span()));
    }

    let kind = match fields.get("type") {
        None => "oidc",
        Some((t, span)) => match TYPES.iter().find(|k| **k == t) {
            Some(known) => known,
            None => {
                return Err(at(
                    span,
                    AuthConfigErrorKind::UnknownType {
                        value: t.to_owned(),
                        suggestion: suggest(t, &TYPES),
                    },
                ));
            }
        },
    };
    if kind == "oidc" {
        parse_oidc(&fields)
    } else {
        parse_custom_jwt(&fields)
    }
}

fn parse_oidc(fields: &Fields) -> Result<Provider, Located> {
    for key in ["issuer", "jwks", "algorithm"] {
        if let Some((_, span)) = fields.get(key) {
            return Err(at(span, AuthConfigErrorKind::CustomJwtKeyOnOidc(key)));
        }
    }
    const WHAT: &str = "an OpenID Connect provider";
    let (domain, span) = fields.require(
        "domain",
        WHAT,
        "add domain = \"${CLERK_JWT_ISSUER_DOMAIN}\" (your Clerk Frontend API URL)",
    )?;
    let domain = issuer_url("domain", domain).map_err(|kind| at(span, kind))?;
    let (app, _) = fields.require(
        "applicationID",
        WHAT,
        "add applicationID = \"convex\" (the aud of your Clerk `convex` JWT template)",
    )?;
    Ok(Provider::Oidc {
        domain,
        application_id: app.to_owned(),
    })
}

fn parse_custom_jwt(fields: &Fields) -> Result<Provider, Located> {
    if let Some((_, span)) = fields.get("domain") {
        return Err(at(span, AuthConfigErrorKind::DomainOnCustomJwt));
    }
    const WHAT: &str = "a customJwt provider";
    let (issuer, span) = fields.require(
        "issuer",
        WHAT,
        "add issuer = \"https://...\" (the iss of its tokens)",
    )?;
    let issuer = issuer_url("issuer", issuer).map_err(|kind| at(span, kind))?;
    let (jwks, span) = fields.require(
        "jwks",
        WHAT,
        "add jwks = \"https://.../jwks.json\" (or a file path, or a data: URI)",
    )?;
    let jwks = jwks_source(jwks).map_err(|kind| at(span, kind))?;
    let (alg, span) = fields.require(
        "algorithm",
        WHAT,
        "add algorithm = \"RS256\" (or \"ES256\")",
    )?;
    let algorithm = KeyAlgorithm::from_jose(alg).ok_or_else(|| {
        at(
            span,
            AuthConfigErrorKind::UnsupportedAlgorithm(alg.to_owned()),
        )
    })?;
    Ok(Provider::CustomJwt {
        issuer,
        jwks,
        algorithm,
        application_id: fields.get("applicationID").map(|(a, _)| a.to_owned()),
    })
}

/// The known key closest to `given`: same letters in another case, or at most two edits away.
fn suggest(given: &str, known: &[&'static str]) -> Option<&'static str> {
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(given)) {
        return Some(k);
    }
    let lower = given.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// 1-based line and character column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
