//! Connected components over accepted links, strongest first, with guards against chaining:
//! a link is refused when it would join two values of an identifier unique per customer, a
//! never-match pair, two records the model found to be different people (a contradicted
//! pair: a household's members each linked to a shared record), or grow a customer past the
//! size cap. Refusing the weakest links first is what splits an oversized or contradictory
//! cluster.

/// Keyed by record number, read per link: a fast non-cryptographic hash.
type RecordMap<V> = rustc_hash::FxHashMap<u32, V>;

/// Why a link was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Two different values of an identifier that is unique per customer.
    UniqueConflict(usize),
    /// A never-match pair would end up in one customer.
    NeverMatch,
    /// Two records whose comparison strongly says "different people" would end up in one
    /// customer.
    Contradicted,
    /// The customer would exceed the size cap.
    SizeCap,
}

impl Refusal {
    /// The reason as reported in tables.
    pub fn describe(&self, unique_columns: &[&str]) -> String {
        match self {
            Refusal::UniqueConflict(i) => {
                format!(
                    "unique_per_customer:{}",
                    unique_columns.get(*i).unwrap_or(&"?")
                )
            }
            Refusal::NeverMatch => "never_match".into(),
            Refusal::Contradicted => "contradicted".into(),
            Refusal::SizeCap => "max_cluster_size".into(),
        }
    }
}

/// A link between two records (row numbers).
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// One record.
    pub a: u32,
    /// The other.
    pub b: u32,
    /// Its origin (index into the caller's list of kinds).
    pub kind: u16,
    /// Strength: links are applied strongest first.
    pub strength: f64,
}

/// The clustering: a component id (its smallest record) per record, how each record first
/// joined, and the refused links.
#[derive(Debug)]
pub struct Clusters {
    /// The smallest record of each record's component.
    pub component: Vec<u32>,
    /// The kind of the first link that joined each record to another (None: alone).
    pub linked_by: Vec<Option<u16>>,
    /// Refused links and why.
    pub refused: Vec<(Link, Refusal)>,
    /// Probabilistic links accepted (set by the caller that scored them).
    pub accepted: usize,
    /// When the components were computed in SQL: the rounds of large-star and small-star.
    pub sql_rounds: Option<usize>,
}

/// Per record (then per root, while clustering): the value id of each identifier unique per
/// customer, in one flat array (`width` per record).
#[derive(Debug, Clone, PartialEq)]
pub struct Uniques {
    width: usize,
    values: Vec<Option<u32>>,
}

impl Uniques {
    /// `n` records holding no value of `width` unique identifiers.
    pub fn new(n: usize, width: usize) -> Uniques {
        Uniques {
            width,
            values: vec![None; n * width],
        }
    }

    /// Record `r` holds value id `v` of unique identifier `i`.
    pub fn set(&mut self, r: usize, i: usize, v: u32) {
        self.values[r * self.width + i] = Some(v);
    }

    fn of(&self, r: u32) -> &[Option<u32>] {
        let at = r as usize * self.width;
        &self.values[at..at + self.width]
    }

    /// Root `big` takes the values of `small` it has none of.
    fn absorb(&mut self, big: u32, small: u32) {
        let (b, s) = (big as usize * self.width, small as usize * self.width);
        for i in 0..self.width {
            if self.values[b + i].is_none() {
                self.values[b + i] = self.values[s + i];
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.values.capacity() * size_of::<Option<u32>>()
    }
}

#[derive(Debug)]
struct Sets {
    parent: Vec<u32>,
    size: Vec<u32>,
    /// Per root: the value of each unique identifier held.
    unique: Uniques,
    /// Per root: records that may never join it, and whether by contradiction (which only
    /// refuses links of the contradictable kind) or by a never-match pair.
    never: RecordMap<Vec<(u32, bool)>>,
}

impl Sets {
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }
}

/// Pairs of records the model compared and found to be different people, and the kind of
/// link they refuse (the probabilistic links: deterministic rules and `always_match` hold).
#[derive(Debug, Clone, Copy)]
pub struct Contradicted<'a> {
    /// The pairs.
    pub pairs: &'a [(u32, u32)],
    /// The kind of link they refuse.
    pub refuses: u16,
}

impl Contradicted<'_> {
    /// No contradicted pairs.
    pub const NONE: Contradicted<'static> = Contradicted {
        pairs: &[],
        refuses: u16::MAX,
    };
}

/// The order links are applied in: descending strength, then kind and records (a total
/// order, so that the clusters do not depend on the order the links came in).
pub fn link_order(x: &Link, y: &Link) -> std::cmp::Ordering {
    y.strength
        .total_cmp(&x.strength)
        .then(x.kind.cmp(&y.kind))
        .then(x.a.cmp(&y.a))
        .then(x.b.cmp(&y.b))
}

