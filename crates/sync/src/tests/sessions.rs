//! Whole sessions, the protocol in and frames out: sessions of different users sharing one
//! execution, identity-reading queries never shared, a shared query retired and re-bound per
//! user, deploys (also of a module a query reaches through `ctx.runQuery`), and the cleanup of
//! a session whose task panics.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;

use super::fixture::{
    Client, T_MODULE, executions_reach, modification, modules, run_mutation, session_fixture,
};
use crate::hub::{SyncHub, SyncStats};
use crate::session::{Inbound, run_session};

const TOUCH_MODULE: &str = r#"
export const touch = mutation(#{
    args: #{ room: "string" },
    handler: |ctx, args| {
        for t in ctx.db.query("todos").withIndex("by_user", |q| q.eq("userId", args.room)).collect() {
            ctx.db.patch(t._id, #{ completed: !t.completed });
        }
    }
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_different_users_share_one_execution_and_unchanged_reruns_send_nothing() {
    let f = session_fixture(&[("t", T_MODULE), ("u", TOUCH_MODULE)]);
    let hub = &f.hub;
    let room = serde_json::json!({ "room": "lobby" });
    let mut alice = f.signed_in("alice").await;
    assert_eq!(
        alice.subscribe(0, "t:count", room.clone()).await,
        serde_json::json!({ "$integer": "AAAAAAAAAAA=" })
    );
    assert_eq!(hub.executions(), 1);
    let mut bob = f.signed_in("bob").await;
    let mut anonymous = Client::connect(hub);
    for client in [&mut bob, &mut anonymous] {
        assert_eq!(
            client.subscribe(0, "t:count", room.clone()).await,
            serde_json::json!({ "$integer": "AAAAAAAAAAA=" })
        );
    }
    assert_eq!(
        hub.executions(),
        1,
        "bob and the anonymous session reuse alice's result"
    );
    assert_eq!(hub.stats().instances, 1, "one instance for three sessions");

    // A commit into the read set: one shared re-run, every session gets the new value.
    run_mutation(
        hub,
        "t:add",
        serde_json::json!({ "room": "lobby", "text": "hi" }),
    )
    .await;
    for client in [&mut alice, &mut bob, &mut anonymous] {
        assert_eq!(
            client.value(0).await,
            serde_json::json!({ "$integer": "AQAAAAAAAAA=" })
        );
    }
    assert_eq!(hub.executions(), 2, "one re-run for three sessions");

    // A commit into the read set that does not change the result: re-run, nothing sent.
    run_mutation(hub, "u:touch", serde_json::json!({ "room": "lobby" })).await;
    executions_reach(hub, 3).await;
    for client in [&mut alice, &mut bob, &mut anonymous] {
        // Frames arrive in order: had the re-run sent anything, it would come before the
        // Transition for this new query.
        client.add(1, "t:whoami", serde_json::json!({}));
        let t = client.transition().await;
        assert!(modification(&t, 1).is_some(), "{t}");
        assert!(
            modification(&t, 0).is_none(),
            "an unchanged result was sent again: {t}"
        );
        assert_eq!(client.history(0).len(), 2, "{:?}", client.history(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_reading_query_is_never_shared_across_users() {
    let f = session_fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let mut alice = f.signed_in("alice").await;
    let mut bob = f.signed_in("bob").await;
    let mut anonymous = Client::connect(hub);
    assert_eq!(
        alice.subscribe(0, "t:whoami", serde_json::json!({})).await,
        "alice"
    );
    assert_eq!(
        bob.subscribe(0, "t:whoami", serde_json::json!({})).await,
        "bob"
    );
    assert_eq!(
        anonymous
            .subscribe(0, "t:whoami", serde_json::json!({}))
            .await,
        serde_json::Value::Null
    );
    assert_eq!(hub.executions(), 3);
    assert_eq!(hub.stats().instances, 3, "one instance per identity");
    let mut alice_again = f.signed_in("alice").await;
    assert_eq!(
        alice_again
            .subscribe(0, "t:whoami", serde_json::json!({}))
            .await,
        "alice"
    );
    assert_eq!(
        hub.executions(),
        3,
        "a second session of alice reuses alice's result"
    );

    // Re-authenticating as someone else re-binds the query to that identity's instance.
    alice_again.send(serde_json::json!({
        "type": "Authenticate", "baseVersion": 1, "tokenType": "User", "value": f.token("bob"),
    }));
    assert_eq!(alice_again.value(0).await, "bob");
    assert_eq!(hub.executions(), 3, "bob's result was already there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_query_that_starts_reading_the_identity_is_retired_and_rebound_per_user() {
    let f = session_fixture(&[("t", T_MODULE)]);
    let hub = &f.hub;
    let mut alice = f.signed_in("alice").await;
    let mut bob = f.signed_in("bob").await;
    assert_eq!(
        alice
            .subscribe(0, "t:maybeWho", serde_json::json!({}))
            .await,
        "public"
    );
    assert_eq!(
        bob.subscribe(0, "t:maybeWho", serde_json::json!({})).await,
        "public"
    );
    assert_eq!(
        (hub.executions(), hub.stats().instances),
        (1, 1),
        "shared while it ignores the identity"
    );

    // The hub re-runs the shared instance with the identity it was created with (alice's);
    // that run reads the identity, so it must never reach bob.
    run_mutation(hub, "t:setFlag", serde_json::json!({})).await;
    assert_eq!(alice.value(0).await, "alice");
    assert_eq!(bob.value(0).await, "bob");
    assert_eq!(
        hub.stats().instances,
        2,
        "the shared instance gave way to one per user"
    );
    assert!(
        !bob.history(0).contains(&serde_json::json!("alice")),
        "bob was sent alice's result: {:?}",
        bob.history(0)
    );

    // Once it stops reading the identity, the users' instances agree again.
    run_mutation(hub, "t:clearFlag", serde_json::json!({})).await;
    assert_eq!(alice.value(0).await, "public");
    assert_eq!(bob.value(0).await, "public");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_the_identity_reading_run_a_shared_instance_refused() {
    let f = session_fixture(&[("q", r#"export const who = query(|ctx, args| "nobody");"#)]);
    let hub = &f.hub;
    let mut alice = f.signed_in("alice").await;
    let mut bob = f.signed_in("bob").await;
    assert_eq!(
        alice.subscribe(0, "q:who", serde_json::json!({})).await,
        "nobody"
    );
    assert_eq!(
        bob.subscribe(0, "q:who", serde_json::json!({})).await,
        "nobody"
    );
    assert_eq!(hub.executions(), 1);

    // A deploy makes the function read the identity. No commit is involved, so the sessions
    // re-run it themselves; whichever runs the shared instance first has its run refused
    // there and keeps it in its own instance: two runs in all, one per user.
    hub.app().replace_modules(modules(&[(
        "q",
        r#"export const who = query(|ctx, args| ctx.auth.getUserIdentity().subject);"#,
    )]));
    hub.code_changed();
    assert_eq!(alice.value(0).await, "alice");
    assert_eq!(bob.value(0).await, "bob");
    assert_eq!(hub.executions(), 3, "no run was thrown away");
    assert_eq!(hub.stats().instances, 2);
}

const VIA_B: &str = r#"export const viaB = query(|ctx, args| ctx.runQuery("b:value", #{}));"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_a_module_reached_through_run_query_reruns_the_query() {
    let f = session_fixture(&[
        ("a", VIA_B),
        ("b", r#"export const value = query(|ctx, args| "one");"#),
    ]);
    let hub = &f.hub;
    let mut client = Client::connect(hub);
    assert_eq!(
        client.subscribe(0, "a:viaB", serde_json::json!({})).await,
        "one"
    );

    hub.app().replace_modules(modules(&[
        ("a", VIA_B),
        ("b", r#"export const value = query(|ctx, args| "two");"#),
    ]));
    hub.code_changed();
    assert_eq!(client.value(0).await, "two", "only b.rhai changed");

    // A deploy that changes nothing this query returns re-runs it and sends nothing.
    let before = hub.executions();
    hub.app().replace_modules(modules(&[
        ("a", VIA_B),
        ("b", r#"export const value = query(|ctx, args| "two");"#),
        ("c", r#"export const other = query(|ctx, args| 3);"#),
    ]));
    hub.code_changed();
    executions_reach(hub, before + 1).await;
    client.add(1, "b:value", serde_json::json!({}));
    let t = client.transition().await;
    assert!(modification(&t, 1).is_some(), "{t}");
    assert!(
        modification(&t, 0).is_none(),
        "an unchanged result was sent again: {t}"
    );
    assert_eq!(client.history(0), ["one", "two"]);
}

/// A client stream that panics when the session reads past its first frame.
struct PanickingStream(u32);

impl Stream for PanickingStream {
    type Item = Inbound;

    fn poll_next(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Inbound>> {
        self.0 += 1;
        if self.0 > 1 {
            panic!("the transport failed in a way nobody planned for");
        }
        let add = r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"m:q","args":[{}]}]}"#;
        std::task::Poll::Ready(Some(Inbound::Text(add.into())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_session_task_releases_its_queries_and_its_count() {
    let dir = std::env::temp_dir().join(format!("pulsebase-sync-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (db, _) =
        database::Database::open(&dir.join("data.sqlite3"), schema::Schema::default(), "").unwrap();
    let app = application::App::new(db, functions::Modules::empty());
    let auth = authenticator::Authenticator::new(
        auth::AuthConfig::empty(),
        authenticator::AuthenticatorOptions::new(&dir),
    )
    .unwrap();
    let hub = SyncHub::new(app, Arc::new(auth), None);
    let (outbound, mut frames) = crate::frame_channel(16);
    let task = tokio::spawn(run_session(hub.clone(), PanickingStream(0), outbound));
    // Keep the channel drained so the session is never blocked on its client.
    let drain = tokio::spawn(async move { while frames.recv().await.is_some() {} });
    let ended = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap();
    assert!(ended.unwrap_err().is_panic());
    assert_eq!(
        hub.stats(),
        SyncStats {
            sessions: 0,
            instances: 0
        },
        "no session or query instance left"
    );
    drain.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
