//! Shared identifier values (a household's mailbox, a family phone, a card a couple shares),
//! decided from all the records holding a value as a group, not from one pair.
//!
//! The records holding one value are grouped by person: a record joins the group whose every
//! member it is compatible with (the `shared_when` predicate does not tell them apart). A value
//! whose holders form two or more groups is shared: each record then matches with the value of
//! its own group, so a family mailbox no longer links the family's members while each member's
//! own records keep agreeing on it. A record compatible with more than one group (a bare
//! initial `J.` beside a John and a Jane) could be either person: it keeps no value. A value
//! whose holders are all compatible (one person's typos, nicknames, swapped names) is left as
//! it is.

use std::collections::{BTreeMap, HashSet};

/// A value's holders (record keys, in order seen) and the pairs of them that conflict.
type Holders = (Vec<String>, HashSet<(String, String)>);

/// What grouping decided for one shared value.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedValue {
    /// The value.
    pub value: String,
    /// The people (groups) holding it.
    pub people: usize,
    /// Each holder's record key and the value it matches with: `value#group`, or `None` when
    /// it could be several of the people.
    pub holders: Vec<(String, Option<String>)>,
}

/// Groups the holders of each value from the pairs of records holding it, `(value, a, b,
/// differ)`; returns the values held by two or more people, in value order.
pub fn split(pairs: impl IntoIterator<Item = (String, String, String, bool)>) -> Vec<SharedValue> {
    // value -> (holders in record-key order, conflicting pairs)
    let mut values: BTreeMap<String, Holders> = BTreeMap::new();
    for (value, a, b, differ) in pairs {
        let entry = values.entry(value).or_default();
        for k in [&a, &b] {
            if !entry.0.contains(k) {
                entry.0.push(k.clone());
            }
        }
        if differ {
            entry.1.insert((a.clone(), b.clone()));
            entry.1.insert((b, a));
        }
    }
    let mut shared = Vec::new();
    for (value, (mut holders, conflicts)) in values {
        if conflicts.is_empty() {
            continue;
        }
        holders.sort();
        let conflicting = |a: &str, b: &str| conflicts.contains(&(a.to_string(), b.to_string()));
        // The most contested holders found the groups; a record compatible with everyone (an
        // initial, a missing first name) comes last, when the groups it might join are known.
        let mut order: Vec<(usize, &String)> = holders
            .iter()
            .map(|h| (holders.iter().filter(|o| conflicting(h, o)).count(), h))
            .collect();
        order.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.1.cmp(y.1)));
        let mut groups: Vec<Vec<&String>> = Vec::new();
        let mut assigned: Vec<(String, Option<usize>)> = Vec::new();
        for (_, holder) in order {
            let fits: Vec<usize> = (0..groups.len())
                .filter(|&g| groups[g].iter().all(|m| !conflicting(holder, m)))
                .collect();
            match fits.as_slice() {
                [] => {
                    groups.push(vec![holder]);
                    assigned.push((holder.clone(), Some(groups.len() - 1)));
                }
                [g] => {
                    groups[*g].push(holder);
                    assigned.push((holder.clone(), Some(*g)));
                }
                _ => assigned.push((holder.clone(), None)),
            }
        }
        if groups.len() < 2 {
            continue;
        }
        assigned.sort();
        shared.push(SharedValue {
            holders: assigned
                .into_iter()
                .map(|(k, g)| (k, g.map(|g| format!("{value}#{}", g + 1))))
                .collect(),
            people: groups.len(),
            value,
        });
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(value: &str, list: &[(&str, &str, bool)]) -> Vec<(String, String, String, bool)> {
        list.iter()
            .map(|(a, b, d)| (value.to_string(), a.to_string(), b.to_string(), *d))
            .collect()
    }

    #[test]
    fn one_person_variants_keep_the_value() {
        // Three records of one person, all compatible: nothing is split.
        let p = pairs(
            "a@x",
            &[("1", "2", false), ("1", "3", false), ("2", "3", false)],
        );
        assert!(split(p).is_empty());
    }

    #[test]
    fn a_household_is_split_by_person() {
        // John (1, 3) and Mary (2) share a mailbox; John's two records keep agreeing.
        let p = pairs(
            "fam@x",
            &[("1", "2", true), ("1", "3", false), ("2", "3", true)],
        );
        let s = split(p);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].people, 2);
        let of = |k: &str| s[0].holders.iter().find(|h| h.0 == k).unwrap().1.clone();
        assert_eq!(of("1"), of("3"));
        assert_ne!(of("1"), of("2"));
        assert!(of("1").unwrap().starts_with("fam@x#"));
    }

    #[test]
    fn one_odd_pair_does_not_split_a_group_it_belongs_to() {
        // Two people; 4 ("J.") is compatible with both: it keeps no value rather than joining
        // either arbitrarily.
        let p = pairs(
            "v",
            &[
                ("1", "2", true),
                ("1", "4", false),
                ("2", "4", false),
                ("1", "3", false),
                ("2", "3", true),
                ("3", "4", false),
            ],
        );
        let s = split(p);
        assert_eq!(s[0].people, 2);
        let of = |k: &str| s[0].holders.iter().find(|h| h.0 == k).unwrap().1.clone();
        assert_eq!(of("4"), None);
        assert_eq!(of("1"), of("3"));
    }
}
