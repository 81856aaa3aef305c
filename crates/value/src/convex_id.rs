//! Recognising the document ids of a Convex deployment, which an import from a Convex export
//! meets in `_id` fields and in references between documents.
//!
//! A Convex id is the same lowercase Crockford base32 as ours, of `varint(table number) ‖
//! 16-byte internal id ‖ footer`, where the footer is the Fletcher-16 checksum of the bytes
//! before it, little-endian. [`convex_id_table`] checks all of that and returns the table
//! number, so a string that merely looks like an id is not mistaken for one.

use crate::id::{base32_decode, fletcher16, read_varint};

const INTERNAL_ID_LEN: usize = 16;

/// The table number a Convex document id names, or `None` when `text` is not one.
pub fn convex_id_table(text: &str) -> Option<u32> {
    // 1..5 varint bytes + 16 + 2 footer bytes: 31 to 37 base32 characters.
    if !(31..=37).contains(&text.len()) {
        return None;
    }
    let bytes = base32_decode(text)?;
    let (table, used) = read_varint(&bytes)?;
    if table == 0 || bytes.len() != used + INTERNAL_ID_LEN + 2 {
        return None;
    }
    let (body, footer) = bytes.split_at(used + INTERNAL_ID_LEN);
    (fletcher16(body).to_le_bytes() == footer).then_some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a Convex-format id the way Convex's encoder lays it out.
    fn encode(table: u32, internal: [u8; 16]) -> String {
        let mut bytes = Vec::new();
        let mut n = table;
        loop {
            let byte = (n & 0x7F) as u8;
            n >>= 7;
            if n == 0 {
                bytes.push(byte);
                break;
            }
            bytes.push(byte | 0x80);
        }
        bytes.extend_from_slice(&internal);
        let sum = fletcher16(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        crate::id::base32_encode(&bytes)
    }

    #[test]
    fn convex_ids_are_recognised_with_their_table() {
        for table in [1, 127, 10_001, 1 << 20] {
            let id = encode(table, [7; 16]);
            assert_eq!(convex_id_table(&id), Some(table), "{id}");
        }
        let id = encode(10_001, [9; 16]);
        let mut mangled: Vec<char> = id.chars().collect();
        mangled[6] = if mangled[6] == 'a' { 'b' } else { 'a' };
        assert_eq!(
            convex_id_table(&mangled.into_iter().collect::<String>()),
            None
        );
        assert_eq!(convex_id_table("hello"), None);
        // A Pulsebase id (14-byte body, big-endian checksum) is not a Convex id.
        let ours = crate::DocumentId::generate(crate::TableNumber(3));
        assert_eq!(convex_id_table(ours.as_str()), None);
    }
}
