//! `auth.config.toml`: the providers an app trusts, parsed from text with every mistake
//! reported as `file:line:column: what is wrong: how to fix it`.
//!
//! The parse works on toml's spanned document (`DeTable`) rather than serde structs so that
//! each error points at the offending key or value, unknown keys get a spelling suggestion
//! (`applicationId` → `applicationID`), and `${VAR}` references are resolved through a lookup
//! function the caller provides (process env, `.env.local`, `.env`). No file is read here.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};
use url::Url;

use crate::keys::{KeyAlgorithm, KeySet, decode_data_uri};
use crate::provider::{JwksSource, Provider, UrlPolicyError, check_fetch_url};

/// The parsed configuration: providers in file order (the first match wins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthConfig {
    /// Trusted providers, in file order.
    pub providers: Vec<Provider>,
}

/// A configuration error located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AuthConfigError {
    /// The file, as the caller named it.
    pub file: String,
    /// 1-based line; 0 when the error concerns the whole file.
    pub line: usize,
    /// 1-based column (in characters); 0 when the error concerns the whole file.
    pub column: usize,
    /// What is wrong.
    pub kind: AuthConfigErrorKind,
}

impl fmt::Display for AuthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.kind)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.kind
            )
        }
    }
}

/// Every way `auth.config.toml` can be wrong; each message ends with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigErrorKind {
    /// Not valid TOML.
    #[error(
        "invalid TOML: {0}: check the quotes and brackets here; each provider is a [[providers]] section of key = \"value\" lines"
    )]
    Syntax(String),
    /// The file could not be read (reported by the loader).
    #[error("cannot read the file: {0}: check that it exists and that this user may read it")]
    Unreadable(String),
    /// A key we do not know.
    #[error("unknown key `{key}`: {}", match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("expected one of {expected}"),
    })]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The closest known key.
        suggestion: Option<&'static str>,
        /// The keys allowed here.
        expected: &'static str,
    },
    /// `providers` is not a list of tables.
    #[error("`providers` must be a list of tables: write each provider as a [[providers]] section")]
    ProvidersNotAList,
    /// A required key is absent.
    #[error("{provider} needs `{key}`: {hint}")]
    MissingKey {
        /// Which kind of provider.
        provider: &'static str,
        /// The key.
        key: &'static str,
        /// An example line.
        hint: &'static str,
    },
    /// A value that must be a string is not.
    #[error("`{key}` must be a string: put the value in double quotes")]
    NotAString {
        /// The key.
        key: String,
    },
    /// `${NAME}` refers to an unset variable.
    #[error("${{{name}}} is not set: add it to .env.local or the environment")]
    MissingEnvVar {
        /// The variable.
        name: String,
    },
    /// `${NAME}` is set to an empty string.
    #[error("${{{name}}} is empty: give it a value in .env.local or the environment")]
    EmptyEnvVar {
        /// The variable.
        name: String,
    },
    /// A `${` without a valid name and closing brace.
    #[error("bad variable reference: {0}: write ${{NAME}} with letters, digits and underscores")]
    BadEnvReference(&'static str),
    /// A URL that does not parse or is not an issuer URL.
    #[error("`{key}` = \"{value}\" is not a valid URL: {reason}: {fix}")]
    InvalidUrl {
        /// The key.
        key: &'static str,
        /// The value after `${VAR}` substitution.
        value: String,
        /// Why (for parser failures, the parser's own words).
        reason: String,
        /// How to write it instead.
        fix: &'static str,
    },
    /// A URL the fetch policy forbids (plain http off loopback).
    #[error("`{key}` = \"{value}\": {reason}")]
    InsecureUrl {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
        /// The policy violated.
        reason: UrlPolicyError,
    },
    /// `algorithm` other than RS256/ES256.
    #[error("algorithm \"{0}\" is not supported: use \"RS256\" or \"ES256\"")]
    UnsupportedAlgorithm(String),
    /// `type` other than customJwt/oidc.
    #[error(
        "unknown provider type \"{value}\": {}",
        match suggestion {
            Some(s) => format!("did you mean \"{s}\"?"),
            None => "use type = \"customJwt\", or leave `type` out for an OpenID Connect provider".to_string(),
        }
    )]
    UnknownType {
        /// The value as written.
        value: String,
        /// The closest known type.
        suggestion: Option<&'static str>,
    },
    /// `domain` on a customJwt provider.
    #[error("a customJwt provider takes `issuer`, not `domain`: rename `domain` to `issuer`")]
    DomainOnCustomJwt,
    /// A customJwt-only key on an OIDC provider.
    #[error("`{0}` belongs to customJwt providers: add type = \"customJwt\"{hint}", hint = oidc_rename_hint(.0))]
    CustomJwtKeyOnOidc(&'static str),
    /// A `data:` JWKS that does not decode to a usable key set (the text ends with the fix).
    #[error("`jwks` data URI: {0}")]
    InvalidJwksDataUri(String),
    /// An empty value where a path or URL is needed.
    #[error("`{0}` is empty: give a URL, a file path or a data: URI")]
    EmptyValue(&'static str),
}

fn oidc_rename_hint(key: &str) -> &'static str {
    if key == "issuer" {
        ", or rename `issuer` to `domain` for an OpenID Connect provider"
    } else {
        ""
    }
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

impl AuthConfigError {
    /// An error about the whole file (no line), e.g. it could not be read.
    pub fn whole_file(file: &str, kind: AuthConfigErrorKind) -> AuthConfigError {
        AuthConfigError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            kind,
        }
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

/// Convex's issuer normalisation: trim, add `https://` when there is no scheme, then check.
/// The returned string is the value as written (plus scheme): no trailing-slash rewriting,
/// because tokens are compared against it.
fn issuer_url(key: &'static str, raw: &str) -> Result<String, AuthConfigErrorKind> {
    let value = raw.trim();
    let invalid = |reason: &str, fix: &'static str| AuthConfigErrorKind::InvalidUrl {
        key,
        value: value.to_owned(),
        reason: reason.to_owned(),
        fix,
    };
    if value.is_empty() {
        return Err(invalid(
            "it is empty",
            "give the issuer URL, like https://verb-noun-00.clerk.accounts.dev",
        ));
    }
    if value.starts_with('"') || value.starts_with('\'') {
        return Err(invalid(
            "it is wrapped in extra quotes",
            "remove the inner quotes",
        ));
    }
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        let host = value.split(['/', ':']).next().unwrap_or_default();
        if !host.contains('.') && !host.eq_ignore_ascii_case("localhost") {
            return Err(invalid(
                "it does not look like a URL (no scheme, and the host has no dot)",
                "write it as https://your-issuer.example",
            ));
        }
        format!("https://{value}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string(), url_fix(e)))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "an issuer URL has no ?query or #fragment",
            "remove everything from the ? or # on",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "an issuer URL carries no user:password@",
            "remove the user:password@ part",
        ));
    }
    check_fetch_url(&url).map_err(|reason| AuthConfigErrorKind::InsecureUrl {
        key,
        value: value.to_owned(),
        reason,
    })?;
    Ok(with_scheme)
}

