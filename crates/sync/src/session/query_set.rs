//! [`QuerySet`]: the queries a session subscribes to (the protocol's query set), each bound to
//! the shared instance its function, arguments and the session's identity resolve to; and
//! [`Member`], the session as the instance registry knows it.
//!
//! A query is re-bound when what it may see changes: all of them when the caller changes
//! between admin and client (internal functions become visible or not), the per-identity ones
//! when the identity changes, and any whose instance was retired.

use std::collections::BTreeMap;
use std::sync::Arc;

use auth::Identity;
use functions::FunctionPath;
use protocol::QuerySetModification;
use value::Value;

use super::frames::{End, decode_args};
use crate::hub::SyncHub;
use crate::instance::{FamilyKey, Instance};
use crate::output::QueryOutput;
use crate::signal::SessionSignal;

/// Most queries one session may subscribe to.
const MAX_QUERIES: usize = 10_000;

/// The session as the instance registry knows it: the hub, the session's id, and the signal
/// its instances wake it with.
pub(crate) struct Member {
    hub: Arc<SyncHub>,
    id: u64,
    signal: Arc<SessionSignal>,
}

impl Member {
    pub(crate) fn new(hub: Arc<SyncHub>, id: u64) -> Member {
        Member {
            hub,
            id,
            signal: Arc::new(SessionSignal::default()),
        }
    }

    pub(crate) fn hub(&self) -> &Arc<SyncHub> {
        &self.hub
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn signal(&self) -> &Arc<SessionSignal> {
        &self.signal
    }

    fn acquire(
        &self,
        family: &FamilyKey,
        args: &Value,
        identity: Option<&Identity>,
    ) -> Arc<Instance> {
        self.hub
            .instances()
            .acquire(family, args, identity, self.id, &self.signal)
    }

    fn release(&self, instance: &Arc<Instance>) {
        self.hub
            .instances()
            .release(instance, self.id, self.hub.app().db().subscriptions());
    }
}

/// Where a query's result comes from.
pub(crate) enum Source {
    /// A shared query instance.
    Instance(Arc<Instance>),
    /// The arguments could not be decoded: always this error.
    Fixed(Arc<QueryOutput>),
}

/// One subscribed query.
pub(crate) struct SessionQuery {
    path: FunctionPath,
    family: FamilyKey,
    source: Source,
    /// Hash of the output last sent for this query.
    last_hash: Option<u64>,
}

impl SessionQuery {
    pub(crate) fn path(&self) -> &FunctionPath {
        &self.path
    }

    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    pub(crate) fn instance(&self) -> Option<&Arc<Instance>> {
        match &self.source {
            Source::Instance(instance) => Some(instance),
            Source::Fixed(_) => None,
        }
    }

    /// The client already has an output with this hash.
    pub(crate) fn was_sent(&self, hash: u64) -> bool {
        self.last_hash == Some(hash)
    }
}

/// The queries of one session, by query id.
pub(crate) struct QuerySet {
    queries: BTreeMap<u32, SessionQuery>,
    /// Removed since the last Transition, which reports them.
    removed: Vec<u32>,
    /// The query set version of the protocol.
    version: u32,
}

impl QuerySet {
    pub(crate) fn new() -> QuerySet {
        QuerySet {
            queries: BTreeMap::new(),
            removed: Vec::new(),
            version: 0,
        }
    }

    pub(crate) fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn len(&self) -> usize {
        self.queries.len()
    }

