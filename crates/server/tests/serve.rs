//! The server in-process (`server::serve` on `127.0.0.1:0`, see `support/mod.rs`), driven
//! over HTTP and WebSocket as the `convex` clients drive it. Pins the behaviour of the
//! `Authorization` header (and of the same credentials in a WebSocket `Authenticate`), of the HTTP API's answers (a function's failure is HTTP 200 with
//! `status: "error"`; a refused request is a 4xx with `{"code","message"}`), and of one sync
//! round trip: subscribe, mutate, see the new result.

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use support::{ADMIN_KEY, Reply, TestServer};

/// The client text for a token that is not a JWT at all.
const NOT_A_JWT: &str = "Could not parse JWT payload. Check that the token is a valid JWT format with three base64-encoded parts separated by dots.";

fn assert_success(reply: &Reply, value: Value) {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["status"], "success", "{reply:?}");
    assert_eq!(reply.body["value"], value, "{reply:?}");
}

fn assert_refused(reply: &Reply, status: u16, code: &str, message: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({ "code": code, "message": message }),
        "{reply:?}"
    );
}

/// A function's failure: HTTP 200, `status: "error"`, the message, `logLines`.
fn error_message(reply: &Reply) -> &str {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["status"], "error", "{reply:?}");
    assert!(reply.body["logLines"].is_array(), "{reply:?}");
    reply.body["errorMessage"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn no_header_is_anonymous_and_a_valid_bearer_token_is_the_user() {
    let server = TestServer::start().await;
    let anonymous = server
        .call("/api/query", "notes:whoami", json!({}), None)
        .await;
    assert_success(&anonymous, Value::Null);

    let bearer = format!("Bearer {}", server.token("user_1"));
    let user = server
        .call("/api/query", "notes:whoami", json!({}), Some(&bearer))
        .await;
    assert_eq!(user.body["status"], "success", "{user:?}");
    let identity = &user.body["value"];
    assert_eq!(identity["subject"], "user_1");
    assert_eq!(identity["issuer"], server.issuer_url());
    assert_eq!(identity["name"], "Ada");
    assert_eq!(
        identity["tokenIdentifier"],
        format!("{}|user_1", server.issuer_url())
    );
}

#[tokio::test]
async fn a_refused_bearer_token_is_401_with_convex_short_text() {
    let server = TestServer::start().await;
    let garbage = server
        .call(
            "/api/query",
            "notes:whoami",
            json!({}),
            Some("Bearer not-a-jwt"),
        )
        .await;
    assert_refused(&garbage, 401, "InvalidAuthHeader", NOT_A_JWT);
    // The scheme is case-insensitive, as HTTP says.
    let lower = server
        .call(
            "/api/query",
            "notes:whoami",
            json!({}),
            Some("bearer not-a-jwt"),
        )
        .await;
    assert_refused(&lower, 401, "InvalidAuthHeader", NOT_A_JWT);
}

#[tokio::test]
async fn the_admin_key_calls_internal_functions_and_a_wrong_key_is_401() {
    let server = TestServer::start().await;
    let admin = format!("Convex {ADMIN_KEY}");
    let internal = server
        .call("/api/query", "notes:secret", json!({}), Some(&admin))
        .await;
    assert_success(&internal, json!("internal only"));
    let as_nobody = server
        .call("/api/query", "notes:whoami", json!({}), Some(&admin))
        .await;
    assert_success(&as_nobody, Value::Null);

    // To anyone else an internal function looks like a missing one.
    let bearer = format!("Bearer {}", server.token("user_1"));
    for authorization in [None, Some(bearer.as_str())] {
        let refused = server
            .call("/api/query", "notes:secret", json!({}), authorization)
            .await;
        assert!(
            error_message(&refused).contains("Could not find public function for 'notes:secret'"),
            "{refused:?}"
        );
    }

    let wrong = server
        .call(
            "/api/query",
            "notes:secret",
            json!({}),
            Some("Convex not-the-key"),
        )
        .await;
    assert_refused(
        &wrong,
        401,
        "BadAdminKey",
        "The provided admin key is invalid; read it from .pulsebase/admin_key",
    );
}

/// The user the admin acts as in the tests below.
fn user_9() -> Value {
    json!({ "subject": "user_9", "issuer": "https://issuer.example", "name": "Bo" })
}

/// `Authorization: Convex <admin key>:<base64 identity>`, as `ConvexHttpClient.setAdminAuth`
/// and `pulsebase run --identity` send it.
fn acting_as_header(identity: &Value) -> String {
    format!(
        "Convex {ADMIN_KEY}:{}",
        STANDARD.encode(identity.to_string())
    )
}

/// Over HTTP the admin may act as a user (`pulsebase run --identity`); the identity gains a
/// `tokenIdentifier` made of issuer and subject, as a verified token's has (Convex's rule; a
/// sync session gets the same, see the next test).
#[tokio::test]
async fn the_admin_acting_as_a_user_gets_a_token_identifier_over_http() {
    let server = TestServer::start().await;
    let admin_as_user = acting_as_header(&user_9());
    let reply = server
        .call(
            "/api/query",
            "notes:whoami",
            json!({}),
            Some(&admin_as_user),
        )
        .await;
    assert_eq!(reply.body["status"], "success", "{reply:?}");
    let seen = &reply.body["value"];
    assert_eq!(seen["subject"], "user_9");
    assert_eq!(seen["issuer"], "https://issuer.example");
    assert_eq!(seen["name"], "Bo");
    assert_eq!(seen["tokenIdentifier"], "https://issuer.example|user_9");
    // Still the admin: internal functions stay callable.
    let internal = server
        .call(
            "/api/query",
            "notes:secret",
            json!({}),
            Some(&admin_as_user),
        )
        .await;
    assert_success(&internal, json!("internal only"));

    let not_base64 = format!("Convex {ADMIN_KEY}:%%%");
    let refused = server
        .call("/api/query", "notes:whoami", json!({}), Some(&not_base64))
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.body["code"], "InvalidIdentity", "{refused:?}");

    // Neither a tokenIdentifier nor issuer and subject to make one: refused, as Convex does.
    let subject_only = acting_as_header(&json!({ "subject": "user_9" }));
    let refused = server
        .call("/api/query", "notes:whoami", json!({}), Some(&subject_only))
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.body["code"], "InvalidIdentity", "{refused:?}");
}

