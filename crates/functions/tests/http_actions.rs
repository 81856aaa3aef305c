//! HTTP actions without a server: route declarations (and their load errors), lookup, and
//! running handlers against a recording [`ActionHost`].

mod http_actions_common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use auth::{Authorization, Identity, Rejection, TokenRejection, VerifiedToken};
use functions::webhook;
use functions::{ModuleSource, Modules};
use http_actions_common::*;

#[test]
fn reserved_and_malformed_routes_are_load_errors_at_their_line() {
    let (line, message) = load_error(
        "let ok = httpAction(|ctx, r| #{});\nexport const http = httpRouter()\n    .route(#{ path: \"/fine\", method: \"GET\", handler: ok })\n    .route(#{ path: \"/api/mine\", method: \"GET\", handler: ok });",
    );
    assert_eq!(line, 4, "{message}");
    assert!(message.contains("reserved"), "{message}");

    let (line, message) = load_error(
        "export const http = httpRouter().route(#{ pathPrefix: \"/dev-issuer/\", method: \"GET\", handler: httpAction(|c, r| #{}) });",
    );
    assert_eq!(line, 1);
    assert!(message.contains("reserved"), "{message}");

    let (_, message) = load_error(
        "export const http = httpRouter().route(#{ pathPrefix: \"/files\", method: \"GET\", handler: httpAction(|c, r| #{}) });",
    );
    assert!(message.contains("must end with `/`"), "{message}");

    let (_, message) = load_error(
        "export const http = httpRouter().route(#{ path: \"/x\", method: \"FETCH\", handler: httpAction(|c, r| #{}) });",
    );
    assert!(message.contains("not one of GET"), "{message}");

    let (line, message) = load_error(
        "let h = httpAction(|c, r| #{});\nexport const http = httpRouter()\n  .route(#{ path: \"/x\", method: \"POST\", handler: h })\n  .route(#{ path: \"/x\", method: \"post\", handler: h });",
    );
    assert_eq!(line, 4);
    assert!(message.contains("already declared at line 3"), "{message}");

    let (_, message) = load_error(
        "export const http = httpRouter().route(#{ path: \"/x\", method: \"GET\", handler: query(|c, a| 1) });",
    );
    assert!(message.contains("httpAction"), "{message}");

    let elsewhere = Modules::from_sources(vec![ModuleSource {
        module: "todos".into(),
        file: "functions/todos.rhai".into(),
        source: "export const http = httpRouter();".into(),
    }])
    .err()
    .expect("a load error");
    assert!(
        elsewhere.0[0].message.contains("functions/http.rhai"),
        "{}",
        elsewhere.0[0]
    );
}

