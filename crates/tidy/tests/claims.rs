//! Keeps the "only here" claims of `ARCHITECTURE.md` and the module docs true: each row of
//! [`CLAIMS`] is a claim, the code pattern that carries it out, and where (file and enclosing
//! function, with a count) or in which files alone that pattern may appear in code.
//!
//! Code only: comments, string literals and `#[cfg(test)]` sections are left out (through
//! `tidy::code_only`), and so are tests and examples (`tests/`, `src/tests/`, `tests.rs`,
//! `examples/`), the bench
//! (a load generator, not the server) and this crate. When a claim fails, either the code
//! moved (update the row and the document that states the claim) or the claim stopped being
//! true (fix the code, or reword the claim where it is made).

use std::collections::BTreeMap;
use std::path::Path;

use tidy::{code_only, rust_files, workspace_root};

/// Where a pattern may appear.
enum Expect {
    /// Exactly these (file, enclosing function, occurrences), and nowhere else.
    Exactly(&'static [(&'static str, &'static str, usize)]),
    /// Anywhere in files under these paths (any count, at least one), and nowhere else: for
    /// lists other work keeps growing (routes, host functions).
    OnlyUnder(&'static [&'static str]),
}

struct Claim {
    /// The claim, as the documents make it.
    says: &'static str,
    /// The code that carries it out (a plain substring of code).
    pattern: &'static str,
    /// Folders searched (from the workspace root).
    scope: &'static [&'static str],
    expect: Expect,
}

/// The crates of the server (everything but the bench and this crate).
const SERVER_CRATES: &[&str] = &[
    "crates/value",
    "crates/schema",
    "crates/protocol",
    "crates/auth",
    "crates/authenticator",
    "crates/storage",
    "crates/pgstore",
    "crates/database",
    "crates/functions",
    "crates/application",
    "crates/sync",
    "crates/server",
    "crates/pulsebase",
];

