//! `pulsebase test`'s API on the real engine: identities, queries and mutations through `t`,
//! seeding and reading with `t.run`, `expect_error`, the test clock that `ctx.now()` follows,
//! and that every test gets a database of its own.

mod testing_common;

use functions::testing::TEST_ISSUER;
use testing_common::{assert_all_pass, failure_of, outcome, run};

#[test]
fn a_passing_file_runs_its_tests_in_order() {
    let outcomes = run(r#"
        test("adds a todo", |t| {
            let asAda = t.withIdentity(#{ subject: "ada", name: "Ada" });
            asAda.mutation("app:add", #{ text: "x" });
            let todos = asAda.query("app:mine", #{});
            assert_eq(todos.len(), 1);
            assert_eq(todos[0].text, "x");
            assert_eq(todos[0].userId, "ada");
        });
        test("args may be left out", |t| {
            assert_eq(t.query("app:count"), 0);
        });
    "#);
    assert_all_pass(&outcomes);
    let names: Vec<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["adds a todo", "args may be left out"]);
}

#[test]
fn tests_do_not_see_each_other_s_data() {
    let outcomes = run(r#"
        test("writes", |t| {
            t.withIdentity(#{ subject: "ada" }).mutation("app:add", #{ text: "x" });
            assert_eq(t.query("app:count"), 1);
        });
        test("starts empty", |t| {
            assert_eq(t.query("app:count"), 0);
        });
    "#);
    assert_all_pass(&outcomes);
}

#[test]
fn identities_are_filled_in_as_convex_test_does() {
    let outcomes = run(&format!(
        r#"
        test("defaults", |t| {{
            let me = t.withIdentity(#{{ name: "Sarah" }}).query("app:whoami");
            assert_eq(me.name, "Sarah");
            assert_eq(me.issuer, "{TEST_ISSUER}");
            assert_eq(type_of(me.subject), "string");
            assert(me.subject != "");
            assert_eq(me.tokenIdentifier, me.issuer + "|" + me.subject);
            // The same claims give the same subject.
            assert_eq(t.withIdentity(#{{ name: "Sarah" }}).query("app:whoami").subject, me.subject);
        }});
        test("given fields are kept", |t| {{
            let me = t.withIdentity(#{{ subject: "u1", issuer: "https://issuer.example", role: "admin" }}).query("app:whoami");
            assert_eq(me, #{{ subject: "u1", issuer: "https://issuer.example", role: "admin", tokenIdentifier: "https://issuer.example|u1" }});
        }});
        test("anonymous by default", |t| {{
            assert_eq(t.query("app:whoami"), ());
        }});
    "#
    ));
    assert_all_pass(&outcomes);
}

#[test]
fn run_seeds_and_reads_tables_in_a_mutation() {
    let outcomes = run(r#"
        test("seed then read through a query", |t| {
            let id = t.run(|ctx| ctx.db.insert("todos", #{ text: "seeded", userId: "ada", completed: true }));
            let asAda = t.withIdentity(#{ subject: "ada" });
            assert_eq(asAda.query("app:mine").map(|d| d.text), ["seeded"]);
            assert_eq(t.run(|ctx| ctx.db.get(id).completed), true);
        });
        test("run sees the handle's identity", |t| {
            let subject = t.withIdentity(#{ subject: "bob" }).run(|ctx| ctx.auth.getUserIdentity().subject);
            assert_eq(subject, "bob");
        });
        test("a throwing run writes nothing", |t| {
            expect_error(|| t.run(|ctx| {
                ctx.db.insert("todos", #{ text: "ghost", userId: "u", completed: false });
                throw "changed my mind";
            }), "changed my mind");
            assert_eq(t.query("app:count"), 0);
        });
        test("the schema holds in run", |t| {
            expect_error(|| t.run(|ctx| ctx.db.insert("todos", #{ text: 1 })), "todos");
        });
    "#);
    assert_all_pass(&outcomes);
}

#[test]
fn expect_error_matches_messages_and_data() {
    let outcomes = run(r#"
        test("message", |t| {
            let e = expect_error(|| t.mutation("app:add", #{ text: "x" }), "Unauthorized");
            assert(e.message.contains("at functions/app.rhai:"), e.message);
        });
        test("data", |t| {
            let e = expect_error(|| t.mutation("app:refuse"), #{ code: "NOPE", n: 1 });
            assert_eq(e.data.code, "NOPE");
            // The failed mutation wrote nothing.
            assert_eq(t.query("app:count"), 0);
        });
        test("any error", |t| {
            expect_error(|| t.query("app:nope"));
        });
        test("try and catch see the call error", |t| {
            try {
                t.mutation("app:refuse");
                assert(false, "not reached");
            } catch (e) {
                assert_eq(e.function, "app:refuse");
                assert_eq(e.data, #{ code: "NOPE", n: 1 });
            }
        });
    "#);
    assert_all_pass(&outcomes);
}

#[test]
fn internal_functions_are_callable_from_tests() {
    assert_all_pass(&run(r#"
        test("internal", |t| { assert_eq(t.query("app:secret"), 42); });
    "#));
}

#[test]
fn ctx_now_follows_the_test_clock() {
    let outcomes = run(r#"
        test("clock", |t| {
            let start = t.now();
            assert_eq(t.query("app:now"), start);
            assert_eq(t.query("app:now"), start, "the clock stands still");
            t.advanceTime(60000);
            assert_eq(t.query("app:now"), start + 60000.0);
            assert_eq(t.mutation("app:stamp"), `${start + 60000.0}`);
            t.advanceTime(0.5);
            assert_eq(t.now(), start + 60000.5);
            assert_eq(t.run(|ctx| ctx.now()), start + 60000.5);
            expect_error(|| t.advanceTime(-1), "only moves forward");
        });
        test("scheduled functions are not pretended", |t| {
            expect_error(|| t.finishAllScheduledFunctions(), "no scheduled functions yet");
            expect_error(|| t.finishInProgressScheduledFunctions(), "no scheduled functions yet");
        });
    "#);
    assert_all_pass(&outcomes);
    // The clock starts at the wall clock.
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as f64;
    let outcomes = run(&format!(
        r#"test("starts now", |t| {{ assert(t.now() >= {} && t.now() <= {}); }});"#,
        wall - 60_000.0,
        wall + 60_000.0
    ));
    assert_all_pass(&outcomes);
}

#[test]
fn prints_and_function_logs_are_kept_with_the_test() {
    let outcomes = run(r#"
        test("talks", |t| {
            print("from the test");
            t.query("app:noisy");
        });
    "#);
    assert_all_pass(&outcomes);
    let talks = outcome(&outcomes, "talks");
    assert_eq!(talks.output, ["from the test"]);
    assert_eq!(talks.logs, ["app:noisy: [LOG] 'hello from noisy'"]);
}

#[test]
fn helpers_and_top_level_values_are_shared_by_the_tests() {
    let outcomes = run(r#"
        let text = "shared";
        fn add_as(t, subject, text) {
            t.withIdentity(#{ subject: subject }).mutation("app:add", #{ text: text })
        }
        test("one", |t| { add_as(t, "a", text); assert_eq(t.query("app:count"), 1); });
        test("two", |t| {
            add_as(t, "a", text);
            add_as(t, "b", text);
            assert_eq(t.withIdentity(#{ subject: "b" }).query("app:mine")[0].text, "shared");
        });
        test("the method spelling is refused with the right name", |t| {
            let e = expect_error(|| t.expectError(|| 1, "x"), "expect_error(|| ..., expected)");
        });
    "#);
    assert_all_pass(&outcomes);
}

#[test]
fn a_handle_used_inside_run_is_refused_not_deadlocked() {
    let outcomes = run(r#"
        test("nested", |t| {
            let asAda = t.withIdentity(#{ subject: "ada" });
            t.run(|ctx| asAda.query("app:count"));
        });
        test("the clock", |t| {
            let asAda = t.withIdentity(#{ subject: "ada" });
            t.run(|ctx| asAda.advanceTime(1));
        });
        test("t itself", |t| {
            t.run(|ctx| t.query("app:count"));
        });
    "#);
    for name in ["nested", "the clock"] {
        let failure = failure_of(&outcomes, name);
        assert!(
            failure.message.contains("cannot be called inside t.run"),
            "{failure}"
        );
    }
    let failure = failure_of(&outcomes, "t itself");
    assert!(
        failure
            .message
            .contains("a closure passed to a method of t (t.run) cannot use t"),
        "{failure}"
    );
}
