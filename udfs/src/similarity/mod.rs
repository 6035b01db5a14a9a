//! String similarity, in [0, 1] (1 = equal) unless the name says distance. NULL when either
//! argument is NULL. Characters are Unicode scalar values (an accented letter counts once).

mod damerau_levenshtein;
pub mod fast;
mod jaccard_tokens;
mod jaro;
mod jaro_winkler;
mod levenshtein_similarity;
mod token_sort_ratio;

pub use damerau_levenshtein::DamerauLevenshtein;
pub use jaccard_tokens::JaccardTokens;
pub use jaro::Jaro;
pub use jaro_winkler::JaroWinkler;
pub use levenshtein_similarity::LevenshteinSimilarity;
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
    strsim::normalized_levenshtein(&sorted(a), &sorted(b))
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
    }
}