const CLAIMS: &[Claim] = &[
    Claim {
        says: "a token is checked by Authenticator::verify, called from authenticator::authorize only",
        pattern: ".verify(",
        scope: &[
            "crates/authenticator",
            "crates/application",
            "crates/sync",
            "crates/server",
            "crates/pulsebase",
        ],
        expect: Expect::Exactly(&[("crates/authenticator/src/authorize.rs", "authorize", 1)]),
    },
    Claim {
        says: "a token's rules are applied by auth::verify_parsed: for the authenticator (a cache miss, and its retry after a key refetch) and for `pulsebase auth check`",
        pattern: "verify_parsed(",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[
            ("crates/auth/src/verify.rs", "verify_parsed", 1),
            ("crates/auth/src/verify.rs", "verify_with_keys", 1),
            ("crates/auth/src/diagnosis.rs", "diagnose_with_keys", 1),
            (
                "crates/authenticator/src/verifier.rs",
                "verify_with_provider",
                2,
            ),
        ]),
    },
    Claim {
        says: "the admin key is compared (in constant time) in authenticator::key_matches only (for authorize and is_admin)",
        pattern: "ct_eq(",
        scope: &[
            "crates/authenticator",
            "crates/application",
            "crates/sync",
            "crates/server",
            "crates/pulsebase",
        ],
        expect: Expect::Exactly(&[("crates/authenticator/src/authorize.rs", "key_matches", 1)]),
    },
    Claim {
        says: "the Authorization header is read in server/src/authorization.rs only",
        pattern: "AUTHORIZATION",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[("crates/server/src/authorization.rs", "header_bytes", 1)]),
    },
    Claim {
        says: "the one Authorization parser, auth::Credentials::from_header, serves the HTTP API, HTTP actions and the dashboard's admin check",
        pattern: "Credentials::from_header(",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[
            ("crates/server/src/authorization.rs", "for_api", 1),
            ("crates/server/src/authorization.rs", "for_action", 1),
            ("crates/server/src/authorization.rs", "has_admin_key", 1),
            ("crates/server/src/authorization.rs", "for_admin", 1),
        ]),
    },
    Claim {
        says: "HTTP and WebSocket credentials are checked by the one authenticator::authorize",
        pattern: "authenticator::authorize(",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[
            ("crates/server/src/authorization.rs", "check", 1),
            ("crates/sync/src/session/auth.rs", "authorize_frame", 1),
        ]),
    },
    Claim {
        says: "an identity is built from a verified token in auth::verify_parsed only",
        pattern: "Identity::from_claims(",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[("crates/auth/src/verify.rs", "verify_parsed", 1)]),
    },
    Claim {
        says: "an identity an admin acts as is built in auth::ActingAs::identity only (and a test's, by t.withIdentity)",
        pattern: "Identity::acting_as(",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[
            ("crates/auth/src/authorization.rs", "identity", 1),
            ("crates/functions/src/testing/client.rs", "with_identity", 1),
        ]),
    },
    Claim {
        says: "an admin's acting-as object is read in authenticator::authorize only, after the key is accepted",
        pattern: "ActingAs::identity",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[("crates/authenticator/src/authorize.rs", "authorize", 1)]),
    },
    Claim {
        says: "every write transaction commits in committer.rs: commit_batch (mutations), apply_schema (schema changes)",
        pattern: ".commit()",
        scope: &[
            "crates/database",
            "crates/application",
            "crates/functions",
            "crates/sync",
            "crates/server",
            "crates/pulsebase",
        ],
        expect: Expect::Exactly(&[
            ("crates/database/src/committer.rs", "commit_batch", 1),
            ("crates/database/src/committer.rs", "apply_schema", 1),
        ]),
    },
    Claim {
        says: "a scheduled mutation runs through scheduled::run::run_mutation_job only: from the scheduler's dispatch and from pulsebase test's clock",
        pattern: "run_mutation_job(&",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[
            (
                "crates/application/src/scheduler/dispatch.rs",
                "queue_if_mutation",
                1,
            ),
            (
                "crates/application/src/scheduler/dispatch.rs",
                "run_mutation",
                1,
            ),
            ("crates/functions/src/testing/scheduled.rs", "run_job", 1),
        ]),
    },
    Claim {
        says: "every commit is matched against subscriptions right after it, in the Committer (or, on a database shared by several nodes, by the commit-log tail, in timestamp order)",
        pattern: ".on_commit(",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[
            ("crates/database/src/committer.rs", "commit_batch", 1),
            ("crates/database/src/committer.rs", "apply_schema", 1),
            ("crates/database/src/commit_log.rs", "start", 1),
        ]),
    },
    Claim {
        says: "a subscription's invalidation callback runs in Subscriptions::on_commit only",
        pattern: "callback(ts)",
        scope: SERVER_CRATES,
        expect: Expect::Exactly(&[("crates/database/src/subscriptions.rs", "on_commit", 1)]),
    },
    Claim {
        says: "every write passes Schema::validate_document (a mutation's write, and stored documents on a schema change)",
        pattern: "validate_document(",
        scope: &[
            "crates/database",
            "crates/functions",
            "crates/application",
            "crates/sync",
            "crates/server",
            "crates/pulsebase",
        ],
        expect: Expect::Exactly(&[
            ("crates/database/src/mutation_txn.rs", "prepare", 1),
            ("crates/database/src/schema_change.rs", "check_documents", 1),
        ]),
    },
    Claim {
        says: "host functions are registered on the Rhai engine under functions/src/host_api/ only",
        pattern: ".register_",
        // Rhai is in `functions` alone (`tests/rules.rs`); elsewhere `.register_` is another
        // library's (the Prometheus registry of `/metrics`).
        scope: &["crates/functions"],
        expect: Expect::OnlyUnder(&["crates/functions/src/host_api/"]),
    },
    Claim {
        says: "every route is listed in server/src/router.rs",
        pattern: ".route(",
        scope: &["crates/server"],
        expect: Expect::OnlyUnder(&["crates/server/src/router.rs"]),
    },
    Claim {
        says: "a session's identity is replaced in Session::set_auth only",
        pattern: "self.auth.replace(",
        scope: &["crates/sync"],
        expect: Expect::Exactly(&[("crates/sync/src/session/mod.rs", "set_auth", 1)]),
    },
    Claim {
        says: "a session's identity changes only through an accepted Authenticate (a refused one, token expiry and its provider's removal end the session)",
        pattern: "self.set_auth(",
        scope: &["crates/sync"],
        expect: Expect::Exactly(&[("crates/sync/src/session/mod.rs", "authenticate", 3)]),
    },
    Claim {
        says: "of the user's functions, only HTTP actions read the app's environment, through AppActionHost::env_var",
        pattern: "env::var(",
        scope: &["crates/functions", "crates/application"],
        expect: Expect::Exactly(&[("crates/application/src/action_host.rs", "env_var", 1)]),
    },
    Claim {
        says: "anyhow is used only in the binary",
        pattern: "anyhow",
        scope: SERVER_CRATES,
        expect: Expect::OnlyUnder(&["crates/pulsebase/"]),
    },
];

