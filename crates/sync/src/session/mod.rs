//! One WebSocket session of the Convex sync protocol: [`run_session`] and the [`Session`] it
//! drives.
//!
//! A session is one task. It reads client frames in order, runs the session's mutations one
//! at a time, and sends a Transition whenever its query set, identity or any of its queries'
//! results changed. It never blocks the Committer: invalidations only set its
//! [`SessionSignal`](crate::signal::SessionSignal), and the session does its own work when it
//! gets to it.
//!
//! The session's state is split by concept, each part with its own methods:
//! - `outbox.rs`: frames to the client and the back-pressure on a slow one;
//! - `mutations.rs`: the mutation queue, and the back-pressure on a client that pipelines;
//! - `actions.rs`: the actions in flight (side by side, on the app's action threads);
//! - `auth.rs`: who the session acts as, the `Authenticate` check, the expiry timer;
//! - `query_set.rs`: the subscribed queries and their instances;
//! - `transition.rs`: building a Transition at one snapshot;
//! - `frames.rs`: the frame types and why a session ends.
//!
//! This file holds the loop and the steps that change several parts at once: an identity
//! change re-binds queries, a mutation response owes a Transition. A session signed in with a
//! provider's token is registered in the hub's token sessions, so removing that provider from
//! `auth.config.toml` turns the session anonymous at once (`AuthError`, as on expiry).
//!
//! Cleanup (releasing query instances, the hub's session count, the token registry) runs in
//! `Drop`, so it also happens when the session task panics or is aborted by the transport.

mod actions;
mod auth;
mod frame_channel;
mod frames;
mod mutations;
mod outbox;
mod peer;
mod query_set;
mod transition;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::auth::{Authorization, Identity, Rejection};
use functions::Caller;
use futures::{Stream, StreamExt};
use protocol::{AuthenticateTokenType, ClientMessage};

use self::actions::{ActionDone, Actions};
use self::auth::{EXPIRED_MESSAGE, REVOKED_MESSAGE, SessionAuth, TokenBehind, authorize_frame};
use self::frames::{AUTH_ERROR_GRACE, End};
use self::mutations::{MutationDone, Mutations};
use self::outbox::{Closing, Outbox};
use self::peer::limited_error;
use self::query_set::{Member, QuerySet};
use self::transition::Transitions;
use crate::hub::SyncHub;

pub use self::frame_channel::{FrameReceiver, FrameSender, TrySendError, frame_channel};
pub use self::frames::{Inbound, Outbound};
pub use self::outbox::stall_limit;
pub use self::peer::SessionPeer;

/// What woke the session loop.
enum Event {
    Frame(Option<Inbound>),
    Woken,
    MutationDone(MutationDone),
    ActionDone(ActionDone),
    StillBlocked,
    Expired,
    /// The server began to shut down.
    Shutdown,
}

struct Session {
    member: Member,
    /// The client's `sessionId` from `Connect`; with a request id it de-duplicates mutations.
    client_session_id: Option<String>,
    clock_skew: Option<i64>,
    auth: SessionAuth,
    queries: QuerySet,
    transitions: Transitions,
    outbox: Outbox,
    mutations: Mutations,
    actions: Actions,
    peer: SessionPeer,
    /// The server is shutting down: no more frames are read; the session answers what it
    /// took in, then closes with 1001.
    draining: bool,
}

impl Drop for Session {
    /// Runs however the session ends (return, panic, or the transport aborting its task), so
    /// the hub never counts a dead session or keeps its query instances.
    fn drop(&mut self) {
        self.queries.release_all(&self.member);
        let hub = self.member.hub();
        hub.token_sessions().remove(self.member.id());
        hub.session_ended();
    }
}

/// Runs one session until the client goes away or breaks the protocol, with no rate limits
/// and no shutdown signal.
pub async fn run_session<S>(hub: Arc<SyncHub>, inbound: S, outbound: FrameSender)
where
    S: Stream<Item = Inbound> + Unpin + Send,
{
    run_session_with(hub, SessionPeer::default(), inbound, outbound).await;
}

