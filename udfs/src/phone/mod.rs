//! Phone functions on libphonenumber's metadata (the `phonenumber` crate): parse any common
//! national or international format with a default region, to E.164; validity, country, type.
//! Unparseable or invalid numbers give NULL.

mod country;
mod e164;
mod is_valid;
mod key;
mod number_type;

pub use country::PhoneCountry;
pub use e164::PhoneE164;
pub use is_valid::PhoneIsValid;
pub use key::PhoneKey;
pub use number_type::PhoneType;

use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber, Type};

/// Evaluates a `(phone[, default_region])` function: a constant unknown region fails the query
/// (naming the function), a per-row unknown region gives NULL for that row.
fn eval<O: crate::util::Output>(
    name: &str,
    args: &[datafusion::logical_expr::ColumnarValue],
    rows: usize,
    f: impl Fn(&str, Option<&str>) -> Option<O>,
) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
    if let Some(r) = crate::util::constant_str(args, 1)
        && let Err(e) = region(r)
    {
        return datafusion::common::exec_err!("{name}: {e}");
    }
    crate::util::map_strings(args, rows, |v| {
        let region = if v.len() > 1 { Some(v[1]?) } else { None };
        f(v[0]?, region)
    })
}

/// A region code (`US`, `gb`...), or an error naming it.
pub fn region(code: &str) -> Result<Id, String> {
    Id::from_str(&code.trim().to_ascii_uppercase()).map_err(|_| {
        format!("unknown region `{code}` (expected an ISO 3166 code such as US, GB, FR)")
    })
}

/// Compiled patterns `phonenumber` keeps (its own default is 100). Parsing and validating
/// numbers of a few countries uses more than 100 of libphonenumber's patterns, so its LRU cache
/// evicted and recompiled regexes on almost every call: 40% of `phone_e164`'s time went to
/// regex compilation and determinisation. Only patterns in use are compiled, so a capacity
/// above the whole metadata's pattern count costs memory only for what is used.
const PATTERN_CACHE: usize = 16_384;

fn enlarge_pattern_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cache = phonenumber::metadata::DATABASE.cache();
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.capacity() < PATTERN_CACHE {
            cache.set_capacity(PATTERN_CACHE);
        }
    });
}

/// Parses `text` (national numbers read in `default_region`); `None` when it is not a phone
/// number. Never panics, whatever the text.
pub fn parse(text: &str, default_region: Option<&str>) -> Option<PhoneNumber> {
    enlarge_pattern_cache();
    let text = text.trim();
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if !(3..=20).contains(&digits) || text.len() > 64 {
        return None;
    }
    let region = match default_region {
        Some(r) => Some(region(r).ok()?),
        None => None,
    };
    std::panic::catch_unwind(|| phonenumber::parse(region, text).ok())
        .ok()
        .flatten()
}

/// The valid number in E.164 (`+14155552671`).
pub fn e164(text: &str, default_region: Option<&str>) -> Option<String> {
    let number = parse(text, default_region)?;
    phonenumber::is_valid(&number).then(|| number.format().mode(Mode::E164).to_string())
}

/// Digits a key keeps: nine cover the national significant number of most plans (US and
/// Canada 10 digits, France 9, the UK 10, Germany 10–11) without the country code.
const KEY_DIGITS: usize = 9;

/// See `phone_key`: the last [`KEY_DIGITS`] digits, without international prefix or trunk 0.
pub fn key(text: &str) -> Option<String> {
    let text = text.trim();
    if text.len() > 64 {
        return None;
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let digits = if text.starts_with('+') {
        digits.as_str()
    } else {
        digits
            .strip_prefix("00")
            .or_else(|| digits.strip_prefix("011"))
            .or_else(|| digits.strip_prefix('0'))
            .unwrap_or(&digits)
    };
    if digits.len() < 7 {
        return None;
    }
    Some(digits[digits.len().saturating_sub(KEY_DIGITS)..].to_string())
}

/// The ISO region of a valid number.
pub fn country(text: &str, default_region: Option<&str>) -> Option<String> {
    let number = parse(text, default_region)?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    number.country().id().map(|id| id.as_ref().to_string())
}

/// The line type of a valid number.
pub fn number_type(text: &str, default_region: Option<&str>) -> Option<String> {
    let number = parse(text, default_region)?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    Some(
        match number.number_type(&phonenumber::metadata::DATABASE) {
            Type::FixedLine => "fixed_line",
            Type::Mobile => "mobile",
            Type::FixedLineOrMobile => "fixed_line_or_mobile",
            Type::TollFree => "toll_free",
            Type::PremiumRate => "premium_rate",
            Type::SharedCost => "shared_cost",
            Type::PersonalNumber => "personal",
            Type::Voip => "voip",
            Type::Pager => "pager",
            Type::Uan => "uan",
            Type::Voicemail => "voicemail",
            _ => "unknown",
        }
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_agree_across_formats() {
        let same = [
            ("06 12 34 56 78", "+33 6 12 34 56 78"),
            ("0033612345678", "06.12.34.56.78"),
            ("(415) 555-2671", "+1 415 555 2671"),
            ("415-555-2671", "011 1 415 555 2671"),
            ("020 7946 0958", "+44 20 7946 0958"),
            ("07700 900123", "+447700900123"),
        ];
        for (a, b) in same {
            assert_eq!(key(a), key(b), "{a} vs {b}");
            assert!(key(a).is_some());
        }
        // E.164 and the raw number agree too, whatever the country guessed.
        let e = e164("06 12 34 56 78", Some("FR")).unwrap();
        assert_eq!(key(&e), key("06 12 34 56 78"));
        assert_ne!(key("06 12 34 56 78"), key("06 12 34 56 79"));
        assert_eq!(key("12-34"), None);
        assert_eq!(key(""), None);
        assert_eq!(key(&"9".repeat(100)), None);
    }

    #[test]
    fn national_and_international_formats() {
        assert_eq!(e164("(415) 555-2671", Some("US")).unwrap(), "+14155552671");
        assert_eq!(e164("+1 415 555 2671", None).unwrap(), "+14155552671");
        assert_eq!(e164("020 7946 0958", Some("GB")).unwrap(), "+442079460958");
        assert_eq!(
            e164("0044 20 7946 0958", Some("FR")).unwrap(),
            "+442079460958"
        );
        assert_eq!(e164("06 12 34 56 78", Some("fr")).unwrap(), "+33612345678");
        assert_eq!(e164("030 1234567", Some("DE")).unwrap(), "+49301234567");
        assert_eq!(country("+33 6 12 34 56 78", None).unwrap(), "FR");
        assert_eq!(number_type("+33 6 12 34 56 78", None).unwrap(), "mobile");
    }

    #[test]
    fn garbage_is_null_not_a_panic() {
        for bad in [
            "",
            "+",
            "abc",
            "0000000000",
            "++++1",
            "1",
            "+999 999",
            "😀📞",
            &"9".repeat(500),
        ] {
            assert_eq!(e164(bad, Some("US")), None, "{bad}");
        }
        assert_eq!(e164("4155552671", None), None, "no region, no country code");
        assert!(region("XX").is_err());
    }
}
