//! Person names: folding (case, accents, punctuation, honorifics, suffixes) and nickname
//! equivalence from a table shipped with the crate (`udfs/data/nicknames.csv`).

mod name_normalize;
mod name_part;
mod names_conflict;
mod names_equivalent;
mod names_similarity;
mod nickname_root;

pub use name_normalize::NameNormalize;
pub use name_part::NamePart;
pub use names_conflict::NamesConflict;
pub use names_equivalent::NamesEquivalent;
pub use names_similarity::NamesSimilarity;
pub use nickname_root::NicknameRoot;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

const HONORIFICS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lady", "lord", "rev", "fr",
    "mme", "mlle", "m", "herr", "frau", "sr", "sra", "srta", "don", "dona",
];
const SUFFIXES: &[&str] = &["jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "dds"];

/// Particles that belong to the family name that follows them (`van der Berg`, `de la Cruz`).
const PARTICLES: &[&str] = &[
    "van", "von", "der", "den", "de", "la", "le", "del", "della", "di", "da", "das", "dos", "du",
    "st", "ter", "ten", "bin", "ibn", "al", "el", "mac", "af", "zu",
];

/// Lower-case ASCII words of a name: accents transliterated, punctuation and hyphens split,
/// honorifics before the name and generational/degree suffixes after it removed.
pub fn normalize(text: &str) -> Option<String> {
    join(&Words::of(text).name)
}

/// A name cut into its parts, each lower-case ASCII.
#[derive(Debug, Default, PartialEq, Eq)]
struct Words {
    titles: Vec<String>,
    name: Vec<String>,
    suffixes: Vec<String>,
}

impl Words {
    fn of(text: &str) -> Self {
        let mut name = fold(text);
        let mut titles = Vec::new();
        while name.len() > 1 && HONORIFICS.contains(&name[0].as_str()) {
            titles.push(name.remove(0));
        }
        let mut suffixes = Vec::new();
        while name.len() > 1 && SUFFIXES.contains(&name.last().expect("non-empty").as_str()) {
            suffixes.insert(0, name.pop().expect("non-empty"));
        }
        Words {
            titles,
            name,
            suffixes,
        }
    }
}

/// One part of a full name: `first`, `middle`, `last`, `title` or `suffix`. Reads `First Middle
/// Last` and `Last, First Middle`; particles stay with the family name (`Ludwig van Beethoven` →
/// last `van beethoven`); a single word is a first name. `None` when the part is absent.
pub fn part(full_name: &str, which: &str) -> Option<String> {
    let (mut words, comma_last) = match full_name.split_once(',') {
        // `Last, First` — unless what follows the comma is only a suffix (`Smith, Jr.`).
        Some((last, rest)) if !fold(rest).iter().all(|w| SUFFIXES.contains(&w.as_str())) => {
            let mut words = Words::of(rest);
            let last = Words::of(last);
            words.titles.extend(last.titles);
            words.suffixes.extend(last.suffixes);
            (words, Some(last.name))
        }
        _ => (Words::of(full_name), None),
    };
    let last = match comma_last {
        Some(last) => last,
        None if words.name.len() < 2 => Vec::new(),
        None => {
            let mut start = words.name.len() - 1;
            while start > 1 && PARTICLES.contains(&words.name[start - 1].as_str()) {
                start -= 1;
            }
            words.name.split_off(start)
        }
    };
    match which.trim().to_ascii_lowercase().as_str() {
        "first" | "given" => join(&words.name[..words.name.len().min(1)]),
        "middle" => join(words.name.get(1..).unwrap_or_default()),
        "last" | "family" => join(&last),
        "title" => join(&words.titles),
        "suffix" => join(&words.suffixes),
        _ => None,
    }
}

/// The part names `part` knows.
pub const PARTS: &[&str] = &[
    "first", "given", "middle", "last", "family", "title", "suffix",
];

/// Lower-case ASCII words; a hyphen inside a word keeps it whole (`smith-jones`, one family
/// name) until the words are joined, where it becomes a space.
fn fold(text: &str) -> Vec<String> {
    let letters: String = deunicode::deunicode(text)
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '\'' || c == '-' {
                c
            } else {
                ' '
            }
        })
        .collect();
    letters
        .split_whitespace()
        .map(|w| w.trim_matches(['\'', '-']))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn join(words: &[String]) -> Option<String> {
    (!words.is_empty()).then(|| words.join(" ").replace('-', " "))
}

