//! [`Durability`]: what a commit waits for before it is acknowledged (`--durability`).
//!
//! SQLite runs in WAL mode. With `synchronous=NORMAL` a commit is appended to the WAL and
//! the WAL is synced only at checkpoints: a committed mutation survives a crash of the
//! process, but a power loss or kernel crash can lose the last commits before the sync.
//! With `synchronous=FULL` every commit syncs the WAL before it is acknowledged, so it
//! survives a power loss too, at the cost of one fsync per commit (group commit shares it
//! among the mutations of a batch). `bench/run.sh` measures both (BENCHMARKS.md).

use std::str::FromStr;

/// How hard a commit is pushed to the disk before it is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL`: survives a process crash; a power loss can lose the last
    /// commits.
    #[default]
    Normal,
    /// `synchronous=FULL`: every acknowledged commit is on the disk.
    Full,
}

impl Durability {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Normal => "normal",
            Durability::Full => "full",
        }
    }
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Durability, String> {
        match text.to_ascii_lowercase().as_str() {
            "normal" => Ok(Durability::Normal),
            "full" => Ok(Durability::Full),
            other => Err(format!(
                "unknown durability {other:?}: use `normal` (survives a crash of the process) or `full` (also survives a power loss; one fsync per commit)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_is_set_on_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (durability, expected) in [(Durability::Normal, 1), (Durability::Full, 2)] {
            let path = dir.path().join(format!("{}.sqlite3", durability.as_str()));
            let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let writer =
                crate::writer::SqliteWriter::open(&path, frames, durability).expect("open");
            let level: i64 = writer
                .connection()
                .query_row("PRAGMA synchronous", [], |row| row.get(0))
                .expect("pragma");
            assert_eq!(level, expected);
        }
        assert_eq!("FULL".parse(), Ok(Durability::Full));
        assert!("fast".parse::<Durability>().is_err());
    }
}
