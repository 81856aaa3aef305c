//! [`CounterSet`]: one counter per label of a fixed list (e.g. the reasons a token is
//! refused), each an atomic, so counting never takes a lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for the labels given at construction.
#[derive(Debug)]
pub struct CounterSet {
    labels: &'static [&'static str],
    counts: Vec<AtomicU64>,
}

impl CounterSet {
    pub fn new(labels: &'static [&'static str]) -> CounterSet {
        CounterSet {
            labels,
            counts: labels.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Adds one to `label`'s counter; a label not in the list is counted under the last one
    /// (give the list a catch-all such as `"other"` last).
    pub fn increment(&self, label: &str) {
        let slot = self
            .labels
            .iter()
            .position(|l| *l == label)
            .unwrap_or(self.labels.len().saturating_sub(1));
        if let Some(counter) = self.counts.get(slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every label with its count, in the order given.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.labels
            .iter()
            .zip(&self.counts)
            .map(|(label, count)| (*label, count.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::CounterSet;

    #[test]
    fn counts_by_label_and_unknown_labels_under_the_last() {
        let set = CounterSet::new(&["expired", "bad_signature", "other"]);
        set.increment("expired");
        set.increment("expired");
        set.increment("nonsense");
        assert_eq!(
            set.snapshot(),
            vec![("expired", 2), ("bad_signature", 0), ("other", 1)]
        );
    }
}
