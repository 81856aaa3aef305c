//! One-shot calls through the Rust client: the URL it connects to, queries and mutations with
//! every value type, pagination, actions, and the shapes of errors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use convex::{FunctionResult, Value};
use serde_json::json;

use crate::server::Server;
use crate::{args, connect, error_message, has, json, mutation, on_runtime, query, value};

/// The WebSocket handshake for `path` with a `Convex-Client` header; the status line.
fn handshake(port: u16, path: &str, client: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConvex-Client: {client}\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Bounded by the read timeout and by the size of a response head.
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    head.lines().next().unwrap_or_default().to_string()
}

#[test]
fn the_sync_endpoint_answers_every_path_form_the_clients_use() {
    let server = Server::start();
    let forms = [
        // The Rust crate, and the Python client built on it.
        ("/api/sync", "rust-0.10.4"),
        ("/api/sync", "python-0.8.1"),
        // The npm client puts its version in the path.
        ("/api/1.48.0/sync", "npm-1.48.0"),
        // A deployment URL with a trailing slash, and a query string.
        ("//api/1.48.0/sync", "npm-1.48.0"),
        ("/api/sync?client=x", "rust-0.10.4"),
    ];
    for (path, client) in forms {
        let status = handshake(server.port, path, client);
        assert!(
            status.starts_with("HTTP/1.1 101"),
            "GET {path} as {client} answered {status:?}"
        );
    }
}

#[test]
fn the_client_replaces_the_deployment_urls_path_with_api_sync() {
    let server = Server::start();
    on_runtime(async {
        // `ConvexClient` sets the path to `/api/sync`, so a trailing slash or a path prefix in the
        // deployment URL does not matter (the npm client appends to the path instead).
        for url in [
            format!("{}/", server.url),
            format!("{}/some/prefix", server.url),
        ] {
            let mut client = connect(&url).await;
            let listed = query(
                &mut client,
                "messages:list",
                args([("channel", "url".into())]),
            )
            .await;
            assert_eq!(json(value(listed)), json!([]), "through {url}");
        }
    });
}

#[test]
fn queries_and_mutations_carry_every_value_type_both_ways() {
    let server = Server::start();
    on_runtime(async {
        let mut client = connect(&server.url).await;
        let id = value(
            mutation(
                &mut client,
                "messages:send",
                args([("channel", "values".into()), ("body", "hello".into())]),
            )
            .await,
        );
        let Value::String(id) = id else {
            panic!("insert returns the id as a string, got {id:?}");
        };
        assert!(!id.is_empty());
        let listed = query(
            &mut client,
            "messages:list",
            args([("channel", "values".into())]),
        )
        .await;
        assert_eq!(json(value(listed)), json!(["hello"]));

        let sent = args([
            ("int64", Value::Int64(1 << 40)),
            ("float", Value::Float64(1.5)),
            ("nan", Value::Float64(f64::NAN)),
            ("bytes", Value::Bytes(vec![0, 1, 255])),
            ("null", Value::Null),
            ("bool", Value::Boolean(true)),
            ("text", "x".into()),
            ("array", Value::Array(vec![Value::Int64(1), "a".into()])),
            (
                "object",
                Value::Object(args([("nested", Value::Float64(-0.0))])),
            ),
        ]);
        for function in ["values:echo", "values:echoMutation"] {
            let back = if function.ends_with("Mutation") {
                mutation(&mut client, function, sent.clone()).await
            } else {
                query(&mut client, function, sent.clone()).await
            };
            // Compared as convex JSON: int64 stays int64, NaN and -0.0 keep their bits.
            assert_eq!(
                json(value(back)),
                json(Value::Object(sent.clone())),
                "{function} returns its arguments unchanged"
            );
        }
    });
}

