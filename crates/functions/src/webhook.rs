//! Standard Webhooks / Svix signature verification (what Clerk, Svix and many others send),
//! behind the Rhai built-ins `Webhook(secret).verify(request)` and `verifyWebhook(secret, request)`.
//!
//! The one thing to know: the signature is HMAC-SHA256, keyed with the base64-decoded `whsec_`
//! secret, over `"{id}.{timestamp}.{raw body}"` (the body exactly as received, never
//! re-serialised), written `v1,<base64>`. [`Verifier::sign`] takes it from `standardwebhooks`,
//! the spec authors' crate. The crate's own `Webhook::verify` is not used, because it cannot be
//! told three things this module does:
//! - the clock: it reads the wall clock itself, so here the signed timestamp is checked against
//!   `now_secs`, a parameter, within [`TOLERANCE_SECS`] both ways; tests stay exact, and the
//!   Svix documentation's vectors (signed in 2022 and 2023) still verify;
//! - the headers: it reads only `webhook-*` from an `http::HeaderMap`; Svix and Clerk send
//!   `svix-*`, which are preferred over the unbranded `webhook-*`, as the Svix libraries do;
//! - the secret: its `Webhook::new` takes only exact, padded base64; here surrounding space and
//!   missing padding are tolerated, as the Python library does.
//!
//! The signature header holds space-separated `v1,<base64>` entries (several during a secret
//! rotation); any entry equal to the expected signature accepts, every entry compared in
//! constant time. The error messages are the Svix libraries' own, so they read the same in logs
//! as anywhere else. `WebhookHandle` is what a script holds; it reads the real clock.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use rhai::Dynamic;
use standardwebhooks::Webhook;
use subtle::ConstantTimeEq;

use crate::convert::json_to_dynamic;
use crate::host_error::{HostResult, host_error};
use crate::http_request::RequestHandle;

/// How far the signed timestamp may be from now, either way (Svix: 5 minutes).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook secret is not a valid whsec_ base64 secret")]
    BadSecret,
    #[error("Missing required headers: {0}")]
    MissingHeader(&'static str),
    #[error("Invalid Signature Headers: the timestamp is not an integer number of seconds")]
    BadTimestamp,
    #[error("Message timestamp too old")]
    TooOld,
    #[error("Message timestamp too new")]
    TooNew,
    /// The body is not UTF-8: Standard Webhooks signs text, so no sender signed these bytes.
    #[error("the payload is not JSON: it is not UTF-8 text")]
    PayloadNotText,
    #[error("No matching signature found")]
    NoMatchingSignature,
}

/// The signature headers of one message, as sent.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

impl<'a> SignedHeaders<'a> {
    /// Picks the headers from a lookup by lowercase name, `svix-*` first, then `webhook-*`.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<SignedHeaders<'a>, WebhookError> {
        let pick = |suffix: &'static str, name: &'static str| {
            get(&format!("svix-{suffix}"))
                .or_else(|| get(&format!("webhook-{suffix}")))
                .ok_or(WebhookError::MissingHeader(name))
        };
        Ok(SignedHeaders {
            id: pick("id", "svix-id (or webhook-id)")?,
            timestamp: pick("timestamp", "svix-timestamp (or webhook-timestamp)")?,
            signature: pick("signature", "svix-signature (or webhook-signature)")?,
        })
    }
}

/// Decodes a `whsec_<base64>` secret (a bare base64 secret is accepted too; missing padding
/// is tolerated, as the Python library does).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    let key = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')))
        .map_err(|_| WebhookError::BadSecret)?;
    if key.is_empty() {
        return Err(WebhookError::BadSecret);
    }
    Ok(key)
}

/// Signs and verifies the messages of one endpoint secret.
pub struct Verifier {
    webhook: Webhook,
}

impl Verifier {
    /// A verifier for a `whsec_...` secret (see [`decode_secret`]).
    pub fn new(secret: &str) -> Result<Verifier, WebhookError> {
        // `from_bytes` takes any key; it returns a `Result` only for symmetry with `new`.
        let webhook =
            Webhook::from_bytes(decode_secret(secret)?).map_err(|_| WebhookError::BadSecret)?;
        Ok(Verifier { webhook })
    }

