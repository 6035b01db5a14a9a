//! Phonetic codes for names. Input is transliterated to ASCII first (`Müller` → `Muller`,
//! `Łukasz` → `Lukasz`); text without letters gives NULL.

mod double_metaphone;
mod double_metaphone_alt;
mod nysiis;
mod soundex;

pub use double_metaphone::DoubleMetaphone;
pub use double_metaphone_alt::DoubleMetaphoneAlt;
pub use nysiis::Nysiis;
pub use soundex::Soundex;

use std::sync::LazyLock;

use rphonetic::Encoder;

/// ASCII letters and spaces of the transliterated text, or `None` when no letter is left.
pub fn letters(text: &str) -> Option<String> {
    // Letters only, before transliteration: an emoji would otherwise become its name.
    let letters: String = text
        .chars()
        .map(|c| if c.is_alphabetic() { c } else { ' ' })
        .collect();
    let ascii = deunicode::deunicode(&letters);
    let kept: String = ascii
        .chars()
        .map(|c| if c.is_ascii_alphabetic() { c } else { ' ' })
        .collect();
    let kept = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    (!kept.is_empty()).then_some(kept)
}

static SOUNDEX: LazyLock<rphonetic::Soundex> = LazyLock::new(rphonetic::Soundex::default);
static METAPHONE: LazyLock<rphonetic::DoubleMetaphone> =
    LazyLock::new(rphonetic::DoubleMetaphone::default);
static NYSIIS: LazyLock<rphonetic::Nysiis> = LazyLock::new(rphonetic::Nysiis::default);

fn non_empty(code: String) -> Option<String> {
    (!code.is_empty()).then_some(code)
}

/// American Soundex of the first word-joined letters (`Robert` → `R163`).
pub fn soundex(text: &str) -> Option<String> {
    non_empty(SOUNDEX.encode(&letters(text)?.replace(' ', "")))
}

/// Double Metaphone primary code.
pub fn double_metaphone(text: &str) -> Option<String> {
    non_empty(METAPHONE.encode(&letters(text)?))
}

/// Double Metaphone alternate code.
pub fn double_metaphone_alt(text: &str) -> Option<String> {
    non_empty(METAPHONE.encode_alternate(&letters(text)?))
}

/// NYSIIS code.
pub fn nysiis(text: &str) -> Option<String> {
    non_empty(NYSIIS.encode(&letters(text)?.replace(' ', "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_codes() {
        // Soundex: the US National Archives examples.
        assert_eq!(soundex("Robert").unwrap(), "R163");
        assert_eq!(soundex("Rupert").unwrap(), "R163");
        assert_eq!(soundex("Tymczak").unwrap(), "T522");
        assert_eq!(soundex("Pfister").unwrap(), "P236");
        assert_eq!(soundex("Ashcraft").unwrap(), "A261");
        // Double Metaphone (Philips 2000).
        assert_eq!(double_metaphone("Smith").unwrap(), "SM0");
        assert_eq!(double_metaphone_alt("Smith").unwrap(), "XMT");
        assert_eq!(double_metaphone("Schmidt").unwrap(), "XMT");
        // NYSIIS.
        assert_eq!(nysiis("Macintosh").unwrap(), "MCANT");
        // Accents are transliterated; no letters gives NULL.
        assert_eq!(soundex("Müller"), soundex("Muller"));
        assert_eq!(soundex("1234 !"), None);
        assert_eq!(double_metaphone(""), None);
        assert_eq!(double_metaphone("😀"), None);
        assert!(soundex("王小明").is_some());
    }
}
