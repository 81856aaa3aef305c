//! Document ids: opaque strings that name their table.
//!
//! An id is the lowercase base32 (Crockford alphabet) of `varint(table number) ‖ 14 bytes ‖ a
//! 16-bit Fletcher checksum`. The table number lets `db.get(id)` find the table without a
//! lookup and lets validators check `id<todos>`; the checksum turns a mangled id into "not a
//! valid id" instead of a silent miss. The 14 bytes are a 6-byte millisecond clock followed by
//! 8 random bytes: new ids of a table sort after older ones, so storing a new document is an
//! append at the end of its table's key range (one hot page) instead of a write to a random
//! page, which halves what a commit writes to the WAL; 64 random bits keep ids unguessable.
//! Ids are opaque: nothing may depend on their order, and older all-random ids stay valid.

use std::fmt;

use std::sync::LazyLock;

use data_encoding::{Encoding, Specification};
use rand::RngCore;

/// The number storage assigns to a table when it is first created; stable for its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableNumber(pub u32);

/// Crockford's alphabet in lowercase; most significant bit first, no padding, and the unused
/// bits of the last character must be zero (so every byte string has exactly one id text).
/// Changing any of this changes what stored ids mean.
static BASE32: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("0123456789abcdefghjkmnpqrstvwxyz");
    spec.check_trailing_bits = true;
    spec.encoding()
        .expect("a constant specification, valid by the tests of this module")
});
/// Bytes after the table number (clock and randomness; the name is historical).
const RANDOM_BYTES: usize = 14;
/// Leading bytes of those that hold the millisecond clock.
const CLOCK_BYTES: usize = 6;

/// Why a string is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{0:?} is not a valid document id")]
    Malformed(String),
}

/// A parsed document id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId {
    table: TableNumber,
    text: String,
}

impl DocumentId {
    /// A fresh id in `table`: the clock, then random bytes (see the module docs).
    pub fn generate(table: TableNumber) -> DocumentId {
        let mut bytes = Vec::with_capacity(5 + RANDOM_BYTES + 2);
        write_varint(&mut bytes, table.0);
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        bytes.extend_from_slice(&millis.to_be_bytes()[2..]);
        let mut random = [0u8; RANDOM_BYTES - CLOCK_BYTES];
        rand::thread_rng().fill_bytes(&mut random);
        bytes.extend_from_slice(&random);
        let sum = fletcher16(&bytes);
        bytes.extend_from_slice(&sum.to_be_bytes());
        DocumentId {
            table,
            text: base32_encode(&bytes),
        }
    }

    /// The id in `table` whose 14 body bytes come from `seed`'s leading bytes (zero-padded):
    /// the same seed always gives the same id. Imports use it so a document's new id, and
    /// every reference to it, follow from its old id alone.
    pub fn from_seed(table: TableNumber, seed: &[u8]) -> DocumentId {
        let mut bytes = Vec::with_capacity(5 + RANDOM_BYTES + 2);
        write_varint(&mut bytes, table.0);
        let mut body = [0u8; RANDOM_BYTES];
        for (slot, byte) in body.iter_mut().zip(seed) {
            *slot = *byte;
        }
        bytes.extend_from_slice(&body);
        let sum = fletcher16(&bytes);
        bytes.extend_from_slice(&sum.to_be_bytes());
        DocumentId {
            table,
            text: base32_encode(&bytes),
        }
    }

    /// Parses and checks an id string.
    pub fn parse(text: &str) -> Result<DocumentId, IdError> {
        let malformed = || IdError::Malformed(text.chars().take(64).collect());
        let bytes = base32_decode(text).ok_or_else(malformed)?;
        if bytes.len() < 3 + RANDOM_BYTES {
            return Err(malformed());
        }
        let (body, sum) = bytes.split_at(bytes.len() - 2);
        if fletcher16(body).to_be_bytes() != sum {
            return Err(malformed());
        }
        let (table, used) = read_varint(body).ok_or_else(malformed)?;
        if body.len() - used != RANDOM_BYTES {
            return Err(malformed());
        }
        Ok(DocumentId {
            table: TableNumber(table),
            text: text.to_string(),
        })
    }

