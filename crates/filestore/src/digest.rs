//! [`Sha256Digest`]: a file's SHA-256, named on disk in hex and shown to apps in base64 (the
//! `sha256` field of Convex's `_storage` documents).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The SHA-256 of a blob's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Sha256Digest> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Sha256Digest(out))
    }

    pub fn base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn from_base64(text: &str) -> Option<Sha256Digest> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        Some(Sha256Digest(bytes.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_round_trip() {
        let digest = Sha256Digest([0xab; 32]);
        assert_eq!(Sha256Digest::from_hex(&digest.hex()), Some(digest));
        assert_eq!(Sha256Digest::from_base64(&digest.base64()), Some(digest));
        assert_eq!(Sha256Digest::from_hex("zz"), None);
        assert_eq!(Sha256Digest::from_base64("AAAA"), None);
    }
}
