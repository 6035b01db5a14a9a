//! Phonetic codes for names. Input is transliterated to ASCII first (`Müller` → `Muller`,
//! `Łukasz` → `Lukasz`); text without letters gives NULL.

mod daitch_mokotoff;
mod double_metaphone;
mod double_metaphone_alt;
mod nysiis;
mod soundex;

pub use daitch_mokotoff::DaitchMokotoff;
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
static DAITCH_MOKOTOFF: LazyLock<rphonetic::DaitchMokotoffSoundex> =
    LazyLock::new(rphonetic::DaitchMokotoffSoundex::default);

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

/// Daitch–Mokotoff Soundex codes, branches joined with `|`. The letters go in untransliterated:
/// the rules give some accented letters their own sounds (Romanian `ţ` is `ts`); other scripts are
/// transliterated first.
pub fn daitch_mokotoff(text: &str) -> Option<String> {
    let latin: String = text
        .chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(|c| {
            if c.is_ascii() || DAITCH_MOKOTOFF_FOLDS.contains(c.to_lowercase().next().unwrap_or(c))
            {
                vec![c]
            } else {
                deunicode::deunicode_char(c)
                    .unwrap_or("")
                    .chars()
                    .filter(char::is_ascii_alphabetic)
                    .collect()
            }
        })
        .collect();
    (!latin.is_empty()).then(|| DAITCH_MOKOTOFF.soundex(&latin))
}

/// Accented letters the Daitch–Mokotoff rules know (Commons Codec's folding and rule tables).
const DAITCH_MOKOTOFF_FOLDS: &str = "ßàáâãäåæçèéêëìíîïðñòóôõöøùúûýþÿćłśżźţțęą";

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
        // Daitch–Mokotoff: Apache Commons Codec's reference values.
        assert_eq!(daitch_mokotoff("Moskowitz").unwrap(), "645740");
        assert_eq!(daitch_mokotoff("Moskovitz").unwrap(), "645740");
        assert_eq!(daitch_mokotoff("Auerbach").unwrap(), "097400|097500");
        assert_eq!(daitch_mokotoff("Ohrbach").unwrap(), "097400|097500");
        assert_eq!(
            daitch_mokotoff("Rosochowaciec").unwrap(),
            "944744|944745|944754|944755|945744|945745|945754|945755"
        );
        assert_eq!(daitch_mokotoff("Peterson").unwrap(), "734600|739460");
        assert_eq!(daitch_mokotoff("Ben Aron").unwrap(), "769600");
        assert_eq!(daitch_mokotoff("ţamas").unwrap(), "364000|464000");
        assert_eq!(daitch_mokotoff("Müller"), daitch_mokotoff("Muller"));
        assert_eq!(daitch_mokotoff("42"), None);
        // Accents are transliterated; no letters gives NULL.
        assert_eq!(soundex("Müller"), soundex("Muller"));
        assert_eq!(soundex("1234 !"), None);
        assert_eq!(double_metaphone(""), None);
        assert_eq!(double_metaphone("😀"), None);
        assert!(soundex("王小明").is_some());
    }
}
