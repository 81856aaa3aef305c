//! How a verified token's claims become the fields of a UserIdentity, as Convex's own backend
//! maps them: OIDC providers (Clerk, the dev issuer) get the standard claims renamed to
//! camelCase and custom claims kept nested; customJwt providers get no renaming and nested
//! objects flattened to dotted keys. Claims that change on every refresh (`exp`, `iat`, `nbf`,
//! `jti`, `fva`, ...) are dropped, so an identity stays the same across token refreshes.

use serde_json::{Map, Value};

use crate::provider::ClaimMapping;

/// The fields every identity has.
pub const SUBJECT: &str = "subject";
/// See [`SUBJECT`].
pub const ISSUER: &str = "issuer";
/// See [`SUBJECT`].
pub const TOKEN_IDENTIFIER: &str = "tokenIdentifier";

/// Adds the fields `mapping` makes of `claims` to `out` (which already holds the three core
/// fields, which no claim may overwrite).
pub(super) fn map_claims(
    claims: &Map<String, Value>,
    mapping: ClaimMapping,
    out: &mut Map<String, Value>,
) {
    match mapping {
        ClaimMapping::Oidc => map_oidc(claims, out),
        ClaimMapping::CustomJwt => map_custom_jwt(claims, out),
    }
}

/// OIDC standard claims and the camelCase name Convex gives each.
const STANDARD_CLAIMS: [(&str, &str); 18] = [
    ("name", "name"),
    ("given_name", "givenName"),
    ("family_name", "familyName"),
    ("nickname", "nickname"),
    ("preferred_username", "preferredUsername"),
    ("profile", "profileUrl"),
    ("picture", "pictureUrl"),
    ("website", "websiteUrl"),
    ("email", "email"),
    ("email_verified", "emailVerified"),
    ("gender", "gender"),
    ("birthdate", "birthday"),
    ("zoneinfo", "timezone"),
    ("locale", "language"),
    ("phone_number", "phoneNumber"),
    ("phone_number_verified", "phoneNumberVerified"),
    ("address", "address"),
    ("updated_at", "updatedAt"),
];

/// Claims consumed by the OIDC ID-token structure or dropped as per-refresh noise. `birthday`
/// is swallowed by Convex's OIDC library, so it is dropped here too.
const OIDC_DROPPED: [&str; 16] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "fva",
    "birthday",
];

/// Registered claims a customJwt identity leaves out.
const CUSTOM_JWT_DROPPED: [&str; 8] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "fva"];

fn is_reserved(key: &str) -> bool {
    // A token must never be able to set its own tokenIdentifier through a custom claim.
    matches!(key, SUBJECT | ISSUER | TOKEN_IDENTIFIER)
}

fn map_oidc(claims: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (claim, field) in STANDARD_CLAIMS {
        if let Some(value) = claims.get(claim).and_then(|v| standard_value(claim, v)) {
            out.insert(field.into(), value);
        }
    }
    for (key, value) in claims {
        let base = key.split('#').next().unwrap_or(key);
        let is_standard = STANDARD_CLAIMS.iter().any(|(c, _)| *c == base);
        if is_standard || OIDC_DROPPED.contains(&key.as_str()) || is_reserved(key) {
            continue;
        }
        if !out.contains_key(key) {
            out.insert(key.clone(), value.clone());
        }
    }
}

/// Converts a standard claim to Convex's type; `None` (omitted) for null or unusable values.
fn standard_value(claim: &str, value: &Value) -> Option<Value> {
    match (claim, value) {
        (_, Value::Null) => None,
        ("email_verified" | "phone_number_verified", Value::Bool(b)) => Some(Value::Bool(*b)),
        ("email_verified" | "phone_number_verified", Value::String(s)) => match s.as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ("email_verified" | "phone_number_verified", _) => None,
        ("address", Value::Object(addr)) => addr
            .get("formatted")
            .and_then(Value::as_str)
            .map(|s| Value::String(s.to_owned())),
        ("address", Value::String(s)) => Some(Value::String(s.clone())),
        ("updated_at", Value::Number(n)) => {
            let secs = n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f.floor() as i64))?;
            Some(Value::String(rfc3339(secs)))
        }
        ("updated_at", Value::String(s)) => Some(Value::String(s.clone())),
        (_, Value::String(s)) => Some(Value::String(s.clone())),
        _ => None,
    }
}

fn map_custom_jwt(claims: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (key, value) in claims {
        if CUSTOM_JWT_DROPPED.contains(&key.as_str()) {
            continue;
        }
        flatten_into(key, value, out);
    }
}

fn flatten_into(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::Object(inner) => {
            for (k, v) in inner {
                flatten_into(&format!("{prefix}.{k}"), v, out);
            }
        }
        _ => {
            if !is_reserved(prefix) {
                out.insert(prefix.to_owned(), value.clone());
            }
        }
    }
}

/// Unix seconds → RFC 3339 with `+00:00`, as chrono's `to_rfc3339()` prints it.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days → (year, month, day) for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
