//! Authentication through the Rust client with dev-issuer tokens: set, refresh on the live
//! socket, clear; and a token that expires on a live socket, fixed or from a callback (the
//! server's AuthError closes the socket, as Convex's does, and the client starts over). That
//! the callback is asked again on a reconnect is also asserted by the restart test in
//! `live.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use convex::{
    AuthTokenFetcher, AuthenticationToken, ConvexClient, ConvexClientBuilder, FunctionResult,
    Value, WebSocketState,
};
use serde_json::json;
use tokio::sync::mpsc;

use crate::server::Server;
use crate::{
    WAIT, args, error_message, has, json, mutation, on_runtime, subscribe, until, until_or_explain,
    value, within,
};

/// A client that reports its connection states into the returned receiver.
async fn client_with_states(url: &str) -> (ConvexClient, mpsc::Receiver<WebSocketState>) {
    let (states, receiver) = mpsc::channel(256);
    let client = within(
        WAIT,
        "the client to start",
        ConvexClientBuilder::new(url)
            .with_on_state_change(states)
            .build(),
    )
    .await
    .expect("the client accepts the deployment URL");
    (client, receiver)
}

/// How many times the client has started (re)connecting so far.
fn connects(states: &mut mpsc::Receiver<WebSocketState>, count: &mut usize) -> usize {
    while let Ok(state) = states.try_recv() {
        if matches!(state, WebSocketState::Connecting) {
            *count += 1;
        }
    }
    *count
}

fn is_null(result: &FunctionResult) -> bool {
    matches!(result, FunctionResult::Value(Value::Null))
}

#[test]
fn set_auth_refreshes_on_the_live_socket_and_clears() {
    let server = Server::start();
    on_runtime(async {
        let (mut client, mut states) = client_with_states(&server.url).await;
        let mut connecting = 0;
        let mut whoami = subscribe(&mut client, "auth:whoami", args([])).await;
        until(&mut whoami, WAIT, "an anonymous whoami", is_null).await;

        client
            .set_auth(Some(server.token("rs_user", Some("Ada"), 3600)))
            .await;
        let me = until(&mut whoami, WAIT, "whoami as Ada", |r| {
            has(r, "/name", json!("Ada"))
        })
        .await;
        let me = json(value(me));
        assert_eq!(me["subject"], json!("rs_user"));
        assert_eq!(
            me["tokenIdentifier"],
            json!(format!("{}/dev-issuer|rs_user", server.url))
        );
        let before = connects(&mut states, &mut connecting);

        // A new token on the live socket: an Authenticate, no reconnect.
        client
            .set_auth(Some(server.token("rs_user", Some("Ada Lovelace"), 3600)))
            .await;
        until(&mut whoami, WAIT, "whoami with the refreshed name", |r| {
            has(r, "/name", json!("Ada Lovelace"))
        })
        .await;
        let sent = args([("channel", "signed".into()), ("body", "hi".into())]);
        value(mutation(&mut client, "messages:sendSigned", sent.clone()).await);
        assert_eq!(
            connects(&mut states, &mut connecting),
            before,
            "set_auth with a new token must not reconnect"
        );

        // Clearing auth makes the session anonymous.
        client.set_auth(None).await;
        until(&mut whoami, WAIT, "whoami anonymous again", is_null).await;
        let refused = error_message(mutation(&mut client, "messages:sendSigned", sent).await);
        assert!(
            refused.starts_with("Uncaught Error: Unauthorized"),
            "{refused}"
        );
    });
}

#[test]
fn a_fixed_token_that_expires_is_refused_until_set_auth_gives_a_fresh_one() {
    let server = Server::start();
    on_runtime(async {
        let (mut client, mut states) = client_with_states(&server.url).await;
        let mut connecting = 0;
        client.set_auth(Some(server.token("short", None, 3))).await;
        let mut whoami = subscribe(&mut client, "auth:whoami", args([])).await;
        until(&mut whoami, WAIT, "whoami as the user", |r| {
            has(r, "/subject", json!("short"))
        })
        .await;
        let before = connects(&mut states, &mut connecting);

        // At expiry the server sends AuthError and closes the socket (as Convex does); the
        // client reconnects and re-sends the same (expired) token, which is refused again.
        server.wait_for_output("access token expired without a refresh", WAIT);
        let deadline = std::time::Instant::now() + WAIT;
        while connects(&mut states, &mut connecting) <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "the client did not reconnect after the AuthError"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A fresh token puts the user back, even while the client is between reconnects. The
        // client takes a new token only between two attempts of its reconnect loop (an attempt
        // that fails first backs off, up to 15 s): it can take a few attempts, hence the wait.
        client
            .set_auth(Some(server.token("short", Some("Back"), 3600)))
            .await;
        until(
            &mut whoami,
            Duration::from_secs(120),
            "whoami as the user again",
            |r| has(r, "/name", json!("Back")),
        )
        .await;
    });
}

#[test]
fn the_token_callback_is_asked_again_when_the_token_expires() {
    let server = Server::start();
    on_runtime(async {
        let (mut client, mut states) = client_with_states(&server.url).await;
        let mut connecting = 0;
        let tokens = server.tokens();
        let calls: Arc<Mutex<Vec<bool>>> = Arc::default();
        let seen = calls.clone();
        // The first token lives 3 s, later ones an hour; each names its call.
        let fetcher: AuthTokenFetcher = Box::new(move |force_refresh| {
            let tokens = tokens.clone();
            let call = seen.lock().map_or(0, |mut calls| {
                calls.push(force_refresh);
                calls.len()
            });
            Box::pin(async move {
                let name = format!("call {call}");
                let ttl = if call == 1 { 3 } else { 3600 };
                let token =
                    tokio::task::spawn_blocking(move || tokens.mint("cb_user", Some(&name), ttl))
                        .await?;
                Ok(AuthenticationToken::User(token))
            })
        });
        client.set_auth_callback(Some(fetcher)).await;
        let mut whoami = subscribe(&mut client, "auth:whoami", args([])).await;
        until(&mut whoami, WAIT, "whoami from the first token", |r| {
            has(r, "/name", json!("call 1"))
        })
        .await;
        let before = connects(&mut states, &mut connecting);

        // No refresh before expiry: the expiry's AuthError makes the client reconnect, and a
        // reconnect asks the callback with force_refresh = true.
        // The server waits (briefly) for the client to close after the AuthError, so the
        // client reconnects once. Were the client slower than that wait, its two reconnects
        // (one for the AuthError, one for the close) would cross and back off up to 15 s a
        // round, asking the callback each time: hence the long wait.
        let asked = calls.clone();
        until_or_explain(
            &mut whoami,
            Duration::from_secs(120),
            "whoami from a refreshed token",
            |r| {
                matches!(r, FunctionResult::Value(_))
                    && !has(r, "/name", json!("call 1"))
                    && has(r, "/subject", json!("cb_user"))
            },
            || {
                let asked = asked.lock().map(|c| c.clone()).unwrap_or_default();
                format!(
                    "\ncallback calls (force_refresh): {asked:?}\nserver output:\n{}",
                    server.output()
                )
            },
        )
        .await;
        assert!(connects(&mut states, &mut connecting) > before);
        let calls = calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(calls.first(), Some(&false), "first call: {calls:?}");
        assert_eq!(calls.get(1), Some(&true), "the refresh forces: {calls:?}");

        let sent = args([("channel", "cb".into()), ("body", "after refresh".into())]);
        value(mutation(&mut client, "messages:sendSigned", sent).await);
    });
}