#[test]
fn lookup_prefers_exact_then_longest_prefix() {
    let modules = load(
        r#"
        fn answer(text) { httpAction(|ctx, request| #{ body: text }) }
        export const http = httpRouter()
            .route(#{ path: "/files/special", method: "GET", handler: answer("exact") })
            .route(#{ pathPrefix: "/files/", method: "GET", handler: answer("files") })
            .route(#{ pathPrefix: "/files/deep/", method: "GET", handler: answer("deep") })
            .route(#{ pathPrefix: "/", method: "GET", handler: answer("root") });
        "#,
    )
    .expect("loads");
    let router = modules.http_router().expect("router");
    let which = |path: &str| {
        router
            .lookup("GET", path)
            .map(|r| r.describe())
            .unwrap_or_else(|e| e)
    };
    assert_eq!(which("/files/special"), "GET /files/special");
    assert_eq!(which("/files/a"), "GET /files/*");
    assert_eq!(which("/files/deep/a"), "GET /files/deep/*");
    assert_eq!(which("/other"), "GET /*");
    // The catch-all never reaches into the server's own paths.
    assert!(which("/api/anything").contains("reserved"));
    assert!(which("//api/anything").contains("reserved"));
    let wrong_method = router.lookup("POST", "/files/a").err().expect("no route");
    assert!(wrong_method.contains("accept GET"), "{wrong_method}");
}

#[test]
fn handlers_see_the_request_and_reach_the_host() {
    let modules = load(
        r#"
        export const http = httpRouter().route(#{
            path: "/echo",
            method: "POST",
            handler: httpAction(|ctx, request| {
                let json = request.json();
                let found = ctx.runQuery("users:get", #{ id: json.id });
                let wrote = ctx.runMutation("users:save", #{ n: 1 });
                print("handled " + request.method);
                #{
                    status: 202,
                    headers: #{ "x-seen": request.headers["x-custom"] },
                    body: #{
                        text: request.text(),
                        size: request.bytes().len(),
                        url: request.url,
                        found: found,
                        wrote: wrote,
                        secret: env("SECRET"),
                        fallback: env("MISSING", "default"),
                    }
                }
            })
        });
        "#,
    )
    .expect("loads");
    let host = Arc::new(Recorder {
        env: vec![("SECRET", "s3")],
        ..Recorder::default()
    });
    let execution = run(
        &modules,
        host.clone(),
        request("POST", "/echo", &[("x-custom", "yes")], br#"{"id":"u1"}"#),
        Authorization::Anonymous,
    );
    let response = execution.result.as_ref().expect("a response").clone();
    assert_eq!(response.status, 202);
    assert!(
        response
            .headers
            .contains(&("x-seen".to_string(), "yes".to_string()))
    );
    assert!(
        response
            .headers
            .contains(&("content-type".to_string(), "application/json".to_string()))
    );
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({
            "text": "{\"id\":\"u1\"}",
            "size": 11,
            "url": "http://127.0.0.1:3210/echo",
            "found": { "id": "u1" },
            "wrote": "done",
            "secret": "s3",
            "fallback": "default",
        })
    );
    let calls = host.calls.lock().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].0.as_str(), calls[0].1.as_str()),
        ("query", "users:get")
    );
    assert_eq!(
        (calls[1].0.as_str(), calls[1].1.as_str()),
        ("mutation", "users:save")
    );
    assert_eq!(
        execution.log_lines,
        vec!["[LOG] 'handled POST'".to_string()]
    );
}

#[test]
fn actions_have_no_db_and_identity_errors_surface_only_when_read() {
    let modules = load(
        r#"
        export const http = httpRouter()
            .route(#{ path: "/db", method: "GET", handler: httpAction(|ctx, request| ctx.db.get("x")) })
            .route(#{ path: "/me", method: "GET", handler: httpAction(|ctx, request| {
                let me = ctx.auth.getUserIdentity();
                #{ body: if me == () { "anonymous" } else { me.subject } }
            }) })
            .route(#{ path: "/ignores-auth", method: "GET", handler: httpAction(|ctx, request| #{ body: "fine" }) })
            .route(#{ path: "/nested-error", method: "GET", handler: httpAction(|ctx, request| ctx.runQuery("users:fails")) })
            .route(#{ path: "/missing-env", method: "GET", handler: httpAction(|ctx, request| #{ body: env("CLERK_WEBHOOK_SECRET") }) })
            .route(#{ path: "/not-a-response", method: "GET", handler: httpAction(|ctx, request| 42) });
        "#,
    )
    .expect("loads");
    let host = Arc::new(Recorder::default());
    let get = |path: &str, authorization: Authorization| {
        run(
            &modules,
            host.clone(),
            request("GET", path, &[], b""),
            authorization,
        )
    };

    let db = get("/db", Authorization::Anonymous)
        .result
        .expect_err("fails");
    assert!(
        db.message.contains("ctx.db is not available in an action"),
        "{}",
        db.message
    );
    assert!(
        db.message.contains("functions/http.rhai:3:"),
        "{}",
        db.message
    );

    assert_eq!(
        body_text(&get("/me", Authorization::Anonymous)),
        "anonymous"
    );
    let user = Identity::acting_as(&serde_json::json!({"subject": "u7", "issuer": "i"}))
        .expect("an identity");
    let verified = VerifiedToken {
        identity: user,
        expires_at: u64::MAX,
    };
    assert_eq!(body_text(&get("/me", Authorization::User(verified))), "u7");
    let expired = TokenRejection::Expired { seconds_ago: 5 };
    let invalid = Authorization::Rejected(Rejection::Token(expired.clone()));
    let refused = get("/me", invalid.clone()).result.expect_err("throws");
    assert!(
        refused.message.contains(expired.client_message()),
        "{}",
        refused.message
    );
    assert_eq!(body_text(&get("/ignores-auth", invalid)), "fine");

    let nested = get("/nested-error", Authorization::Anonymous);
    let error = nested.result.expect_err("fails");
    assert!(
        error
            .message
            .starts_with("Uncaught Error: users:fails: nope"),
        "{}",
        error.message
    );
    assert_eq!(nested.log_lines, vec!["[LOG] 'inside'".to_string()]);

    let missing = get("/missing-env", Authorization::Anonymous)
        .result
        .expect_err("fails");
    assert!(
        missing.message.contains("CLERK_WEBHOOK_SECRET is not set"),
        "{}",
        missing.message
    );

    let bad = get("/not-a-response", Authorization::Anonymous)
        .result
        .expect_err("fails");
    assert!(
        bad.message.contains("must return a response"),
        "{}",
        bad.message
    );
}

#[test]
fn env_and_webhooks_are_refused_outside_actions() {
    let errors = load("let secret = env(\"CLERK_WEBHOOK_SECRET\");")
        .err()
        .expect("a load error");
    assert!(
        errors.0[0]
            .message
            .contains("only available in actions and HTTP actions"),
        "{}",
        errors.0[0]
    );
}

#[test]
fn verify_webhook_accepts_fresh_signatures_and_reports_why_not() {
    const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
    let modules = load(
        r#"
        export const http = httpRouter().route(#{
            path: "/hook",
            method: "POST",
            handler: httpAction(|ctx, request| {
                let webhook = Webhook(env("SECRET"));
                // try/catch is a statement in Rhai: return from inside it.
                try {
                    let event = webhook.verify(request);
                    return #{ body: event["type"] };
                } catch (err) {
                    return #{ status: 400, body: err.message };
                }
            })
        });
        "#,
    )
    .expect("loads");
    let host = Arc::new(Recorder {
        env: vec![("SECRET", SECRET)],
        ..Recorder::default()
    });
    let verifier = webhook::Verifier::new(SECRET).expect("secret");
    let sign =
        |id: &str, ts: u64, body: &[u8]| verifier.sign(id, ts as i64, body).expect("a text body");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let body = br#"{"type":"user.created","data":{"id":"user_1"}}"#;
    let post = |id: &str, ts: u64, signature: &str, body: &[u8]| {
        let ts = ts.to_string();
        let execution = run(
            &modules,
            host.clone(),
            request(
                "POST",
                "/hook",
                &[
                    ("svix-id", id),
                    ("svix-timestamp", &ts),
                    ("svix-signature", signature),
                ],
                body,
            ),
            Authorization::Anonymous,
        );
        let response = execution.result.expect("a response");
        (
            response.status,
            String::from_utf8_lossy(&response.body).into_owned(),
        )
    };
    let fresh = sign("msg_1", now, body);
    assert_eq!(
        post("msg_1", now, &fresh, body),
        (200, "user.created".into())
    );

    let (status, reason) = post("msg_1", now, &fresh, br#"{"type":"user.deleted"}"#);
    assert_eq!(status, 400);
    assert!(reason.contains("No matching signature"), "{reason}");

    let stale_ts = now - 360;
    let stale = sign("msg_1", stale_ts, body);
    let (status, reason) = post("msg_1", stale_ts, &stale, body);
    assert_eq!(status, 400);
    assert!(reason.contains("too old"), "{reason}");

    let unsigned_json = sign("msg_2", now, b"not json");
    let (status, reason) = post("msg_2", now, &unsigned_json, b"not json");
    assert_eq!(status, 400);
    assert!(reason.contains("not JSON"), "{reason}");
}

#[test]
fn large_bodies_reach_the_handler_as_text_and_bytes_within_the_blob_cap() {
    let modules = load(
        r#"
        export const http = httpRouter()
            .route(#{ path: "/text", method: "PUT", handler: httpAction(|ctx, request| #{ body: request.text().len() }) })
            .route(#{ path: "/bytes", method: "PUT", handler: httpAction(|ctx, request| #{ body: request.bytes().len() }) });
        "#,
    )
    .expect("loads");
    let put = |path: &str, size: usize| {
        run(
            &modules,
            Arc::new(Recorder::default()),
            request("PUT", path, &[], &vec![b'a'; size]),
            Authorization::Anonymous,
        )
    };
    assert_eq!(body_text(&put("/text", 1 << 20)), "1048576");
    assert_eq!(body_text(&put("/bytes", 50_000)), "50000");
    let too_big = put("/bytes", 200_000)
        .result
        .expect_err("over the blob cap");
    assert!(
        too_big.message.contains("caps blobs at 100000"),
        "{}",
        too_big.message
    );
}
