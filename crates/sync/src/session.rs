//! One WebSocket session of the Convex sync protocol: its query set, identity, mutations and
//! the Transitions it sends.
//!
//! A session is one task. It reads client frames in order, runs the session's mutations one
//! at a time, and sends a Transition whenever its query set, identity or any of its queries'
//! results changed (see `transition.rs`). It never blocks the Committer: invalidations only
//! set [`SessionSignal`], and the session does its own work when it gets to it.
//!
//! Back-pressure: frames go to a bounded channel drained by the transport's writer. A
//! Transition is computed only when the channel has room, so while a client is slow the
//! session coalesces every change into the next Transition instead of queueing. A client that
//! stays unable to receive for [`stall_limit`] is disconnected with a log line. Inbound
//! back-pressure: while [`MAX_QUEUED_MUTATIONS`] mutations (or [`MAX_QUEUED_MUTATION_BYTES`]
//! of their frames) wait behind the running one, the session stops reading frames, so a
//! client that pipelines mutations waits in its own socket buffers instead of our memory.
//!
//! Identity: a mutation runs as the caller and identity that were current when its frame
//! arrived, never as a later `Authenticate`'s. A session signed in with a provider's token is
//! registered in [`TokenSessions`], so removing that provider from `auth.config.toml` turns
//! the session anonymous at once (`AuthError`, as on expiry).
//!
//! Cleanup (releasing query instances, the hub's session count, the token registry) runs in
//! `Drop`, so it also happens when the session task panics or is aborted by the transport.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use application::{Identity, MutationResult};
use database::{DbError, DedupKey};
use functions::{Caller, FunctionPath};
use futures::{Stream, StreamExt};
use protocol::{
    AuthenticateTokenType, ClientMessage, QuerySetModification, ServerMessage, StateVersion,
    canonical_args,
};
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc};
use value::Value;

use crate::hub::SyncHub;
use crate::instance::{FamilyKey, Instance, QueryOutput};

/// How long a client may stay unable to receive before it is dropped: 30 s, or
/// `PULSEBASE_STALL_LIMIT_SECS`.
pub fn stall_limit() -> Duration {
    static LIMIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let secs = std::env::var("PULSEBASE_STALL_LIMIT_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(30);
        Duration::from_secs(secs)
    })
}
/// Most mutations waiting behind the running one before the session stops reading frames.
pub const MAX_QUEUED_MUTATIONS: usize = 128;
/// Most bytes of waiting Mutation frames before the session stops reading frames (one more
/// frame, at most 20 MiB, may already be in hand when the limit is reached).
pub const MAX_QUEUED_MUTATION_BYTES: usize = 16 << 20;
/// Longest single wait of the expiry timer: a later `exp` re-arms it when it fires, so no
/// `exp`, however large, overflows an `Instant`.
const MAX_EXPIRY_WAIT: Duration = Duration::from_secs(24 * 3600);
/// Most queries one session may subscribe to.
const MAX_QUERIES: usize = 10_000;
/// Most frames waiting in the session's own queue (mutation responses, errors).
const MAX_OUTBOX: usize = 1_000;
/// Free slots in the transport channel required before computing a Transition, which keeps
/// at most a couple of unsent Transitions per client.
const TRANSITION_HEADROOM: usize = 2;
const EXPIRED_MESSAGE: &str = "Convex token identity expired";
const REVOKED_MESSAGE: &str =
    "Convex token identity revoked: its issuer is no longer a provider in auth.config.toml";

/// A frame from the client, as the transport delivers it.
pub enum Inbound {
    Text(String),
    Binary,
    /// The client sent a frame larger than the transport accepts; the session ends with a
    /// FatalError naming the limit.
    TooLarge {
        size: usize,
        max: usize,
    },
}

/// A frame to the client.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    Close { code: u16, reason: String },
}

/// Wakes a session when one of its query instances is invalidated.
#[derive(Default, Debug)]
pub struct SessionSignal {
    dirty: AtomicBool,
    /// The auth configuration changed: the session re-checks its token's issuer.
    auth_changed: AtomicBool,
    notify: Notify,
}

