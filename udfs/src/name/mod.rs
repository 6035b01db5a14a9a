//! Person names: folding (case, accents, punctuation, honorifics, suffixes) and nickname
//! equivalence from a table shipped with the crate (`udfs/data/nicknames.csv`).

mod name_normalize;
mod names_equivalent;
mod nickname_root;

pub use name_normalize::NameNormalize;
pub use names_equivalent::NamesEquivalent;
pub use nickname_root::NicknameRoot;

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

const HONORIFICS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lady", "lord", "rev", "fr",
    "mme", "mlle", "m", "herr", "frau", "sr", "sra", "srta", "don", "dona",
];
const SUFFIXES: &[&str] = &["jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "dds"];

/// Lower-case ASCII words of a name: accents transliterated, punctuation and hyphens split,
/// honorifics before the name and generational/degree suffixes after it removed.
pub fn normalize(text: &str) -> Option<String> {
    let letters: String = deunicode::deunicode(text)
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut words: Vec<&str> = letters
        .split_whitespace()
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .collect();
    while words.len() > 1 && HONORIFICS.contains(&words[0]) {
        words.remove(0);
    }
    while words.len() > 1 && SUFFIXES.contains(words.last().expect("non-empty")) {
        words.pop();
    }
    (!words.is_empty()).then(|| words.join(" "))
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
    let (fa, fb) = (formals(a)?, formals(b)?);
    Some(!fa.is_disjoint(&fb))
}

#[cfg(test)]
mod tests {
    use super::*;

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