/// Formal names by name (a formal name maps to itself, a nickname to every formal name it
/// shortens).
static FORMALS: LazyLock<HashMap<String, BTreeSet<String>>> = LazyLock::new(|| {
    let mut map: HashMap<String, BTreeSet<String>> = HashMap::new();
    for line in include_str!("../../data/nicknames.csv").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut names = line.split(',').map(|n| n.trim().replace('-', " "));
        let Some(formal) = names.next() else { continue };
        map.entry(formal.clone())
            .or_default()
            .insert(formal.clone());
        for nick in names {
            map.entry(nick).or_default().insert(formal.clone());
        }
    }
    map
});

/// Every name in a formal name's family (the formal name and its nicknames), by formal name.
static FAMILIES: LazyLock<HashMap<String, BTreeSet<String>>> = LazyLock::new(|| {
    let mut map: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (name, formals) in FORMALS.iter() {
        for formal in formals {
            map.entry(formal.clone()).or_default().insert(name.clone());
        }
    }
    map
});

/// The formal names a first name may stand for (itself when unknown).
pub fn formals(first_name: &str) -> Option<BTreeSet<String>> {
    let name = normalize(first_name)?;
    Some(
        FORMALS
            .get(&name)
            .cloned()
            .unwrap_or_else(|| BTreeSet::from([name])),
    )
}

/// One formal name for a first name: the only one, or the alphabetically first when the
/// nickname is shared (`pat` → `patricia`, not `patrick`).
pub fn root(first_name: &str) -> Option<String> {
    formals(first_name)?.into_iter().next()
}

/// True when two first names may be the same person's: equal once normalised, or sharing a
/// formal name (`Bill` ≈ `William` ≈ `Will`, `Pat` ≈ `Patrick` and `Pat` ≈ `Patricia`).
pub fn equivalent(a: &str, b: &str) -> Option<bool> {
    Some(Formal::of(a)?.shares(&Formal::of(b)?))
}

/// A first name's formal names without copying the nickname table's set.
#[derive(Debug)]
enum Formal {
    /// In the table: its formal names.
    Table(&'static BTreeSet<String>),
    /// Not in the table: the normalised name stands for itself.
    Own(String),
}

impl Formal {
    fn of(first_name: &str) -> Option<Formal> {
        let name = normalize(first_name)?;
        Some(match FORMALS.get(&name) {
            Some(set) => Formal::Table(set),
            None => Formal::Own(name),
        })
    }

    fn shares(&self, other: &Formal) -> bool {
        match (self, other) {
            (Formal::Table(a), Formal::Table(b)) => !a.is_disjoint(b),
            (Formal::Table(a), Formal::Own(b)) | (Formal::Own(b), Formal::Table(a)) => {
                a.contains(b)
            }
            (Formal::Own(a), Formal::Own(b)) => a == b,
        }
    }
}

/// [`equivalent`] over many pairs, each distinct name normalised once: first names repeat (a
/// batch of a million pairs holds a few hundred distinct ones), and normalising (transliterate,
/// fold, split) cost more than the comparison.
#[derive(Debug, Default)]
pub(crate) struct EquivalentMemo {
    formals: HashMap<String, Option<Formal>>,
}

impl EquivalentMemo {
    /// Past this many distinct names the memo is cleared (unbounded input, bounded memory).
    const MAX_NAMES: usize = 1 << 16;

    fn remember(&mut self, name: &str) {
        if !self.formals.contains_key(name) {
            self.formals.insert(name.to_string(), Formal::of(name));
        }
    }

