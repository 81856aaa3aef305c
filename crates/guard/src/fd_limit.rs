//! The process's descriptor limit and the default connection cap derived from it.
//!
//! Every connection holds a descriptor, and so do the database (the file and its WAL, per
//! connection), the file watcher, uploads and outbound requests. Without a cap below the
//! limit, enough idle connections leave no descriptor for a commit or a WAL checkpoint.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft descriptor limit to the hard one (the soft default is often 1,024) and
/// returns the limit now in force, or `None` when it cannot be read.
pub fn raise_fd_limit() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => return Some(hard),
            Err(e) => tracing::debug!(error = %e, "could not raise the descriptor limit"),
        }
    }
    Some(soft)
}

/// Descriptors kept back from connections: 256 plus 1/64 of the limit.
pub fn reserve(fd_limit: u64) -> u64 {
    256 + fd_limit / 64
}

/// The default `--max-connections`: the descriptor limit less [`reserve`], at least 16.
pub fn default_max_connections(fd_limit: u64) -> usize {
    usize::try_from(fd_limit.saturating_sub(reserve(fd_limit)).max(16)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_leaves_room_for_the_database() {
        assert_eq!(default_max_connections(20_000), 19_432);
        assert_eq!(default_max_connections(1_024), 752);
        assert_eq!(default_max_connections(100), 16);
        assert!(raise_fd_limit().is_some_and(|limit| limit >= 16));
    }
}
