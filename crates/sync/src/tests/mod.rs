//! Tests of shared query instances and whole sessions against a real database and real Rhai
//! modules, by the surface they drive:
//! - `publish.rs`: publishing runs into instances — the race between publishing a result and
//!   registering its read set, identity-reading results never shared, runs that outlive their
//!   sessions;
//! - `sessions.rs`: whole sessions, the protocol in and frames out — sharing across
//!   identities, retire and rebind, code changes in modules a query reaches through
//!   `ctx.runQuery`, cleanup after a panic;
//! - `fixture.rs`: a hub over a fresh database, and a client that drives a session.

mod fixture;
mod publish;
mod sessions;