    pub(crate) fn equivalent(&mut self, a: &str, b: &str) -> Option<bool> {
        if self.formals.len() >= Self::MAX_NAMES {
            self.formals.clear();
        }
        self.remember(a);
        self.remember(b);
        let fa = self.formals.get(a)?.as_ref()?;
        let fb = self.formals.get(b)?.as_ref()?;
        Some(fa.shares(fb))
    }
}

/// How alike two first names are, nicknames understood: the best Jaro–Winkler similarity
/// between any name of one's nickname family and any of the other's, 1.0 when they are
/// equivalent. Tolerates a typo on top of a nickname (`Bqtty` ≈ `Betty` ≈ `Elizabeth`),
/// which neither Jaro–Winkler nor the nickname table alone does.
pub fn similarity(a: &str, b: &str) -> Option<f64> {
    let (fa, fb) = (formals(a)?, formals(b)?);
    if !fa.is_disjoint(&fb) {
        return Some(1.0);
    }
    let (na, nb) = (family(a, &fa), family(b, &fb));
    let mut best = 0.0f64;
    for x in &na {
        for y in &nb {
            best = best.max(crate::similarity::fast::jaro_winkler(x, y));
        }
    }
    Some(best)
}

/// A first name with every name of its nickname families (`bill` → william, will, billy...).
fn family(name: &str, formals: &BTreeSet<String>) -> BTreeSet<String> {
    let mut all = BTreeSet::from([normalize(name).unwrap_or_default()]);
    for f in formals {
        all.insert(f.clone());
        if let Some(names) = FAMILIES.get(f) {
            all.extend(names.iter().cloned());
        }
    }
    all
}

/// Established given names (`data/given_names.txt`, from census frequency lists) and every name
/// of the nickname table.
static GIVEN_NAMES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/given_names.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::trim)
        .chain(FORMALS.keys().map(String::as_str))
        .collect()
});

/// True for a normalised first name that is an established given name (not a typo of one).
fn is_given_name(name: &str) -> bool {
    GIVEN_NAMES.contains(name)
}

/// Two names share a Double Metaphone code (primary or alternate).
fn sound_alike(a: &str, b: &str) -> bool {
    let codes = |n: &str| {
        [
            crate::phonetic::double_metaphone(n),
            crate::phonetic::double_metaphone_alt(n),
        ]
    };
    let (ca, cb) = (codes(a), codes(b));
    ca.iter()
        .flatten()
        .any(|c| cb.iter().flatten().any(|d| c == d))
}

/// First names at least this alike (Jaro–Winkler, as written) may be one person's.
const SAME_PERSON_SIMILARITY: f64 = 0.85;