/// Clusters `n` records. `unique` holds each record's value id per unique identifier;
/// `never` lists never-match pairs; links are applied in [`link_order`].
pub fn cluster(
    n: usize,
    mut links: Vec<Link>,
    unique: Uniques,
    never: &[(u32, u32)],
    contradicted: Contradicted,
    max_size: usize,
) -> Clusters {
    links.sort_by(link_order);
    let mut clusterer = Clusterer::new(n, unique, never, contradicted, max_size);
    for link in links {
        clusterer.apply(link);
    }
    clusterer.finish()
}

/// The guarded union-find, fed links one at a time in [`link_order`] (or in that order within
/// each connected component of the links: components never meet, so the result is the same).
#[derive(Debug)]
pub struct Clusterer {
    sets: Sets,
    refuses: u16,
    max_size: usize,
    linked_by: Vec<Option<u16>>,
    refused: Vec<(Link, Refusal)>,
}

impl Clusterer {
    /// `n` records, each alone; see [`cluster`] for the guards.
    pub fn new(
        n: usize,
        unique: Uniques,
        never: &[(u32, u32)],
        contradicted: Contradicted,
        max_size: usize,
    ) -> Clusterer {
        let mut sets = Sets {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
            unique,
            never: RecordMap::default(),
        };
        let tagged = never
            .iter()
            .map(|&p| (p, false))
            .chain(contradicted.pairs.iter().map(|&p| (p, true)));
        for ((a, b), by_contradiction) in tagged {
            sets.never.entry(a).or_default().push((b, by_contradiction));
            sets.never.entry(b).or_default().push((a, by_contradiction));
        }
        Clusterer {
            sets,
            refuses: contradicted.refuses,
            max_size,
            linked_by: vec![None; n],
            refused: Vec::new(),
        }
    }

    /// Applies the next link: joins its records' clusters unless a guard refuses it.
    pub fn apply(&mut self, link: Link) {
        let sets = &mut self.sets;
        let (ra, rb) = (sets.find(link.a), sets.find(link.b));
        if ra == rb {
            return;
        }
        let contradictable = link.kind == self.refuses;
        if let Some(reason) = conflict(sets, ra, rb, self.max_size, contradictable) {
            self.refused.push((link, reason));
            return;
        }
        // Union by size; the larger root absorbs the smaller.
        let (big, small) = if sets.size[ra as usize] >= sets.size[rb as usize] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        sets.parent[small as usize] = big;
        sets.size[big as usize] += sets.size[small as usize];
        sets.unique.absorb(big, small);
        if let Some(list) = sets.never.remove(&small) {
            sets.never.entry(big).or_default().extend(list);
        }
        for r in [link.a, link.b] {
            self.linked_by[r as usize].get_or_insert(link.kind);
        }
    }

    /// The clusters, each named by its smallest record.
    pub fn finish(mut self) -> Clusters {
        let n = self.linked_by.len();
        // Components named by their smallest record (roots are records: a slot per record).
        let mut smallest = vec![u32::MAX; n];
        let roots: Vec<u32> = (0..n as u32).map(|r| self.sets.find(r)).collect();
        for (r, &root) in roots.iter().enumerate() {
            let s = &mut smallest[root as usize];
            *s = (*s).min(r as u32);
        }
        Clusters {
            component: roots.iter().map(|&root| smallest[root as usize]).collect(),
            linked_by: self.linked_by,
            refused: self.refused,
            accepted: 0,
            sql_rounds: None,
        }
    }
}

/// Per component of the links (`component[r]`: the smallest record of `r`'s component),
/// whether a guard could refuse one of its links: it is larger than `max_size`, holds two
/// values of an identifier unique per customer, or a never-match or contradicted pair. The
/// other components are customers as they are, whatever the order of their links.
pub fn guarded_components(
    component: &[u32],
    unique: &Uniques,
    never: &[(u32, u32)],
    contradicted: &[(u32, u32)],
    max_size: usize,
) -> Vec<bool> {
    let n = component.len();
    let mut risky = vec![false; n];
    let mut size = vec![0u32; n];
    for &c in component {
        size[c as usize] += 1;
    }
    for (c, &s) in size.iter().enumerate() {
        risky[c] = s as usize > max_size;
    }
    for &(a, b) in never.iter().chain(contradicted) {
        let (ca, cb) = (component[a as usize], component[b as usize]);
        if ca == cb {
            risky[ca as usize] = true;
        }
    }
    // Each component's first value of each unique identifier; another value makes it risky.
    let mut seen = Uniques::new(n, unique.width);
    for (r, &c) in component.iter().enumerate() {
        if size[c as usize] < 2 || risky[c as usize] {
            continue;
        }
        for (i, v) in unique.of(r as u32).iter().enumerate() {
            let Some(v) = *v else { continue };
            match seen.of(c)[i] {
                None => seen.set(c as usize, i, v),
                Some(w) if w != v => risky[c as usize] = true,
                Some(_) => {}
            }
        }
    }
    risky
}

