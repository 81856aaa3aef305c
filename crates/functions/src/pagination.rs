//! Pagination cursors, opaque strings: `k` + base64url(tag ++ key of the last document of a
//! page), or `e` + base64url(tag) when nothing follows. The tag is a hash of the query's table,
//! index (name and fields), range and order, so a cursor given to a query it did not come from
//! fails with `InvalidCursor` (which the Convex client's `usePaginatedQuery` answers by
//! starting over) instead of silently reading from an unrelated position.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use database::Order;
use rhai::{Array, Dynamic, Map};
use sha2::{Digest, Sha256};
use value::{FieldPath, KeyRange};

use crate::host_error::{HostResult, host_error};

/// Bytes of the query's hash at the front of each cursor.
const TAG_LEN: usize = 8;

/// What binds a cursor to its query.
pub(crate) type CursorTag = [u8; TAG_LEN];

/// Where a cursor says to continue.
pub(crate) enum CursorPosition {
    /// After the document with this index key.
    After(Vec<u8>),
    /// Nothing is left.
    End,
}

/// The tag of a query: a hash of its table, index (name and fields), range and order.
pub(crate) fn tag(
    table: &str,
    index: &str,
    fields: &[FieldPath],
    range: &KeyRange,
    order: Order,
) -> CursorTag {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(b"pulsebase paginate v1");
    part(table.as_bytes());
    part(index.as_bytes());
    for field in fields {
        part(field.as_str().as_bytes());
    }
    part(&range.start);
    match &range.end {
        Some(end) => part(end),
        None => part(b"unbounded"),
    }
    part(match order {
        Order::Asc => b"asc",
        Order::Desc => b"desc",
    });
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&hash.finalize()[..TAG_LEN]);
    tag
}

/// `k` + base64url(tag ++ key of the last document of the page).
pub(crate) fn encode_after(tag: &CursorTag, key: &[u8]) -> String {
    let mut bytes = tag.to_vec();
    bytes.extend_from_slice(key);
    format!("k{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `e` + base64url(tag): the query has nothing after this page.
pub(crate) fn encode_end(tag: &CursorTag) -> String {
    format!("e{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Decodes `paginationOpts[name]`, which must be `()` or a cursor of the query tagged `tag`.
pub(crate) fn parse_cursor(
    cursor: &Dynamic,
    tag: &CursorTag,
    name: &str,
) -> HostResult<Option<CursorPosition>> {
    if cursor.is_unit() {
        return Ok(None);
    }
    let text = cursor.clone().into_string().map_err(|found| {
        host_error(format!(
            "paginate: {name} must be a string returned as continueCursor, or () for the first page, not {found}"
        ))
    })?;
    let decode = |body: &str| {
        URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .filter(|bytes| bytes.len() >= TAG_LEN)
    };
    let (position, found_tag) = match text.split_at_checked(1) {
        Some(("k", body)) => match decode(body) {
            Some(mut bytes) => {
                let key = bytes.split_off(TAG_LEN);
                (CursorPosition::After(key), bytes)
            }
            None => return Err(not_a_cursor(&text)),
        },
        Some(("e", body)) => match decode(body) {
            Some(bytes) if bytes.len() == TAG_LEN => (CursorPosition::End, bytes),
            _ => return Err(not_a_cursor(&text)),
        },
        _ => return Err(not_a_cursor(&text)),
    };
    if found_tag.as_slice() != tag.as_slice() {
        return Err(host_error(format!(
            "InvalidCursor: Tried to run a query starting from a cursor, but it looks like this cursor is from a different query (another table, index, range or order). Pass back the continueCursor this same query returned, or () to start from the first page ({name}: {text:?})"
        )));
    }
    Ok(Some(position))
}

fn not_a_cursor(text: &str) -> Box<rhai::EvalAltResult> {
    host_error(format!(
        "InvalidCursor: {text:?} is not a cursor returned by paginate; pass back continueCursor, or () to start from the first page"
    ))
}

/// `#{ page, isDone, continueCursor }`, what `paginate` returns.
pub(crate) fn page_result(page: Array, is_done: bool, continue_cursor: String) -> Map {
    let mut result = Map::new();
    result.insert("page".into(), Dynamic::from_array(page));
    result.insert("isDone".into(), Dynamic::from_bool(is_done));
    result.insert("continueCursor".into(), Dynamic::from(continue_cursor));
    result
}
