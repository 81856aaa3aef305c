//! Property tests of the `schema.toml` reader and the type language: corrupted versions of a
//! valid file, random text and random type expressions are either read or refused with an
//! error that points inside the text; nothing panics. A type that reads back from its own
//! text form is the same type.

use proptest::prelude::*;
use schema::{Schema, Type};

const VALID: &str = r#"
[tables.todos]
fields = { text = "string", userId = "string", completed = "boolean", tags = "optional<array<string>>" }
indexes = { by_user = ["userId"], by_user_done = ["userId", "completed"] }

[tables.users]
fields = { name = "string", tokenIdentifier = "string", role = "optional<'admin' | 'user'>", score = "number | null", profile = "object{bio: string, age?: int64}", extra = "record<string, any>", friend = "optional<id<users>>" }
indexes = { by_token = ["tokenIdentifier"] }

[tables.free]
"#;

/// Fragments of the type language, glued at random.
fn type_text() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "string",
        "number",
        "int64",
        "boolean",
        "null",
        "bytes",
        "any",
        "id<users>",
        "'admin'",
        "3",
        "true",
        "array<",
        "optional<",
        "record<string, ",
        "object{a: ",
        ", b?: ",
        "}",
        ">",
        " | ",
        "<",
        ",",
        "'",
        "id<",
        "strng",
        "",
    ]);
    prop::collection::vec(atoms, 0..8).prop_map(|parts| parts.concat())
}

fn line_count(text: &str) -> usize {
    text.lines().count().max(1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_valid_file_reads(_x in 0..1u8) {
        prop_assert!(Schema::parse(VALID, "schema.toml").is_ok());
    }

    #[test]
    fn corrupted_files_are_refused_with_a_location_inside_them(
        flips in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![b'"', b'=', b'{', b'}', b'[', b']', b'<', b'>', b'|', b'\n', b' ', b'x', b'\'', b',', 0xff])), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = VALID.as_bytes().to_vec();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(e) = Schema::parse(&text, "schema.toml") {
            prop_assert!(e.line >= 1 && e.line <= line_count(&text) + 1, "{e} (text has {} lines)", line_count(&text));
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn random_text_never_panics(text in ".{0,300}") {
        let _ = Schema::parse(&text, "schema.toml");
    }

    #[test]
    fn random_types_are_read_or_refused_and_read_back_the_same(text in type_text()) {
        if let Ok(ty) = Type::parse(&text) {
            let again = Type::parse(&ty.to_string());
            prop_assert!(again.is_ok(), "{text} -> {ty} does not read back: {again:?}");
            if let Ok(again) = again {
                prop_assert_eq!(again.to_string(), ty.to_string());
            }
        }
    }
}
