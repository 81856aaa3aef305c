//! What can be wrong with `auth.config.toml`: [`AuthConfigError`] (the error located in its
//! file) and [`AuthConfigErrorKind`], whose every message says what is wrong and ends with
//! how to fix it.

use std::fmt;

use crate::provider::UrlPolicyError;

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
