//! The order-preserving byte encoding of index keys, and half-open key ranges over it.
//!
//! `memcmp` order of the encoded bytes equals Convex's value order (undefined < null < int64 <
//! float64 < boolean < string < bytes < array < object). Every component is prefix-free, so a
//! key built from a prefix of an index's fields is a byte prefix of every full key that agrees
//! on those fields. An index key is always its field values, then `_creationTime`, then `_id`,
//! which makes every key unique. Storage scans (SQLite compares BLOBs with memcmp) and the
//! subscription index use these same bytes.

use crate::value::{FieldPath, Object, Value};

const TAG_UNDEFINED: u8 = 0x01;
const TAG_NULL: u8 = 0x02;
const TAG_INT64: u8 = 0x03;
const TAG_FLOAT64: u8 = 0x04;
const TAG_BOOLEAN: u8 = 0x05;
const TAG_STRING: u8 = 0x06;
const TAG_BYTES: u8 = 0x07;
const TAG_ARRAY: u8 = 0x08;
const TAG_OBJECT: u8 = 0x09;
/// Ends an array or object; sorts below every tag so shorter containers come first.
const END: u8 = 0x00;
/// Starts each object entry; sorts above `END`.
const ENTRY: u8 = 0x01;

/// Appends the encoding of one index component (`None` = the field is missing).
pub fn encode_component(out: &mut Vec<u8>, value: Option<&Value>) {
    let Some(value) = value else {
        out.push(TAG_UNDEFINED);
        return;
    };
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Int64(i) => {
            out.push(TAG_INT64);
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Float64(f) => {
            out.push(TAG_FLOAT64);
            out.extend_from_slice(&float_bits(*f).to_be_bytes());
        }
        Value::Boolean(b) => {
            out.push(TAG_BOOLEAN);
            out.push(u8::from(*b));
        }
        Value::String(s) => {
            out.push(TAG_STRING);
            encode_escaped(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(TAG_BYTES);
            encode_escaped(out, b);
        }
        Value::Array(items) => {
            out.push(TAG_ARRAY);
            for item in items {
                encode_component(out, Some(item));
            }
            out.push(END);
        }
        Value::Object(fields) => {
            out.push(TAG_OBJECT);
            for (k, v) in fields {
                out.push(ENTRY);
                encode_escaped(out, k.as_bytes());
                encode_component(out, Some(v));
            }
            out.push(END);
        }
    }
}

/// Maps a float to bits whose unsigned order is `f64::total_cmp` order.
fn float_bits(f: f64) -> u64 {
    let bits = f.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    }
}

/// Escapes 0x00 as 0x00 0xFF and terminates with 0x00 0x00: prefix-free and order-preserving.
fn encode_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The encoded key of one document in one index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexKey(pub Vec<u8>);

impl IndexKey {
    /// Builds the key of `doc` in an index over `fields` (then `_creationTime`, then `_id`).
    pub fn for_document(
        fields: &[FieldPath],
        doc: &Object,
        creation_time: f64,
        id: &str,
    ) -> IndexKey {
        let mut out = Vec::with_capacity(32 + 16 * fields.len());
        let root = DocumentView(doc);
        for field in fields {
            encode_component(&mut out, root.get(field));
        }
        encode_component(&mut out, Some(&Value::Float64(creation_time)));
        encode_id(&mut out, id);
        IndexKey(out)
    }

    /// The key of a document in its table's `by_id` index.
    pub fn for_id(id: &str) -> IndexKey {
        let mut out = Vec::with_capacity(id.len() + 3);
        encode_id(&mut out, id);
        IndexKey(out)
    }

    /// Encodes a prefix of index components (used to build range bounds).
    pub fn prefix(values: &[Option<&Value>]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            encode_component(&mut out, *v);
        }
        out
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn encode_id(out: &mut Vec<u8>, id: &str) {
    out.push(TAG_STRING);
    encode_escaped(out, id.as_bytes());
}

/// Resolves dotted paths in a document without cloning it.
struct DocumentView<'a>(&'a Object);

