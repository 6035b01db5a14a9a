//! String similarity, in [0, 1] (1 = equal) unless the name says distance. NULL when either
//! argument is NULL. Characters are Unicode scalar values (an accented letter counts once).

mod damerau_levenshtein;
mod distance;
pub mod fast;
mod jaccard_qgrams;
mod jaccard_tokens;
mod jaro;
mod jaro_winkler;
mod lcs_ratio;
mod levenshtein_similarity;
mod token_set_ratio;
mod token_sort_ratio;

pub use damerau_levenshtein::DamerauLevenshtein;
pub use distance::{DaysBetween, RelativeDifference, relative_difference};
pub use jaccard_qgrams::JaccardQgrams;
pub use jaccard_tokens::JaccardTokens;
pub use jaro::Jaro;
pub use jaro_winkler::JaroWinkler;
pub use lcs_ratio::LcsRatio;
pub use levenshtein_similarity::LevenshteinSimilarity;
pub use token_set_ratio::TokenSetRatio;
pub use token_sort_ratio::TokenSortRatio;

use std::collections::BTreeSet;

/// Lower-cased alphanumeric tokens.
pub fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Jaccard similarity of the token sets (1 when both are empty).
pub fn jaccard_tokens(a: &str, b: &str) -> f64 {
    let a: BTreeSet<String> = tokens(a).into_iter().collect();
    let b: BTreeSet<String> = tokens(b).into_iter().collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    a.intersection(&b).count() as f64 / a.union(&b).count() as f64
}

/// Normalised Levenshtein similarity of the sorted tokens (word order ignored).
pub fn token_sort_ratio(a: &str, b: &str) -> f64 {
    let sorted = |s: &str| {
        let mut t = tokens(s);
        t.sort();
        t.join(" ")
    };
    fast::normalized_levenshtein(&sorted(a), &sorted(b))
}

/// Jaccard similarity of the sets of character bigrams of the lower-cased strings (a string of
/// one character is its own gram; 1 when both are empty).
pub fn jaccard_qgrams(a: &str, b: &str) -> f64 {
    let grams = |s: &str| -> BTreeSet<(char, char)> {
        let chars: Vec<char> = s.to_lowercase().chars().collect();
        match chars.len() {
            0 => BTreeSet::new(),
            1 => BTreeSet::from([(chars[0], '\0')]),
            _ => chars.windows(2).map(|w| (w[0], w[1])).collect(),
        }
    };
    let (ga, gb) = (grams(a), grams(b));
    if ga.is_empty() && gb.is_empty() {
        return 1.0;
    }
    ga.intersection(&gb).count() as f64 / ga.union(&gb).count() as f64
}

/// Token-set ratio (as in fuzzywuzzy/rapidfuzz): compares the shared tokens with each side's
/// full token set, so extra words on one side cost little (`Anna Smith` ≈ `Anna Maria Smith`).
pub fn token_set_ratio(a: &str, b: &str) -> f64 {
    let ta: BTreeSet<String> = tokens(a).into_iter().collect();
    let tb: BTreeSet<String> = tokens(b).into_iter().collect();
    if ta.is_empty() && tb.is_empty() {
        return 1.0;
    }
    if ta.is_empty() || tb.is_empty() {
        return 0.0;
    }
    let join = |set: Vec<&String>| set.into_iter().cloned().collect::<Vec<_>>().join(" ");
    let common = join(ta.intersection(&tb).collect());
    let with = |rest: Vec<&String>| {
        let rest = join(rest);
        match (common.is_empty(), rest.is_empty()) {
            (true, _) => rest,
            (_, true) => common.clone(),
            _ => format!("{common} {rest}"),
        }
    };
    let full_a = with(ta.difference(&tb).collect());
    let full_b = with(tb.difference(&ta).collect());
    let ratio = fast::normalized_levenshtein;
    let mut best = ratio(&full_a, &full_b);
    if !common.is_empty() {
        best = best
            .max(ratio(&common, &full_a))
            .max(ratio(&common, &full_b));
    }
    best
}

/// Length of the longest common substring over the length of the longer string (characters).
pub fn lcs_ratio(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let longer = a.len().max(b.len());
    if longer == 0 {
        return 1.0;
    }
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    let mut best = 0;
    for x in &a {
        for (j, y) in b.iter().enumerate() {
            current[j + 1] = if x == y { previous[j] + 1 } else { 0 };
            best = best.max(current[j + 1]);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    best as f64 / longer as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // Winkler (1990) / the strsim test suite reference pairs.
        assert!((strsim::jaro("MARTHA", "MARHTA") - 0.944).abs() < 0.001);
        assert!((strsim::jaro_winkler("MARTHA", "MARHTA") - 0.961).abs() < 0.001);
        assert!((strsim::jaro_winkler("DIXON", "DICKSONX") - 0.813).abs() < 0.001);
        assert_eq!(strsim::levenshtein("kitten", "sitting"), 3);
        assert_eq!(strsim::damerau_levenshtein("ca", "abc"), 2);
    }

    #[test]
    fn token_measures() {
        assert_eq!(jaccard_tokens("Anna Maria Smith", "smith, anna"), 2.0 / 3.0);
        assert_eq!(token_sort_ratio("Smith John", "john SMITH"), 1.0);
        assert_eq!(jaccard_tokens("", "  "), 1.0);
        assert_eq!(token_set_ratio("Anna Smith", "Anna Maria Smith"), 1.0);
        assert_eq!(token_set_ratio("", "x"), 0.0);
        assert_eq!(jaccard_qgrams("night", "nacht"), 1.0 / 7.0);
        assert_eq!(lcs_ratio("Johnson", "Johnston"), 5.0 / 8.0, "johns");
        assert_eq!(lcs_ratio("", ""), 1.0);
    }
}
