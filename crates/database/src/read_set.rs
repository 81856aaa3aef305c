//! [`ReadSet`] and [`WriteSet`]: what a function execution read (half-open key ranges per
//! index) and what a commit wrote (old and new key of each written document in each index).
//!
//! A commit invalidates a read set exactly when one of its written keys, old or new, falls in
//! one of the read ranges of the same index. A `db.get` is a one-key range on `by_id`, recorded
//! whether or not the document exists; a scan records what it actually consumed (see
//! `ScanCursor::read_extent`), never less.

use value::KeyRange;

use crate::catalog::IndexId;

/// One key range an execution read, in one index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadInterval {
    pub index: IndexId,
    pub range: KeyRange,
}

/// The key ranges one execution read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSet {
    intervals: Vec<ReadInterval>,
}

impl ReadSet {
    pub fn new() -> ReadSet {
        ReadSet::default()
    }

    pub(crate) fn record(&mut self, index: IndexId, range: KeyRange) {
        if !range.is_empty() {
            self.intervals.push(ReadInterval { index, range });
        }
    }

    pub fn intervals(&self) -> &[ReadInterval] {
        &self.intervals
    }

    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Whether any write of `writes` lands in a range of this read set.
    pub fn overlaps(&self, writes: &WriteSet) -> bool {
        writes.keys().any(|(index, key)| {
            self.intervals
                .iter()
                .any(|read| read.index == index && read.range.contains(key))
        })
    }
}

/// One document's change in one index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexWrite {
    pub index: IndexId,
    pub old_key: Option<Vec<u8>>,
    pub new_key: Option<Vec<u8>>,
}

/// Everything one commit wrote, as index keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet {
    pub writes: Vec<IndexWrite>,
}

impl WriteSet {
    /// Every (index, key) a subscription could be affected by: old and new keys alike.
    pub fn keys(&self) -> impl Iterator<Item = (IndexId, &[u8])> {
        self.writes.iter().flat_map(|w| {
            w.old_key
                .iter()
                .chain(w.new_key.iter())
                .map(move |k| (w.index, k.as_slice()))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub(crate) fn extend(&mut self, other: WriteSet) {
        self.writes.extend(other.writes);
    }
}
