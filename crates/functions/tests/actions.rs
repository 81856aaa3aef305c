//! Actions without a server: declarations, who may call them, argument and result
//! validation, `ctx.runQuery`/`ctx.runMutation` through a recording [`ActionHost`],
//! `ctx.runAction` inline (identity, logs, errors, the depth limit), what `fetch(url, options)`
//! hands the host and how its response reads, and what stays refused outside actions.

mod actions_common;

use std::sync::Arc;
use std::time::Duration;

use actions_common::*;
use auth::Identity;
use functions::{
    ActionHost, Call, Caller, ErrorKind, FetchRequest, FetchResponse, FunctionKind, FunctionPath,
    Modules, NestedCall,
};
use value::Value;

#[test]
fn actions_validate_arguments_and_results_and_keep_log_lines() {
    let host = Arc::new(Host::default());
    let done = run(&host, "acts:echo", args(&[("text", Value::from("ab"))]));
    let value = done.result.expect("echo succeeds");
    assert_eq!(field(&value, "twice"), &Value::from("abab"));
    assert_eq!(done.log_lines, vec!["[LOG] 'echoing ab'".to_string()]);

    let bad = error(run(
        &host,
        "acts:echo",
        args(&[("text", Value::Float64(5.0))]),
    ));
    assert_eq!(bad.kind, ErrorKind::BadArgs);
    assert!(bad.message.contains("args.text"), "{}", bad.message);

    let returned = error(run(&host, "acts:badResult", args(&[])));
    assert!(
        returned.message.contains("ReturnsValidationError"),
        "{}",
        returned.message
    );
}

#[test]
fn internal_actions_are_invisible_to_clients_and_kinds_do_not_mix() {
    let host = Arc::new(Host::default());
    let hidden = error(run(&host, "acts:hidden", args(&[])));
    assert!(
        hidden.message.contains("Could not find public function"),
        "{}",
        hidden.message
    );
    assert!(!hidden.message.contains("hidden,"), "{}", hidden.message);
    let trusted = run_as(&host, "acts:hidden", args(&[]), Caller::Trusted, None);
    assert_eq!(trusted.result.expect("admin may"), Value::from("secret"));

    let modules = modules();
    let as_query = modules
        .resolve(
            &FunctionPath::parse("acts:echo"),
            FunctionKind::Query,
            Caller::Client,
        )
        .err()
        .expect("an action is not a query");
    assert!(
        as_query.message.contains("is an action, not a query"),
        "{}",
        as_query.message
    );
}

#[test]
fn nested_queries_and_mutations_go_through_the_host() {
    let host = Arc::new(Host::default());
    let done = run(&host, "acts:store", args(&[("n", Value::Float64(3.0))]));
    let value = done.result.expect("store succeeds");
    assert_eq!(field(&value, "written"), &Value::from("written"));
    assert_eq!(
        host.calls.lock().clone(),
        vec![
            "query data:get".to_string(),
            "mutation data:put".to_string()
        ]
    );
    assert_eq!(done.log_lines, vec!["[LOG] 'from the query'".to_string()]);
}

#[test]
fn run_action_runs_inline_with_the_callers_identity_and_logs() {
    let host = Arc::new(Host::default());
    let identity = Identity::acting_as(&serde_json::json!({"subject": "u1", "issuer": "i"}))
        .expect("an identity");
    let me = identity.value().clone();
    let done = run_as(
        &host,
        "acts:outer",
        args(&[]),
        Caller::Client,
        Some(identity),
    );
    let value = done.result.expect("outer succeeds");
    let inner = field(&value, "inner");
    assert_eq!(field(inner, "doubled"), &Value::Float64(4.0));
    assert_eq!(field(inner, "me"), &me);
    assert_eq!(field(&value, "me"), &me);
    assert_eq!(
        done.log_lines,
        vec!["[LOG] 'outer'".to_string(), "[LOG] 'inner'".to_string()]
    );
}

#[test]
fn recursion_through_run_action_meets_the_depth_limit() {
    let host = Arc::new(Host::default());
    let error = error(run(&host, "acts:recurse", args(&[])));
    assert_eq!(error.kind, ErrorKind::Limit);
    assert!(
        error.message.contains("maximum call depth"),
        "{}",
        error.message
    );
    assert!(error.message.contains("ctx.runAction"), "{}", error.message);
}

#[test]
fn thrown_data_reaches_the_caller_and_a_calling_action() {
    let host = Arc::new(Host::default());
    let thrown = error(run(&host, "acts:throwsData", args(&[])));
    assert_eq!(
        thrown.data.map(|d| d.to_json()),
        Some(serde_json::json!({"code": "NOPE", "n": 1.5}))
    );
    let caught = run(&host, "acts:catchesInner", args(&[]));
    assert_eq!(caught.result.expect("caught"), Value::from("NOPE"));
}

#[test]
fn what_actions_may_not_use_is_refused_with_the_reason() {
    let host = Arc::new(Host::default());
    let db = error(run(&host, "acts:useDb", args(&[])));
    assert!(
        db.message.contains("ctx.db is not available in an action"),
        "{}",
        db.message
    );
    let scheduler = error(run(&host, "acts:useScheduler", args(&[])));
    assert!(
        scheduler.message.contains("ctx.scheduler is not available"),
        "{}",
        scheduler.message
    );
}

