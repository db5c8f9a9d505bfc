//! A bounded counter table for the long tails (paths, clients, referrers, agents).
//!
//! Counts are exact until the table holds `cap` keys. Past that it keeps the heaviest half
//! and drops the rest (a Misra–Gries style heavy-hitter sketch): memory stays bounded, the
//! heavy hitters stay, and their counts become lower bounds, off by at most `dropped_max`
//! (which the report shows by flagging the panel as an estimate).

use hashbrown::HashMap;

/// What a table counts per key.
pub trait Tally: Default {
    fn hits(&self) -> u64;
    fn merge(&mut self, other: Self);
}

#[derive(Debug)]
pub struct TopK<V> {
    map: HashMap<Box<str>, V>,
    cap: usize,
    /// The largest count ever dropped: the most any kept count can be short by.
    pub dropped_max: u64,
}

impl<V: Tally> TopK<V> {
    pub fn new(cap: usize) -> Self {
        TopK {
            map: HashMap::new(),
            cap: cap.max(2),
            dropped_max: 0,
        }
    }

    /// The tally of `key`, created empty when new.
    pub fn entry(&mut self, key: &str) -> &mut V {
        if self.map.len() >= self.cap && !self.map.contains_key(key) {
            self.prune();
        }
        self.map.entry_ref(key).or_default()
    }

    /// Whether any count was dropped (the table's numbers are then estimates).
    pub fn is_estimate(&self) -> bool {
        self.dropped_max > 0
    }

    pub fn len(&self) -> usize {
        self.map.values().filter(|v| v.hits() > 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn merge(&mut self, other: TopK<V>) {
        self.dropped_max = self.dropped_max.max(other.dropped_max);
        for (k, v) in other.map {
            match self.map.get_mut(&k) {
                Some(mine) => mine.merge(v),
                None => {
                    self.map.insert(k, v);
                }
            }
        }
        if self.map.len() > self.cap {
            self.prune();
        }
    }

    /// Keeps the heaviest half of the keys.
    fn prune(&mut self) {
        let keep = self.cap / 2;
        let mut hits: Vec<u64> = self.map.values().map(Tally::hits).collect();
        let (_, nth, _) = hits.select_nth_unstable_by(keep, |a, b| b.cmp(a));
        let threshold = *nth;
        let mut dropped = 0;
        self.map.retain(|_, v| {
            let keep = v.hits() > threshold;
            if !keep {
                dropped = dropped.max(v.hits());
            }
            keep
        });
        self.dropped_max = self.dropped_max.max(dropped);
    }

    /// The `n` heaviest keys, ties broken by key so the output is stable.
    pub fn top(&self, n: usize) -> Vec<(&str, &V)> {
        let mut all: Vec<(&str, &V)> = self
            .map
            .iter()
            .filter(|(_, v)| v.hits() > 0)
            .map(|(k, v)| (&**k, v))
            .collect();
        all.sort_unstable_by(|a, b| b.1.hits().cmp(&a.1.hits()).then(a.0.cmp(b.0)));
        all.truncate(n);
        all
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.map
            .iter()
            .filter(|(_, v)| v.hits() > 0)
            .map(|(k, v)| (&**k, v))
    }
}

/// Hits and bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Count {
    pub hits: u64,
    pub bytes: u64,
}

impl Tally for Count {
    fn hits(&self) -> u64 {
        self.hits
    }
    fn merge(&mut self, other: Self) {
        self.hits = self.hits.saturating_add(other.hits);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_below_cap_and_keeps_heavy_hitters_above() {
        let mut t: TopK<Count> = TopK::new(100);
        for i in 0..50 {
            t.entry(&format!("k{i}")).hits += 1;
        }
        assert!(!t.is_estimate());
        assert_eq!(t.len(), 50);
        for round in 0..20 {
            t.entry("heavy").hits += 10;
            for i in 0..100 {
                t.entry(&format!("tail{round}-{i}")).hits += 1;
            }
        }
        assert!(t.is_estimate());
        assert!(t.map.len() <= 100);
        let top = t.top(1);
        assert_eq!((top[0].0, top[0].1.hits), ("heavy", 200));
    }
}