    /// The `v1,<base64>` signature of a message (what a sender puts in the header).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, WebhookError> {
        // The crate's `sign` fails only for a body that is not UTF-8.
        self.webhook
            .sign(id, timestamp, body)
            .map_err(|_| WebhookError::PayloadNotText)
    }

    /// Verifies one message at `now_secs` (Unix seconds; a parameter so tests are exact).
    pub fn verify(
        &self,
        headers: SignedHeaders<'_>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), WebhookError> {
        let timestamp: i64 = headers
            .timestamp
            .trim()
            .parse()
            .map_err(|_| WebhookError::BadTimestamp)?;
        if now_secs.saturating_sub(timestamp) > TOLERANCE_SECS {
            return Err(WebhookError::TooOld);
        }
        if timestamp.saturating_sub(now_secs) > TOLERANCE_SECS {
            return Err(WebhookError::TooNew);
        }
        let expected = self.sign(headers.id, timestamp, body)?;
        let matched = headers
            .signature
            .split_whitespace()
            // Every entry is compared (no early exit) so timing says nothing about which matched.
            .fold(subtle::Choice::from(0), |any, entry| {
                any | entry.as_bytes().ct_eq(expected.as_bytes())
            });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(WebhookError::NoMatchingSignature)
        }
    }
}

/// `Webhook(secret)` in a script, also behind `verifyWebhook(secret, request)`.
#[derive(Clone)]
pub(crate) struct WebhookHandle {
    verifier: Arc<Verifier>,
}

impl WebhookHandle {
    pub(crate) fn new(secret: &Dynamic) -> HostResult<WebhookHandle> {
        let secret = secret.clone().into_string().map_err(|found| {
            host_error(format!(
                "the webhook secret must be a string like \"whsec_...\", not {found}"
            ))
        })?;
        let verifier = Verifier::new(&secret).map_err(|e| host_error(e.to_string()))?;
        Ok(WebhookHandle {
            verifier: Arc::new(verifier),
        })
    }