/// An admin acting as a user over the WebSocket (`Authenticate` with `tokenType: "Admin"` and
/// `impersonating`) is the same identity as over HTTP, `tokenIdentifier` included, because
/// both go through the one `authenticator::authorize`.
#[tokio::test]
async fn the_admin_acting_as_a_user_is_the_same_identity_over_websocket() {
    let server = TestServer::start().await;
    let identity = user_9();
    let over_http = server
        .call(
            "/api/query",
            "notes:whoami",
            json!({}),
            Some(&acting_as_header(&identity)),
        )
        .await;
    assert_eq!(over_http.body["status"], "success", "{over_http:?}");

    let mut ws = connect(&server).await;
    let authenticate = json!({
        "type": "Authenticate",
        "baseVersion": 0,
        "tokenType": "Admin",
        "value": ADMIN_KEY,
        "impersonating": identity,
    });
    send(&mut ws, authenticate).await;
    let subscribe = json!({
        "type": "ModifyQuerySet",
        "baseVersion": 0,
        "newVersion": 1,
        "modifications": [
            { "type": "Add", "queryId": 0, "udfPath": "notes:whoami", "args": [{}] },
            { "type": "Add", "queryId": 1, "udfPath": "notes:secret", "args": [{}] },
        ],
    });
    send(&mut ws, subscribe).await;
    // The identity's Transition may come alone before the queries' (or together with them).
    let mut transition = next_message(&mut ws).await;
    for _ in 0..2 {
        if transition["modifications"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
        {
            break;
        }
        assert_eq!(transition["type"], "Transition", "{transition}");
        transition = next_message(&mut ws).await;
    }
    assert_eq!(transition["type"], "Transition", "{transition}");
    assert_eq!(transition["endVersion"]["identity"], 1, "{transition}");
    let modifications = transition["modifications"]
        .as_array()
        .expect("modifications");
    let value = |query_id: u64| {
        modifications
            .iter()
            .find(|m| m["queryId"] == query_id)
            .map(|m| m["value"].clone())
            .unwrap_or_default()
    };
    assert_eq!(value(0), over_http.body["value"], "{transition}");
    assert_eq!(value(0)["tokenIdentifier"], "https://issuer.example|user_9");
    // Still the admin: internal functions stay visible.
    assert_eq!(value(1), json!("internal only"), "{transition}");

    // An acting-as object that is not an identity is refused with the HTTP API's reason, and
    // the session keeps acting as before.
    let not_an_identity = json!({
        "type": "Authenticate",
        "baseVersion": 1,
        "tokenType": "Admin",
        "value": ADMIN_KEY,
        "impersonating": { "subject": "user_9" },
    });
    send(&mut ws, not_an_identity).await;
    let refused = next_message(&mut ws).await;
    assert_eq!(refused["type"], "AuthError", "{refused}");
    assert_eq!(refused["authUpdateAttempted"], true, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("`tokenIdentifier`, or `issuer` and `subject`")),
        "{refused}"
    );
}

