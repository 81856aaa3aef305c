//! [`ConnectionCap`]: how many connections may be open at once, in total and per client
//! address, and the permits that count them.
//!
//! A permit is taken when a connection is accepted and released when the last holder drops
//! it: the HTTP connection, and for a WebSocket the session that outlives the HTTP exchange.
//! Behind a trusted proxy the TCP peer is the proxy, so the per-address count is taken at the
//! WebSocket upgrade instead, against the forwarded address ([`ConnectionCap::admit_address`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::client_addr::client_key;

/// Why a connection was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CapRefusal {
    /// `max` connections are open.
    Full { max: usize },
    /// `max` connections from this client address are open.
    PerAddress { max: usize, addr: IpAddr },
}

impl std::fmt::Display for CapRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapRefusal::Full { max } => write!(
                f,
                "the server is at its connection limit ({max} open connections, --max-connections); retry shortly"
            ),
            CapRefusal::PerAddress { max, .. } => write!(
                f,
                "too many connections from your address ({max} open, --max-connections-per-ip); close some and retry"
            ),
        }
    }
}

struct Counts {
    max: usize,
    per_address: Option<usize>,
    open: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    refused_full: AtomicU64,
    refused_per_address: AtomicU64,
}

/// The connection limits of a server. Cheap to clone (shared counts).
#[derive(Clone)]
pub struct ConnectionCap {
    counts: Arc<Counts>,
}

/// One admitted connection, counted in the total; dropping it releases the slot.
pub struct ConnPermit {
    counts: Arc<Counts>,
}

/// One connection counted against its client address; dropping it releases that count.
pub struct AddressPermit {
    counts: Arc<Counts>,
    key: IpAddr,
}

impl ConnectionCap {
    /// At most `max` connections, and `per_address` per client address when set.
    pub fn new(max: usize, per_address: Option<usize>) -> ConnectionCap {
        ConnectionCap {
            counts: Arc::new(Counts {
                max,
                per_address,
                open: AtomicUsize::new(0),
                by_address: Mutex::new(HashMap::new()),
                refused_full: AtomicU64::new(0),
                refused_per_address: AtomicU64::new(0),
            }),
        }
    }

    pub fn max(&self) -> usize {
        self.counts.max
    }

    pub fn per_address(&self) -> Option<usize> {
        self.counts.per_address
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.open.load(Ordering::Relaxed)
    }

    /// Refusals so far: (at the total limit, at a per-address limit).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.counts.refused_full.load(Ordering::Relaxed),
            self.counts.refused_per_address.load(Ordering::Relaxed),
        )
    }

    /// Takes a slot of the total, or says the server is full.
    pub fn admit(&self) -> Result<ConnPermit, CapRefusal> {
        let counts = &self.counts;
        let admitted = counts
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < counts.max).then_some(open + 1)
            });
        match admitted {
            Ok(_) => Ok(ConnPermit {
                counts: self.counts.clone(),
            }),
            Err(_) => {
                counts.refused_full.fetch_add(1, Ordering::Relaxed);
                Err(CapRefusal::Full { max: counts.max })
            }
        }
    }

    /// Counts one connection against `addr`; `Ok(None)` when there is no per-address cap.
    pub fn admit_address(&self, addr: IpAddr) -> Result<Option<AddressPermit>, CapRefusal> {
        let Some(max) = self.counts.per_address else {
            return Ok(None);
        };
        let key = client_key(addr);
        let mut by_address = self.counts.by_address.lock();
        let open = by_address.entry(key).or_insert(0);
        if *open >= max {
            self.counts
                .refused_per_address
                .fetch_add(1, Ordering::Relaxed);
            return Err(CapRefusal::PerAddress { max, addr: key });
        }
        *open += 1;
        Ok(Some(AddressPermit {
            counts: self.counts.clone(),
            key,
        }))
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.counts.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut by_address = self.counts.by_address.lock();
        if let Some(open) = by_address.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                by_address.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_total_is_capped_and_slots_come_back() {
        let cap = ConnectionCap::new(2, None);
        let a = cap.admit().expect("1");
        let _b = cap.admit().expect("2");
        assert_eq!(cap.admit().err(), Some(CapRefusal::Full { max: 2 }));
        drop(a);
        let _c = cap.admit().expect("a slot came back");
        assert_eq!(cap.open(), 2);
        assert_eq!(cap.refused(), (1, 0));
    }

    #[test]
    fn each_address_is_capped_alone() {
        let cap = ConnectionCap::new(100, Some(1));
        let first = cap.admit_address(ip("10.0.0.1")).expect("1");
        assert!(cap.admit_address(ip("10.0.0.1")).is_err());
        let _other = cap.admit_address(ip("10.0.0.2")).expect("another address");
        drop(first);
        assert!(cap.admit_address(ip("10.0.0.1")).expect("back").is_some());
        assert!(
            ConnectionCap::new(1, None)
                .admit_address(ip("10.0.0.1"))
                .expect("no cap")
                .is_none()
        );
    }
}
