//! Stable customer ids. Each previous id goes to the new cluster holding most of its records
//! (a split keeps the id on the larger part; ties go to the cluster with the smaller record
//! key); a cluster that receives several ids keeps the oldest (a merge), the others are
//! recorded as merged into it; a cluster that receives none gets a new id, derived from its
//! smallest record key, never one used before.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use sha2::{Digest, Sha256};

/// A previous assignment of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    /// The customer id.
    pub customer_id: String,
    /// When the id was minted (microseconds since the epoch).
    pub created_at: i64,
}

/// The previous run's record → customer map, each customer held once: a million records of
/// half a million customers keep half a million id strings, not a million, and `assign` finds
/// a record's customer by number instead of hashing its id again.
#[derive(Debug, Default)]
pub struct PreviousIds {
    /// Record key → index in `customers`.
    records: HashMap<String, u32>,
    /// Each previous customer once, in the order met.
    customers: Vec<Previous>,
    /// Customer id → index in `customers`.
    index: HashMap<String, u32>,
}

impl PreviousIds {
    /// Records `record_key` as held by `customer_id` (created at `created_at`, which the first
    /// record of the id sets).
    pub fn insert(&mut self, record_key: &str, customer_id: &str, created_at: i64) {
        let i = match self.index.get(customer_id) {
            Some(&i) => i,
            None => {
                let i = u32::try_from(self.customers.len()).expect("under 2^32 customers");
                self.customers.push(Previous {
                    customer_id: customer_id.to_string(),
                    created_at,
                });
                self.index.insert(customer_id.to_string(), i);
                i
            }
        };
        self.records.insert(record_key.to_string(), i);
    }

    /// The previous customer of `record_key`, with its number.
    fn get(&self, record_key: &str) -> Option<(usize, &Previous)> {
        let &i = self.records.get(record_key)?;
        Some((i as usize, &self.customers[i as usize]))
    }

    /// True when a previous customer holds `id`.
    pub fn holds(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Bytes held (strings with their allocation, hash-table slots).
    pub fn bytes(&self) -> usize {
        let text = |s: &String| s.capacity() + size_of::<String>() + 16;
        let records: usize = self.records.keys().map(|k| text(k) + 8).sum();
        let customers: usize = self
            .customers
            .iter()
            .map(|p| 2 * text(&p.customer_id) + size_of::<Previous>() + 8)
            .sum();
        records + customers
    }
}

/// A change of ids between two runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdEvent {
    /// `created`, `merged`, `split` or `retired`.
    pub event: &'static str,
    /// The id concerned (the surviving id of a merge, the new part of a split).
    pub customer_id: String,
    /// The other id: the id merged in, the id split from; NULL for `created`.
    pub previous_customer_id: Option<String>,
    /// Records involved (of the cluster, or moved).
    pub records: u64,
}

/// The ids of this run's clusters.
#[derive(Debug)]
pub struct Assignment {
    /// Per cluster (in the order given): id and its creation time.
    pub ids: Vec<(String, i64)>,
    /// What changed.
    pub events: Vec<IdEvent>,
}