fn jwks_source(raw: &str) -> Result<JwksSource, AuthConfigErrorKind> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(AuthConfigErrorKind::EmptyValue("jwks"));
    }
    if value.starts_with("data:") {
        const ENCODE: &str =
            "write data:application/json;base64, followed by the base64 of the JWKS JSON";
        let bad = |reason: &str, fix: &str| {
            AuthConfigErrorKind::InvalidJwksDataUri(format!("{reason}: {fix}"))
        };
        let bytes = decode_data_uri(value).map_err(|e| bad(e, ENCODE))?;
        let json: Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad(&format!("the payload is not JSON ({e})"), ENCODE))?;
        let set = KeySet::from_jwks_json(&json)
            .map_err(|e| bad(&e.to_string(), "encode a document like {\"keys\": [...]}"))?;
        if set.is_empty() {
            let reasons: Vec<String> = set.skipped().iter().map(|s| s.reason.clone()).collect();
            let reason = format!(
                "it holds no usable RS256/ES256 key ({})",
                if reasons.is_empty() {
                    "the key list is empty".to_owned()
                } else {
                    reasons.join("; ")
                }
            );
            return Err(bad(
                &reason,
                "include the issuer's public RSA (2048 bits or more) or P-256 key",
            ));
        }
        return Ok(JwksSource::DataUri(json));
    }
    if value.contains("://") {
        let url = Url::parse(value).map_err(|e| AuthConfigErrorKind::InvalidUrl {
            key: "jwks",
            value: value.to_owned(),
            reason: e.to_string(),
            fix: url_fix(e),
        })?;
        check_fetch_url(&url).map_err(|reason| AuthConfigErrorKind::InsecureUrl {
            key: "jwks",
            value: value.to_owned(),
            reason,
        })?;
        return Ok(JwksSource::Url(url));
    }
    Ok(JwksSource::File(PathBuf::from(value)))
}

/// How to repair a URL the parser refused; the parser's own message says only what is wrong.
fn url_fix(error: url::ParseError) -> &'static str {
    use url::ParseError as E;
    match error {
        E::InvalidPort => {
            "the port after the host must be a number from 1 to 65535, like https://your-issuer.example:8443, or left out"
        }
        E::EmptyHost => {
            "put the host name right after the scheme, like https://your-issuer.example"
        }
        E::InvalidDomainCharacter | E::IdnaError => {
            "the host name may hold only letters, digits, '-' and '.': remove spaces and other characters"
        }
        E::InvalidIpv4Address => {
            "write the IP address as four numbers 0-255, like http://127.0.0.1:3210"
        }
        E::InvalidIpv6Address => "write an IPv6 address in brackets, like http://[::1]:3210",
        _ => "write the full URL, like https://your-issuer.example/optional/path",
    }
}

/// Replaces each `${NAME}` with `env(NAME)`.
fn substitute(
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
