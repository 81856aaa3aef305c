//! Tests of app code on the real engine (`pulsebase test`): test files
//! `functions/**/*.test.rhai` declare tests with `test("name", |t| { ... })`, and each test runs
//! against its own database with the app's schema and the app's functions, loaded as `dev`
//! loads them. Test files are never modules: the loader skips them, so clients, codegen and
//! `dev` never see them.
//!
//! - [`TestFile`] (`file.rs`) compiles a test file on its own engine and collects its tests;
//! - [`run_test`] (`runner.rs`) runs one of them on a database the caller opened;
//! - `t` is `client.rs` (queries, mutations, `t.run`, identities), the checks are
//!   `assertions.rs` (comparing values with `compare.rs`), failures and caught errors
//!   `failure.rs`, the fake clock `clock.rs` (with [`ClockListener`], the seam for the
//!   scheduler), and what the engine's registered functions share `state.rs`;
//! - what a test file can call is registered in `host_api/testing.rs`.

pub(crate) mod assertions;
pub(crate) mod client;
pub(crate) mod clock;
pub(crate) mod compare;
pub(crate) mod failure;
mod file;
mod runner;
pub(crate) mod state;

pub use client::TEST_ISSUER;
pub use clock::{ClockListener, TestClock};
pub use failure::TestFailure;
pub use file::{TEST_TIME_LIMIT, TestFile};
pub use runner::{TestOutcome, run_test};
pub use state::TestCase;
