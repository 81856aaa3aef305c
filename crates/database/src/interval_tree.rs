//! [`IntervalTree`]: half-open byte intervals tagged with a subscription id, answering "which
//! intervals contain this key" in O((k + 1) · log n).
//!
//! A treap ordered by (start, id) where every node also stores the largest end in its subtree,
//! the same structure as Convex's `interval_map`. A stabbing query skips any subtree whose
//! largest end is at or below the key, and any right subtree once starts pass the key.

use std::cmp::Ordering;
use std::sync::Arc;

/// Upper bound of an interval; `Unbounded` sorts above every key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Key(Arc<[u8]>),
    Unbounded,
}

impl End {
    fn is_above(&self, key: &[u8]) -> bool {
        match self {
            End::Key(end) => key < end.as_ref(),
            End::Unbounded => true,
        }
    }
}

struct Node {
    start: Arc<[u8]>,
    id: u64,
    end: End,
    priority: u64,
    max_end: End,
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

impl Node {
    fn refresh(&mut self) {
        let mut max = self.end.clone();
        for child in [&self.left, &self.right].into_iter().flatten() {
            if child.max_end > max {
                max = child.max_end.clone();
            }
        }
        self.max_end = max;
    }

    fn cmp_key(&self, start: &[u8], id: u64) -> Ordering {
        self.start.as_ref().cmp(start).then(self.id.cmp(&id))
    }
}

/// A set of (interval, id) pairs.
pub struct IntervalTree {
    root: Option<Box<Node>>,
    len: usize,
    seed: u64,
}

impl Default for IntervalTree {
    /// An empty tree; priorities come from a non-zero xorshift seed (zero would stay zero and
    /// degrade the treap to a list).
    fn default() -> Self {
        IntervalTree::new()
    }
}

impl IntervalTree {
    pub fn new() -> IntervalTree {
        IntervalTree {
            root: None,
            len: 0,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `[start, end)` for `id` (`end: None` = unbounded).
    pub fn insert(&mut self, start: &[u8], end: Option<&[u8]>, id: u64) {
        // xorshift: priorities only need to look random to keep the treap balanced.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let end = end.map_or(End::Unbounded, |e| End::Key(Arc::from(e)));
        let node = Box::new(Node {
            start: Arc::from(start),
            id,
            max_end: end.clone(),
            end,
            priority: self.seed,
            left: None,
            right: None,
        });
        let (left, right) = split(self.root.take(), start, id);
        self.root = merge(merge(left, Some(node)), right);
        self.len += 1;
    }

    /// Removes the interval starting at `start` for `id`; returns whether it was present.
    pub fn remove(&mut self, start: &[u8], id: u64) -> bool {
        let (left, rest) = split(self.root.take(), start, id);
        // `rest` starts with the node itself if present: split it off.
        let (found, right) = split_first_if(rest, start, id);
        self.root = merge(left, right);
        if found {
            self.len -= 1;
        }
        found
    }

    /// Calls `found` with the id of every interval that contains `key`.
    pub fn stab(&self, key: &[u8], found: &mut impl FnMut(u64)) {
        stab(&self.root, key, found);
    }
}

/// Splits into (< (start, id)) and (>= (start, id)).
fn split(node: Option<Box<Node>>, start: &[u8], id: u64) -> (Option<Box<Node>>, Option<Box<Node>>) {
    let Some(mut node) = node else {
        return (None, None);
    };
    if node.cmp_key(start, id) == Ordering::Less {
        let (l, r) = split(node.right.take(), start, id);
        node.right = l;
        node.refresh();
        (Some(node), r)
    } else {
        let (l, r) = split(node.left.take(), start, id);
        node.left = r;
        node.refresh();
        (l, Some(node))
    }
}

/// Removes the minimum node of `node` if it is exactly (start, id).
fn split_first_if(node: Option<Box<Node>>, start: &[u8], id: u64) -> (bool, Option<Box<Node>>) {
    let Some(mut node) = node else {
        return (false, None);
    };
    if node.left.is_some() {
        let (found, left) = split_first_if(node.left.take(), start, id);
        node.left = left;
        node.refresh();
        return (found, Some(node));
    }
    if node.cmp_key(start, id) == Ordering::Equal {
        (true, node.right.take())
    } else {
        (false, Some(node))
    }
}

/// Joins two treaps where every key of `a` is below every key of `b`.
fn merge(a: Option<Box<Node>>, b: Option<Box<Node>>) -> Option<Box<Node>> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(mut a), Some(mut b)) => {
            if a.priority > b.priority {
                a.right = merge(a.right.take(), Some(b));
                a.refresh();
                Some(a)
            } else {
                b.left = merge(Some(a), b.left.take());
                b.refresh();
                Some(b)
            }
        }
    }
}

fn stab(node: &Option<Box<Node>>, key: &[u8], found: &mut impl FnMut(u64)) {
    let Some(node) = node else { return };
    if !node.max_end.is_above(key) {
        return;
    }
    stab(&node.left, key, found);
    if node.start.as_ref() <= key {
        if node.end.is_above(key) {
            found(node.id);
        }
        stab(&node.right, key, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(0u8..4, 0..4)
    }

    proptest! {
        #[test]
        fn matches_a_linear_scan(
            intervals in prop::collection::vec((bytes(), prop::option::of(bytes())), 0..40),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            keys in prop::collection::vec(bytes(), 1..20),
        ) {
            let mut tree = IntervalTree::new();
            let mut live: Vec<(Vec<u8>, Option<Vec<u8>>, u64)> = Vec::new();
            for (i, (start, end)) in intervals.into_iter().enumerate() {
                tree.insert(&start, end.as_deref(), i as u64);
                live.push((start, end, i as u64));
            }
            for r in removals {
                if live.is_empty() { break; }
                let (start, _, id) = live.remove(r.index(live.len()));
                prop_assert!(tree.remove(&start, id));
            }
            prop_assert_eq!(tree.len(), live.len());
            for key in keys {
                let mut got = Vec::new();
                tree.stab(&key, &mut |id| got.push(id));
                got.sort();
                let mut want: Vec<u64> = live.iter()
                    .filter(|(s, e, _)| key >= *s && e.as_ref().is_none_or(|e| key < *e))
                    .map(|(_, _, id)| *id)
                    .collect();
                want.sort();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn removing_a_missing_interval_changes_nothing() {
        let mut tree = IntervalTree::new();
        tree.insert(b"a", Some(b"c"), 1);
        assert!(!tree.remove(b"a", 2));
        assert!(!tree.remove(b"b", 1));
        assert_eq!(tree.len(), 1);
    }
}