/// Assigns ids to `clusters` (each a list of record keys, smallest first). `previous` maps
/// record keys to their earlier id; `used` holds other ids issued before (the id history's:
/// never re-issued, as no previous customer's id is).
pub fn assign(
    clusters: &[Vec<&str>],
    previous: &PreviousIds,
    used: &HashSet<String>,
    now: i64,
) -> Assignment {
    // The previous ids the records carry, each once (numbered in the order met): its creation
    // time and the clusters holding its records, with counts. Clusters are walked in order, so
    // each id's holders come sorted by cluster. (A string-keyed ordered map here made the
    // stage take 6 s on a million-record re-run, mostly string comparisons; previous customers
    // come numbered, so no id is hashed here at all.)
    let mut number: Vec<u32> = vec![u32::MAX; previous.customers.len()];
    let mut prior: Vec<Prior> = Vec::new();
    for (c, keys) in clusters.iter().enumerate() {
        for key in keys {
            let Some((k, p)) = previous.get(key) else {
                continue;
            };
            if number[k] == u32::MAX {
                number[k] = prior.len() as u32;
                prior.push(Prior {
                    id: p.customer_id.as_str(),
                    created_at: p.created_at,
                    holders: Vec::new(),
                });
            }
            let i = number[k] as usize;
            let holders = &mut prior[i].holders;
            match holders.last_mut() {
                Some((last, n)) if *last == c => *n += 1,
                _ => holders.push((c, 1)),
            }
        }
    }
    // Each previous id goes to its largest holder (ties: the cluster with the smaller key).
    let mut offered: Vec<Vec<usize>> = vec![Vec::new(); clusters.len()];
    for (i, p) in prior.iter().enumerate() {
        let &(winner, _) = p
            .holders
            .iter()
            .max_by(|(ca, na), (cb, nb)| na.cmp(nb).then(clusters[*cb][0].cmp(clusters[*ca][0])))
            .expect("a previous id met in the clusters has a holder");
        offered[winner].push(i);
    }
    let mut events = Vec::new();
    let mut minted: HashSet<String> = HashSet::default();
    let mut ids = Vec::with_capacity(clusters.len());
    for (c, keys) in clusters.iter().enumerate() {
        let candidates = &mut offered[c];
        let (id, at) = if candidates.is_empty() {
            // Never an id issued before, nor one this run keeps or minted already.
            let id = mint(keys[0], |id| {
                previous.holds(id) || used.contains(id) || minted.contains(id)
            });
            minted.insert(id.clone());
            events.push(IdEvent {
                event: "created",
                customer_id: id.clone(),
                previous_customer_id: None,
                records: keys.len() as u64,
            });
            (id, now)
        } else {
            // The oldest id survives (ties: the smaller id).
            candidates.sort_by(|&a, &b| {
                (prior[a].created_at, prior[a].id).cmp(&(prior[b].created_at, prior[b].id))
            });
            let survivor = &prior[candidates[0]];
            for &absorbed in &candidates[1..] {
                events.push(IdEvent {
                    event: "merged",
                    customer_id: survivor.id.to_string(),
                    previous_customer_id: Some(prior[absorbed].id.to_string()),
                    records: prior[absorbed].records_in(c),
                });
            }
            (survivor.id.to_string(), survivor.created_at)
        };
        ids.push((id, at));
    }
    // Splits: clusters holding records of an id they did not receive (unless the id merged
    // into that cluster's). One set of the merges, not a scan of the events per pair: after
    // a settings change a million-record run can hold hundreds of thousands of both.
    let merged: HashSet<(&str, &str)> = events
        .iter()
        .filter(|e| e.event == "merged")
        .filter_map(|e| Some((e.customer_id.as_str(), e.previous_customer_id.as_deref()?)))
        .collect();
    let mut splits = Vec::new();
    for p in &prior {
        for &(c, n) in &p.holders {
            if ids[c].0 != p.id && !merged.contains(&(ids[c].0.as_str(), p.id)) {
                splits.push(IdEvent {
                    event: "split",
                    customer_id: ids[c].0.clone(),
                    previous_customer_id: Some(p.id.to_string()),
                    records: n,
                });
            }
        }
    }
    drop(merged);
    events.extend(splits);
    // Ids whose records are all gone.
    let mut retired: Vec<&str> = previous
        .customers
        .iter()
        .zip(&number)
        .filter(|(_, n)| **n == u32::MAX)
        .map(|(p, _)| p.customer_id.as_str())
        .collect();
    retired.sort_unstable();
    for id in retired {
        events.push(IdEvent {
            event: "retired",
            customer_id: id.to_string(),
            previous_customer_id: None,
            records: 0,
        });
    }
    events.sort();
    Assignment { ids, events }
}

/// A previous id met in this run's clusters.
struct Prior<'a> {
    id: &'a str,
    created_at: i64,
    /// (cluster, records of this id in it), by cluster.
    holders: Vec<(usize, u64)>,
}

impl Prior<'_> {
    fn records_in(&self, cluster: usize) -> u64 {
        self.holders
            .binary_search_by_key(&cluster, |&(c, _)| c)
            .map_or(0, |i| self.holders[i].1)
    }
}

