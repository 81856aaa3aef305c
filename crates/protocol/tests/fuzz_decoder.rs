//! Property tests of the sync protocol's decoder (`ClientMessage::parse`): whatever a client
//! sends — well-formed messages with junk values, corrupted or truncated versions of them,
//! random text — the decoder returns a message or an error and never panics, and a
//! well-formed message of each kind decodes to that kind.

use proptest::prelude::*;
use protocol::ClientMessage;
use serde_json::{Value, json};

/// Any JSON value, small: the junk that goes into a field.
fn junk() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z$]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A message of every kind the client sends, with valid field values.
fn well_formed() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (".{0,8}", any::<u32>()).prop_map(|(session, n)| (
            "Connect",
            json!({"type": "Connect", "sessionId": session, "connectionCount": n, "lastCloseReason": "InitialConnect"})
        )),
        (any::<u32>(), "[a-z]{1,6}:[a-z]{1,6}").prop_map(|(q, path)| (
            "ModifyQuerySet",
            json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                   "modifications": [{"type": "Add", "queryId": q, "udfPath": path, "args": [{}]}, {"type": "Remove", "queryId": q}]})
        )),
        (any::<u32>(), "[a-z]{1,6}:[a-z]{1,6}").prop_map(|(r, path)| (
            "Mutation",
            json!({"type": "Mutation", "requestId": r, "udfPath": path, "args": [{"a": 1}]})
        )),
        (any::<u32>(), "[a-z]{1,6}:[a-z]{1,6}").prop_map(|(r, path)| (
            "Action",
            json!({"type": "Action", "requestId": r, "udfPath": path, "args": [{}]})
        )),
        ".{0,40}".prop_map(|token| (
            "Authenticate",
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token})
        )),
        Just(("Event", json!({"type": "Event", "eventType": "x", "event": {}}))),
    ]
}

fn kind(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Connect { .. } => "Connect",
        ClientMessage::ModifyQuerySet { .. } => "ModifyQuerySet",
        ClientMessage::Mutation { .. } => "Mutation",
        ClientMessage::Action { .. } => "Action",
        ClientMessage::Authenticate { .. } => "Authenticate",
        ClientMessage::Event { .. } => "Event",
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn well_formed_messages_decode_to_their_kind((expected, message) in well_formed()) {
        let decoded = ClientMessage::parse(&message.to_string());
        prop_assert!(decoded.is_ok(), "{message}: {decoded:?}");
        if let Ok(decoded) = decoded {
            prop_assert_eq!(kind(&decoded), expected);
        }
    }

    #[test]
    fn junk_in_any_field_is_an_error_or_a_message_never_a_panic(
        (_, message) in well_formed(),
        field in "[a-zA-Z]{1,16}",
        value in junk(),
    ) {
        let mut message = message;
        let keys: Vec<String> = message.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        let target = keys.iter().find(|k| k.eq_ignore_ascii_case(&field)).cloned().unwrap_or(field);
        if let Some(object) = message.as_object_mut() {
            object.insert(target, value);
        }
        let _ = ClientMessage::parse(&message.to_string());
    }

    #[test]
    fn corrupted_and_truncated_messages_never_panic(
        (_, message) in well_formed(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let mut bytes = message.to_string().into_bytes();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let cut = cut.index(bytes.len() + 1);
        bytes.truncate(cut);
        let _ = ClientMessage::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_text_never_panics(text in ".{0,200}") {
        let _ = ClientMessage::parse(&text);
    }
}
