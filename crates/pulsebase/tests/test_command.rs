//! `pulsebase test` end to end, through the real binary: the output lines, the summary and the
//! exit code for a passing and a failing suite, the example app's own tests, test files left
//! out of codegen, and `--watch` running the tests again when a file is saved.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SCHEMA: &str = r#"
[tables.notes]
fields = { body = "string", owner = "string" }
indexes = { by_owner = ["owner"] }
"#;

const NOTES: &str = r#"
export const add = mutation(#{
    args: #{ body: "string" },
    handler: |ctx, args| {
        let me = ctx.auth.getUserIdentity();
        if me == () { throw "Unauthorized"; }
        ctx.db.insert("notes", #{ body: args.body, owner: me.subject })
    }
});

export const mine = query(|ctx, args| {
    let me = ctx.auth.getUserIdentity();
    ctx.db.query("notes").withIndex("by_owner", |q| q.eq("owner", me.subject)).collect()
});
"#;

const PASSING: &str = r#"
test("adds a note", |t| {
    let asAda = t.withIdentity(#{ subject: "ada" });
    asAda.mutation("notes:add", #{ body: "hi" });
    assert_eq(asAda.query("notes:mine").len(), 1);
});

test("refuses anonymous callers", |t| {
    expect_error(|| t.mutation("notes:add", #{ body: "hi" }), "Unauthorized");
});
"#;

const FAILING: &str = r#"
test("expects too much", |t| {
    let asAda = t.withIdentity(#{ subject: "ada" });
    asAda.mutation("notes:add", #{ body: "hi" });
    assert_eq(asAda.query("notes:mine").map(|n| n.body), ["hi", "there"]);
});
"#;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_pulsebase")
}

/// An app folder with the notes schema and module, and the given test files.
fn app(tests: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("schema.toml"), SCHEMA).expect("schema");
    let functions = dir.path().join("functions");
    std::fs::create_dir_all(&functions).expect("functions/");
    std::fs::write(functions.join("notes.rhai"), NOTES).expect("module");
    for (name, source) in tests {
        std::fs::write(functions.join(name), source).expect("test file");
    }
    dir
}

struct Run {
    code: Option<i32>,
    stdout: String,
}

fn pulsebase_test(dir: &Path, extra: &[&str]) -> Run {
    let output = Command::new(binary())
        .arg("test")
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .expect("pulsebase runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

#[test]
fn a_passing_suite_prints_a_line_per_test_and_exits_zero() {
    let dir = app(&[("notes.test.rhai", PASSING)]);
    let run = pulsebase_test(dir.path(), &[]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[0].starts_with("ok   notes: adds a note ("),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("ok   notes: refuses anonymous callers ("),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].starts_with("2 passed, 0 failed ("),
        "{}",
        run.stdout
    );
}

#[test]
fn a_failing_test_is_reported_at_its_line_and_the_exit_code_is_non_zero() {
    let dir = app(&[("notes.test.rhai", PASSING), ("more.test.rhai", FAILING)]);
    let run = pulsebase_test(dir.path(), &[]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("FAIL more: expects too much ("),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines[1],
        "     functions/more.test.rhai:5:5: assert_eq failed: left and right differ at [1]",
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "\n       left:  nothing (the array has 1 elements)\n       right: \"there\"\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(r#"right value: ["hi","there"]"#),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\nok   notes: adds a note ("),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("2 passed, 1 failed (")),
        "{}",
        run.stdout
    );

    // A filter runs only the matching tests.
    let only = pulsebase_test(dir.path(), &["notes:"]);
    assert_eq!(only.code, Some(0), "{}", only.stdout);
    assert!(
        only.stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("2 passed, 0 failed")),
        "{}",
        only.stdout
    );
}

#[test]
fn broken_test_files_and_apps_fail_the_run() {
    let dir = app(&[("notes.test.rhai", "test(\"x\", |t| {\n  let = 1;\n});")]);
    let run = pulsebase_test(dir.path(), &[]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(run.stdout.starts_with("FAIL functions/notes.test.rhai (the test file does not load)\n     functions/notes.test.rhai:2:"), "{}", run.stdout);
    assert!(run.stdout.contains("0 passed, 1 failed"), "{}", run.stdout);

    let none = app(&[]);
    let run = pulsebase_test(none.path(), &[]);
    assert_eq!(run.code, Some(1), "no tests is a failure: {}", run.stdout);
    assert!(run.stdout.contains("no tests ran"), "{}", run.stdout);

    std::fs::write(
        none.path().join("functions/notes.rhai"),
        "export const x = ;",
    )
    .expect("write");
    let output = Command::new(binary())
        .args(["test", "--dir"])
        .arg(none.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("functions/ does not load") && stderr.contains("functions/notes.rhai:1:"),
        "{stderr}"
    );
}

#[test]
fn the_example_app_s_tests_pass() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = pulsebase_test(&root, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    for module in ["todos", "users", "messages"] {
        assert!(
            run.stdout.contains(&format!("\nok   {module}: ")),
            "{module}: {}",
            run.stdout
        );
    }
    assert!(run.stdout.contains(" passed, 0 failed ("), "{}", run.stdout);
}

#[test]
fn test_files_are_left_out_of_codegen() {
    let dir = app(&[("extra.test.rhai", PASSING)]);
    let output = Command::new(binary())
        .args(["codegen", "--dir"])
        .arg(dir.path())
        .output()
        .expect("codegen runs");
    assert!(output.status.success());
    let api = std::fs::read_to_string(dir.path().join("functions/_generated/api.d.ts"))
        .expect("api.d.ts");
    assert!(api.contains("notes"), "{api}");
    assert!(!api.contains("extra"), "{api}");
}

/// A `pulsebase test --watch` process whose stdout lines arrive on a channel; killed on drop.
struct Watching {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watching {
    fn start(dir: &Path) -> Watching {
        let mut child = Command::new(binary())
            .args(["test", "--watch", "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulsebase starts");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Watching { child, lines }
    }

    /// Lines up to and including the first that starts with `prefix`, within 20 s.
    fn until(&self, prefix: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(prefix);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line starting with {prefix:?}; got:\n{}",
            seen.join("\n")
        );
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_runs_the_tests_again_on_save() {
    let dir = app(&[("notes.test.rhai", PASSING)]);
    let watching = Watching::start(dir.path());
    watching.until("2 passed, 0 failed");
    watching.until("watching functions/");

    std::fs::write(dir.path().join("functions/notes.test.rhai"), FAILING).expect("save");
    let lines = watching.until("0 passed, 1 failed");
    assert!(
        lines.iter().any(|l| l.contains("notes.test.rhai changed")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("FAIL notes: expects too much")),
        "{lines:?}"
    );
    watching.until("watching functions/");

    // A change to the app's code runs them too; a broken app says why and keeps watching.
    std::fs::write(
        dir.path().join("functions/notes.rhai"),
        "export const add = ;",
    )
    .expect("save");
    let lines = watching.until("✗ the tests did not run");
    assert!(
        lines.iter().any(|l| l.contains("notes.rhai changed")),
        "{lines:?}"
    );
    watching.until("watching functions/");
    std::fs::write(dir.path().join("functions/notes.rhai"), NOTES).expect("save");
    std::fs::write(dir.path().join("functions/notes.test.rhai"), PASSING).expect("save");
    watching.until("2 passed, 0 failed");
}