    pub fn table(&self) -> TableNumber {
        self.table
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn write_varint(out: &mut Vec<u8>, mut n: u32) {
    loop {
        let byte = (n & 0x7F) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub(crate) fn read_varint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut n: u32 = 0;
    for (i, &b) in bytes.iter().enumerate().take(5) {
        n |= u32::from(b & 0x7F).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

pub(crate) fn fletcher16(bytes: &[u8]) -> u16 {
    let (mut a, mut b) = (0u16, 0u16);
    for &byte in bytes {
        a = (a + u16::from(byte)) % 255;
        b = (b + a) % 255;
    }
    (b << 8) | a
}

pub(crate) fn base32_encode(bytes: &[u8]) -> String {
    BASE32.encode(bytes)
}

pub(crate) fn base32_decode(text: &str) -> Option<Vec<u8>> {
    // No id is this long; a client's arbitrary string is refused before any decoding.
    if text.len() > 64 {
        return None;
    }
    BASE32.decode(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_roundtrip_and_name_their_table() {
        for table in [1, 127, 128, 10_000, u32::MAX] {
            let id = DocumentId::generate(TableNumber(table));
            let parsed = DocumentId::parse(id.as_str()).expect("parses");
            assert_eq!(parsed.table(), TableNumber(table));
            assert_eq!(parsed, id);
        }
    }

    #[test]
    fn mangled_ids_are_rejected() {
        let id = DocumentId::generate(TableNumber(3)).to_string();
        let mut chars: Vec<char> = id.chars().collect();
        chars[4] = if chars[4] == 'a' { 'b' } else { 'a' };
        let mangled: String = chars.into_iter().collect();
        assert!(DocumentId::parse(&mangled).is_err());
        assert!(DocumentId::parse("").is_err());
        assert!(DocumentId::parse("hello").is_err());
        assert!(DocumentId::parse("ÿÿ").is_err());
    }

    /// Ids already stored must keep decoding to the same bytes and table: these strings were
    /// written by the encoder of the first release, so the encoding may never change.
    #[test]
    fn stored_ids_keep_their_meaning() {
        let bytes: Vec<u8> = (0u8..=20).map(|b| b.wrapping_mul(37)).collect();
        assert_eq!(base32_encode(&bytes), "00jmmvwmq7f06a2deabvsr865d87b6nzwg");
        assert_eq!(
            base32_decode("00jmmvwmq7f06a2deabvsr865d87b6nzwg"),
            Some(bytes)
        );
        for (text, table) in [
            ("043p5f8ref72k16z7aaz0jx6tz10", 1),
            ("ng10ernx31swwac4vwx9bw2bmtrq0", 300),
            ("zzzzzzrf0xhbt63ksrmr9qstjqr4q9nat0", u32::MAX),
        ] {
            let id = DocumentId::parse(text).expect("a stored id parses");
            assert_eq!(id.table(), TableNumber(table));
            assert_eq!(id.as_str(), text);
        }
        // The padding bits of the last character must be zero.
        assert!(DocumentId::parse("043p5f8ref72k16z7aaz0jx6tz11").is_err());
        assert!(DocumentId::parse("043P5F8REF72K16Z7AAZ0JX6TZ10").is_err());
    }

    #[test]
    fn seeded_ids_are_stable_and_valid() {
        let a = DocumentId::from_seed(TableNumber(4), b"some old id");
        let b = DocumentId::from_seed(TableNumber(4), b"some old id");
        assert_eq!(a, b);
        assert_eq!(DocumentId::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(a.table(), TableNumber(4));
        assert_ne!(a, DocumentId::from_seed(TableNumber(4), b"another id"));
    }

    #[test]
    fn later_ids_of_a_table_sort_after_earlier_ones() {
        let first = DocumentId::generate(TableNumber(5));
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = DocumentId::generate(TableNumber(5));
        assert!(first.as_str() < second.as_str(), "{first} then {second}");
        let other = DocumentId::generate(TableNumber(5));
        assert_ne!(
            second, other,
            "ids of one millisecond differ by their random part"
        );
    }
}
