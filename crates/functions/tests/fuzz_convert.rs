//! Property tests of value conversion between the three forms a value takes: convex JSON
//! (the wire), Rhai (what scripts see) and the stored text (convex JSON text, how documents
//! sit in SQLite). Every value survives each round trip unchanged, including the awkward
//! ones (NaN, ±0, ±infinity, i64 extremes, bytes, empty containers, nesting), and decoding
//! junk JSON never panics.

use proptest::prelude::*;
use value::Value;

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int64),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0)].prop_map(Value::Int64),
        prop_oneof![
            any::<f64>(),
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MIN_POSITIVE),
        ]
        .prop_map(Value::Float64),
        any::<bool>().prop_map(Value::Boolean),
        "\\PC{0,8}".prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z][a-zA-Z0-9_]{0,6}", inner, 0..5)
                .prop_map(Value::Object),
        ]
    })
}

/// Equality that holds NaN equal to itself and tells -0.0 from 0.0, field by field.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float64(x), Value::Float64(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn json_round_trip(value in arb_value()) {
        let back = Value::from_json(&value.to_json());
        prop_assert!(back.as_ref().is_ok_and(|b| same(b, &value)), "{value:?} -> {back:?}");
    }

    #[test]
    fn stored_text_round_trip(value in arb_value()) {
        let text = value.to_json_string();
        let back = Value::from_json_str(&text);
        prop_assert!(back.as_ref().is_ok_and(|b| same(b, &value)), "{value:?} -> {text} -> {back:?}");
    }

    #[test]
    fn rhai_round_trip(value in arb_value()) {
        let back = functions::from_dynamic(&functions::to_dynamic(&value), "the value");
        prop_assert!(back.as_ref().is_ok_and(|b| same(b, &value)), "{value:?} -> {back:?}");
    }

    #[test]
    fn all_three_in_a_row(value in arb_value()) {
        let via_rhai = functions::from_dynamic(&functions::to_dynamic(&value), "the value");
        prop_assert!(via_rhai.is_ok());
        if let Ok(via_rhai) = via_rhai {
            let stored = Value::from_json_str(&via_rhai.to_json_string());
            prop_assert!(stored.as_ref().is_ok_and(|s| same(s, &value)), "{value:?} -> {stored:?}");
        }
    }

    #[test]
    fn junk_json_is_refused_or_read_never_a_panic(text in "[\\[\\]{}\",:$a-z0-9.\\-]{0,60}") {
        let _ = Value::from_json_str(&text);
    }

    #[test]
    fn corrupted_stored_text_never_panics(
        value in arb_value(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = value.to_json_string().into_bytes();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = Value::from_json_str(&String::from_utf8_lossy(&bytes));
    }
}