/// A new id from the cluster's smallest record key: the same cluster gets the same id in a
/// fresh warehouse; an id issued before is never issued again.
fn mint(key: &str, taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0u32.. {
        let mut hasher = Sha256::new();
        hasher.update(key.as_bytes());
        if attempt > 0 {
            hasher.update(attempt.to_le_bytes());
        }
        let digest = hasher.finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let id = format!("cus_{hex}");
        if !taken(&id) {
            return id;
        }
    }
    unreachable!("an unused id exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prev(pairs: &[(&str, &str, i64)]) -> PreviousIds {
        let mut previous = PreviousIds::default();
        for (k, id, at) in pairs {
            previous.insert(k, id, *at);
        }
        previous
    }

    #[test]
    fn ids_stay_put_when_nothing_changes() {
        let clusters = vec![vec!["a", "b"], vec!["c"]];
        let first = assign(&clusters, &PreviousIds::default(), &HashSet::default(), 1);
        assert_eq!(
            first.events.iter().filter(|e| e.event == "created").count(),
            2
        );
        let previous = prev(&[
            ("a", &first.ids[0].0, 1),
            ("b", &first.ids[0].0, 1),
            ("c", &first.ids[1].0, 1),
        ]);
        let second = assign(&clusters, &previous, &HashSet::default(), 2);
        assert_eq!(second.ids, first.ids);
        assert!(second.events.is_empty());
    }

    #[test]
    fn merges_keep_the_oldest_and_splits_keep_the_larger_part() {
        let previous = prev(&[("a", "old", 1), ("b", "old", 1), ("c", "new", 5)]);
        let merged = assign(&[vec!["a", "b", "c"]], &previous, &HashSet::default(), 9);
        assert_eq!(merged.ids[0], ("old".to_string(), 1));
        assert_eq!(merged.events.len(), 1);
        assert_eq!(merged.events[0].event, "merged");
        assert_eq!(
            merged.events[0].previous_customer_id.as_deref(),
            Some("new")
        );

        let previous = prev(&[("a", "x", 1), ("b", "x", 1), ("c", "x", 1)]);
        let split = assign(
            &[vec!["a", "b"], vec!["c"]],
            &previous,
            &HashSet::default(),
            9,
        );
        assert_eq!(split.ids[0].0, "x");
        assert_ne!(split.ids[1].0, "x");
        let kinds: Vec<&str> = split.events.iter().map(|e| e.event).collect();
        assert_eq!(kinds, vec!["created", "split"]);
    }

    #[test]
    fn an_id_merged_and_split_at_once_is_recorded_once_per_cluster() {
        // "x" splits: most of it stays in cluster 0, "c" joins "y" (older), where "x" is not
        // merged in: a split there. Then many customers split at once (the per-pair scan of
        // the events this replaced took minutes at this size).
        let previous = prev(&[("a", "x", 5), ("b", "x", 5), ("c", "x", 5), ("d", "y", 1)]);
        let out = assign(
            &[vec!["a", "b"], vec!["c", "d"]],
            &previous,
            &HashSet::default(),
            9,
        );
        assert_eq!((out.ids[0].0.as_str(), out.ids[1].0.as_str()), ("x", "y"));
        let kinds: Vec<(&str, &str)> = out
            .events
            .iter()
            .map(|e| (e.event, e.previous_customer_id.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(kinds, vec![("split", "x")]);

        let n = 60_000;
        let keys: Vec<String> = (0..2 * n).map(|i| format!("k{i:07}")).collect();
        let ids: Vec<String> = (0..n).map(|i| format!("cus_{i}")).collect();
        let mut previous = PreviousIds::default();
        for (i, k) in keys.iter().enumerate() {
            previous.insert(k, &ids[i / 2], 1);
        }
        let clusters: Vec<Vec<&str>> = keys.iter().map(|k| vec![k.as_str()]).collect();
        let out = assign(&clusters, &previous, &HashSet::default(), 9);
        let splits = out.events.iter().filter(|e| e.event == "split").count();
        assert_eq!(splits, n);
    }

    #[test]
    fn a_new_id_is_never_one_a_kept_customer_holds() {
        // "b"'s cluster comes first and would mint the id "a" keeps, were only the ids
        // already handed out this run checked.
        let taken = assign(
            &[vec!["b"]],
            &PreviousIds::default(),
            &HashSet::default(),
            1,
        )
        .ids[0]
            .0
            .clone();
        let next = assign(
            &[vec!["b"], vec!["a"]],
            &prev(&[("a", &taken, 1)]),
            &HashSet::default(),
            2,
        );
        assert_eq!(next.ids[1].0, taken, "a keeps its id");
        assert_ne!(next.ids[0].0, taken, "b got a's id too");
    }

    #[test]
    fn retired_ids_are_never_reissued() {
        let first = assign(
            &[vec!["a"]],
            &PreviousIds::default(),
            &HashSet::default(),
            1,
        );
        let used: HashSet<String> = [first.ids[0].0.clone()].into_iter().collect();
        let again = assign(&[vec!["a"]], &PreviousIds::default(), &used, 2);
        assert_ne!(again.ids[0].0, first.ids[0].0);
        let gone = assign(
            &[vec!["b"]],
            &prev(&[("a", "x", 1)]),
            &HashSet::default(),
            2,
        );
        assert!(
            gone.events
                .iter()
                .any(|e| e.event == "retired" && e.customer_id == "x")
        );
    }
}
