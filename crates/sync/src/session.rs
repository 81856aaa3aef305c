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
//! stays unable to receive for [`stall_limit`] is disconnected with a log line.

use std::collections::{BTreeMap, VecDeque};
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
/// Most queries one session may subscribe to.
const MAX_QUERIES: usize = 10_000;
/// Most frames waiting in the session's own queue (mutation responses, errors).
const MAX_OUTBOX: usize = 1_000;
/// Free slots in the transport channel required before computing a Transition, which keeps
/// at most a couple of unsent Transitions per client.
const TRANSITION_HEADROOM: usize = 2;
const EXPIRED_MESSAGE: &str = "Convex token identity expired";

/// A frame from the client, as the transport delivers it.
pub enum Inbound {
    Text(String),
    Binary,
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
    in_flight: Option<MutationFuture>,
    blocked_since: Option<Instant>,
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
        identity_version: 0,
        caller: Caller::Client,
        queries: BTreeMap::new(),
        removed: Vec::new(),
        must_send: false,
        must_recheck: false,
        outbox: VecDeque::new(),
        outbound,
        mutations: VecDeque::new(),
        in_flight: None,
        blocked_since: None,
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
    session.release_all();
    hub.session_ended();
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
            let expiry = self.expiry_instant();
            let blocked = self.blocked_since.is_some() || !self.outbox.is_empty();
            let event = {
                let signal = self.signal.clone();
                let in_flight = &mut self.in_flight;
                let outbound = &self.outbound;
                tokio::select! {
                    frame = inbound.next() => Event::Frame(frame),
                    () = signal.notify.notified() => Event::Woken,
                    Some((request_id, result)) = async {
                        match in_flight.as_mut() {
                            Some(future) => Some(future.await),
                            None => None,
                        }
                    } => Event::MutationDone(request_id, result),
                    _ = outbound.reserve(), if blocked => Event::Woken,
                    () = tokio::time::sleep(Duration::from_secs(1)), if blocked => Event::StillBlocked,
                    () = async {
                        match expiry {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => Event::Expired,
                }
            };
            match event {
                Event::Frame(Some(Inbound::Text(text))) => self.handle(&text).await?,
                Event::Frame(Some(Inbound::Binary)) => {
                    return Err(End::Fatal(
                        "binary frames are not part of the protocol; send JSON text frames".into(),
                    ));
                }
                Event::Frame(None) => return Ok(()),
                Event::Woken => {}
                Event::MutationDone(request_id, result) => {
                    self.in_flight = None;
                    self.mutation_done(request_id, result)?;
                    self.start_next_mutation();
                }
                Event::StillBlocked => self.note_blocked()?,
                Event::Expired => self.expire_identity(),
            }
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
                self.mutations.push_back(PendingMutation {
                    request_id,
                    path: FunctionPath::parse(&udf_path),
                    args,
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
        let before = self.identity.as_ref().map(|i| i.key().to_string());
        let after = identity.as_ref().map(|i| i.key().to_string());
        self.identity = identity;
        if before != after {
            let ids: Vec<u32> = self
                .queries
                .iter()
                .filter(|(_, q)| q.instance.as_ref().is_some_and(|i| !i.is_shared()))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.rebind(id);
            }
            self.must_recheck = true;
        }
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
            AuthenticateTokenType::None => {
                self.caller = Caller::Client;
                self.set_identity(None);
            }
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
                        self.set_identity(Some(identity));
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
                        // previous user once a refresh failed.
                        self.set_identity(None);
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
                self.caller = Caller::Trusted;
                let identity = impersonating
                    .as_ref()
                    .and_then(|i| i.as_object())
                    .map(|claims| Identity::from_json(claims, None));
                self.set_identity(identity);
                // Admin sessions see internal functions: their queries must not share
                // instances with client sessions.
                let ids: Vec<u32> = self.queries.keys().copied().collect();
                for id in ids {
                    if let Some(query) = self.queries.get_mut(&id) {
                        query.family.trusted = true;
                    }
                    self.rebind(id);
                }
            }
        }
        self.identity_version += 1;
        self.must_send = true;
        Ok(())
    }

    fn expiry_instant(&self) -> Option<tokio::time::Instant> {
        let expires_at = self.identity.as_ref()?.expires_at?;
        let remaining = expires_at.saturating_sub(unix_now());
        Some(tokio::time::Instant::now() + Duration::from_secs(remaining))
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
        } = pending;
        let app = self.hub.app.clone();
        let identity = self.identity.clone();
        let caller = self.caller;
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
                ServerMessage::MutationResponse {
                    request_id,
                    success: false,
                    result: &message,
                    ts: None,
                    log_lines: &result.log_lines,
                    error_data: data.as_deref(),
                }
                .to_text()
            }
        };
        self.push(Outbound::Text(frame))
    }

    pub(crate) fn clock_skew(&self) -> Option<i64> {
        self.clock_skew
    }
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
