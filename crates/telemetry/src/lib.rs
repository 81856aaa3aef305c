//! Measurements that hot paths take without a lock: [`Histogram`] (latencies in fixed
//! buckets) and [`CounterSet`] (counts by a fixed list of labels). Every update is a few
//! relaxed atomic increments, so a mutation path that records one costs nanoseconds and never
//! waits on a reader; the server reads them when `/metrics` is scraped (a scrape may see one
//! update half-applied, e.g. a bucket counted before the sum, which Prometheus tolerates).
//!
//! A leaf crate with no dependencies, so `database`, `authenticator` and `application` can
//! each own the measurements of their own work.

mod counters;
mod histogram;

pub use counters::CounterSet;
pub use histogram::{Histogram, HistogramSnapshot, LATENCY_BUCKETS};