#[tokio::test]
async fn a_malformed_authorization_header_is_400() {
    let server = TestServer::start().await;
    let body = json!({ "path": "notes:whoami", "args": [{}] }).to_string();
    let basic = server
        .post("/api/query", Some(b"Basic dXNlcjpwYXNz"), &body)
        .await;
    assert_refused(
        &basic,
        400,
        "InvalidAuthHeader",
        "the Authorization header must be `Bearer <token>` or `Convex <admin key>`",
    );
    let not_text = server
        .post("/api/query", Some(b"Bearer \xe9t\xe9"), &body)
        .await;
    assert_refused(
        &not_text,
        400,
        "InvalidAuthHeader",
        "the Authorization header is not valid text",
    );
}

#[tokio::test]
async fn a_function_that_fails_answers_200_with_the_error() {
    let server = TestServer::start().await;
    let missing = server
        .call("/api/query", "notes:nothing", json!({}), None)
        .await;
    assert!(
        error_message(&missing).contains("Could not find public function for 'notes:nothing'"),
        "{missing:?}"
    );

    let invalid = server
        .call("/api/mutation", "notes:add", json!({ "text": 5 }), None)
        .await;
    let message = error_message(&invalid);
    assert!(
        message.contains("ArgumentValidationError") && message.contains("args.text"),
        "{invalid:?}"
    );
    assert!(invalid.body.get("errorData").is_none(), "{invalid:?}");

    let thrown = server
        .call("/api/mutation", "notes:failWithText", json!({}), None)
        .await;
    assert!(
        error_message(&thrown).starts_with("Uncaught Error: boom"),
        "{thrown:?}"
    );
    assert!(thrown.body.get("errorData").is_none(), "{thrown:?}");

    let structured = server
        .call("/api/mutation", "notes:failWithData", json!({}), None)
        .await;
    assert!(
        error_message(&structured).starts_with("Uncaught ConvexError: "),
        "{structured:?}"
    );
    // The thrown map as convex JSON: a Rhai integer is an int64 (`{"$integer": base64}`).
    assert_eq!(
        structured.body["errorData"],
        json!({ "code": "TAKEN", "detail": { "field": "name", "tries": { "$integer": "AwAAAAAAAAA=" } } }),
        "{structured:?}"
    );
}

#[tokio::test]
async fn a_request_that_is_not_a_function_call_is_400_with_a_code() {
    let server = TestServer::start().await;
    let not_json = server.post("/api/query", None, "{not json").await;
    assert_eq!(not_json.status, 400, "{not_json:?}");
    assert_eq!(not_json.body["code"], "BadJsonBody", "{not_json:?}");
    assert!(
        not_json.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the request body is not a function call")),
        "{not_json:?}"
    );
    let two_args = json!({ "path": "notes:texts", "args": [{}, {}] }).to_string();
    let bad_args = server.post("/api/mutation", None, &two_args).await;
    assert_refused(
        &bad_args,
        400,
        "BadArgs",
        "args must be an array holding exactly one object, found 2 elements",
    );
}