impl SessionSignal {
    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    fn mark_auth_changed(&self) {
        self.auth_changed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn take_auth_changed(&self) -> bool {
        self.auth_changed.swap(false, Ordering::AcqRel)
    }
}

/// The sessions whose identity came from a provider's token. Kept apart from the query
/// instances because a session with no queries must be reached too; it changes only when a
/// session signs in or out, never on the hot path.
#[derive(Default)]
pub(crate) struct TokenSessions {
    sessions: parking_lot::Mutex<HashMap<u64, Arc<SessionSignal>>>,
}

impl TokenSessions {
    fn insert(&self, id: u64, signal: &Arc<SessionSignal>) {
        self.sessions.lock().insert(id, signal.clone());
    }

    fn remove(&self, id: u64) {
        self.sessions.lock().remove(&id);
    }

    /// Wakes every registered session to re-check its token's issuer.
    pub(crate) fn auth_changed(&self) {
        for signal in self.sessions.lock().values() {
            signal.mark_auth_changed();
        }
    }
}

/// One subscribed query.
pub(crate) struct SessionQuery {
    pub path: FunctionPath,
    pub family: FamilyKey,
    /// `None` when the arguments could not be decoded; `fixed` then holds the error.
    pub instance: Option<Arc<Instance>>,
    pub fixed: Option<Arc<QueryOutput>>,
    /// Hash of the output last sent for this query.
    pub last_hash: Option<u64>,
}

/// What woke the session loop.
enum Event {
    Frame(Option<Inbound>),
    Woken,
    MutationDone(u64, Result<MutationResult, DbError>),
    StillBlocked,
    Expired,
}

type MutationFuture = Pin<Box<dyn Future<Output = (u64, Result<MutationResult, DbError>)> + Send>>;

struct PendingMutation {
    request_id: u64,
    path: FunctionPath,
    args: Result<Value, String>,
    /// Who sent it, captured when the frame arrived (see `start_next_mutation`).
    identity: Option<Identity>,
    token_issuer: Option<Arc<str>>,
    caller: Caller,
    /// Size of the frame, counted in `Session::queued_bytes` while it waits.
    bytes: usize,
}

/// Why a session ends early.
pub(crate) enum End {
    /// The client broke the protocol: FatalError, then close.
    Fatal(String),
    /// The client cannot keep up or the server is stopping: close with a reason.
    Close(u16, String),
}

pub(crate) struct Session {
    pub hub: Arc<SyncHub>,
    pub id: u64,
    pub signal: Arc<SessionSignal>,
    client_session_id: Option<String>,
    clock_skew: Option<i64>,
    /// The `endVersion` of the last Transition sent.
    pub sent: StateVersion,
    pub query_set_version: u32,
    pub identity: Option<Identity>,
    /// `iss` of the token behind `identity`; `None` when anonymous or admin-impersonated.
    token_issuer: Option<Arc<str>>,
    pub identity_version: u32,
    pub caller: Caller,
    pub queries: BTreeMap<u32, SessionQuery>,
    pub removed: Vec<u32>,
    /// A Transition must go out even if no result changed (versions moved, or a mutation
    /// response needs a covering Transition).
    pub must_send: bool,
    /// A query instance was invalidated or re-bound: results must be re-checked.
    pub must_recheck: bool,
    outbox: VecDeque<Outbound>,
    outbound: mpsc::Sender<Outbound>,
    mutations: VecDeque<PendingMutation>,
    /// Frame bytes of the mutations in `mutations`.
    queued_bytes: usize,
    in_flight: Option<MutationFuture>,
    blocked_since: Option<Instant>,
    /// One timer for the identity's expiry, reset only when the expiry changes: a timer
    /// created per loop iteration costs an insert and a removal in tokio's wheel per wake.
    expiry_timer: Pin<Box<tokio::time::Sleep>>,
    /// The `exp` the timer was computed for.
    expiry_for: Option<u64>,
    /// Whether `expiry_timer` is set to fire.
    expiry_armed: bool,
}

impl Drop for Session {
    /// Runs however the session ends (return, panic, or the transport aborting its task), so
    /// the hub never counts a dead session or keeps its query instances.
    fn drop(&mut self) {
        self.release_all();
        self.hub.token_sessions.remove(self.id);
        self.hub.session_ended();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs one session until the client goes away or breaks the protocol.
pub async fn run_session<S>(hub: Arc<SyncHub>, mut inbound: S, outbound: mpsc::Sender<Outbound>)
where
    S: Stream<Item = Inbound> + Unpin + Send,
{
    let id = hub.session_started();
    let mut session = Session {
        hub: hub.clone(),
        id,
        signal: Arc::new(SessionSignal::default()),
        client_session_id: None,
        clock_skew: None,
        sent: StateVersion::default(),
        query_set_version: 0,
        identity: None,
        token_issuer: None,
        identity_version: 0,
        caller: Caller::Client,
        queries: BTreeMap::new(),
        removed: Vec::new(),
        must_send: false,
        must_recheck: false,
        outbox: VecDeque::new(),
        outbound,
        mutations: VecDeque::new(),
        queued_bytes: 0,
        in_flight: None,
        blocked_since: None,
        expiry_timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
        expiry_for: None,
        expiry_armed: false,
    };
    tracing::debug!(session = id, "session started");
    let end = session.run(&mut inbound).await;
    match end {
        Ok(()) => tracing::debug!(session = id, "session closed by the client"),
        Err(End::Fatal(reason)) => {
            tracing::warn!(session = id, %reason, "closing session after a protocol violation");
            let frame = ServerMessage::FatalError { error: &reason }.to_text();
            let _ = session.outbound.try_send(Outbound::Text(frame));
            let _ = session.outbound.try_send(Outbound::Close {
                code: 1008,
                reason: truncate(&reason, 120),
            });
        }
        Err(End::Close(code, reason)) => {
            tracing::warn!(session = id, %reason, "closing session");
            let _ = session.outbound.try_send(Outbound::Close { code, reason });
        }
    }
    // Dropping `session` releases its queries and ends its count in the hub.
}

fn truncate(text: &str, max: usize) -> String {
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}

impl Session {
    async fn run<S>(&mut self, inbound: &mut S) -> Result<(), End>
    where
        S: Stream<Item = Inbound> + Unpin + Send,
    {
        loop {
            self.flush()?;
            if self.signal.take_dirty() {
                self.must_recheck = true;
            }
            if self.signal.take_auth_changed() {
                self.check_token_issuer()?;
            }
            if self.wants_transition() {
                if self.outbound.capacity() >= TRANSITION_HEADROOM {
                    self.blocked_since = None;
                    if let Some(text) = self.build_transition().await? {
                        self.push(Outbound::Text(text))?;
                        self.flush()?;
                    }
                } else {
                    self.note_blocked()?;
                }
            }
            self.arm_expiry_timer();
            let blocked = self.blocked_since.is_some() || !self.outbox.is_empty();
            // Back-pressure on a client that pipelines mutations: while the queue is full,
            // its frames wait in the socket (see the module docs).
            let accepting = self.mutations.len() < MAX_QUEUED_MUTATIONS
                && self.queued_bytes < MAX_QUEUED_MUTATION_BYTES;
            let event = {
                let signal = self.signal.clone();
                let in_flight = &mut self.in_flight;
                let outbound = &self.outbound;
                let expiry = self.expiry_timer.as_mut();
                tokio::select! {
                    frame = inbound.next(), if accepting => Event::Frame(frame),
                    () = signal.notify.notified() => Event::Woken,
                    Some((request_id, result)) = async {
                        match in_flight.as_mut() {
                            Some(future) => Some(future.await),
                            None => None,
                        }
                    } => Event::MutationDone(request_id, result),
                    _ = outbound.reserve(), if blocked => Event::Woken,
                    () = tokio::time::sleep(Duration::from_secs(1)), if blocked => Event::StillBlocked,
                    () = expiry, if self.expiry_armed => Event::Expired,
                }
            };
            match event {
                Event::Frame(Some(Inbound::Text(text))) => self.handle(&text).await?,
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
                Event::MutationDone(request_id, result) => {
                    self.in_flight = None;
                    self.mutation_done(request_id, result)?;
                    self.start_next_mutation();
                }
                Event::StillBlocked => self.note_blocked()?,
                Event::Expired => {
                    // Re-computed next iteration: if the wall clock has not reached `exp`
                    // yet (or `exp` was beyond MAX_EXPIRY_WAIT), the timer is set again.
                    self.expiry_armed = false;
                    self.expiry_for = None;
                    self.expire_identity();
                }
            }
        }
    }

    /// Points the expiry timer at the identity's `exp`, touching it only when `exp` changed.
    fn arm_expiry_timer(&mut self) {
        let expires_at = self.identity.as_ref().and_then(|i| i.expires_at);
        if expires_at == self.expiry_for {
            return;
        }
        self.expiry_for = expires_at;
        self.expiry_armed = false;
        if let Some(deadline) =
            expires_at.and_then(|exp| expiry_deadline(exp, unix_now(), tokio::time::Instant::now()))
        {
            self.expiry_timer.as_mut().reset(deadline);
            self.expiry_armed = true;
        }
    }

    fn wants_transition(&self) -> bool {
        self.must_send || self.must_recheck
    }

    fn note_blocked(&mut self) -> Result<(), End> {
        let since = *self.blocked_since.get_or_insert_with(Instant::now);
        if since.elapsed() > stall_limit() {
            return Err(End::Close(
                1013,
                format!(
                    "client did not read its messages for {} s; reconnect to resync",
                    stall_limit().as_secs()
                ),
            ));
        }
        Ok(())
    }

    fn push(&mut self, frame: Outbound) -> Result<(), End> {
        if self.outbox.len() >= MAX_OUTBOX {
            return Err(End::Close(
                1013,
                "too many undelivered messages; the client is not reading".into(),
            ));
        }
        self.outbox.push_back(frame);
        Ok(())
    }

    /// Moves queued frames into the transport channel while it has room.
    fn flush(&mut self) -> Result<(), End> {
        while let Some(frame) = self.outbox.pop_front() {
            match self.outbound.try_send(frame) {
                Ok(()) => self.blocked_since = None,
                Err(mpsc::error::TrySendError::Full(frame)) => {
                    self.outbox.push_front(frame);
                    return self.note_blocked();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err(End::Close(1000, "transport closed".into()));
                }
            }
        }
        Ok(())
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
            } => self.modify_query_set(base_version, new_version, modifications)?,
            ClientMessage::Mutation {
                request_id,
                udf_path,
                args,
                ..
            } => {
                let args = decode_args(args);
                self.queued_bytes += text.len();
                self.mutations.push_back(PendingMutation {
                    request_id,
                    path: FunctionPath::parse(&udf_path),
                    args,
                    identity: self.identity.clone(),
                    token_issuer: self.token_issuer.clone(),
                    caller: self.caller,
                    bytes: text.len(),
                });
                if self.in_flight.is_none() {
                    self.start_next_mutation();
                }
            }
            ClientMessage::Action {
                request_id,
                udf_path,
                ..
            } => {
                let message = format!(
                    "Could not find public function for '{}': Pulsebase has no actions; use a mutation, or an HTTP action in functions/http.rhai",
                    FunctionPath::parse(&udf_path)
                );
                let result = json_string(&message);
                let frame = ServerMessage::ActionResponse {
                    request_id,
                    success: false,
                    result: &result,
                    log_lines: &[],
                    error_data: None,
                }
                .to_text();
                self.push(Outbound::Text(frame))?;
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

    fn modify_query_set(
        &mut self,
        base: u32,
        new: u32,
        modifications: Vec<QuerySetModification>,
    ) -> Result<(), End> {
        if base != self.query_set_version || new != base + 1 {
            return Err(End::Fatal(format!(
                "ModifyQuerySet from version {base} to {new} does not follow the current query set version {}",
                self.query_set_version
            )));
        }
        for modification in modifications {
            match modification {
                QuerySetModification::Add {
                    query_id,
                    udf_path,
                    args,
                    ..
                } => {
                    if self.queries.contains_key(&query_id) {
                        return Err(End::Fatal(format!("query id {query_id} was added twice")));
                    }
                    if self.queries.len() >= MAX_QUERIES {
                        return Err(End::Fatal(format!(
                            "a session may subscribe to at most {MAX_QUERIES} queries"
                        )));
                    }
                    let path = FunctionPath::parse(&udf_path);
                    let query = self.new_query(path, decode_args(args));
                    self.removed.retain(|id| *id != query_id);
                    self.queries.insert(query_id, query);
                }
                QuerySetModification::Remove { query_id } => {
                    if let Some(query) = self.queries.remove(&query_id) {
                        self.release(&query);
                        self.removed.push(query_id);
                    }
                }
            }
        }
        self.query_set_version = new;
        self.must_send = true;
        Ok(())
    }

    fn new_query(&mut self, path: FunctionPath, args: Result<Value, String>) -> SessionQuery {
        match args {
            Ok(args) => {
                let family = FamilyKey {
                    path: path.clone(),
                    args_json: args.to_json_string(),
                    trusted: self.caller == Caller::Trusted,
                };
                let instance = self.hub.instances.acquire(
                    &family,
                    &args,
                    self.identity.as_ref(),
                    self.id,
                    &self.signal,
                );
                SessionQuery {
                    path,
                    family,
                    instance: Some(instance),
                    fixed: None,
                    last_hash: None,
                }
            }
            Err(message) => SessionQuery {
                family: FamilyKey {
                    path: path.clone(),
                    args_json: String::new(),
                    trusted: false,
                },
                path,
                instance: None,
                fixed: Some(Arc::new(QueryOutput::failure(message))),
                last_hash: None,
            },
        }
    }

    pub(crate) fn release(&self, query: &SessionQuery) {
        if let Some(instance) = &query.instance {
            self.hub
                .instances
                .release(instance, self.id, self.hub.app.db().subscriptions());
        }
    }

    /// Points a query at the instance its family and the current identity resolve to.
    pub(crate) fn rebind(&mut self, query_id: u32) {
        let Some(query) = self.queries.get(&query_id) else {
            return;
        };
        let Some(old) = query.instance.clone() else {
            return;
        };
        let fresh = self.hub.instances.acquire(
            &query.family,
            &old.args,
            self.identity.as_ref(),
            self.id,
            &self.signal,
        );
        self.hub
            .instances
            .release(&old, self.id, self.hub.app.db().subscriptions());
        if let Some(query) = self.queries.get_mut(&query_id) {
            query.instance = Some(fresh);
        }
    }

    fn release_all(&mut self) {
        let queries = std::mem::take(&mut self.queries);
        for query in queries.values() {
            self.release(query);
        }
    }

    fn set_identity(&mut self, identity: Option<Identity>) {
        let token_issuer = if identity.is_some() {
            self.token_issuer.clone()
        } else {
            None
        };
        self.set_auth(self.caller, identity, token_issuer);
    }

    /// Replaces who the session acts as. Queries are re-bound when what they may see changed:
    /// all of them when the caller changed (internal functions become visible or not), the
    /// identity-dependent ones when the identity changed.
    fn set_auth(
        &mut self,
        caller: Caller,
        identity: Option<Identity>,
        token_issuer: Option<Arc<str>>,
    ) {
        match (&token_issuer, &self.token_issuer) {
            (Some(_), None) => self.hub.token_sessions.insert(self.id, &self.signal),
            (None, Some(_)) => self.hub.token_sessions.remove(self.id),
            _ => {}
        }
        self.token_issuer = token_issuer;
        let caller_changed = caller != self.caller;
        self.caller = caller;
        let before = self.identity.as_ref().map(|i| i.key().to_string());
        let after = identity.as_ref().map(|i| i.key().to_string());
        self.identity = identity;
        let identity_changed = before != after;
        if !caller_changed && !identity_changed {
            return;
        }
        let trusted = caller == Caller::Trusted;
        let ids: Vec<u32> = self
            .queries
            .iter()
            .filter(|(_, q)| {
                q.instance
                    .as_ref()
                    .is_some_and(|i| caller_changed || !i.is_shared())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(query) = self.queries.get_mut(&id) {
                // Trusted sessions see internal functions: their queries must not share
                // instances with client sessions, and must stop seeing them once untrusted.
                query.family.trusted = trusted;
            }
            self.rebind(id);
        }
        self.must_recheck = true;
    }

    async fn authenticate(
        &mut self,
        base_version: u32,
        token_type: AuthenticateTokenType,
        value: Option<String>,
        impersonating: Option<serde_json::Value>,
    ) -> Result<(), End> {
        if base_version != self.identity_version {
            return Err(End::Fatal(format!(
                "Authenticate baseVersion {base_version} does not match the identity version {}",
                self.identity_version
            )));
        }
        match token_type {
            AuthenticateTokenType::None => self.set_auth(Caller::Client, None, None),
            AuthenticateTokenType::User => {
                let token = value.unwrap_or_default();
                match self.hub.auth.verify(&token).await {
                    Ok(verified) => {
                        let identity = Identity::from_json(
                            verified.identity.as_map(),
                            Some(verified.expires_at),
                        );
                        tracing::debug!(
                            session = self.id,
                            subject = identity.subject().unwrap_or_default(),
                            "authenticated"
                        );
                        let issuer: Arc<str> = verified.identity.issuer().into();
                        // A user token never carries an admin's rights.
                        self.set_auth(Caller::Client, Some(identity), Some(issuer));
                        // The provider may have been removed between `verify` and the
                        // registration above, in which case no notification reached us.
                        self.check_token_issuer()?;
                    }
                    Err(rejection) => {
                        tracing::debug!(
                            session = self.id,
                            code = rejection.code(),
                            "Authenticate refused an access token"
                        );
                        let frame = ServerMessage::AuthError {
                            error: rejection.client_message(),
                            base_version: self.identity_version,
                            auth_update_attempted: true,
                        }
                        .to_text();
                        self.push(Outbound::Text(frame))?;
                        // The session goes on anonymously; it must not keep reading as the
                        // previous user (or admin) once a refresh failed.
                        self.set_auth(Caller::Client, None, None);
                        return Ok(());
                    }
                }
            }
            AuthenticateTokenType::Admin => {
                if !self.hub.is_admin_key(value.as_deref().unwrap_or_default()) {
                    let frame = ServerMessage::AuthError {
                        error: "Invalid admin key",
                        base_version: self.identity_version,
                        auth_update_attempted: true,
                    }
                    .to_text();
                    return self.push(Outbound::Text(frame));
                }
                let identity = impersonating
                    .as_ref()
                    .and_then(|i| i.as_object())
                    .map(|claims| Identity::from_json(claims, None));
                self.set_auth(Caller::Trusted, identity, None);
            }
        }
        self.identity_version += 1;
        self.must_send = true;
        Ok(())
    }

    /// After a change of `auth.config.toml`: a session whose token came from a provider that
    /// is no longer configured stops acting as that user, as if its token had expired.
    fn check_token_issuer(&mut self) -> Result<(), End> {
        let Some(issuer) = self.token_issuer.clone() else {
            return Ok(());
        };
        if self.hub.auth.trusts_issuer(&issuer) {
            return Ok(());
        }
        tracing::info!(
            session = self.id,
            %issuer,
            "the session's identity provider was removed from auth.config.toml; the session is now anonymous"
        );
        let frame = ServerMessage::AuthError {
            error: REVOKED_MESSAGE,
            base_version: self.identity_version,
            auth_update_attempted: false,
        }
        .to_text();
        self.set_identity(None);
        self.push(Outbound::Text(frame))
    }

    /// The token behind the identity expired and no fresh one arrived: tell the client (it
    /// fetches a new token) and stop reading as that user.
    fn expire_identity(&mut self) {
        let expired = self
            .identity
            .as_ref()
            .is_some_and(|i| i.is_expired(unix_now()));
        if !expired {
            return;
        }
        tracing::info!(
            session = self.id,
            "access token expired without a refresh; the session is now anonymous"
        );
        let frame = ServerMessage::AuthError {
            error: EXPIRED_MESSAGE,
            base_version: self.identity_version,
            auth_update_attempted: false,
        }
        .to_text();
        let _ = self.push(Outbound::Text(frame));
        self.set_identity(None);
    }

    fn start_next_mutation(&mut self) {
        if self
            .identity
            .as_ref()
            .is_some_and(|i| i.is_expired(unix_now()))
        {
            self.expire_identity();
        }
        let Some(pending) = self.mutations.pop_front() else {
            return;
        };
        let PendingMutation {
            request_id,
            path,
            args,
            mut identity,
            token_issuer,
            caller,
            bytes,
        } = pending;
        self.queued_bytes = self.queued_bytes.saturating_sub(bytes);
        // The mutation runs as whoever sent it, even if an Authenticate arrived while it
        // waited. One exception, the session's own expiry rule: if that identity's token has
        // expired by now, or its provider was removed from auth.config.toml, the mutation
        // runs anonymously rather than as that user. It is not refused: a session whose token
        // expires turns anonymous and runs the mutations it is sent after that anonymously
        // too, and the function decides what an anonymous caller may do. The caller (admin or
        // client) is kept: admin sessions have no token that could expire.
        let now = unix_now();
        if identity.as_ref().is_some_and(|i| i.is_expired(now))
            || token_issuer
                .as_deref()
                .is_some_and(|issuer| !self.hub.auth.trusts_issuer(issuer))
        {
            identity = None;
        }
        let app = self.hub.app.clone();
        let dedup = self.client_session_id.clone().map(|session_id| DedupKey {
            session_id,
            request_id,
        });
        self.in_flight = Some(Box::pin(async move {
            let result = match args {
                Ok(args) => app.run_mutation(path, args, identity, caller, dedup).await,
                Err(message) => Ok(MutationResult {
                    result: Err(functions::FunctionError::new(
                        functions::ErrorKind::BadArgs,
                        message,
                    )),
                    log_lines: Vec::new(),
                    ts: None,
                }),
            };
            (request_id, result)
        }));
    }

    fn mutation_done(
        &mut self,
        request_id: u64,
        result: Result<MutationResult, DbError>,
    ) -> Result<(), End> {
        let result = result.unwrap_or_else(|e| MutationResult {
            result: Err(functions::FunctionError::new(
                functions::ErrorKind::Limit,
                e.to_string(),
            )),
            log_lines: Vec::new(),
            ts: None,
        });
        let frame = match &result.result {
            Ok(value) => {
                let value = RawValue::from_string(value.to_json_string()).unwrap_or_default();
                let frame = ServerMessage::MutationResponse {
                    request_id,
                    success: true,
                    result: &value,
                    ts: result.ts.map(protocol::Ts),
                    log_lines: &result.log_lines,
                    error_data: None,
                }
                .to_text();
                // The client resolves the promise only once a Transition reaches `ts`.
                self.must_send = true;
                frame
            }
            Err(error) => {
                let message = json_string(&error.message);
                let data = error
                    .data
                    .as_ref()
                    .and_then(|d| RawValue::from_string(d.to_json_string()).ok());
                let frame = ServerMessage::MutationResponse {
                    request_id,
                    success: false,
                    result: &message,
                    ts: None,
                    log_lines: &result.log_lines,
                    error_data: data.as_deref(),
                }
                .to_text();
                // Convex follows every mutation response with a Transition, and the Rust
                // client (also inside the Python one) resolves a ConvexError only on it.
                self.must_send = true;
                frame
            }
        };
        self.push(Outbound::Text(frame))
    }

    pub(crate) fn clock_skew(&self) -> Option<i64> {
        self.clock_skew
    }
}

/// When the expiry timer for a token with `exp` should fire, seen at (`now_unix`, `now`):
/// at `exp`, or after [`MAX_EXPIRY_WAIT`] if that is sooner (the timer is then set again).
/// `None` only if even that cannot be represented, in which case no timer runs.
fn expiry_deadline(
    exp: u64,
    now_unix: u64,
    now: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let wait = Duration::from_secs(exp.saturating_sub(now_unix)).min(MAX_EXPIRY_WAIT);
    now.checked_add(wait)
}

fn decode_args(args: serde_json::Value) -> Result<Value, String> {
    let args = canonical_args(args).map_err(|e| format!("ArgumentValidationError: {e}"))?;
    Value::from_json(&args).map_err(|e| {
        format!("ArgumentValidationError: the arguments are not valid convex JSON: {e}")
    })
}

fn json_string(text: &str) -> Box<RawValue> {
    serde_json::value::to_raw_value(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn expiry_deadline_never_overflows_and_caps_long_waits() {
        let now = tokio::time::Instant::now();
        // exp near u64::MAX: Instant + Duration::from_secs(exp - now) used to panic here.
        let far = expiry_deadline(u64::MAX, 1_000, now).unwrap();
        assert_eq!(far - now, MAX_EXPIRY_WAIT);
        assert_eq!(
            expiry_deadline(10_000_000_000_000_000_000, 1_000, now).unwrap() - now,
            MAX_EXPIRY_WAIT
        );
        assert_eq!(
            expiry_deadline(1_030, 1_000, now).unwrap() - now,
            Duration::from_secs(30)
        );
        // Already expired: fire at once.
        assert_eq!(expiry_deadline(900, 1_000, now).unwrap(), now);
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
            database::Database::open(&dir.join("data.sqlite3"), schema::Schema::default(), "")
                .unwrap();
        let app = application::App::new(db, functions::Modules::empty());
        let auth = authenticator::Authenticator::new(
            auth::AuthConfig::empty(),
            authenticator::AuthenticatorOptions::new(&dir),
        )
        .unwrap();
        let hub = SyncHub::new(app, Arc::new(auth), None);
        let (outbound, mut frames) = mpsc::channel(16);
        let task = tokio::spawn(run_session(hub.clone(), PanickingStream(0), outbound));
        // Keep the channel drained so the session is never blocked on its client.
        let drain = tokio::spawn(async move { while frames.recv().await.is_some() {} });
        let ended = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap();
        assert!(ended.unwrap_err().is_panic());
        assert_eq!(hub.stats(), (0, 0), "no session or query instance left");
        drain.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
