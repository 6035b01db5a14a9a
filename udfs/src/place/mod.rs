//! Places: country names and codes to ISO 3166-1 alpha-2, regions, cities, postal codes, street
//! addresses.

mod city_normalize;
mod country_code;
mod postal;
mod postal_code_normalize;
mod region;
mod region_code;
mod street_normalize;

pub use city_normalize::CityNormalize;
pub use country_code::CountryCode;
pub use postal::{normalize as postal_code, street};
pub use postal_code_normalize::PostalCodeNormalize;
pub use region::{city, region_code};
pub use region_code::RegionCode;
pub use street_normalize::StreetNormalize;

use std::str::FromStr;

/// Local-language names and common writings that the ISO tables do not carry.
const EXTRA: &[(&str, &str)] = &[
    ("republiquefrancaise", "FR"),
    ("deutschland", "DE"),
    ("bundesrepublikdeutschland", "DE"),
    ("espana", "ES"),
    ("italia", "IT"),
    ("nederland", "NL"),
    ("holland", "NL"),
    ("osterreich", "AT"),
    ("oesterreich", "AT"),
    ("schweiz", "CH"),
    ("suisse", "CH"),
    ("svizzera", "CH"),
    ("belgique", "BE"),
    ("belgie", "BE"),
    ("polska", "PL"),
    ("sverige", "SE"),
    ("norge", "NO"),
    ("danmark", "DK"),
    ("suomi", "FI"),
    ("eire", "IE"),
    ("uk", "GB"),
    ("greatbritain", "GB"),
    ("england", "GB"),
    ("usa", "US"),
    ("britain", "GB"),
    ("scotland", "GB"),
    ("wales", "GB"),
    ("northernireland", "GB"),
    ("america", "US"),
    ("unitedstatesofamerica", "US"),
    ("unitedstates", "US"),
];

/// The ISO 3166-1 alpha-2 code of a country written as a code (alpha-2, alpha-3), an English name
/// or a common alias, in any case, with accents, dots or spaces (`U.S.A.`, `République
/// française`, `Deutschland`); `None` when unknown.
pub fn country_code(text: &str) -> Option<String> {
    let key: String = deunicode::deunicode(text)
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if key.is_empty() || key.len() > 64 {
        return None;
    }
    if let Some((_, code)) = EXTRA.iter().find(|(k, _)| *k == key) {
        return Some((*code).to_string());
    }
    let key = key
        .strip_prefix("the")
        .filter(|k| k.len() > 3)
        .unwrap_or(&key);
    celes::Country::from_str(key)
        .or_else(|_| celes::Country::from_alias(key))
        .or_else(|_| celes::Country::from_name(key))
        .ok()
        .map(|c| c.alpha2.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_spellings_and_codes() {
        for (text, code) in [
            ("US", "US"),
            ("USA", "US"),
            ("U.S.A.", "US"),
            ("United States", "US"),
            ("united states of america", "US"),
            ("UK", "GB"),
            ("United Kingdom", "GB"),
            ("Great Britain", "GB"),
            ("England", "GB"),
            ("GB", "GB"),
            ("france", "FR"),
            ("République française", "FR"),
            ("FRA", "FR"),
            ("Germany", "DE"),
            ("Deutschland", "DE"),
            ("DEU", "DE"),
            (" de ", "DE"),
            ("Japan", "JP"),
        ] {
            assert_eq!(country_code(text).as_deref(), Some(code), "{text}");
        }
        for bad in ["", "Atlantis", "😀", "12"] {
            assert_eq!(country_code(bad), None, "{bad}");
        }
    }
}