/// Runs one session for `peer` until the client goes away, breaks the protocol, or the
/// server shuts down.
pub async fn run_session_with<S>(
    hub: Arc<SyncHub>,
    peer: SessionPeer,
    mut inbound: S,
    outbound: FrameSender,
) where
    S: Stream<Item = Inbound> + Unpin + Send,
{
    let id = hub.session_started();
    let mut session = Session {
        member: Member::new(hub, id),
        client_session_id: None,
        clock_skew: None,
        auth: SessionAuth::new(),
        queries: QuerySet::new(),
        transitions: Transitions::new(),
        outbox: Outbox::new(outbound),
        mutations: Mutations::new(),
        actions: Actions::new(),
        peer,
        draining: false,
    };
    tracing::debug!(session = id, "session started");
    match session.run(&mut inbound).await {
        Ok(()) => tracing::debug!(session = id, "session closed by the client"),
        Err(end) => {
            if session.outbox.send_end(id, end) == Closing::AfterClient {
                session.await_client_close(&mut inbound).await;
                session.outbox.close_after_auth_error(id);
            }
        }
    }
    // Dropping `session` releases its queries and ends its count in the hub.
}

impl Session {
    async fn run<S>(&mut self, inbound: &mut S) -> Result<(), End>
    where
        S: Stream<Item = Inbound> + Unpin + Send,
    {
        let mut stopping = self.peer.stopping();
        loop {
            self.outbox.flush()?;
            if self.member.signal().take_dirty() {
                self.transitions.recheck();
            }
            if self.member.signal().take_auth_changed() {
                self.check_token_issuer()?;
            }
            if self.transitions.wanted() {
                if self.outbox.ready_for_transition() {
                    // Boxed, like `handle` below: an idle session's task then holds only the
                    // loop's own state, not room for the largest step it might take.
                    let transition = Box::pin(self.transitions.build(
                        &self.member,
                        &mut self.queries,
                        &self.auth,
                        self.clock_skew,
                    ))
                    .await?;
                    if let Some(text) = transition {
                        self.outbox.push(Outbound::Text(text))?;
                        self.outbox.flush()?;
                    }
                } else {
                    self.outbox.note_blocked()?;
                }
            }
            if self.draining && self.drained() {
                return Err(End::Shutdown);
            }
            self.auth.arm_expiry_timer();
            let blocked = self.outbox.is_blocked();
            // A draining session waits for room for its close frame.
            let wait_room = blocked || (self.draining && !self.outbox.has_room());
            // Back-pressure on a client that pipelines mutations: while the queue is full,
            // its frames wait in the socket (see `mutations.rs`). Once the server is shutting
            // down nothing more is read: the client re-sends what it has not had answered.
            let accepting = self.mutations.accepting() && !self.draining;
            let draining = self.draining;
            let expiry_armed = self.auth.expiry_armed();
            let event = {
                let signal = self.member.signal();
                let mutations = &mut self.mutations;
                let actions = &mut self.actions;
                let outbox = &self.outbox;
                let expiry = self.auth.expiry_timer();
                tokio::select! {
                    frame = inbound.next(), if accepting => Event::Frame(frame),
                    () = signal.notified() => Event::Woken,
                    Some(done) = mutations.finished() => Event::MutationDone(done),
                    Some(done) = actions.finished() => Event::ActionDone(done),
                    () = outbox.room(), if wait_room => Event::Woken,
                    () = tokio::time::sleep(Duration::from_secs(1)), if blocked => Event::StillBlocked,
                    () = expiry, if expiry_armed => Event::Expired,
                    () = &mut stopping, if !draining => Event::Shutdown,
                }
            };
            match event {
                Event::Frame(Some(Inbound::Text(text))) => Box::pin(self.handle(&text)).await?,
                Event::Frame(Some(Inbound::Binary)) => {
                    return Err(End::Fatal(
                        "binary frames are not part of the protocol; send JSON text frames".into(),
                    ));
                }
                Event::Frame(Some(Inbound::TooLarge { size, max })) => {
                    return Err(End::Fatal(format!(
                        "a frame of {size} bytes exceeds the {} MiB limit",
                        max >> 20
                    )));
                }
                Event::Frame(None) => return Ok(()),
                Event::Woken => {}
                Event::MutationDone(done) => {
                    let response = Mutations::response(done);
                    self.transitions.owe();
                    self.outbox.push(response.frame)?;
                    self.start_next_mutation()?;
                }
                Event::ActionDone(done) => self.outbox.push(Actions::response(done))?,
                Event::StillBlocked => self.outbox.note_blocked()?,
                Event::Expired => {
                    self.auth.expiry_fired();
                    self.expire_identity()?;
                }
                Event::Shutdown => self.draining = true,
            }
        }
    }