/// One occurrence's place: (file, enclosing function).
type Place = (String, String);

/// Tests and examples are not the server's code.
fn is_test_or_example(relative: &str) -> bool {
    relative.contains("/tests/")
        || relative.ends_with("/tests.rs")
        || relative.contains("/examples/")
        || relative.contains("/benches/")
}

/// The name of the function whose body holds line `at` (the nearest `fn NAME` at or above it).
fn enclosing_fn(lines: &[&str], at: usize) -> String {
    for line in lines[..=at].iter().rev() {
        let mut rest = *line;
        while let Some(found) = rest.find("fn ") {
            let before = rest[..found].chars().last();
            let after = &rest[found + 3..];
            if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    return name;
                }
            }
            rest = after;
        }
    }
    String::new()
}

/// Every occurrence of `pattern` in code under `scope`, counted per place.
fn occurrences(root: &Path, claim: &Claim) -> BTreeMap<Place, usize> {
    let mut found = BTreeMap::new();
    for dir in claim.scope {
        for file in rust_files(&root.join(dir)) {
            let relative = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            if is_test_or_example(&relative) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let code = code_only(&text);
            let lines: Vec<&str> = code.lines().collect();
            for (n, line) in lines.iter().enumerate() {
                let hits = line.matches(claim.pattern).count();
                if hits > 0 {
                    let place = (relative.clone(), enclosing_fn(&lines, n));
                    *found.entry(place).or_insert(0) += hits;
                }
            }
        }
    }
    found
}

#[test]
fn every_only_here_claim_holds() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for claim in CLAIMS {
        let found = occurrences(&root, claim);
        let shown = found
            .iter()
            .map(|((file, function), count)| format!("    {file} in fn {function}: {count}"))
            .collect::<Vec<_>>()
            .join("\n");
        match &claim.expect {
            Expect::Exactly(places) => {
                let expected: BTreeMap<Place, usize> = places
                    .iter()
                    .map(|(file, function, count)| {
                        (((*file).to_string(), (*function).to_string()), *count)
                    })
                    .collect();
                if found != expected {
                    problems.push(format!(
                        "claim \"{}\": `{}` expected at {expected:?}, found:\n{shown}",
                        claim.says, claim.pattern
                    ));
                }
            }
            Expect::OnlyUnder(prefixes) => {
                let stray: Vec<_> = found
                    .keys()
                    .filter(|(file, _)| !prefixes.iter().any(|p| file.starts_with(p)))
                    .collect();
                if found.is_empty() || !stray.is_empty() {
                    problems.push(format!(
                        "claim \"{}\": `{}` expected only under {prefixes:?}, found:\n{shown}",
                        claim.says, claim.pattern
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_enclosing_function_is_the_nearest_fn_above() {
    let lines = [
        "impl X {",
        "    pub(crate) async fn first(&self) {",
        "        call();",
        "    }",
        "    fn second() { call(); }",
        "    let defn = 1; call();",
    ];
    assert_eq!(enclosing_fn(&lines, 2), "first");
    assert_eq!(enclosing_fn(&lines, 4), "second");
    assert_eq!(enclosing_fn(&lines, 5), "second");
    assert_eq!(enclosing_fn(&lines, 0), "");
}
