//! Dates typed by people and exported by systems.

mod parse_date;

pub use parse_date::ParseDate;

use chrono::NaiveDate;

/// Which of day and month comes first in `01/02/1990`-style dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Month first (US).
    MonthDay,
    /// Day first (most of the world).
    DayMonth,
}

/// Reads `text` as a date: ISO (`1990-02-01`, `1990/02/01`, an ISO timestamp's date), compact
/// (`19900201`), dotted (`01.02.1990`, day first), slashed or dashed with the year last (order by
/// `order` unless one number is above 12), or with an English month name (`1 February 1990`,
/// `February 1, 1990`, `01-Feb-1990`). Two-digit years, impossible dates and years outside
/// 1000–9999 give `None`.
pub fn parse(text: &str, order: Order) -> Option<NaiveDate> {
    let t = text.trim();
    if t.is_empty() || t.len() > 40 {
        return None;
    }
    let ok = |d: NaiveDate| {
        (1000..=9999)
            .contains(&chrono::Datelike::year(&d))
            .then_some(d)
    };
    // ISO, possibly the date part of a timestamp.
    let head = t.get(..10).unwrap_or(t);
    for format in ["%Y-%m-%d", "%Y/%m/%d"] {
        let rest = &t[head.len()..];
        if let Ok(d) = NaiveDate::parse_from_str(head, format)
            && (rest.is_empty() || rest.starts_with(['T', ' ']))
        {
            return ok(d);
        }
    }
    if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
        return ok(NaiveDate::parse_from_str(t, "%Y%m%d").ok()?);
    }
    let numbers: Vec<&str> = t.split(['.', '/', '-']).collect();
    if numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        let (a, b, y): (u32, u32, i32) = (
            numbers[0].parse().ok()?,
            numbers[1].parse().ok()?,
            numbers[2].parse().ok()?,
        );
        if numbers[2].len() != 4 {
            return None;
        }
        let day_first = t.contains('.') || a > 12 || (order == Order::DayMonth && b <= 12);
        let (day, month) = if day_first { (a, b) } else { (b, a) };
        return ok(NaiveDate::from_ymd_opt(y, month, day)?);
    }
    for format in [
        "%d %B %Y",
        "%B %d, %Y",
        "%B %d %Y",
        "%d-%b-%Y",
        "%d %b %Y",
        "%b %d, %Y",
        "%b %d %Y",
    ] {
        if let Ok(d) = NaiveDate::parse_from_str(t, format) {
            return ok(d);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, day)
    }

    /// Found by `cargo fuzz` (udfs/fuzz): a short string the ISO format accepts used to be
    /// sliced at byte 10.
    #[test]
    fn short_iso_like_text_does_not_panic() {
        assert_eq!(parse("054-5-4", Order::MonthDay), None);
        assert_eq!(parse("1990-1-5", Order::MonthDay), d(1990, 1, 5));
        assert_eq!(parse("1990-01-05Tjunk", Order::MonthDay), d(1990, 1, 5));
        assert_eq!(parse("1990-01-05x", Order::MonthDay), None);
        assert_eq!(parse("1990-01-0é", Order::MonthDay), None);
    }

    #[test]
    fn the_formats() {
        let us = Order::MonthDay;
        assert_eq!(parse("1994-07-05", us), d(1994, 7, 5));
        assert_eq!(parse("1994-07-05T10:00:00Z", us), d(1994, 7, 5));
        assert_eq!(parse("19940705", us), d(1994, 7, 5));
        assert_eq!(parse("05.07.1994", us), d(1994, 7, 5));
        assert_eq!(parse("07/05/1994", us), d(1994, 7, 5));
        assert_eq!(parse("07/05/1994", Order::DayMonth), d(1994, 5, 7));
        assert_eq!(
            parse("22/10/1994", us),
            d(1994, 10, 22),
            "day above 12 is a day"
        );
        assert_eq!(parse("5 July 1994", us), d(1994, 7, 5));
        assert_eq!(parse("July 5, 1994", us), d(1994, 7, 5));
        assert_eq!(parse("05-Jul-1994", us), d(1994, 7, 5));
        for bad in [
            "",
            "1994-02-30",
            "31/31/1994",
            "07/05/94",
            "0000-01-01",
            "yesterday",
            "1994-07-05x",
            "99999999",
        ] {
            assert_eq!(parse(bad, us), None, "{bad}");
        }
    }
}
