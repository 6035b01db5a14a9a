//! Postal codes per country and street-address folding.

/// A postal code in its country's standard form, or `None` when it is not valid there. US: ZIP5
/// (a ZIP+4 is cut to 5); GB: `SW1A 1AA`; CA: `K1A 0B1`; FR, DE, ES, IT: 5 digits (a 4-digit code
/// whose leading zero a spreadsheet dropped is padded); NL: `1234 AB`; other countries: upper
/// case with single spaces.
pub fn normalize(code: &str, country: &str) -> Option<String> {
    let compact: String = code
        .trim()
        .to_uppercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if compact.is_empty() || compact.len() > 12 {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let iso = crate::place::country_code(country)?;
    match iso.as_str() {
        "US" => match compact.len() {
            5 | 9 if digits(&compact) => Some(compact[..5].to_string()),
            _ => None,
        },
        "FR" | "DE" | "ES" | "IT" => match compact.len() {
            5 if digits(&compact) => Some(compact),
            4 if digits(&compact) => Some(format!("0{compact}")),
            _ => None,
        },
        "GB" => {
            let (outward, inward) = compact.split_at(compact.len().checked_sub(3)?);
            let inward_ok = inward.len() == 3
                && inward.as_bytes()[0].is_ascii_digit()
                && inward[1..].bytes().all(|b| b.is_ascii_alphabetic());
            let outward_ok = (2..=4).contains(&outward.len())
                && outward.as_bytes()[0].is_ascii_alphabetic()
                && outward.bytes().any(|b| b.is_ascii_digit());
            (inward_ok && outward_ok).then(|| format!("{outward} {inward}"))
        }
        "CA" => {
            let b = compact.as_bytes();
            let ok = b.len() == 6
                && b.iter().enumerate().all(|(i, c)| {
                    if i % 2 == 0 {
                        c.is_ascii_alphabetic()
                    } else {
                        c.is_ascii_digit()
                    }
                });
            ok.then(|| format!("{} {}", &compact[..3], &compact[3..]))
        }
        "NL" => {
            let ok = compact.len() == 6
                && digits(&compact[..4])
                && compact[4..].bytes().all(|b| b.is_ascii_alphabetic());
            ok.then(|| format!("{} {}", &compact[..4], &compact[4..]))
        }
        _ => Some(
            code.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase(),
        ),
    }
}

/// USPS street suffixes and unit designators (Publication 28) and their common spellings.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("street", "st"),
    ("str", "st"),
    ("avenue", "ave"),
    ("av", "ave"),
    ("road", "rd"),
    ("boulevard", "blvd"),
    ("drive", "dr"),
    ("lane", "ln"),
    ("court", "ct"),
    ("place", "pl"),
    ("square", "sq"),
    ("terrace", "ter"),
    ("parkway", "pkwy"),
    ("highway", "hwy"),
    ("circle", "cir"),
    ("crescent", "cres"),
    ("close", "cl"),
    ("way", "way"),
    ("trail", "trl"),
    ("apartment", "apt"),
    ("suite", "ste"),
    ("unit", "unit"),
    ("floor", "fl"),
    ("building", "bldg"),
    ("room", "rm"),
    ("north", "n"),
    ("south", "s"),
    ("east", "e"),
    ("west", "w"),
    ("northeast", "ne"),
    ("northwest", "nw"),
    ("southeast", "se"),
    ("southwest", "sw"),
];

/// A street address folded for comparison: transliterated, lower case, punctuation removed,
/// `#` read as a unit number, street types, unit designators and directions abbreviated
/// (`123 North Main Street, Apartment 4` → `123 n main st apt 4`).
pub fn street(address: &str) -> Option<String> {
    let text = deunicode::deunicode(address)
        .to_lowercase()
        .replace('#', " apt ");
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            ABBREVIATIONS
                .iter()
                .find(|(long, _)| *long == w)
                .map_or_else(|| w.to_string(), |(_, short)| short.to_string())
        })
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postal_codes() {
        assert_eq!(normalize("02139-4307", "USA").unwrap(), "02139");
        assert_eq!(normalize("2139", "US"), None);
        assert_eq!(normalize("sw1a1aa", "United Kingdom").unwrap(), "SW1A 1AA");
        assert_eq!(normalize(" EC1A 1BB ", "GB").unwrap(), "EC1A 1BB");
        assert_eq!(normalize("SW1A", "GB"), None);
        assert_eq!(normalize("7501", "France").unwrap(), "07501");
        assert_eq!(normalize("10115", "Deutschland").unwrap(), "10115");
        assert_eq!(normalize("k1a0b1", "CA").unwrap(), "K1A 0B1");
        assert_eq!(normalize("1012ab", "NL").unwrap(), "1012 AB");
        assert_eq!(normalize("100-0001", "JP").unwrap(), "100-0001");
        assert_eq!(normalize("12345", "Atlantis"), None);
    }

    #[test]
    fn streets() {
        assert_eq!(
            street("123 North Main Street, Apartment 4").unwrap(),
            "123 n main st apt 4"
        );
        assert_eq!(street("12 Rue de la Paix").unwrap(), "12 rue de la paix");
        assert_eq!(street("5 Elm St. #2B").unwrap(), "5 elm st apt 2b");
        assert_eq!(street("  ,,  "), None);
    }
}
