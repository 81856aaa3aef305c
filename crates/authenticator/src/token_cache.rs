//! Tokens already verified, keyed by SHA-256 of the token, so a client re-sending the same
//! token (every HTTP call, every reconnect) costs a hash and a map lookup, not an RSA check.
//!
//! Bounded: the cache is split into shards (less lock contention across cores), each holding
//! at most its share of the capacity. An entry lives until its token's `exp`; when a shard is
//! full the entry expiring soonest goes first, which removes dead entries before live ones.
//! Each entry carries the tag of the provider that verified it (see `verifier`), and is
//! served only while the caller's configuration still lists that tag, so a token of a
//! removed or changed provider is never served, while reloads that keep the provider keep
//! its tokens.

use std::collections::{BTreeSet, HashMap};

use auth::VerifiedToken;
use sha2::{Digest, Sha256};

const SHARDS: usize = 16;

/// SHA-256 of a token: the cache key (the token itself is never stored).
pub(crate) type TokenHash = [u8; 32];

pub(crate) fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry {
    verified: VerifiedToken,
    tag: u64,
    order: (u64, u64),
}

#[derive(Default)]
struct Shard {
    entries: HashMap<TokenHash, Entry>,
    /// (expires_at, insertion sequence, key): eviction order.
    by_expiry: BTreeSet<(u64, u64, TokenHash)>,
    sequence: u64,
}

pub(crate) struct TokenCache {
    shards: Vec<parking_lot::Mutex<Shard>>,
    per_shard: usize,
}

impl TokenCache {
    /// A cache holding about `capacity` tokens; 0 disables caching.
    pub(crate) fn new(capacity: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| parking_lot::Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, hash: &TokenHash) -> &parking_lot::Mutex<Shard> {
        &self.shards[usize::from(hash[0]) % SHARDS]
    }

    /// The cached result if its provider tag is in `live_tags` (a handful: one per provider)
    /// and it is still unexpired at `now`.
    pub(crate) fn get(
        &self,
        hash: &TokenHash,
        live_tags: &[u64],
        now: u64,
    ) -> Option<VerifiedToken> {
        if self.per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(hash).lock();
        let entry = shard.entries.get(hash)?;
        if live_tags.contains(&entry.tag) && now < entry.verified.expires_at {
            return Some(entry.verified.clone());
        }
        shard.remove(hash);
        None
    }

    pub(crate) fn insert(&self, hash: TokenHash, tag: u64, verified: VerifiedToken, now: u64) {
        if self.per_shard == 0 || verified.expires_at <= now {
            return;
        }
        let mut shard = self.shard(&hash).lock();
        shard.remove(&hash);
        shard.drop_expired(now);
        while shard.entries.len() >= self.per_shard {
            let Some(&oldest) = shard.by_expiry.first() else {
                break;
            };
            shard.remove(&oldest.2);
        }
        shard.sequence += 1;
        let order = (verified.expires_at, shard.sequence);
        shard.by_expiry.insert((order.0, order.1, hash));
        shard.entries.insert(
            hash,
            Entry {
                verified,
                tag,
                order,
            },
        );
    }

    /// Forgets every entry whose tag is not in `live_tags` (their provider was removed or
    /// changed). One pass per shard, at reload time only.
    pub(crate) fn retain_tags(&self, live_tags: &[u64]) {
        for shard in &self.shards {
            let mut shard = shard.lock();
            let dead: Vec<TokenHash> = (shard.entries.iter())
                .filter(|(_, entry)| !live_tags.contains(&entry.tag))
                .map(|(hash, _)| *hash)
                .collect();
            for hash in dead {
                shard.remove(&hash);
            }
        }
    }

    /// Number of cached tokens.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().entries.len()).sum()
    }
}

impl Shard {
    fn remove(&mut self, hash: &TokenHash) {
        if let Some(entry) = self.entries.remove(hash) {
            self.by_expiry
                .remove(&(entry.order.0, entry.order.1, *hash));
        }
    }

    /// Drops a few expired entries per insert: amortised cleanup without a sweeper task.
    fn drop_expired(&mut self, now: u64) {
        for _ in 0..8 {
            match self.by_expiry.first() {
                Some(&(expires_at, _, hash)) if expires_at <= now => self.remove(&hash),
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth::{ClaimMapping, Identity};
    use serde_json::json;

    fn verified(sub: &str, expires_at: u64) -> VerifiedToken {
        let claims = json!({"iss": "i", "sub": sub});
        VerifiedToken {
            identity: Identity::from_claims(claims.as_object().unwrap(), ClaimMapping::Oidc)
                .unwrap(),
            expires_at,
        }
    }

    #[test]
    fn hit_expiry_tag() {
        let cache = TokenCache::new(100);
        let h = token_hash("t1");
        cache.insert(h, 1, verified("a", 50), 10);
        assert!(cache.get(&h, &[1], 49).is_some());
        assert!(cache.get(&h, &[3, 1, 2], 49).is_some());
        assert!(cache.get(&h, &[2], 20).is_none(), "its provider is gone");
        cache.insert(h, 1, verified("a", 50), 10);
        assert!(cache.get(&h, &[1], 50).is_none(), "expired at exp");
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn retain_tags_keeps_only_live_providers() {
        let cache = TokenCache::new(1_000);
        for i in 0..300u64 {
            cache.insert(token_hash(&i.to_string()), i % 3, verified("a", 100), 0);
        }
        cache.retain_tags(&[0, 2]);
        assert_eq!(cache.len(), 200);
        assert!(cache.get(&token_hash("0"), &[0, 2], 1).is_some());
        assert!(cache.get(&token_hash("1"), &[0, 1, 2], 1).is_none());
        cache.retain_tags(&[]);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded_evicting_soonest_expiry() {
        let cache = TokenCache::new(SHARDS * 4);
        for i in 0..10_000u64 {
            cache.insert(token_hash(&i.to_string()), 1, verified("a", 1_000 + i), 0);
        }
        assert!(cache.len() <= SHARDS * 4);
        // The newest (latest-expiring) tokens survive.
        assert!(cache.get(&token_hash("9999"), &[1], 0).is_some());
        assert!(cache.get(&token_hash("0"), &[1], 0).is_none());
    }

    #[test]
    fn zero_capacity_disables() {
        let cache = TokenCache::new(0);
        cache.insert(token_hash("t"), 1, verified("a", 50), 0);
        assert!(cache.get(&token_hash("t"), &[1], 0).is_none());
    }
}