    /// `.verify(request)`: checks the signature against the raw body at the current time, then
    /// parses the body as JSON, the payload the script gets.
    pub(crate) fn verify(&self, request: &RequestHandle) -> HostResult<Dynamic> {
        let refused = |why: String| host_error(format!("webhook verification failed: {why}"));
        let headers = SignedHeaders::from_lookup(|name| request.header(name))
            .map_err(|e| refused(e.to_string()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.verifier
            .verify(headers, request.body(), now)
            .map_err(|e| refused(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_slice(request.body())
            .map_err(|e| refused(format!("the payload is not JSON: {e}")))?;
        json_to_dynamic(&json).map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vector A: the example of the Svix documentation, also the test vector of the svix and
    // standardwebhooks Rust crates.
    const A_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const A_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const A_TS: &str = "1649367553";
    const A_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const A_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    // Vector B: a Clerk-shaped `user.deleted` event, under a secret of the 24 bytes 0..24.
    const B_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
    const B_ID: &str = "msg_2Zx0TestClerkDeleted01";
    const B_TS: &str = "1700000000";
    const B_BODY: &str = r#"{"data":{"deleted":true,"id":"user_2abcDEF","object":"user"},"event_attributes":{"http_request":{"client_ip":"","user_agent":""}},"instance_id":"ins_123","object":"event","timestamp":1700000000123,"type":"user.deleted"}"#;
    const B_SIG: &str = "v1,7VV0b2G6v7MVBBHMTFDxYwyJhDqbPHj9AqVyn2UhFQs=";

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            id,
            timestamp: ts,
            signature: sig,
        }
    }

    const A_NOW: i64 = 1649367553;
    const B_NOW: i64 = 1700000000;

    fn verify(
        secret: &str,
        headers: SignedHeaders<'_>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), WebhookError> {
        Verifier::new(secret)?.verify(headers, body, now_secs)
    }

    fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
        let timestamp = timestamp.parse().expect("a timestamp in seconds");
        Verifier::new(secret)
            .expect("secret")
            .sign(id, timestamp, body)
            .expect("a text body")
    }

    #[test]
    fn vector_a_verifies_and_signs() {
        assert_eq!(
            verify(
                A_SECRET,
                headers(A_ID, A_TS, A_SIG),
                A_BODY.as_bytes(),
                A_NOW
            ),
            Ok(())
        );
        assert_eq!(sign(A_SECRET, A_ID, A_TS, A_BODY.as_bytes()), A_SIG);
    }

    #[test]
    fn vector_b_verifies_and_signs() {
        assert_eq!(
            verify(
                B_SECRET,
                headers(B_ID, B_TS, B_SIG),
                B_BODY.as_bytes(),
                B_NOW
            ),
            Ok(())
        );
        assert_eq!(
            decode_secret(B_SECRET).expect("secret"),
            (0u8..24).collect::<Vec<_>>()
        );
        assert_eq!(sign(B_SECRET, B_ID, B_TS, B_BODY.as_bytes()), B_SIG);
    }

    #[test]
    fn tampering_is_refused() {
        let tampered = A_BODY.replace("test_user", "test_usex");
        assert_eq!(
            verify(
                A_SECRET,
                headers(A_ID, A_TS, A_SIG),
                tampered.as_bytes(),
                A_NOW
            ),
            Err(WebhookError::NoMatchingSignature)
        );
        assert_eq!(
            verify(
                A_SECRET,
                headers("msg_other", A_TS, A_SIG),
                A_BODY.as_bytes(),
                A_NOW
            ),
            Err(WebhookError::NoMatchingSignature)
        );
        // Re-serialised JSON (a space after a colon) no longer matches.
        let reserialised = A_BODY.replace("\":\"", "\": \"");
        assert_eq!(
            verify(
                A_SECRET,
                headers(A_ID, A_TS, A_SIG),
                reserialised.as_bytes(),
                A_NOW
            ),
            Err(WebhookError::NoMatchingSignature)
        );
        // The right signature under another secret.
        assert_eq!(
            verify(
                B_SECRET,
                headers(A_ID, A_TS, A_SIG),
                A_BODY.as_bytes(),
                A_NOW
            ),
            Err(WebhookError::NoMatchingSignature)
        );
    }

    #[test]
    fn tolerance_is_five_minutes_both_ways() {
        let check = |now| verify(B_SECRET, headers(B_ID, B_TS, B_SIG), B_BODY.as_bytes(), now);
        assert_eq!(check(B_NOW + 290), Ok(()));
        assert_eq!(check(B_NOW + 300), Ok(()));
        assert_eq!(check(B_NOW + 301), Err(WebhookError::TooOld));
        assert_eq!(check(B_NOW - 300), Ok(()));
        assert_eq!(check(B_NOW - 301), Err(WebhookError::TooNew));
    }

    #[test]
    fn several_entries_any_v1_matches() {
        let header = format!(
            "v1a,{} v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= garbage v1,!!! {A_SIG}",
            &A_SIG[3..]
        );
        assert_eq!(
            verify(
                A_SECRET,
                headers(A_ID, A_TS, &header),
                A_BODY.as_bytes(),
                A_NOW
            ),
            Ok(())
        );
        // A v1a (ed25519) entry carrying the HMAC is not accepted as v1.
        let only_v1a = format!("v1a,{}", &A_SIG[3..]);
        assert_eq!(
            verify(
                A_SECRET,
                headers(A_ID, A_TS, &only_v1a),
                A_BODY.as_bytes(),
                A_NOW
            ),
            Err(WebhookError::NoMatchingSignature)
        );
    }

    #[test]
    fn malformed_inputs_are_refused() {
        assert_eq!(
            verify(
                A_SECRET,
                headers(A_ID, "1649367553.5", A_SIG),
                A_BODY.as_bytes(),
                A_NOW
            ),
            Err(WebhookError::BadTimestamp)
        );
        assert_eq!(
            verify(
                "whsec_not base64!",
                headers(A_ID, A_TS, A_SIG),
                A_BODY.as_bytes(),
                A_NOW
            ),
            Err(WebhookError::BadSecret)
        );
        // Missing padding is tolerated.
        assert_eq!(
            decode_secret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRY"),
            Ok((0u8..23).collect())
        );
    }

    #[test]
    fn a_body_that_is_not_text_is_refused() {
        let not_utf8 = [0xff, 0xfe, b'{', b'}'];
        assert_eq!(
            verify(A_SECRET, headers(A_ID, A_TS, A_SIG), &not_utf8, A_NOW),
            Err(WebhookError::PayloadNotText)
        );
    }

    #[test]
    fn svix_headers_win_over_webhook_headers() {
        let all = [
            ("svix-id", "a"),
            ("svix-timestamp", "1"),
            ("svix-signature", "s"),
            ("webhook-id", "b"),
            ("webhook-timestamp", "2"),
            ("webhook-signature", "t"),
        ];
        let lookup = |name: &str| all.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let picked = SignedHeaders::from_lookup(lookup).expect("headers");
        assert_eq!(
            (picked.id, picked.timestamp, picked.signature),
            ("a", "1", "s")
        );
        let unbranded = |name: &str| all[3..].iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let picked = SignedHeaders::from_lookup(unbranded).expect("headers");
        assert_eq!(picked.id, "b");
        let none = |_: &str| None;
        assert!(matches!(
            SignedHeaders::from_lookup(none),
            Err(WebhookError::MissingHeader(_))
        ));
    }
}