/// True when two records' names clearly belong to different people; `None` when either first
/// name is empty. Compatible are: alike or nickname-equivalent first names, first names one
/// typo apart (`amy` / `ami`, which Jaro–Winkler scores below 0.85 on short names) or two
/// when the longer has five letters or more (two records, a typo each), an initial
/// and a name it starts (`j` / `john`), first words that are compatible (`mary ann` / `mary`),
/// and first and last names swapped between the two records.
pub fn conflict(
    first_a: &str,
    last_a: Option<&str>,
    first_b: &str,
    last_b: Option<&str>,
) -> Option<bool> {
    let (fa, fb) = (normalize(first_a)?, normalize(first_b)?);
    // Alike: the same, nickname-equivalent, an initial of the other, a typo or two away, or
    // a typo away from a name of the other's nickname family (`bqtty` / `elizabeth`, through
    // betty). Not Jaro–Winkler against the family: `jonas` is 0.9 from `jon`, John's
    // nickname, and a household's Jonas and John would share a mailbox unseen.
    let alike = |x: &str, y: &str| -> bool {
        if x == y || equivalent(x, y) == Some(true) {
            return true;
        }
        let (cx, cy) = (x.chars().count(), y.chars().count());
        // An initial stands for any name it starts.
        if (cx == 1 || cy == 1) && x.chars().next() == y.chars().next() {
            return true;
        }
        // Two established names are two people's (a household's Dale and David, Mark and
        // Mary), unless they are spellings of one sound (Catherine / Katherine) or one is the
        // other with a letter dropped, the commonest typo (`mary` → `may`, `clara` → `cara`).
        // The typo rules below are for what is not a name.
        if is_given_name(x) && is_given_name(y) {
            let dropped =
                cx.abs_diff(cy) == 1 && crate::similarity::fast::damerau_levenshtein(x, y) == 1;
            return dropped
                || sound_alike(x, y)
                    && crate::similarity::fast::jaro_winkler(x, y) >= SAME_PERSON_SIMILARITY;
        }
        // Typos: one edit on any name of two letters or more; two on names of five or more
        // (each of two records may carry its own typo: `ammy` / `tavmy` for Tammy).
        let edits = crate::similarity::fast::damerau_levenshtein(x, y);
        if (cx.min(cy) >= 2 && edits <= 1) || (cx.max(cy) >= 5 && edits <= 2) {
            return true;
        }
        if crate::similarity::fast::jaro_winkler(x, y) >= SAME_PERSON_SIMILARITY {
            return true;
        }
        let (Some(fx), Some(fy)) = (formals(x), formals(y)) else {
            return false;
        };
        let (nx, ny) = (family(x, &fx), family(y, &fy));
        nx.iter().any(|a| {
            ny.iter().any(|b| {
                a.chars().count() >= 4 && crate::similarity::fast::damerau_levenshtein(a, b) <= 1
            })
        })
    };
    let first_word = |s: &str| s.split(' ').next().unwrap_or_default().to_string();
    if alike(&fa, &fb) || alike(&first_word(&fa), &first_word(&fb)) {
        return Some(false);
    }
    // Swapped: each record's first name is the other's last name (one side alone is a
    // household's surname typed first: `belcher joseph` is not James Belcher).
    let (Some(la), Some(lb)) = (last_a.and_then(normalize), last_b.and_then(normalize)) else {
        return Some(true);
    };
    if alike(&fa, &lb) && alike(&fb, &la) {
        return Some(false);
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_different_people_not_spelling_variants() {
        let c = |a: &str, la: Option<&str>, b: &str, lb: Option<&str>| conflict(a, la, b, lb);
        // A household: different first names, same surname.
        assert_eq!(
            c("Mary", Some("Smith"), "George", Some("Smith")),
            Some(true)
        );
        assert_eq!(c("Emma", Some("Doe"), "Oliver", Some("Doe")), Some(true));
        assert_eq!(c("Ann", None, "Paul", None), Some(true));
        assert_eq!(c("Emma", None, "Ella", None), Some(true));
        // A surname typed first is not a swap when the first names differ.
        assert_eq!(
            c("James", Some("Belcher"), "Belcher", Some("Joseph")),
            Some(true)
        );
        // Jonas is not John (whose nickname Jon is 0.9 from Jonas by Jaro–Winkler).
        assert_eq!(c("Jonas", Some("Gamez"), "John", Some("Gamez")), Some(true));
        // Two established names a letter apart are two people (Dale is no typo of Dave).
        assert_eq!(
            c("Dale", Some("Perkins"), "David", Some("Perkins")),
            Some(true)
        );
        assert_eq!(c("Mark", Some("Lee"), "Mary", Some("Lee")), Some(true));
        assert_eq!(c("Dale", None, "Dave", None), Some(true));
        assert_eq!(c("Bqtty", None, "Elizabeth", None), Some(false));
        // One person: typos, nicknames, initials, swapped names, case and accents.
        assert_eq!(c("Amy", Some("Lee"), "Ami", Some("Lee")), Some(false));
        assert_eq!(c("Jon", None, "John", None), Some(false));
        assert_eq!(c("Ammy", None, "Tavmy", None), Some(false));
        assert_eq!(c("Jm", None, "Jim", None), Some(false));
        assert_eq!(c("Bill", None, "William", None), Some(false));
        assert_eq!(c("J.", Some("Smith"), "John", Some("Smith")), Some(false));
        assert_eq!(c("Smith", Some("John"), "John", Some("Smith")), Some(false));
        assert_eq!(c("smyth", Some("john"), "John", Some("Smith")), Some(false));
        assert_eq!(c("JOSÉ", None, "jose", None), Some(false));
        assert_eq!(c("Mary Ann", None, "Mary", None), Some(false));
        assert_eq!(c("Catherine", None, "Katherine", None), Some(false));
        // No evidence.
        assert_eq!(c("", None, "John", None), None);
    }

    #[test]
    fn similarity_understands_nicknames_and_typos() {
        assert_eq!(similarity("Bill", "William"), Some(1.0));
        assert_eq!(similarity("Peggy", "Margaret"), Some(1.0));
        // A typo of a nickname: scored against the nickname, not the formal name.
        let typo = similarity("Bqtty", "Elizabeth").unwrap();
        assert!(typo > 0.85 && typo < 1.0, "{typo}");
        assert!(typo > crate::similarity::fast::jaro_winkler("bqtty", "elizabeth"));
        // Household members stay apart.
        assert!(similarity("Mary", "George").unwrap() < 0.85);
        assert!(similarity("Emma", "Oliver").unwrap() < 0.85);
        assert_eq!(similarity("", "Bill"), None);
    }

    #[test]
    fn folding() {
        assert_eq!(
            normalize("  Dr. José  MARÍA-López, Jr. ").unwrap(),
            "jose maria lopez"
        );
        assert_eq!(normalize("Mme Françoise d'Arc").unwrap(), "francoise d'arc");
        assert_eq!(normalize("O'Brien").unwrap(), "o'brien");
        assert_eq!(normalize("Mr"), Some("mr".into()), "a lone word is kept");
        assert_eq!(normalize(" .,- "), None);
        assert_eq!(normalize("王小明").unwrap(), "wang xiao ming");
    }

    #[test]
    fn parts() {
        let p = |name, which| part(name, which);
        assert_eq!(p("Dr. Mary Ann Smith-Jones, PhD", "first").unwrap(), "mary");
        assert_eq!(p("Dr. Mary Ann Smith-Jones, PhD", "middle").unwrap(), "ann");
        assert_eq!(
            p("Dr. Mary Ann Smith-Jones, PhD", "last").unwrap(),
            "smith jones"
        );
        assert_eq!(p("Jean-Luc Picard", "first").unwrap(), "jean luc");
        assert_eq!(p("Dr. Mary Ann Smith Jones PhD", "last").unwrap(), "jones");
        assert_eq!(p("Dr. Mary Ann Smith Jones PhD", "title").unwrap(), "dr");
        assert_eq!(p("Dr. Mary Ann Smith Jones PhD", "suffix").unwrap(), "phd");
        assert_eq!(p("Smith, John Paul", "last").unwrap(), "smith");
        assert_eq!(p("Smith, John Paul", "first").unwrap(), "john");
        assert_eq!(p("Smith, John Paul", "middle").unwrap(), "paul");
        assert_eq!(p("John Smith, Jr.", "last").unwrap(), "smith");
        assert_eq!(p("John Smith, Jr.", "suffix").unwrap(), "jr");
        assert_eq!(p("Ludwig van Beethoven", "last").unwrap(), "van beethoven");
        assert_eq!(p("Juan de la Cruz", "last").unwrap(), "de la cruz");
        assert_eq!(p("Juan de la Cruz", "middle"), None);
        assert_eq!(p("José Müller", "last").unwrap(), "muller");
        assert_eq!(p("Cher", "first").unwrap(), "cher");
        assert_eq!(p("Cher", "last"), None);
        assert_eq!(p("", "first"), None);
        assert_eq!(p(",", "last"), None);
        assert_eq!(p("John Smith", "nickname"), None);
    }

    #[test]
    fn nicknames() {
        assert_eq!(root("Bill").unwrap(), "william");
        assert_eq!(root("WILLIAM").unwrap(), "william");
        assert_eq!(root("Pat").unwrap(), "patricia");
        assert_eq!(root("Zebedee").unwrap(), "zebedee");
        assert_eq!(equivalent("Bill", "Will"), Some(true));
        assert_eq!(equivalent("Peggy", "Margaret"), Some(true));
        assert_eq!(equivalent("Pat", "Patrick"), Some(true));
        assert_eq!(equivalent("Patricia", "Patrick"), Some(false));
        assert_eq!(equivalent("Jean-Pierre", "JP"), Some(true));
        assert_eq!(equivalent("Bill", ""), None);
    }
}
