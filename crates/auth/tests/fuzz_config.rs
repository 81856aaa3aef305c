//! Property tests of the `auth.config.toml` reader: corrupted versions of a valid file and
//! random text are either read or refused with an error that points inside the text (or at
//! the whole file, line 0); nothing panics.

use auth::AuthConfig;
use proptest::prelude::*;

const VALID: &str = r#"
[[providers]]
domain = "${ISSUER}"
applicationID = "convex"

[[providers]]
type = "customJwt"
issuer = "https://issuer.example"
jwks = "https://issuer.example/jwks.json"
algorithm = "RS256"
applicationID = "my-app"

[[providers]]
type = "customJwt"
issuer = "http://127.0.0.1:9999"
jwks = "http://127.0.0.1:9999/jwks.json"
algorithm = "ES256"
"#;

const SECRET: &str = "https://secret-issuer.example";

fn env(name: &str) -> Option<String> {
    (name == "ISSUER").then(|| SECRET.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_valid_file_reads(_x in 0..1u8) {
        let parsed = AuthConfig::parse(VALID, "auth.config.toml", &env);
        prop_assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn corrupted_files_are_refused_with_a_location_inside_them(
        flips in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![b'"', b'=', b'[', b']', b'$', b'{', b'}', b'\n', b' ', b'x', b':', b'/', 0xff])), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = VALID.as_bytes().to_vec();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(e) = AuthConfig::parse(&text, "auth.config.toml", &env) {
            prop_assert!(e.line <= text.lines().count() + 1, "{e}");
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn random_text_never_panics(text in ".{0,300}") {
        let _ = AuthConfig::parse(&text, "auth.config.toml", &env);
    }
}