#[test]
fn errors_reach_the_client_in_convex_shapes() {
    let server = Server::start();
    on_runtime(async {
        let mut client = connect(&server.url).await;

        // A thrown string is a plain error with the script location.
        let message = error_message(mutation(&mut client, "errors:fail", args([])).await);
        assert!(
            message.starts_with("Uncaught Error: boom\n    at functions/errors.rhai:"),
            "{message}"
        );

        // A thrown map is a ConvexError whose data is the map, from queries and mutations.
        for (function, result) in [
            (
                "errors:notFound",
                query(&mut client, "errors:notFound", args([("id", "x".into())])).await,
            ),
            (
                "errors:notFoundMutation",
                mutation(
                    &mut client,
                    "errors:notFoundMutation",
                    args([("id", "x".into())]),
                )
                .await,
            ),
        ] {
            let FunctionResult::ConvexError(error) = result else {
                panic!("{function}: expected a ConvexError, got {result:?}");
            };
            assert!(
                error.message.starts_with("Uncaught ConvexError"),
                "{}",
                error.message
            );
            assert_eq!(json(error.data), json!({"code": "NOT_FOUND", "id": "x"}));
        }

        // Argument validation names the path and both types.
        let message = error_message(
            mutation(
                &mut client,
                "messages:send",
                args([("channel", Value::Float64(5.0)), ("body", "x".into())]),
            )
            .await,
        );
        assert_eq!(
            message,
            "ArgumentValidationError: args.channel: expected string, found number 5.0"
        );
        // A Rust i64 travels as an int64 (the npm client sends a JS number as a float). Where a
        // `number` is declared, Pulsebase takes an int64 that a float holds exactly, as it does
        // for Rhai integers (Convex refuses it); a larger one is refused.
        let count = query(
            &mut client,
            "messages:countBelow",
            args([("channel", "v".into()), ("limit", Value::Int64(3))]),
        )
        .await;
        assert_eq!(json(value(count)), json!(0.0));
        let message = error_message(
            query(
                &mut client,
                "messages:countBelow",
                args([
                    ("channel", "v".into()),
                    ("limit", Value::Int64((1 << 53) + 1)),
                ]),
            )
            .await,
        );
        assert!(
            message.starts_with("ArgumentValidationError: args.limit: expected number"),
            "{message}"
        );

        // Unknown and internal functions look the same to a client.
        for function in ["nope:nothing", "messages:purge"] {
            let message = error_message(
                mutation(&mut client, function, args([("channel", "v".into())])).await,
            );
            assert!(
                message.starts_with(&format!("Could not find public function for '{function}'")),
                "{message}"
            );
        }
    });
}

#[test]
fn an_action_runs_as_the_caller_and_a_mutation_is_not_an_action() {
    let server = Server::start();
    on_runtime(async {
        let mut client = connect(&server.url).await;
        let posted = crate::within(
            crate::WAIT,
            "the action",
            client.action(
                "actions:post",
                args([("channel", "rs-act".into()), ("body", "one".into())]),
            ),
        )
        .await
        .expect("the action reaches the server");
        assert!(has(&posted, "/count", serde_json::json!(1.0)), "{posted:?}");
        assert!(
            has(&posted, "/by", serde_json::json!("anonymous")),
            "{posted:?}"
        );

        let result = crate::within(
            crate::WAIT,
            "a mutation called as an action",
            client.action("messages:send", args([])),
        )
        .await
        .expect("the action reaches the server");
        assert_eq!(
            error_message(result),
            "'messages:send' is a mutation, not an action; call it as a mutation"
        );
    });
}

#[test]
fn a_paginated_query_visits_every_document_once_in_order() {
    let server = Server::start();
    on_runtime(async {
        let mut client = connect(&server.url).await;
        let bodies: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
        for body in &bodies {
            mutation(
                &mut client,
                "messages:send",
                args([("channel", "pages".into()), ("body", body.as_str().into())]),
            )
            .await;
        }
        let mut seen = Vec::new();
        let mut cursor = Value::Null;
        for page_number in 0.. {
            assert!(page_number < 10, "pagination must finish within 4 pages");
            let options = Value::Object(args([
                ("numItems", Value::Float64(2.0)),
                ("cursor", cursor.clone()),
            ]));
            let page = json(value(
                query(
                    &mut client,
                    "messages:page",
                    args([("channel", "pages".into()), ("paginationOpts", options)]),
                )
                .await,
            ));
            for document in page["page"].as_array().expect("a page array") {
                seen.push(document["body"].as_str().unwrap_or_default().to_string());
            }
            if page["isDone"] == json!(true) {
                break;
            }
            let next = page["continueCursor"].as_str().expect("a cursor string");
            cursor = next.into();
        }
        assert_eq!(seen, bodies);
    });
}
