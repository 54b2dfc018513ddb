//! Loss and duplicate accounting by sequence number.
//!
//! Every benchmark message carries its sequence number (property [`SEQ`]) and
//! its send timestamp (property [`SENT_US`], wall-clock microseconds). The
//! producer side marks each acknowledged sequence number in one [`SeqSet`];
//! the consumer side marks each delivery in another. Then
//!
//! - `lost` = acknowledged numbers never delivered ([`SeqSet::missing_from`]),
//!   or, against a plain count, `expected - distinct seen below it`
//!   ([`SeqSet::missing_below`]);
//! - `duplicated` = deliveries beyond the first of a number
//!   ([`SeqSet::duplicates`]).
//!
//! The set is a growable bitmap: one bit per number, 125 KB per million.

/// Property holding the message's sequence number.
pub const SEQ: &str = "bseq";
/// Property holding the send timestamp (wall clock, microseconds since the epoch).
pub const SENT_US: &str = "bts";
/// Property holding the run id, so messages of other runs are ignored.
pub const RUN: &str = "brun";

/// Sequence numbers seen, with a count of repeats.
#[derive(Debug, Default, Clone)]
pub struct SeqSet {
    words: Vec<u64>,
    distinct: u64,
    duplicates: u64,
}

impl SeqSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Mark `seq`; true if it was new, false (and one more duplicate) if not.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if w >= self.words.len() {
            self.words.resize((w + 1).next_power_of_two(), 0);
        }
        if self.words[w] & bit != 0 {
            self.duplicates += 1;
            false
        } else {
            self.words[w] |= bit;
            self.distinct += 1;
            true
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn contains(&self, seq: u64) -> bool {
        let w = (seq / 64) as usize;
        w < self.words.len() && self.words[w] & (1u64 << (seq % 64)) != 0
    }

    /// Distinct numbers marked.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// Marks beyond the first of a number.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Numbers in `0..expected` never marked.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn missing_below(&self, expected: u64) -> u64 {
        let full = (expected / 64) as usize;
        let mut seen: u64 = self
            .words
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let rest = expected % 64;
        if rest != 0 {
            if let Some(w) = self.words.get(full) {
                seen += u64::from((w & ((1u64 << rest) - 1)).count_ones());
            }
        }
        expected - seen
    }

    /// Numbers marked in `expected` but not in `self`.
    pub fn missing_from(&self, expected: &SeqSet) -> u64 {
        expected
            .words
            .iter()
            .enumerate()
            .map(|(i, e)| u64::from((e & !self.words.get(i).copied().unwrap_or(0)).count_ones()))
            .sum()
    }

    /// Add every number of `other` (its duplicates too).
    pub fn union_with(&mut self, other: &SeqSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (i, o) in other.words.iter().enumerate() {
            let both = self.words[i] & o;
            self.duplicates += u64::from(both.count_ones());
            self.distinct += u64::from((o & !self.words[i]).count_ones());
            self.words[i] |= o;
        }
        self.duplicates += other.duplicates;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_duplicate_and_gap_are_counted() {
        // 0..1000 with 417 missing and 42 delivered twice.
        let mut seen = SeqSet::new();
        let mut acked = SeqSet::new();
        for s in 0..1000u64 {
            acked.insert(s);
            if s == 417 {
                continue;
            }
            seen.insert(s);
            if s == 42 {
                assert!(!seen.insert(s));
            }
        }
        assert_eq!(seen.missing_below(1000), 1);
        assert_eq!(seen.missing_from(&acked), 1);
        assert_eq!(seen.duplicates(), 1);
        assert_eq!(seen.distinct(), 999);
        assert!(!seen.contains(417) && seen.contains(418));
    }

    #[test]
    fn out_of_order_and_partial_words() {
        let mut s = SeqSet::new();
        for x in [70u64, 3, 0, 64, 5000, 3] {
            s.insert(x);
        }
        assert_eq!(s.duplicates(), 1);
        assert_eq!(s.missing_below(4), 2); // 1 and 2
        assert_eq!(s.missing_below(71), 71 - 4);
        assert_eq!(s.missing_below(0), 0);
        let mut acked = SeqSet::new();
        for x in 0..10 {
            acked.insert(x);
        }
        assert_eq!(s.missing_from(&acked), 8);
        let mut u = SeqSet::new();
        u.insert(3);
        u.union_with(&s);
        assert_eq!(u.distinct(), 5);
        assert_eq!(u.duplicates(), 2);
    }
}