    /// Applies a `ModifyQuerySet` from version `base` to `new`, binding added queries as the
    /// session's `identity` and `trusted`-ness resolve them. `admit` is asked once per added
    /// query; an output it returns (a rate limit's refusal) becomes that query's result.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn modify(
        &mut self,
        member: &Member,
        identity: Option<&Identity>,
        trusted: bool,
        base: u32,
        new: u32,
        modifications: Vec<QuerySetModification>,
        admit: &mut dyn FnMut() -> Option<Arc<QueryOutput>>,
    ) -> Result<(), End> {
        if base != self.version || new != base + 1 {
            return Err(End::Fatal(format!(
                "ModifyQuerySet from version {base} to {new} does not follow the current query set version {}",
                self.version
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
                    let query = match admit() {
                        Some(refused) => fixed_query(path, refused),
                        None => new_query(member, identity, trusted, path, decode_args(args)),
                    };
                    self.removed.retain(|id| *id != query_id);
                    self.queries.insert(query_id, query);
                }
                QuerySetModification::Remove { query_id } => {
                    if let Some(query) = self.queries.remove(&query_id) {
                        release(member, &query);
                        self.removed.push(query_id);
                    }
                }
            }
        }
        self.version = new;
        Ok(())
    }

    /// Points a query at the instance its family and `identity` resolve to now.
    pub(crate) fn rebind(&mut self, query_id: u32, member: &Member, identity: Option<&Identity>) {
        let Some(query) = self.queries.get_mut(&query_id) else {
            return;
        };
        let Source::Instance(old) = &query.source else {
            return;
        };
        let fresh = member.acquire(&query.family, old.args(), identity);
        member.release(old);
        query.source = Source::Instance(fresh);
    }

    /// After the session's caller or identity changed: re-binds every query whose instance
    /// may no longer fit, all of them when the caller changed.
    pub(crate) fn rebind_for(
        &mut self,
        member: &Member,
        identity: Option<&Identity>,
        trusted: bool,
        caller_changed: bool,
    ) {
        let ids: Vec<u32> = self
            .queries
            .iter()
            .filter(|(_, q)| {
                q.instance()
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
            self.rebind(id, member, identity);
        }
    }

    /// Unbinds every query (the session ends).
    pub(crate) fn release_all(&mut self, member: &Member) {
        let queries = std::mem::take(&mut self.queries);
        for query in queries.values() {
            release(member, query);
        }
    }

    /// The ids of every query, in order.
    pub(crate) fn ids(&self) -> Vec<u32> {
        self.queries.keys().copied().collect()
    }

    pub(crate) fn get(&self, query_id: u32) -> Option<&SessionQuery> {
        self.queries.get(&query_id)
    }

    /// Every query and where its result comes from.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &SessionQuery)> {
        self.queries.iter().map(|(id, query)| (*id, query))
    }

    /// The client now has the output with `hash` for this query.
    pub(crate) fn mark_sent(&mut self, query_id: u32, hash: u64) {
        if let Some(query) = self.queries.get_mut(&query_id) {
            query.last_hash = Some(hash);
        }
    }

    /// The queries removed since the last call, for the next Transition.
    pub(crate) fn take_removed(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.removed)
    }
}

fn new_query(
    member: &Member,
    identity: Option<&Identity>,
    trusted: bool,
    path: FunctionPath,
    args: Result<Value, String>,
) -> SessionQuery {
    match args {
        Ok(args) => {
            let family = FamilyKey {
                path: path.clone(),
                args_json: args.to_json_string(),
                trusted,
            };
            let instance = member.acquire(&family, &args, identity);
            SessionQuery {
                path,
                family,
                source: Source::Instance(instance),
                last_hash: None,
            }
        }
        Err(message) => fixed_query(path, Arc::new(QueryOutput::failure(message))),
    }
}

/// A query whose result is always `output` (its arguments were refused, or its call was).
fn fixed_query(path: FunctionPath, output: Arc<QueryOutput>) -> SessionQuery {
    SessionQuery {
        family: FamilyKey {
            path: path.clone(),
            args_json: String::new(),
            trusted: false,
        },
        path,
        source: Source::Fixed(output),
        last_hash: None,
    }
}

fn release(member: &Member, query: &SessionQuery) {
    if let Some(instance) = query.instance() {
        member.release(instance);
    }
}
