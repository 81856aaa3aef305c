//! [`ScanCursor`]: a scan in progress over one index range, fetched from storage in growing
//! pages and handed out one document at a time.
//!
//! The one thing to know: the read a scan records is what the function consumed, not what was
//! fetched. [`ScanCursor::read_extent`] is the whole range once everything was consumed,
//! otherwise the range up to and including the last document handed out, so a commit that
//! writes past where a `take(10)` stopped does not invalidate it.

use std::collections::VecDeque;

use storage::{Order, ReadRows, ScanRow};
use value::KeyRange;

use crate::catalog::{IndexId, IndexInfo};
use crate::error::DbError;

/// The first storage fetch of a scan; each later one doubles, up to [`LAST_PAGE`].
const FIRST_PAGE: usize = 8;
const LAST_PAGE: usize = 512;

/// A scan in progress over one index range. Documents are handed out one at a time so that
/// the recorded read covers exactly what the function consumed.
pub struct ScanCursor {
    index: IndexId,
    range: KeyRange,
    order: Order,
    /// Key of the last document handed out.
    position: Option<Vec<u8>>,
    buffer: VecDeque<ScanRow>,
    /// Storage has nothing beyond what is in `buffer`.
    storage_exhausted: bool,
    page: usize,
}

impl ScanCursor {
    pub fn new(index: &IndexInfo, range: KeyRange, order: Order) -> ScanCursor {
        ScanCursor {
            index: index.id,
            range,
            order,
            position: None,
            buffer: VecDeque::new(),
            storage_exhausted: false,
            page: FIRST_PAGE,
        }
    }

    /// Resumes a scan after `key` (exclusive), as pagination cursors do. The range itself
    /// shrinks, so the recorded read starts at the cursor, not at the original range start.
    pub fn resume_after(mut self, key: Vec<u8>) -> ScanCursor {
        match self.order {
            Order::Asc => {
                let start = value::key::successor(&key);
                if start > self.range.start {
                    self.range.start = start;
                }
            }
            Order::Desc => {
                if self.range.end.as_ref().is_none_or(|end| &key < end) {
                    self.range.end = Some(key);
                }
            }
        }
        self
    }

    /// Key of the last document handed out.
    pub fn position(&self) -> Option<&[u8]> {
        self.position.as_deref()
    }

    /// The index this cursor scans.
    pub(crate) fn index(&self) -> IndexId {
        self.index
    }

    /// The next row after the last one handed out, fetching a page from `source` when the
    /// buffer is empty. The row counts as consumed only once [`ScanCursor::consumed`] is
    /// called with its key, so a row refused by a limit is not part of the recorded read.
    pub(crate) fn next_row(&mut self, source: &dyn ReadRows) -> Result<Option<ScanRow>, DbError> {
        if self.buffer.is_empty() && !self.storage_exhausted {
            let bounds = self.next_bounds();
            let rows = if bounds.is_empty() {
                Vec::new()
            } else {
                source.scan(
                    self.index.0,
                    &bounds.start,
                    bounds.end.as_deref(),
                    self.order,
                    self.page,
                )?
            };
            self.storage_exhausted = rows.len() < self.page;
            self.page = (self.page * 2).min(LAST_PAGE);
            self.buffer.extend(rows);
        }
        Ok(self.buffer.pop_front())
    }

    /// Records that the row at `key` was handed out.
    pub(crate) fn consumed(&mut self, key: Vec<u8>) {
        self.position = Some(key);
    }

    /// The range actually read: the whole range once everything was consumed, otherwise the
    /// part up to and including the last document handed out.
    pub(crate) fn read_extent(&self) -> Option<KeyRange> {
        if self.storage_exhausted && self.buffer.is_empty() {
            return Some(self.range.clone());
        }
        let position = self.position.as_ref()?;
        Some(match self.order {
            Order::Asc => KeyRange {
                start: self.range.start.clone(),
                end: Some(value::key::successor(position)),
            },
            Order::Desc => KeyRange {
                start: position.clone(),
                end: self.range.end.clone(),
            },
        })
    }

    /// Bounds of the next storage fetch, after `position`.
    fn next_bounds(&self) -> KeyRange {
        match (&self.position, self.order) {
            (None, _) => self.range.clone(),
            (Some(p), Order::Asc) => KeyRange {
                start: value::key::successor(p).max(self.range.start.clone()),
                end: self.range.end.clone(),
            },
            (Some(p), Order::Desc) => {
                let end = match &self.range.end {
                    Some(e) if e < p => e.clone(),
                    _ => p.clone(),
                };
                KeyRange {
                    start: self.range.start.clone(),
                    end: Some(end),
                }
            }
        }
    }
}