    /// After an `AuthError`: drops its queries, and the client's frames until it closes the
    /// socket, for at most [`AUTH_ERROR_GRACE`]. Closing at once (as Convex does) makes the
    /// Rust and Python clients see two failures and reconnect twice; their resends cross
    /// (`StartVersionMismatch`) and back off up to 15 s a round. Told first, they reconnect
    /// once, with the fresh token.
    async fn await_client_close<S>(&mut self, inbound: &mut S)
    where
        S: Stream<Item = Inbound> + Unpin + Send,
    {
        self.queries.release_all(&self.member);
        let mut stopping = self.peer.stopping();
        let drain = async { while inbound.next().await.is_some() {} };
        tokio::select! {
            () = drain => {}
            () = tokio::time::sleep(AUTH_ERROR_GRACE) => {}
            () = &mut stopping => {}
        }
    }

    /// A draining session has answered everything it took in (every mutation and the
    /// Transition a mutation response owes) and the close frame fits in the channel.
    fn drained(&mut self) -> bool {
        self.mutations.is_idle()
            && !self.transitions.owed()
            && !self.outbox.is_blocked()
            && self.outbox.has_room()
    }

    async fn handle(&mut self, text: &str) -> Result<(), End> {
        let message = ClientMessage::parse(text)
            .map_err(|e| End::Fatal(format!("could not parse a client message: {e}")))?;
        match message {
            ClientMessage::Connect {
                session_id,
                client_ts,
                ..
            } => {
                self.client_session_id = Some(session_id);
                self.clock_skew = client_ts.map(|ts| {
                    ts as i64
                        - (SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64))
                });
            }
            ClientMessage::ModifyQuerySet {
                base_version,
                new_version,
                modifications,
            } => {
                let (peer, auth) = (&self.peer, &self.auth);
                let mut admit = || {
                    peer.check_call(auth).err().map(|limited| {
                        let error = limited_error(&limited);
                        Arc::new(crate::output::QueryOutput::failure_with_data(
                            error.message,
                            error.data.map(|d| d.to_json_string()),
                        ))
                    })
                };
                self.queries.modify(
                    &self.member,
                    self.auth.identity(),
                    self.auth.is_trusted(),
                    base_version,
                    new_version,
                    modifications,
                    &mut admit,
                )?;
                self.transitions.owe();
            }
            ClientMessage::Mutation {
                request_id,
                udf_path,
                args,
                ..
            } => {
                let refused = self.peer.check_call(&self.auth).err();
                let refused = refused.as_ref().map(limited_error);
                self.mutations.enqueue(
                    request_id,
                    &udf_path,
                    args,
                    &self.auth,
                    text.len(),
                    refused,
                );
                if !self.mutations.is_running() {
                    self.start_next_mutation()?;
                }
            }
            ClientMessage::Action {
                request_id,
                udf_path,
                args,
                ..
            } => {
                // As for a mutation: an expired token ends the session first.
                self.expire_identity()?;
                self.actions.start(
                    self.member.hub(),
                    request_id,
                    &udf_path,
                    args,
                    self.auth.identity().cloned(),
                    self.auth.caller(),
                );
            }
            ClientMessage::Authenticate {
                base_version,
                token_type,
                value,
                impersonating,
            } => {
                self.authenticate(base_version, token_type, value, impersonating)
                    .await?
            }
            ClientMessage::Event {} => {}
        }
        Ok(())
    }

    async fn authenticate(
        &mut self,
        base_version: u32,
        token_type: AuthenticateTokenType,
        value: Option<String>,
        impersonating: Option<serde_json::Value>,
    ) -> Result<(), End> {
        if base_version != self.auth.version() {
            return Err(End::Fatal(format!(
                "Authenticate baseVersion {base_version} does not match the identity version {}",
                self.auth.version()
            )));
        }
        if let Err(limited) = self.peer.check_auth_attempt() {
            // Not even looked at: the address has failed too often. Like a refused token,
            // this ends the session.
            return Err(End::AuthFailed(
                self.auth.error_frame(&limited.to_string(), true),
            ));
        }
        let hub = self.member.hub();
        let authorization =
            authorize_frame(hub, self.member.id(), token_type, value, impersonating).await;
        if matches!(
            authorization,
            Authorization::Rejected(Rejection::Token(_) | Rejection::AdminKey)
        ) {
            self.peer.auth_failed();
        }
        match authorization {
            Authorization::Anonymous => self.set_auth(Caller::Client, None, None),
            Authorization::User(verified) => {
                let token = TokenBehind {
                    issuer: verified.identity.issuer().into(),
                    expires_at: verified.expires_at,
                };
                // A user token never carries an admin's rights.
                self.set_auth(Caller::Client, Some(verified.identity), Some(token));
                // The provider may have been removed between `verify` and the
                // registration above, in which case no notification reached us.
                self.check_token_issuer()?;
            }
            // Refused credentials end the session (Convex closes the socket after its
            // AuthError); it never goes on reading as the previous user or admin.
            Authorization::Rejected(Rejection::Token(rejection)) => {
                return Err(End::AuthFailed(
                    self.auth.error_frame(rejection.client_message(), true),
                ));
            }
            Authorization::Rejected(Rejection::AdminKey) => {
                return Err(End::AuthFailed(
                    self.auth.error_frame("Invalid admin key", true),
                ));
            }
            Authorization::Rejected(rejection) => {
                return Err(End::AuthFailed(
                    self.auth.error_frame(&rejection.client_message(), true),
                ));
            }
            Authorization::Admin { acting_as } => {
                self.set_auth(Caller::Trusted, acting_as, None);
            }
        }
        self.auth.advance_version();
        self.transitions.owe();
        Ok(())
    }

    /// Replaces who the session acts as. Queries are re-bound when what they may see changed:
    /// all of them when the caller changed (internal functions become visible or not), the
    /// identity-dependent ones when the identity changed.
    fn set_auth(&mut self, caller: Caller, identity: Option<Identity>, token: Option<TokenBehind>) {
        let tokens = self.member.hub().token_sessions();
        match (&token, self.auth.token()) {
            (Some(token), _) => {
                tokens.insert(self.member.id(), self.member.signal(), &token.issuer)
            }
            (None, Some(_)) => tokens.remove(self.member.id()),
            (None, None) => {}
        }
        let change = self.auth.replace(caller, identity, token);
        if !change.caller_changed && !change.identity_changed {
            return;
        }
        self.queries.rebind_for(
            &self.member,
            self.auth.identity(),
            self.auth.is_trusted(),
            change.caller_changed,
        );
        self.transitions.recheck();
    }

    /// After a change of `auth.config.toml`: a session whose token came from a provider that
    /// is no longer configured ends with an `AuthError`, as if its token had expired.
    fn check_token_issuer(&mut self) -> Result<(), End> {
        let Some(issuer) = self.auth.token_issuer() else {
            return Ok(());
        };
        if self.member.hub().auth().trusts_issuer(issuer) {
            return Ok(());
        }
        tracing::info!(
            session = self.member.id(),
            %issuer,
            "the session's identity provider was removed from auth.config.toml; closing the session"
        );
        Err(End::AuthFailed(
            self.auth.error_frame(REVOKED_MESSAGE, false),
        ))
    }

    /// The token behind the identity expired and no fresh one arrived: the `AuthError` (the
    /// client fetches a new token and reconnects) ends the session, so nothing more runs as
    /// that user.
    fn expire_identity(&mut self) -> Result<(), End> {
        if !self.auth.identity_expired() {
            return Ok(());
        }
        tracing::info!(
            session = self.member.id(),
            "access token expired without a refresh; closing the session"
        );
        Err(End::AuthFailed(
            self.auth.error_frame(EXPIRED_MESSAGE, false),
        ))
    }

    /// Starts the next queued mutation (one runs at a time). If the identity's token has
    /// expired by now, the session ends instead, whether or not its timer fired.
    fn start_next_mutation(&mut self) -> Result<(), End> {
        self.expire_identity()?;
        self.mutations
            .start_next(self.member.hub(), self.client_session_id.as_ref());
        Ok(())
    }
}