impl<'a> DocumentView<'a> {
    fn get(&self, path: &FieldPath) -> Option<&'a Value> {
        let mut parts = path.parts();
        let mut current = self.0.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// when no such string exists (empty prefix or all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The smallest byte string greater than `key` (so `[a, successor(b))` includes `b`).
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.extend_from_slice(key);
    out.push(0);
    out
}

/// A half-open range `[start, end)` of encoded keys; `end: None` is unbounded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> KeyRange {
        KeyRange {
            start: Vec::new(),
            end: None,
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: Vec<u8>) -> KeyRange {
        let end = prefix_end(&prefix);
        KeyRange { start: prefix, end }
    }

    /// Exactly one key.
    pub fn point(key: &[u8]) -> KeyRange {
        KeyRange {
            start: key.to_vec(),
            end: Some(successor(key)),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    pub fn is_empty(&self) -> bool {
        self.end
            .as_deref()
            .is_some_and(|end| end <= self.start.as_slice())
    }

    /// Whether two ranges share at least one key.
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        let starts_before_other_ends = other
            .end
            .as_deref()
            .is_none_or(|end| self.start.as_slice() < end);
        let other_starts_before_self_ends = self
            .end
            .as_deref()
            .is_none_or(|end| other.start.as_slice() < end);
        !self.is_empty()
            && !other.is_empty()
            && starts_before_other_ends
            && other_starts_before_self_ends
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_component(&mut out, Some(v));
        out
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Int64),
            prop_oneof![
                any::<f64>(),
                Just(0.0),
                Just(-0.0),
                Just(f64::NAN),
                Just(-f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY)
            ]
            .prop_map(Value::Float64),
            any::<bool>().prop_map(Value::Boolean),
            "[a-c\\x00\\xff]{0,4}".prop_map(Value::String),
            prop::collection::vec(
                prop_oneof![Just(0u8), Just(1u8), Just(255u8), any::<u8>()],
                0..4
            )
            .prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c\\x00]{0,2}", inner, 0..3).prop_map(Value::Object),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn encoded_order_is_value_order(a in arb_value(), b in arb_value()) {
            prop_assert_eq!(enc(&a).cmp(&enc(&b)), a.cmp(&b), "{:?} vs {:?}", a, b);
        }

        #[test]
        fn tuples_keep_order_and_prefixes(a in prop::collection::vec(arb_value(), 1..3), b in prop::collection::vec(arb_value(), 1..3)) {
            let ka = IndexKey::prefix(&a.iter().map(Some).collect::<Vec<_>>());
            let kb = IndexKey::prefix(&b.iter().map(Some).collect::<Vec<_>>());
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            // A tuple's encoding starts with its first component's encoding and no other's.
            let first = enc(&a[0]);
            prop_assert!(ka.starts_with(&first));
            if a[0] != b[0] {
                prop_assert!(!kb.starts_with(&first));
            }
        }

        #[test]
        fn prefix_ranges_hold_exactly_the_extensions(p in arb_value(), q in arb_value(), rest in arb_value()) {
            let range = KeyRange::prefix(enc(&p));
            let key = IndexKey::prefix(&[Some(&q), Some(&rest)]);
            prop_assert_eq!(range.contains(&key), p == q);
        }
    }

    #[test]
    fn undefined_sorts_first() {
        let mut missing = Vec::new();
        encode_component(&mut missing, None);
        assert!(missing < enc(&Value::Null));
    }

    #[test]
    fn ranges() {
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
        let r = KeyRange::point(&[5, 5]);
        assert!(r.contains(&[5, 5]) && !r.contains(&[5, 5, 0]) && !r.contains(&[5, 4]));
        assert!(KeyRange::all().overlaps(&r));
        assert!(
            !KeyRange {
                start: vec![6],
                end: None
            }
            .overlaps(&r)
        );
    }
}