#[test]
fn fetch_hands_the_host_the_request_and_reads_the_response() {
    let host = Arc::new(Host::default());
    let options = args(&[
        ("method", Value::from("post")),
        (
            "headers",
            args(&[("x-one", Value::from("1")), ("x-two", Value::Float64(2.0))]),
        ),
        ("body", args(&[("hello", Value::Int64(1))])),
        ("timeout", Value::Int64(1500)),
    ]);
    let done = run(
        &host,
        "acts:fetchIt",
        args(&[
            ("url", Value::from("http://example.com/x")),
            ("options", options),
        ]),
    );
    let value = done.result.expect("fetch succeeds");
    assert_eq!(field(&value, "status"), &Value::Int64(201));
    assert_eq!(field(&value, "ok"), &Value::from(true));
    assert_eq!(field(&value, "statusText"), &Value::from("Created"));
    assert_eq!(
        field(&value, "url"),
        &Value::from("http://example.com/x#final")
    );
    assert_eq!(field(&value, "type"), &Value::from("application/json"));
    assert_eq!(field(&value, "text"), &Value::from(r#"{"a":[1,2]}"#));
    assert_eq!(
        field(&value, "json").to_json(),
        serde_json::json!({"a": [1.0, 2.0]})
    );

    let sent = host.fetches.lock()[0].clone();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.body.as_deref(), Some(br#"{"hello":1}"#.as_slice()));
    assert!(
        sent.headers
            .contains(&("content-type".into(), "application/json".into()))
    );
    assert!(sent.headers.contains(&("x-two".into(), "2.0".into())));
    assert_eq!(sent.timeout, Some(Duration::from_millis(1500)));
    let left = sent
        .time_left
        .expect("an action's fetch knows its time left");
    assert!(
        left > Duration::from_secs(590) && left <= Duration::from_secs(600),
        "{left:?}"
    );
}

#[test]
fn fetch_errors_are_the_scripts_errors() {
    let host = Arc::new(Host::default());
    let call = |url: &str, options: Value| {
        error(run(
            &host,
            "acts:fetchIt",
            args(&[("url", Value::from(url)), ("options", options)]),
        ))
        .message
    };
    let refused = call("http://refused/", Value::Null);
    assert!(
        refused.contains("fetch to http://refused/ refused: 10.0.0.1 is a private address"),
        "{refused}"
    );
    let get_body = call("http://x/", args(&[("body", Value::from("b"))]));
    assert!(
        get_body.contains("a GET request cannot have a body"),
        "{get_body}"
    );
    let unknown = call("http://x/", args(&[("mode", Value::from("cors"))]));
    assert!(unknown.contains("unknown option `mode`"), "{unknown}");
    let timeout = call("http://x/", args(&[("timeout", Value::Int64(-1))]));
    assert!(
        timeout.contains("timeout must be a positive number"),
        "{timeout}"
    );
    let not_json = error(run(
        &host,
        "acts:fetchText",
        args(&[("url", Value::from("http://x/not-json"))]),
    ))
    .message;
    assert!(not_json.contains("is not JSON"), "{not_json}");
    let plain = run(
        &host,
        "acts:fetchPlain",
        args(&[("url", Value::from("http://x/"))]),
    );
    assert_eq!(plain.result.expect("a plain GET"), Value::Int64(201));
}

/// Runs nested queries for real, on this thread, against a database: what the application
/// does, so a query inside an action runs while the action's host is this thread's host.
struct RealHost {
    modules: Arc<Modules>,
    db: database::Database,
}

impl ActionHost for RealHost {
    fn run_query(&self, path: &FunctionPath, args: Value) -> NestedCall {
        let txn = self.db.snapshot().expect("snapshot");
        let call = Call {
            path: path.clone(),
            kind: FunctionKind::Query,
            caller: Caller::Trusted,
            args,
            identity: None,
            now_ms: 0.0,
        };
        let execution = self.modules.run(call, Box::new(txn)).execution;
        NestedCall {
            result: execution.result,
            log_lines: execution.log_lines,
        }
    }

    fn run_mutation(&self, path: &FunctionPath, _: Value) -> NestedCall {
        panic!("no mutation expected: {path}")
    }

    fn env_var(&self, _: &str) -> Result<Option<String>, String> {
        Ok(Some("set".into()))
    }

    fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, String> {
        panic!("a query reached the network: {}", request.url)
    }

    fn id_tables(&self) -> Arc<dyn schema::IdTables + Send + Sync> {
        Arc::new(NoTables)
    }
}

#[test]
fn queries_and_mutations_cannot_fetch_read_env_or_run_actions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = schema::Schema::parse("", "schema.toml").expect("schema");
    let (db, _) = database::Database::open(&dir.path().join("db.sqlite3"), schema, "").expect("db");
    let modules = Arc::new(modules());
    let host = Arc::new(RealHost {
        modules: modules.clone(),
        db,
    });

    // Called from an action, on the action's thread: still a query.
    let from_action = modules.run_action(
        &FunctionPath::parse("acts:store"),
        Caller::Client,
        args(&[("n", Value::Float64(1.0))]),
        None,
        host.clone(),
        0.0,
    );
    let message = from_action.result.expect_err("the query refuses").message;
    assert!(
        message.contains("ctx.runAction is only available in actions"),
        "{message}"
    );

    let query = |path: &str| {
        let txn = host.db.snapshot().expect("snapshot");
        let call = Call {
            path: FunctionPath::parse(path),
            kind: FunctionKind::Query,
            caller: Caller::Client,
            args: args(&[]),
            identity: None,
            now_ms: 0.0,
        };
        let execution = modules.run(call, Box::new(txn)).execution;
        execution.result.expect_err("refused").message
    };
    let fetched = query("data:viaQuery");
    assert!(
        fetched.contains("fetch() is only available in actions"),
        "{fetched}"
    );
}
