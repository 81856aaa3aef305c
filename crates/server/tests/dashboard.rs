//! The dashboard's server side, in-process: every `/_dashboard/api/*` route and `/metrics`
//! refuse a missing or wrong admin key; the embedded pages are served with their types and
//! headers; `/metrics` parses as Prometheus text (with `prometheus-parse`) and counts what
//! happened; the `_system/` functions are admin-only and validate writes against the schema;
//! the live log streams an execution as it finishes, an action's too.

#![allow(clippy::unwrap_used)]

// Shared with `serve.rs`, which uses the token helpers this file does not.
#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::{Value, json};

use support::{ADMIN_KEY, TestServer};

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

async fn get(server: &TestServer, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url(server, path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_dashboard_route_needs_the_admin_key() {
    let server = TestServer::start().await;
    let admin = format!("Convex {ADMIN_KEY}");
    for path in [
        "/_dashboard/api/check",
        "/_dashboard/api/functions",
        "/_dashboard/api/auth",
        "/_dashboard/api/health",
        "/_dashboard/api/logs",
        "/_dashboard/api/nothing-here",
        "/metrics",
    ] {
        for auth in [None, Some("Convex wrong-key"), Some("Bearer wrong-key")] {
            let res = get(&server, path, auth).await;
            assert_eq!(res.status(), 401, "{path} with {auth:?}");
            let body: Value = res.json().await.unwrap();
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains(".pulsebase/admin_key")
            );
        }
    }
    let refused = reqwest::Client::new()
        .post(url(&server, "/_dashboard/api/auth/check"))
        .body(r#"{"token":"x.y.z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    for path in [
        "/_dashboard/api/check",
        "/_dashboard/api/functions",
        "/_dashboard/api/auth",
        "/_dashboard/api/health",
    ] {
        let res = get(&server, path, Some(&admin)).await;
        assert_eq!(res.status(), 200, "{path}");
    }
    let functions: Value = get(&server, "/_dashboard/api/functions", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let add = functions["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "notes:add")
        .unwrap();
    assert_eq!(add["kind"], "mutation");
    assert_eq!(add["file"], "functions/notes.rhai");
    assert!(add["line"].as_u64().unwrap() > 0);
    assert_eq!(add["args"], json!([{ "name": "text", "type": "string" }]));
}

#[tokio::test]
async fn pages_are_embedded_with_types_and_headers() {
    let server = TestServer::start().await;
    let res = get(&server, "/_dashboard/", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert!(res.text().await.unwrap().contains("js/main.js"));
    let again = reqwest::Client::new()
        .get(url(&server, "/_dashboard/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let js = get(&server, "/_dashboard/js/main.js", None).await;
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(js.text().await.unwrap().contains("PAGES"));
    assert_eq!(
        get(&server, "/_dashboard/nope.js", None).await.status(),
        404
    );
}

/// `/api/function` as the admin (or anonymously), the way the dashboard runs functions.
async fn function(server: &TestServer, path: &str, args: Value, admin: bool) -> Value {
    let mut request = reqwest::Client::new()
        .post(url(server, "/api/function"))
        .json(&json!({ "path": path, "args": args, "format": "convex_encoded_json" }));
    if admin {
        request = request.header("authorization", format!("Convex {ADMIN_KEY}"));
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn system_functions_are_admin_only_and_validate_writes() {
    let server = TestServer::start().await;
    let anonymous = function(&server, "_system/tables:list", json!({}), false).await;
    assert_eq!(anonymous["status"], "error");
    assert!(
        anonymous["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Could not find public function")
    );

    let id = function(
        &server,
        "_system/documents:insert",
        json!({ "table": "notes", "document": { "text": "hi" } }),
        true,
    )
    .await;
    assert_eq!(id["status"], "success", "{id}");
    let bad = function(
        &server,
        "_system/documents:insert",
        json!({ "table": "notes", "document": { "text": 5 } }),
        true,
    )
    .await;
    assert_eq!(bad["status"], "error");
    assert_eq!(bad["errorData"]["kind"], "SchemaValidation");
    assert_eq!(bad["errorData"]["path"], "text");
    assert!(
        bad["errorData"]["message"]
            .as_str()
            .unwrap()
            .contains("expected string")
    );

    let tables = function(&server, "_system/tables:list", json!({}), true).await;
    let count = |name: &str| {
        tables["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["count"].as_f64())
    };
    assert_eq!(count("notes"), Some(Some(1.0)), "{tables}");
    // The engine's system table is listed (read-only), so stored files can be looked at.
    assert_eq!(count("_storage"), Some(Some(0.0)), "{tables}");
    let system_write = function(
        &server,
        "_system/documents:insert",
        json!({ "table": "_storage", "document": { "sha256": "x", "size": 1 } }),
        true,
    )
    .await;
    assert_eq!(system_write["status"], "error", "{system_write}");
    assert!(
        system_write["errorMessage"]
            .as_str()
            .unwrap()
            .contains("cannot write the system table"),
        "{system_write}"
    );

    for text in ["b", "c"] {
        function(
            &server,
            "_system/documents:insert",
            json!({ "table": "notes", "document": { "text": text } }),
            true,
        )
        .await;
    }
    let first = function(
        &server,
        "_system/documents:page",
        json!({ "table": "notes", "numItems": 2 }),
        true,
    )
    .await;
    let page: Vec<&str> = first["value"]["page"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(page, ["c", "b"], "newest first");
    assert_eq!(first["value"]["isDone"], false);
    let cursor = first["value"]["continueCursor"].clone();
    let second = function(
        &server,
        "_system/documents:page",
        json!({ "table": "notes", "numItems": 2, "cursor": cursor }),
        true,
    )
    .await;
    assert_eq!(second["value"]["page"][0]["text"], "hi");
    assert_eq!(second["value"]["isDone"], true);
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let server = TestServer::start().await;
    let public = get(&server, "/metrics", None).await;
    assert_eq!(public.status(), 401);
    server
        .call("/api/mutation", "notes:add", json!({ "text": "x" }), None)
        .await;
    let refused = reqwest::Client::new()
        .post(url(&server, "/api/query"))
        .header("authorization", "Bearer not-a-jwt")
        .json(&json!({ "path": "notes:texts", "args": [{}], "format": "convex_encoded_json" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let res = get(&server, "/metrics", Some(&format!("Bearer {ADMIN_KEY}"))).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let find = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no sample {name} {label:?} in\n{text}"))
            .value
            .clone()
    };
    match find(
        "pulsebase_function_duration_seconds",
        Some(("kind", "mutation")),
    ) {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(
                buckets.last().unwrap().count,
                1.0,
                "one mutation ran: {buckets:?}"
            );
        }
        other => panic!("not a histogram: {other:?}"),
    }
    match find("pulsebase_commit_duration_seconds", None) {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.last().unwrap().count >= 1.0)
        }
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(matches!(
        find("pulsebase_token_rejections_total", Some(("reason", "malformed"))),
        prometheus_parse::Value::Counter(n) if n == 1.0
    ));
    for gauge in [
        "pulsebase_sessions",
        "pulsebase_subscriptions",
        "pulsebase_query_instances",
        "pulsebase_wal_bytes",
    ] {
        assert!(
            matches!(find(gauge, None), prometheus_parse::Value::Gauge(_)),
            "{gauge}"
        );
    }
    assert!(
        matches!(find("pulsebase_database_bytes", None), prometheus_parse::Value::Gauge(n) if n > 0.0)
    );
}

#[tokio::test]
async fn the_log_streams_each_execution_as_it_finishes() {
    let server = TestServer::start().await;
    let res = get(
        &server,
        "/_dashboard/api/logs?path=notes",
        Some(&format!("Convex {ADMIN_KEY}")),
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut res = res;
    let mut text = String::new();
    let mut read_line = async || -> Value {
        loop {
            if let Some(nl) = text.find('\n') {
                let line: String = text.drain(..=nl).collect();
                return serde_json::from_str(&line).unwrap();
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    assert_eq!(read_line().await["type"], "history");
    server
        .call("/api/mutation", "notes:failWithText", json!({}), None)
        .await;
    server
        .call(
            "/api/mutation",
            "notes:add",
            json!({ "text": "logged" }),
            None,
        )
        .await;
    let failed = read_line().await;
    assert_eq!(
        (
            failed["type"].as_str(),
            failed["path"].as_str(),
            failed["outcome"].as_str()
        ),
        (Some("record"), Some("notes:failWithText"), Some("error"))
    );
    assert!(failed["error"].as_str().unwrap().contains("boom"));
    assert_eq!(failed["caller"], "anonymous");
    let added = read_line().await;
    assert_eq!(
        (
            added["path"].as_str(),
            added["kind"].as_str(),
            added["outcome"].as_str()
        ),
        (Some("notes:add"), Some("mutation"), Some("success"))
    );

    // An action is recorded when it finishes on the action threads, after the mutation it ran.
    let acted = server
        .call(
            "/api/action",
            "notes:addAndLog",
            json!({ "text": "from an action" }),
            None,
        )
        .await;
    assert_eq!(acted.body["status"], "success", "{acted:?}");
    let nested = read_line().await;
    assert_eq!(
        (nested["path"].as_str(), nested["kind"].as_str()),
        (Some("notes:add"), Some("mutation"))
    );
    let action = read_line().await;
    assert_eq!(
        (
            action["path"].as_str(),
            action["kind"].as_str(),
            action["outcome"].as_str(),
            action["caller"].as_str()
        ),
        (
            Some("notes:addAndLog"),
            Some("action"),
            Some("success"),
            Some("anonymous")
        )
    );
    assert_eq!(
        action["logLines"][0], "[LOG] 'adding from an action'",
        "{action}"
    );
}
