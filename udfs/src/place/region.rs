//! Cities and first-level regions (US states, Canadian provinces, Australian states).

/// US states, DC and the inhabited territories (USPS codes).
#[rustfmt::skip]
const US: &[(&str, &str)] = &[
    ("AL", "alabama"), ("AK", "alaska"), ("AZ", "arizona"), ("AR", "arkansas"),
    ("CA", "california"), ("CO", "colorado"), ("CT", "connecticut"), ("DE", "delaware"),
    ("DC", "district of columbia"), ("FL", "florida"), ("GA", "georgia"), ("HI", "hawaii"),
    ("ID", "idaho"), ("IL", "illinois"), ("IN", "indiana"), ("IA", "iowa"), ("KS", "kansas"),
    ("KY", "kentucky"), ("LA", "louisiana"), ("ME", "maine"), ("MD", "maryland"),
    ("MA", "massachusetts"), ("MI", "michigan"), ("MN", "minnesota"), ("MS", "mississippi"),
    ("MO", "missouri"), ("MT", "montana"), ("NE", "nebraska"), ("NV", "nevada"),
    ("NH", "new hampshire"), ("NJ", "new jersey"), ("NM", "new mexico"), ("NY", "new york"),
    ("NC", "north carolina"), ("ND", "north dakota"), ("OH", "ohio"), ("OK", "oklahoma"),
    ("OR", "oregon"), ("PA", "pennsylvania"), ("RI", "rhode island"), ("SC", "south carolina"),
    ("SD", "south dakota"), ("TN", "tennessee"), ("TX", "texas"), ("UT", "utah"),
    ("VT", "vermont"), ("VA", "virginia"), ("WA", "washington"), ("WV", "west virginia"),
    ("WI", "wisconsin"), ("WY", "wyoming"), ("PR", "puerto rico"), ("GU", "guam"),
    ("VI", "virgin islands"), ("AS", "american samoa"), ("MP", "northern mariana islands"),
];

/// Canadian provinces and territories (Canada Post codes), English and French names.
#[rustfmt::skip]
const CA: &[(&str, &str)] = &[
    ("AB", "alberta"), ("BC", "british columbia"), ("BC", "colombie britannique"),
    ("MB", "manitoba"), ("NB", "new brunswick"), ("NB", "nouveau brunswick"),
    ("NL", "newfoundland and labrador"), ("NL", "newfoundland"), ("NL", "terre neuve et labrador"),
    ("NS", "nova scotia"), ("NS", "nouvelle ecosse"), ("ON", "ontario"),
    ("PE", "prince edward island"), ("PE", "ile du prince edouard"), ("QC", "quebec"),
    ("SK", "saskatchewan"), ("NT", "northwest territories"), ("NT", "territoires du nord ouest"),
    ("NU", "nunavut"), ("YT", "yukon"),
];

/// Australian states and territories.
#[rustfmt::skip]
const AU: &[(&str, &str)] = &[
    ("NSW", "new south wales"), ("VIC", "victoria"), ("QLD", "queensland"),
    ("SA", "south australia"), ("WA", "western australia"), ("TAS", "tasmania"),
    ("ACT", "australian capital territory"), ("NT", "northern territory"),
];

/// Region tables by ISO country code.
const COUNTRIES: &[(&str, &[(&str, &str)])] = &[("US", US), ("CA", CA), ("AU", AU)];

/// Lower-case ASCII words, punctuation as spaces.
fn words(text: &str) -> Vec<String> {
    deunicode::deunicode(text)
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The postal code of a first-level region (`California` or `ca` → `CA`;
/// `Québec` → `QC`; `New South Wales` → `NSW`) in `country` (a name or code `country_code`
/// reads). `None` for an unknown region or a country without a table (US, CA and AU have one).
pub fn region_code(region: &str, country: &str) -> Option<String> {
    let iso = super::country_code(country)?;
    let (_, table) = COUNTRIES.iter().find(|(c, _)| *c == iso)?;
    let words = words(region);
    let key = match words.first().map(String::as_str) {
        // `State of New York`, `Province of Ontario`.
        Some("state" | "province" | "territory") if words.get(1).is_some_and(|w| w == "of") => {
            words[2..].join(" ")
        }
        _ => words.join(" "),
    };
    let upper = key.to_ascii_uppercase();
    table
        .iter()
        .find(|(code, name)| *code == upper || *name == key)
        .map(|(code, _)| (*code).to_string())
}

/// Leading abbreviations of city names, spelled out.
#[rustfmt::skip]
const CITY_WORDS: &[(&str, &str)] = &[
    ("st", "saint"), ("ste", "sainte"), ("ft", "fort"), ("mt", "mount"), ("pt", "point"),
    ("n", "north"), ("s", "south"), ("e", "east"), ("w", "west"),
];

/// A city name folded for comparison: ASCII, lower case, punctuation and hyphens as spaces, what
/// follows a comma dropped (`Springfield, IL`), a leading `City of` dropped, and leading
/// abbreviations spelled out (`St. Louis` → `saint louis`, `Ft Worth` → `fort worth`, `N Las
/// Vegas` → `north las vegas`). `None` when nothing is left.
pub fn city(text: &str) -> Option<String> {
    let head = text.split(',').next().unwrap_or_default();
    let mut words = words(head);
    if words.len() > 2 && words[0] == "city" && words[1] == "of" {
        words.drain(..2);
    }
    if words.len() > 1
        && let Some((_, full)) = CITY_WORDS.iter().find(|(short, _)| *short == words[0])
    {
        words[0] = (*full).to_string();
    }
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for (region, country, code) in [
            ("California", "US", "CA"),
            ("ca", "USA", "CA"),
            (" new  YORK ", "United States", "NY"),
            ("State of New York", "US", "NY"),
            ("District of Columbia", "US", "DC"),
            ("Washington", "US", "WA"),
            ("Québec", "Canada", "QC"),
            ("Colombie-Britannique", "CA", "BC"),
            ("on", "CA", "ON"),
            ("New South Wales", "Australia", "NSW"),
            ("wa", "AU", "WA"),
        ] {
            assert_eq!(
                region_code(region, country).as_deref(),
                Some(code),
                "{region}"
            );
        }
        assert_eq!(region_code("Ontario", "US"), None);
        assert_eq!(region_code("Bavaria", "DE"), None, "no table for DE");
        assert_eq!(region_code("", "US"), None);
        assert_eq!(region_code("CA", "Atlantis"), None);
    }

    #[test]
    fn cities() {
        assert_eq!(city("St. Louis").unwrap(), "saint louis");
        assert_eq!(city("SAINT LOUIS").unwrap(), "saint louis");
        assert_eq!(city("Ft Worth, TX").unwrap(), "fort worth");
        assert_eq!(city("N. Las Vegas").unwrap(), "north las vegas");
        assert_eq!(city("City of London").unwrap(), "london");
        assert_eq!(city("Winston-Salem").unwrap(), "winston salem");
        assert_eq!(city("Montréal").unwrap(), "montreal");
        assert_eq!(city("St").unwrap(), "st", "a lone word is kept");
        assert_eq!(city(" , "), None);
    }
}
