//! Live subscriptions through the Rust client: another client's write, a query that starts
//! failing, and a server restart under a live subscription.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use convex::{AuthTokenFetcher, AuthenticationToken, FunctionResult, Value};
use serde_json::json;

use crate::server::Server;
use crate::{WAIT, args, connect, has, json, mutation, on_runtime, subscribe, until, value};

#[test]
fn a_subscription_receives_another_clients_write() {
    let server = Server::start();
    on_runtime(async {
        let mut reader = connect(&server.url).await;
        let mut writer = connect(&server.url).await;
        let mut list = subscribe(
            &mut reader,
            "messages:list",
            args([("channel", "live".into())]),
        )
        .await;
        until(&mut list, WAIT, "the empty channel", |r| {
            has(r, "", json!([]))
        })
        .await;
        for body in ["one", "two"] {
            value(
                mutation(
                    &mut writer,
                    "messages:send",
                    args([("channel", "live".into()), ("body", body.into())]),
                )
                .await,
            );
        }
        until(&mut list, WAIT, "both writes", |r| {
            has(r, "", json!(["one", "two"]))
        })
        .await;

        // A query that starts throwing surfaces as a ConvexError on that subscription.
        let mut count = subscribe(
            &mut reader,
            "messages:countBelow",
            args([("channel", "live".into()), ("limit", Value::Float64(3.0))]),
        )
        .await;
        until(&mut count, WAIT, "a count of 2", |r| has(r, "", json!(2.0))).await;
        value(
            mutation(
                &mut writer,
                "messages:send",
                args([("channel", "live".into()), ("body", "three".into())]),
            )
            .await,
        );
        let failed = until(&mut count, WAIT, "the query to fail", |r| {
            matches!(r, FunctionResult::ConvexError(_))
        })
        .await;
        let FunctionResult::ConvexError(error) = failed else {
            unreachable!("until returned a ConvexError");
        };
        assert_eq!(
            json(error.data),
            json!({"code": "TOO_MANY", "count": {"$integer": "AwAAAAAAAAA="}})
        );
        // The other subscription on the same socket keeps its value and updates.
        until(&mut list, WAIT, "the third write", |r| {
            has(r, "", json!(["one", "two", "three"]))
        })
        .await;
    });
}

#[test]
fn after_a_server_restart_the_client_reconnects_with_its_subscriptions_and_auth() {
    let mut server = Server::start();
    on_runtime(async {
        let tokens = server.tokens();
        let forced: Arc<Mutex<Vec<bool>>> = Arc::default();
        let record = forced.clone();
        let fetcher: AuthTokenFetcher = Box::new(move |force_refresh| {
            let tokens = tokens.clone();
            if let Ok(mut calls) = record.lock() {
                calls.push(force_refresh);
            }
            Box::pin(async move {
                let token =
                    tokio::task::spawn_blocking(move || tokens.mint("restart_user", None, 3600))
                        .await?;
                Ok(AuthenticationToken::User(token))
            })
        });
        let mut client = connect(&server.url).await;
        client.set_auth_callback(Some(fetcher)).await;
        let mut list = subscribe(
            &mut client,
            "messages:list",
            args([("channel", "r".into())]),
        )
        .await;
        let mut whoami = subscribe(&mut client, "auth:whoami", args([])).await;
        until(&mut whoami, WAIT, "whoami as the user", |r| {
            has(r, "/subject", json!("restart_user"))
        })
        .await;
        let before = args([("channel", "r".into()), ("body", "before".into())]);
        value(mutation(&mut client, "messages:sendSigned", before).await);
        until(&mut list, WAIT, "the write before the restart", |r| {
            has(r, "", json!(["before"]))
        })
        .await;

        server.restart();

        // Another client writes to the restarted server; the subscription, re-sent by the client
        // on its new socket (as `messages.js:list`), sees it.
        let mut other = connect(&server.url).await;
        let after = args([("channel", "r".into()), ("body", "after".into())]);
        value(mutation(&mut other, "messages:send", after).await);
        until(
            &mut list,
            Duration::from_secs(40),
            "the subscription to resume after the restart",
            |r| has(r, "", json!(["before", "after"])),
        )
        .await;
        let own = args([("channel", "r".into()), ("body", "own".into())]);
        value(mutation(&mut client, "messages:sendSigned", own).await);
        until(&mut whoami, WAIT, "whoami still the user", |r| {
            has(r, "/subject", json!("restart_user"))
        })
        .await;
        let forced = forced.lock().map(|c| c.clone()).unwrap_or_default();
        assert!(
            forced.contains(&true),
            "the reconnect asks the callback for a fresh token: {forced:?}"
        );
    });
}
