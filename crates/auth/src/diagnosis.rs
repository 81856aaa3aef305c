//! `pulsebase auth check`: what is in a token and what each provider thinks of it.
//!
//! A [`Diagnosis`] is built in two steps so this crate stays free of I/O: [`Diagnosis::decode`]
//! reads the token, then the caller (the `authenticator`, which can fetch keys) adds one
//! verdict per configured provider. `Display` renders the report a developer reads.

use std::fmt;

use serde_json::{Map, Value};

use crate::identity::rfc3339;
use crate::keys::KeySet;
use crate::provider::Provider;
use crate::rejection::{TokenRejection, human_duration};
use crate::token::{ParsedToken, time_claim};
use crate::verify::{VerifiedToken, verify_parsed};

/// One provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderVerdict {
    /// The provider's label.
    pub provider: String,
    /// Accepted (with the identity) or rejected (with the reason).
    pub outcome: Result<VerifiedToken, TokenRejection>,
}

/// Everything `pulsebase auth check` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The time the checks used (unix seconds).
    pub now: u64,
    /// The token's length in bytes.
    pub size: usize,
    /// The decoded JOSE header, when the token decodes.
    pub header: Option<Map<String, Value>>,
    /// The decoded claims, when the token decodes.
    pub claims: Option<Map<String, Value>>,
    /// Why the token could not be decoded at all.
    pub decode_error: Option<TokenRejection>,
    /// One verdict per provider, in configuration order.
    pub verdicts: Vec<ProviderVerdict>,
}

impl Diagnosis {
    /// Decodes the token (no verification) and starts a report with no verdicts.
    pub fn decode(token: &str, now: u64) -> Diagnosis {
        let mut diagnosis = Diagnosis {
            now,
            size: token.len(),
            header: None,
            claims: None,
            decode_error: None,
            verdicts: Vec::new(),
        };
        match ParsedToken::parse(token) {
            Ok(parsed) => {
                diagnosis.header = Some(parsed.header().clone());
                diagnosis.claims = Some(parsed.claims().clone());
            }
            Err(e) => diagnosis.decode_error = Some(e),
        }
        diagnosis
    }

    /// Records a provider's verdict.
    pub fn add_verdict(
        &mut self,
        provider: &Provider,
        outcome: Result<VerifiedToken, TokenRejection>,
    ) {
        self.verdicts.push(ProviderVerdict {
            provider: provider.to_string(),
            outcome,
        });
    }

    /// The first provider that accepted the token (the one `verify` would use).
    pub fn accepted_by(&self) -> Option<&ProviderVerdict> {
        self.verdicts.iter().find(|v| v.outcome.is_ok())
    }
}

/// Builds a full diagnosis when every provider's keys are at hand (`Err` = keys unavailable).
pub fn diagnose_with_keys(
    token: &str,
    providers: &[(&Provider, Result<&KeySet, TokenRejection>)],
    now: u64,
) -> Diagnosis {
    let mut diagnosis = Diagnosis::decode(token, now);
    if diagnosis.decode_error.is_some() {
        return diagnosis;
    }
    let Ok(parsed) = ParsedToken::parse(token) else {
        return diagnosis;
    };
    for (provider, keys) in providers {
        let outcome = provider.check_iss_aud(&parsed).and_then(|()| match keys {
            Ok(keys) => verify_parsed(&parsed, provider, keys, now),
            Err(e) => Err(e.clone()),
        });
        diagnosis.add_verdict(provider, outcome);
    }
    diagnosis
}

fn write_json_block(
    f: &mut fmt::Formatter<'_>,
    title: &str,
    map: &Map<String, Value>,
) -> fmt::Result {
    writeln!(f, "{title}:")?;
    let pretty = serde_json::to_string_pretty(map).map_err(|_| fmt::Error)?;
    for line in pretty.lines() {
        writeln!(f, "  {line}")?;
    }
    Ok(())
}

fn describe_time(claim: &str, at: u64, now: u64) -> String {
    let (future, delta) = if at > now {
        (true, at - now)
    } else {
        (false, now - at)
    };
    let d = human_duration(delta);
    match (claim, future) {
        ("exp", true) => format!("expires in {d}"),
        ("exp", false) => format!("expired {d} ago"),
        ("nbf", true) => format!("not valid for another {d}"),
        ("nbf", false) => format!("valid since {d} ago"),
        ("iat", true) => format!("issued {d} in the future"),
        ("iat", false) => format!("issued {d} ago"),
        (_, true) => format!("{d} in the future"),
        (_, false) => format!("{d} ago"),
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Token: {} bytes", self.size)?;
        if let Some(error) = &self.decode_error {
            writeln!(f, "Could not decode the token: {error}")?;
            return writeln!(f, "Result: REJECTED ({})", error.code());
        }
        if let Some(header) = &self.header {
            write_json_block(f, "Header", header)?;
        }
        if let Some(claims) = &self.claims {
            write_json_block(f, "Claims", claims)?;
            writeln!(f, "Times (now {}, {}):", self.now, rfc3339(self.now as i64))?;
            for claim in ["exp", "nbf", "iat", "auth_time"] {
                match time_claim(claims, claim) {
                    Ok(Some(at)) => writeln!(
                        f,
                        "  {claim:<9} {at}  {}  {}",
                        rfc3339(at as i64),
                        describe_time(claim, at, self.now)
                    )?,
                    Ok(None) if claim == "exp" => writeln!(f, "  exp       missing (required)")?,
                    Ok(None) => {}
                    Err(e) => writeln!(f, "  {claim:<9} {e}")?,
                }
            }
        }
        if self.verdicts.is_empty() {
            writeln!(f, "Providers: none configured: add one to auth.config.toml")?;
        } else {
            writeln!(f, "Providers:")?;
        }
        for (i, verdict) in self.verdicts.iter().enumerate() {
            writeln!(f, "  [{}] {}", i + 1, verdict.provider)?;
            match &verdict.outcome {
                Ok(verified) => writeln!(
                    f,
                    "      accepted: tokenIdentifier \"{}\", valid until {} ({})",
                    verified.identity.token_identifier(),
                    rfc3339(verified.expires_at as i64),
                    describe_time("exp", verified.expires_at, self.now)
                )?,
                Err(reason) => writeln!(f, "      rejected: {reason}")?,
            }
        }
        match self.verdicts.iter().position(|v| v.outcome.is_ok()) {
            Some(i) => writeln!(f, "Result: ACCEPTED by provider [{}]", i + 1),
            None => writeln!(f, "Result: REJECTED"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_wording() {
        assert_eq!(describe_time("exp", 142, 100), "expires in 42 s");
        assert_eq!(describe_time("exp", 100, 280), "expired 3 min ago");
        assert_eq!(describe_time("nbf", 110, 100), "not valid for another 10 s");
        assert_eq!(describe_time("iat", 90, 100), "issued 10 s ago");
    }

    #[test]
    fn undecodable_token_report() {
        let d = Diagnosis::decode("not-a-jwt", 0);
        let text = d.to_string();
        assert!(text.contains("Could not decode the token"), "{text}");
        assert!(text.contains("REJECTED (InvalidAuthHeader)"), "{text}");
    }
}