fn conflict(
    sets: &mut Sets,
    ra: u32,
    rb: u32,
    max_size: usize,
    contradictable: bool,
) -> Option<Refusal> {
    if (sets.size[ra as usize] + sets.size[rb as usize]) as usize > max_size {
        return Some(Refusal::SizeCap);
    }
    let (ua, ub) = (sets.unique.of(ra), sets.unique.of(rb));
    for (i, (x, y)) in ua.iter().zip(ub).enumerate() {
        if let (Some(x), Some(y)) = (x, y)
            && x != y
        {
            return Some(Refusal::UniqueConflict(i));
        }
    }
    // Never-match: check the shorter list against the other root.
    let la = sets.never.get(&ra).map_or(0, Vec::len);
    let lb = sets.never.get(&rb).map_or(0, Vec::len);
    if la.min(lb) == 0 {
        return None;
    }
    let (from, other) = if la <= lb { (ra, rb) } else { (rb, ra) };
    // Taken out while `find` compresses paths, then put back.
    let partners = sets.never.remove(&from).unwrap_or_default();
    let found = partners.iter().find_map(|&(p, by_contradiction)| {
        ((contradictable || !by_contradiction) && sets.find(p) == other).then_some(
            if by_contradiction {
                Refusal::Contradicted
            } else {
                Refusal::NeverMatch
            },
        )
    });
    sets.never.insert(from, partners);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(a: u32, b: u32, strength: f64) -> Link {
        Link {
            a,
            b,
            kind: 0,
            strength,
        }
    }

    #[test]
    fn components_and_first_links() {
        let c = cluster(
            5,
            vec![link(0, 1, 1.0), link(3, 4, 0.9)],
            Uniques::new(5, 0),
            &[],
            Contradicted::NONE,
            10,
        );
        assert_eq!(c.component, vec![0, 0, 2, 3, 3]);
        assert_eq!(c.linked_by[2], None);
        assert!(c.refused.is_empty());
    }

    #[test]
    fn the_weakest_link_of_a_chain_is_cut_at_the_size_cap() {
        // 0-1-2 strongly, 2-3 weakly: with a cap of 3, the weak link goes.
        let links = vec![link(2, 3, 0.5), link(0, 1, 0.99), link(1, 2, 0.98)];
        let c = cluster(4, links, Uniques::new(4, 0), &[], Contradicted::NONE, 3);
        assert_eq!(c.component, vec![0, 0, 0, 3]);
        assert_eq!(c.refused.len(), 1);
        assert_eq!(c.refused[0].1, Refusal::SizeCap);
        assert_eq!((c.refused[0].0.a, c.refused[0].0.b), (2, 3));
    }

    #[test]
    fn unique_identifiers_and_never_match_pairs_hold() {
        // Records 0 and 2 hold different web accounts; 1 links to both.
        let mut unique = Uniques::new(4, 1);
        unique.set(0, 0, 7);
        unique.set(2, 0, 8);
        let links = vec![
            link(0, 1, 0.99),
            link(1, 2, 0.95),
            link(2, 3, 0.9),
            link(0, 3, 0.8),
        ];
        let c = cluster(4, links, unique, &[], Contradicted::NONE, 10);
        assert_eq!(c.component, vec![0, 0, 2, 2]);
        assert!(
            c.refused
                .iter()
                .all(|(_, r)| *r == Refusal::UniqueConflict(0))
        );
        assert_eq!(c.refused.len(), 2);

        let c = cluster(
            3,
            vec![link(0, 1, 1.0), link(1, 2, 1.0)],
            Uniques::new(3, 0),
            &[(0, 2)],
            Contradicted::NONE,
            10,
        );
        assert_eq!(c.component, vec![0, 0, 2]);
        assert_eq!(c.refused[0].1, Refusal::NeverMatch);
    }

    #[test]
    fn a_contradicted_pair_cuts_the_weakest_probabilistic_link_only() {
        // A household: 0 (David) and 2 (Dale) each link to 1, a record holding their shared
        // phone; the model compared 0 and 2 and found two people.
        let weak = |a, b, strength| Link {
            a,
            b,
            kind: 1,
            strength,
        };
        let contradicted = Contradicted {
            pairs: &[(0, 2)],
            refuses: 1,
        };
        let c = cluster(
            3,
            vec![weak(0, 1, 0.99), weak(1, 2, 0.95)],
            Uniques::new(3, 0),
            &[],
            contradicted,
            10,
        );
        assert_eq!(c.component, vec![0, 0, 2]);
        assert_eq!(c.refused.len(), 1);
        assert_eq!(c.refused[0].1, Refusal::Contradicted);
        assert_eq!((c.refused[0].0.a, c.refused[0].0.b), (1, 2));
        // Deterministic links (another kind) hold against the contradiction.
        let c = cluster(
            3,
            vec![link(0, 1, 3.0), link(1, 2, 3.0)],
            Uniques::new(3, 0),
            &[],
            contradicted,
            10,
        );
        assert_eq!(c.component, vec![0, 0, 0]);
    }
}
