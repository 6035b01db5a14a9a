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
use phonenumber::metadata::Database;
use phonenumber::{PhoneNumber, Type};

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

/// Regions `phone_e164` takes after the number.
const MAX_REGIONS: usize = 8;

/// Evaluates `phone_e164(phone, region, ...)`: constant unknown regions fail the query, a NULL
/// region is skipped, a row whose regions are all NULL (or one unknown) gives NULL.
fn eval_regions(
    name: &str,
    args: &[datafusion::logical_expr::ColumnarValue],
    rows: usize,
) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
    for i in 1..args.len() {
        if let Some(r) = crate::util::constant_str(args, i)
            && let Err(e) = region(r)
        {
            return datafusion::common::exec_err!("{name}: {e}");
        }
    }
    crate::util::map_strings(args, rows, |v| {
        let phone = v[0]?;
        if v.len() == 1 {
            return e164_in_regions(phone, &[None]);
        }
        let regions: Vec<Option<&str>> = v[1..].iter().filter(|r| r.is_some()).copied().collect();
        if regions.is_empty() {
            return None;
        }
        e164_in_regions(phone, &regions)
    })
}

/// A region code (`US`, `gb`...), or an error naming it.
pub fn region(code: &str) -> Result<Id, String> {
    Id::from_str(&code.trim().to_ascii_uppercase()).map_err(|_| {
        format!("unknown region `{code}` (expected an ISO 3166 code such as US, GB, FR)")
    })
}

/// libphonenumber's metadata (version 9.0.33, the one the `phonenumber` crate ships, Apache-2.0).
/// Each thread builds its own [`Database`] from it: the crate's shared database keeps its
/// compiled patterns in one `Mutex`-guarded cache that every parse and validation locks several
/// times, so with the shared one two cores ran `phone_e164` at 125% CPU, a third of it waiting
/// on that lock (profiled with `perf` over 380k numbers).
const METADATA_XML: &str = include_str!("PhoneNumberMetadata.xml");

/// Compiled patterns each thread's database keeps (the crate's default is 100, fewer than
/// parsing and validating numbers of a few countries uses, so its LRU cache recompiled regexes
/// on almost every call). Only patterns in use are compiled.
const PATTERN_CACHE: usize = 16_384;

/// The metadata read once per process; each thread's database is built from a copy.
static METADATA: std::sync::LazyLock<Vec<phonenumber::metadata::loader::Metadata>> =
    std::sync::LazyLock::new(|| {
        phonenumber::metadata::loader::load(std::io::Cursor::new(METADATA_XML))
            .expect("libphonenumber's metadata shipped with Tessera parses")
    });

thread_local! {
    static DATABASE: Database = {
        let db = Database::from(METADATA.clone())
            .expect("libphonenumber's metadata shipped with Tessera loads");
        db.cache()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_capacity(PATTERN_CACHE);
        db
    };
}

/// Runs `f` with this thread's metadata database.
fn with_database<T>(f: impl FnOnce(&Database) -> T) -> T {
    DATABASE.with(f)
}

/// Parses `text` (national numbers read in `default_region`); `None` when it is not a phone
/// number. Never panics, whatever the text.
pub fn parse(text: &str, default_region: Option<&str>) -> Option<PhoneNumber> {
    let region = match default_region {
        Some(r) => Some(region(r).ok()?),
        None => None,
    };
    with_database(|db| parse_in(db, text, region))
}

fn parse_in(db: &Database, text: &str, region: Option<Id>) -> Option<PhoneNumber> {
    let text = text.trim();
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if !(3..=20).contains(&digits) || text.len() > 64 {
        return None;
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        phonenumber::parse_with(db, region, text).ok()
    }))
    .ok()
    .flatten()
}

/// A valid number of `text`, reading a national number in each of `regions` in turn (the first
/// region where it is valid wins); a number written in international form is read once.
fn parse_valid(db: &Database, text: &str, regions: &[Option<Id>]) -> Option<PhoneNumber> {
    let first = regions.first().copied().flatten();
    let number = parse_in(db, text, first)?;
    if phonenumber::is_valid_with(db, &number) {
        return Some(number);
    }
    if international(text) {
        return None;
    }
    regions[1..].iter().find_map(|r| {
        let number = parse_in(db, text, *r)?;
        phonenumber::is_valid_with(db, &number).then_some(number)
    })
}

