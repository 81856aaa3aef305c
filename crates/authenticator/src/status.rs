//! What the authenticator can tell an operator without verifying anything: each provider's key
//! cache ([`ProviderStatus`]: keys cached, last fetch, last error) and the tokens it refused,
//! counted by reason ([`REJECTION_REASONS`], [`rejection_reason`]). Read by the dashboard's
//! auth page and by `/metrics`.

use auth::TokenRejection;

/// The state of one provider's key cache.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// Keys held now (0 before the first successful fetch).
    pub keys_cached: usize,
    /// `kid`s of the keys held.
    pub key_ids: Vec<String>,
    /// Where keys come from: `fixed` (the dev issuer, a data: URI) or `fetched`.
    pub source: &'static str,
    /// Unix seconds of the last fetch attempt, if any.
    pub last_fetch_at: Option<u64>,
    /// Unix seconds until which the held keys are fresh (a later use fetches again).
    pub fresh_until: Option<u64>,
    /// The last fetch's error and when it happened, if it failed.
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
}

/// One trusted provider and its key cache.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// How `auth.config.toml` (or the dev issuer) describes it.
    pub label: String,
    /// `oidc`, `customJwt` or `builtin`.
    pub kind: &'static str,
    pub issuer: String,
    pub application_id: Option<String>,
    pub keys: KeyStatus,
}

/// The reasons `/metrics` counts token rejections by, snake case, `other` last.
pub const REJECTION_REASONS: &[&str] = &[
    "malformed",
    "too_large",
    "missing_claim",
    "invalid_claim",
    "issuer_mismatch",
    "audience_missing",
    "unknown_kid",
    "no_compatible_key",
    "ambiguous_key",
    "bad_signature",
    "expired",
    "expires_too_late",
    "not_yet_valid",
    "issued_in_future",
    "unsupported_algorithm",
    "algorithm_mismatch",
    "no_matching_provider",
    "no_providers_configured",
    "key_fetch_failed",
    "other",
];

/// The label of a rejection in [`REJECTION_REASONS`].
pub fn rejection_reason(rejection: &TokenRejection) -> &'static str {
    match rejection {
        TokenRejection::Malformed { .. } => "malformed",
        TokenRejection::TooLarge { .. } => "too_large",
        TokenRejection::MissingClaim(_) => "missing_claim",
        TokenRejection::InvalidClaim { .. } => "invalid_claim",
        TokenRejection::IssuerMismatch { .. } => "issuer_mismatch",
        TokenRejection::AudienceMissing { .. } => "audience_missing",
        TokenRejection::UnknownKid { .. } => "unknown_kid",
        TokenRejection::NoCompatibleKey { .. } => "no_compatible_key",
        TokenRejection::AmbiguousKey { .. } => "ambiguous_key",
        TokenRejection::BadSignature { .. } => "bad_signature",
        TokenRejection::Expired { .. } => "expired",
        TokenRejection::ExpiresTooLate { .. } => "expires_too_late",
        TokenRejection::NotYetValid { .. } => "not_yet_valid",
        TokenRejection::IssuedInFuture { .. } => "issued_in_future",
        TokenRejection::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
        TokenRejection::AlgorithmMismatch { .. } => "algorithm_mismatch",
        TokenRejection::NoMatchingProvider { .. } => "no_matching_provider",
        TokenRejection::NoProvidersConfigured => "no_providers_configured",
        TokenRejection::KeyFetch { .. } => "key_fetch_failed",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}
