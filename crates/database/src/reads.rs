//! [`Reads`]: the read bookkeeping both transaction kinds share: the [`ReadSet`] an execution
//! builds, and the limits on how much it may read.
//!
//! A `get` records a one-key range on `by_id` before it looks, so a document that does not
//! exist yet is still watched; a scan records its [`ScanCursor::read_extent`] when it ends.

use storage::ReadRows;
use value::{IndexKey, KeyRange};

use crate::catalog::{Catalog, IndexId};
use crate::document::Document;
use crate::error::DbError;
use crate::read_set::ReadSet;
use crate::scan_cursor::ScanCursor;
use crate::transaction::TxnLimits;

/// What one transaction has read so far, and how much.
pub(crate) struct Reads {
    read_set: ReadSet,
    scanned: usize,
    limits: TxnLimits,
}

impl Reads {
    pub(crate) fn new(limits: TxnLimits) -> Reads {
        Reads {
            read_set: ReadSet::new(),
            scanned: 0,
            limits,
        }
    }

    pub(crate) fn limits(&self) -> &TxnLimits {
        &self.limits
    }

    pub(crate) fn read_set(&self) -> &ReadSet {
        &self.read_set
    }

    /// Hands over the read set so far; the scan budget keeps counting (a mutation's nested
    /// queries share its budget).
    pub(crate) fn take_read_set(&mut self) -> ReadSet {
        std::mem::take(&mut self.read_set)
    }

    /// Hands over the read set so far and gives the next function in the same snapshot a
    /// budget of its own.
    pub(crate) fn start_next_function(&mut self) -> ReadSet {
        self.scanned = 0;
        self.take_read_set()
    }

    fn record(&mut self, index: IndexId, range: KeyRange) -> Result<(), DbError> {
        if self.read_set.len() >= self.limits.max_read_intervals {
            return Err(DbError::Limit(format!(
                "Too many reads in a single function execution (limit: {} index ranges); read fewer ranges or split the work",
                self.limits.max_read_intervals
            )));
        }
        self.read_set.record(index, range);
        Ok(())
    }

    pub(crate) fn get(
        &mut self,
        source: &dyn ReadRows,
        catalog: &Catalog,
        id: &str,
    ) -> Result<Option<Document>, DbError> {
        let (parsed, table) = catalog.resolve_id(id)?;
        self.record(
            table.by_id,
            KeyRange::point(IndexKey::for_id(parsed.as_str()).as_bytes()),
        )?;
        match source.get_document(parsed.as_str())? {
            Some(row) => {
                self.count_scanned(1)?;
                Document::from_storage(&row.value).map(Some)
            }
            None => Ok(None),
        }
    }

    fn count_scanned(&mut self, n: usize) -> Result<(), DbError> {
        self.scanned += n;
        if self.scanned > self.limits.max_documents_scanned {
            return Err(DbError::Limit(format!(
                "Too many documents read in a single function execution (limit: {}); use an index to narrow the range or paginate",
                self.limits.max_documents_scanned
            )));
        }
        Ok(())
    }

    pub(crate) fn scan_next(
        &mut self,
        source: &dyn ReadRows,
        cursor: &mut ScanCursor,
    ) -> Result<Option<Document>, DbError> {
        let Some(row) = cursor.next_row(source)? else {
            return Ok(None);
        };
        self.count_scanned(1)?;
        cursor.consumed(row.key);
        Document::from_storage(&row.value).map(Some)
    }

    /// Counts the documents in `range` of `index` and records the whole range as read, so a
    /// commit that adds or removes one there invalidates the count. Reads no document, so it
    /// does not count against the scan limit.
    pub(crate) fn count(
        &mut self,
        source: &dyn ReadRows,
        index: IndexId,
        range: KeyRange,
    ) -> Result<u64, DbError> {
        let n = source.count(index.0, &range.start, range.end.as_deref())?;
        self.record(index, range)?;
        Ok(n)
    }

    pub(crate) fn finish_scan(&mut self, cursor: ScanCursor) -> Result<(), DbError> {
        match cursor.read_extent() {
            Some(range) => self.record(cursor.index(), range),
            None => Ok(()),
        }
    }
}
