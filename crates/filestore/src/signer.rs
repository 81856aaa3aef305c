//! [`UrlSigner`]: HMAC-SHA256 with a secret kept beside the blobs, for the two kinds of URL
//! file storage hands out.
//!
//! - Upload tokens (`generateUploadUrl`): `EXPIRES.NONCE.SIGNATURE`, the expiry in ms since
//!   the epoch and a random nonce. The signature proves the server made it; the expiry is
//!   checked on use; single use is the caller's business (the nonce is claimed in the same
//!   commit that records the upload).
//! - File signatures (`getUrl`): the HMAC of the storage id, so a URL cannot be made from a
//!   storage id alone (an id may be shown to users who should not read the file).
//!
//! Each kind signs under its own prefix, so one can never pass for the other.

use std::path::Path;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// Why an upload token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the upload URL is malformed (its token is not one this server makes)")]
    Malformed,
    #[error(
        "the upload URL's signature does not match: it was not made by this server, or was altered"
    )]
    BadSignature,
    #[error(
        "the upload URL expired {ago_secs} s ago; generate a new one with ctx.storage.generateUploadUrl()"
    )]
    Expired { ago_secs: u64 },
}

/// A verified upload token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadToken {
    pub nonce: String,
    pub expires_ms: u64,
}

/// Signs and checks file-storage URLs with the app's secret.
pub struct UrlSigner {
    key: hmac::Key,
}

const SECRET_BYTES: usize = 32;

impl UrlSigner {
    pub fn new(secret: &[u8]) -> UrlSigner {
        UrlSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The secret in the file at `path`, created (random, owner-only) when missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<UrlSigner> {
        if let Ok(secret) = std::fs::read(path)
            && secret.len() >= SECRET_BYTES
        {
            return Ok(UrlSigner::new(&secret));
        }
        let mut secret = [0u8; SECRET_BYTES];
        rand::thread_rng().fill_bytes(&mut secret);
        write_private(path, &secret)?;
        Ok(UrlSigner::new(&secret))
    }

    fn sign(&self, kind: &str, payload: &str) -> String {
        let tag = hmac::sign(&self.key, format!("{kind}:{payload}").as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    fn verify(&self, kind: &str, payload: &str, signature: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        hmac::verify(&self.key, format!("{kind}:{payload}").as_bytes(), &tag).is_ok()
    }

    /// A new upload token valid until `expires_ms`.
    pub fn upload_token(&self, expires_ms: u64) -> String {
        let mut nonce = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut nonce);
        let payload = format!("{expires_ms}.{}", URL_SAFE_NO_PAD.encode(nonce));
        let signature = self.sign("upload", &payload);
        format!("{payload}.{signature}")
    }

    /// Checks an upload token's signature, then its expiry at `now_ms`.
    pub fn check_upload_token(&self, token: &str, now_ms: u64) -> Result<UploadToken, TokenError> {
        let mut parts = token.rsplitn(2, '.');
        let (Some(signature), Some(payload)) = (parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let Some((expires, nonce)) = payload.split_once('.') else {
            return Err(TokenError::Malformed);
        };
        let expires_ms: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if nonce.is_empty() || nonce.len() > 64 {
            return Err(TokenError::Malformed);
        }
        if !self.verify("upload", payload, signature) {
            return Err(TokenError::BadSignature);
        }
        if now_ms > expires_ms {
            return Err(TokenError::Expired {
                ago_secs: (now_ms - expires_ms) / 1000,
            });
        }
        Ok(UploadToken {
            nonce: nonce.to_string(),
            expires_ms,
        })
    }

    /// The signature that goes with a file's download URL.
    pub fn file_signature(&self, storage_id: &str) -> String {
        self.sign("file", storage_id)
    }

    pub fn check_file_signature(&self, storage_id: &str, signature: &str) -> bool {
        self.verify("file", storage_id, signature)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_tokens_are_checked_for_signature_and_expiry() {
        let signer = UrlSigner::new(b"a secret of at least some length");
        let token = signer.upload_token(10_000);
        let checked = signer.check_upload_token(&token, 9_000).expect("valid");
        assert_eq!(checked.expires_ms, 10_000);
        assert_eq!(
            signer.check_upload_token(&token, 12_500),
            Err(TokenError::Expired { ago_secs: 2 })
        );
        let other = UrlSigner::new(b"another secret entirely, also long");
        assert_eq!(
            other.check_upload_token(&token, 9_000),
            Err(TokenError::BadSignature)
        );
        let forged = token.replacen("10000", "99999", 1);
        assert_eq!(
            signer.check_upload_token(&forged, 9_000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer.check_upload_token("nonsense", 0),
            Err(TokenError::Malformed)
        );
        assert_ne!(
            signer.upload_token(1),
            signer.upload_token(1),
            "nonces differ"
        );
    }

    #[test]
    fn file_signatures_do_not_pass_for_upload_tokens() {
        let signer = UrlSigner::new(b"a secret of at least some length");
        let sig = signer.file_signature("abc");
        assert!(signer.check_file_signature("abc", &sig));
        assert!(!signer.check_file_signature("abd", &sig));
        assert_eq!(
            signer.check_upload_token(&format!("1.abc.{sig}"), 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn the_secret_is_kept_across_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        let a = UrlSigner::load_or_create(&path).expect("create");
        let b = UrlSigner::load_or_create(&path).expect("load");
        assert!(b.check_file_signature("x", &a.file_signature("x")));
    }
}