/// True when the text starts with `+` and its country code: the region cannot change how it
/// reads. (`00…` and `011…` are international only where that is the region's own prefix.)
fn international(text: &str) -> bool {
    text.trim_start().starts_with('+')
}

/// E.164 text of a parsed number (`+` country code, national number), as libphonenumber's
/// E.164 format writes it, without running its formatting patterns.
fn to_e164(number: &PhoneNumber) -> String {
    format!("+{}{}", number.country().code(), number.national())
}

/// The valid number in E.164 (`+14155552671`).
pub fn e164(text: &str, default_region: Option<&str>) -> Option<String> {
    e164_in_regions(text, &[default_region])
}

/// The valid number in E.164, a national number read in each region in turn; `None` also when
/// a region is unknown.
pub fn e164_in_regions(text: &str, regions: &[Option<&str>]) -> Option<String> {
    let regions = regions
        .iter()
        .map(|r| r.map(region).transpose().ok())
        .collect::<Option<Vec<_>>>()?;
    with_database(|db| parse_valid(db, text, &regions).map(|n| to_e164(&n)))
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

/// A valid number of `text`, national numbers read in `default_region`.
fn valid(text: &str, default_region: Option<&str>) -> Option<PhoneNumber> {
    let region = match default_region {
        Some(r) => Some(region(r).ok()?),
        None => None,
    };
    with_database(|db| parse_valid(db, text, &[region]))
}

/// The ISO region of a valid number.
pub fn country(text: &str, default_region: Option<&str>) -> Option<String> {
    let number = valid(text, default_region)?;
    number.country().id().map(|id| id.as_ref().to_string())
}

/// The line type of a valid number.
pub fn number_type(text: &str, default_region: Option<&str>) -> Option<String> {
    let region = match default_region {
        Some(r) => Some(region(r).ok()?),
        None => None,
    };
    let kind =
        with_database(|db| parse_valid(db, text, &[region]).map(|number| number.number_type(db)))?;
    Some(
        match kind {
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
    fn regions_are_tried_in_order() {
        let r = |t: &str, rs: &[Option<&str>]| e164_in_regions(t, rs);
        // A national number is read in the first region where it is valid.
        assert_eq!(
            r("020 7946 0958", &[Some("US"), Some("GB")]).unwrap(),
            "+442079460958"
        );
        assert_eq!(
            r("06 12 34 56 78", &[Some("US"), Some("GB"), Some("FR")]).unwrap(),
            "+33612345678"
        );
        assert_eq!(
            r("(415) 555-2671", &[Some("US"), Some("GB")]).unwrap(),
            "+14155552671"
        );
        // `00` is the international prefix in GB, not in the US: the region still matters.
        assert_eq!(
            r("0016152991295", &[Some("US"), Some("GB")]).unwrap(),
            "+16152991295"
        );
        assert_eq!(r("0016152991295", &[Some("US")]), None);
        // `+` numbers are read once, whatever the regions.
        assert_eq!(
            r("+44 20 7946 0958", &[Some("US")]).unwrap(),
            "+442079460958"
        );
        assert_eq!(r("+44 20 7946", &[Some("US"), Some("GB")]), None);
        // Valid nowhere tried, or an unknown region: NULL.
        assert_eq!(r("06 12 34 56 78", &[Some("US"), Some("GB")]), None);
        assert_eq!(r("06 12 34 56 78", &[Some("ZZ"), Some("FR")]), None);
        // The same answer as the one-region function, region by region.
        for t in [
            "(415) 555-2671",
            "020 7946 0958",
            "030 1234567",
            "+33 6 12 34 56 78",
        ] {
            for g in ["US", "GB", "FR", "DE"] {
                assert_eq!(r(t, &[Some(g)]), e164(t, Some(g)), "{t} in {g}");
            }
        }
    }

    #[test]
    fn threads_parse_alike() {
        let numbers = [
            "(415) 555-2671",
            "020 7946 0958",
            "06 12 34 56 78",
            "030 1234567",
        ];
        let here: Vec<_> = numbers
            .iter()
            .map(|n| e164_in_regions(n, &[Some("US"), Some("GB"), Some("FR"), Some("DE")]))
            .collect();
        let there = std::thread::spawn(move || {
            numbers
                .iter()
                .map(|n| e164_in_regions(n, &[Some("US"), Some("GB"), Some("FR"), Some("DE")]))
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        assert_eq!(here, there);
        assert!(here.iter().all(Option::is_some));
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