#[tokio::test]
async fn a_sync_session_sees_its_own_mutation() {
    let server = TestServer::start().await;
    let mut ws = connect(&server).await;
    let subscribe = json!({
        "type": "ModifyQuerySet",
        "baseVersion": 0,
        "newVersion": 1,
        "modifications": [{ "type": "Add", "queryId": 0, "udfPath": "notes:texts", "args": [{}] }],
    });
    send(&mut ws, subscribe).await;

    let first = next_message(&mut ws).await;
    assert_eq!(first["type"], "Transition", "{first}");
    assert_eq!(first["startVersion"]["querySet"], 0, "{first}");
    assert_eq!(first["endVersion"]["querySet"], 1, "{first}");
    assert_eq!(
        first["modifications"],
        json!([{ "type": "QueryUpdated", "queryId": 0, "value": [], "logLines": [], "journal": null }]),
        "{first}"
    );

    let mutation = json!({
        "type": "Mutation",
        "requestId": 0,
        "udfPath": "notes:add",
        "args": [{ "text": "hello" }],
    });
    send(&mut ws, mutation).await;
    // The MutationResponse and the Transition that shows the write may come in either order
    // (the commit wakes the subscription while the response is on its way); a Transition at
    // or past the commit's ts follows the response in any case.
    let mut response = None;
    let mut previous_end = first["endVersion"].clone();
    let mut shown_at = None;
    for _ in 0..4 {
        let message = next_message(&mut ws).await;
        match message["type"].as_str() {
            Some("MutationResponse") => response = Some(message),
            Some("Transition") => {
                assert_eq!(message["startVersion"], previous_end, "{message}");
                previous_end = message["endVersion"].clone();
                let shows = message["modifications"]
                    == json!([{ "type": "QueryUpdated", "queryId": 0, "value": ["hello"], "logLines": [], "journal": null }]);
                if shows {
                    shown_at = Some(ts(&message["endVersion"]["ts"]));
                }
            }
            _ => panic!("unexpected message: {message}"),
        }
        if response.is_some() && shown_at.is_some() {
            break;
        }
    }
    let response = response.expect("a MutationResponse");
    assert_eq!(response["requestId"], 0, "{response}");
    assert_eq!(response["success"], true, "{response}");
    assert!(
        response["result"].as_str().is_some_and(|id| !id.is_empty()),
        "the new document's id: {response}"
    );
    let committed = ts(&response["ts"]);
    let shown_at = shown_at.expect("a Transition that shows the write");
    assert!(
        shown_at >= committed,
        "shown at {shown_at}, committed at {committed}"
    );
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A sync session on `server`, after `Connect`.
async fn connect(server: &TestServer) -> Socket {
    let request = format!("ws://{}/api/1.48.0/sync", server.addr)
        .into_client_request()
        .expect("a WebSocket request");
    let stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connected");
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgraded");
    let connect = json!({
        "type": "Connect",
        "sessionId": "8f5c0a4e-2f4b-4a57-9c1e-3d2b1a0f9e8d",
        "connectionCount": 0,
    });
    send(&mut ws, connect).await;
    ws
}

async fn send(ws: &mut Socket, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .expect("sent");
}

/// The next text frame as JSON, within 5 s.
async fn next_message(ws: &mut Socket) -> Value {
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).expect("a JSON frame");
                }
                Some(Ok(_)) => continue,
                other => panic!("the socket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("a frame within 5 s")
}

/// A protocol timestamp (base64 of 8 little-endian bytes) as a number.
fn ts(encoded: &Value) -> u64 {
    protocol::Ts::decode(encoded.as_str().expect("a ts string"))
        .expect("a valid ts")
        .0
}
