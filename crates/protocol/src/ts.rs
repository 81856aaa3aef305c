//! [`Ts`]: a commit timestamp on the wire, the base64 of its 8 little-endian bytes
//! (`0` → `"AAAAAAAAAAA="`). The client compares the bytes, so the encoding must be exact.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A commit timestamp as the protocol encodes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub u64);

impl Ts {
    pub fn encode(self) -> String {
        STANDARD.encode(self.0.to_le_bytes())
    }

    pub fn decode(text: &str) -> Option<Ts> {
        let normalised: String = text
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        let bytes: [u8; 8] = STANDARD.decode(normalised).ok()?.try_into().ok()?;
        Some(Ts(u64::from_le_bytes(bytes)))
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Ts, D::Error> {
        struct TsVisitor;
        impl Visitor<'_> for TsVisitor {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string of 8 little-endian bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ts, E> {
                Ts::decode(v).ok_or_else(|| E::custom(format!("{v:?} is not a base64 u64")))
            }
        }
        deserializer.deserialize_str(TsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::Ts;

    #[test]
    fn matches_the_client_examples() {
        assert_eq!(Ts(0).encode(), "AAAAAAAAAAA=");
        assert_eq!(Ts(1).encode(), "AQAAAAAAAAA=");
        assert_eq!(Ts(1_700_000_000_000_000_000).encode(), "AAAqNv6clxc=");
        assert_eq!(
            Ts::decode("wJc2h8TW6hg="),
            Some(Ts(1_795_483_541_031_000_000))
        );
        assert_eq!(Ts::decode("nope"), None);
    }
}
