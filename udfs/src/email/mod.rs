//! Email functions: normalisation (generic and per ad platform), canonical mailbox for matching,
//! validation, domain.
//!
//! Every function returns NULL for NULL or for text that is not an email address.

mod canonical;
mod domain;
mod is_valid;
mod normalize;

pub use canonical::EmailCanonical;
pub use domain::EmailDomain;
pub use is_valid::EmailIsValid;
pub use normalize::EmailNormalize;

use unicode_normalization::UnicodeNormalization;

/// The ad platforms whose published normalisation rules the functions follow.
pub const PLATFORMS: &[&str] = &["default", "meta", "google", "tiktok", "linkedin", "uid2"];

/// An address split into lower-cased local part and domain, after trimming and Unicode NFKC;
/// `None` when it is not a plausible address.
pub fn parse(text: &str) -> Option<(String, String)> {
    let trimmed = text.trim();
    // NFKC changes nothing in ASCII: skip it for the common case.
    let cleaned: String = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        trimmed.nfkc().collect::<String>().to_lowercase()
    };
    let (local, domain) = cleaned.rsplit_once('@')?;
    if !valid_local(local) || !valid_domain(domain) {
        return None;
    }
    Some((local.to_string(), domain.to_string()))
}

fn valid_local(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()))
}

fn is_gmail(domain: &str) -> bool {
    domain == "gmail.com" || domain == "googlemail.com"
}

/// The address as `platform` wants it before hashing; `None` when invalid. `Err` names an
/// unknown platform.
pub fn for_platform(text: &str, platform: &str) -> Result<Option<String>, String> {
    let platform = platform.trim().to_ascii_lowercase();
    let Some((local, domain)) = parse(text) else {
        return match platform.as_str() {
            p if PLATFORMS.contains(&p) || p == "facebook" || p == "ttd" => Ok(None),
            _ => Err(unknown(&platform)),
        };
    };
    Ok(Some(match platform.as_str() {
        // Meta, TikTok, LinkedIn: trim and lower-case.
        "default" | "meta" | "facebook" | "tiktok" | "linkedin" => format!("{local}@{domain}"),
        // Google Customer Match: also remove the dots before the domain of gmail.com and
        // googlemail.com addresses.
        "google" => {
            if is_gmail(&domain) {
                format!("{}@{domain}", local.replace('.', ""))
            } else {
                format!("{local}@{domain}")
            }
        }
        // UID2 (The Trade Desk): for gmail.com, remove the dots and a `+` suffix.
        "uid2" | "ttd" => {
            if domain == "gmail.com" {
                let base = local.split('+').next().unwrap_or_default().replace('.', "");
                if base.is_empty() {
                    return Ok(None);
                }
                format!("{base}@{domain}")
            } else {
                format!("{local}@{domain}")
            }
        }
        _ => return Err(unknown(&platform)),
    }))
}

fn unknown(platform: &str) -> String {
    format!(
        "unknown platform `{platform}` (expected one of {})",
        PLATFORMS.join(", ")
    )
}

/// The mailbox an address delivers to, for matching: gmail/googlemail dots and `+` suffixes
/// removed (googlemail.com becomes gmail.com), `+` suffixes removed for other domains too.
pub fn canonical(text: &str) -> Option<String> {
    let (local, domain) = parse(text)?;
    let base = local.split('+').next().unwrap_or_default();
    let (base, domain) = if is_gmail(&domain) {
        (base.replace('.', ""), "gmail.com".to_string())
    } else {
        (base.to_string(), domain)
    };
    (!base.is_empty()).then(|| format!("{base}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            parse("  John.Smith@Example.COM "),
            Some(("john.smith".into(), "example.com".into()))
        );
        // Full-width characters fold to ASCII under NFKC.
        assert_eq!(parse("ｊｏｈｎ@example.com").unwrap().0, "john");
        for bad in [
            "",
            "@",
            "john",
            "john@",
            "@example.com",
            "john@example",
            "jo hn@example.com",
            "john..smith@example.com",
            ".john@example.com",
            "john@-example.com",
            "john@example.c",
            "john@example.123",
            "a@b@c",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(parse("josé@exämple.de").is_some());
    }

    #[test]
    fn platform_rules() {
        let g = |e, p| for_platform(e, p).unwrap();
        assert_eq!(
            g(" J.Doe+news@GMail.com", "meta").unwrap(),
            "j.doe+news@gmail.com"
        );
        assert_eq!(
            g(" J.Doe+news@GMail.com", "google").unwrap(),
            "jdoe+news@gmail.com"
        );
        assert_eq!(
            g("J.Doe@googlemail.com", "google").unwrap(),
            "jdoe@googlemail.com"
        );
        assert_eq!(
            g("j.doe@company.com", "google").unwrap(),
            "j.doe@company.com"
        );
        assert_eq!(g("J.Doe+news@gmail.com", "uid2").unwrap(), "jdoe@gmail.com");
        assert_eq!(
            g("j.doe+x@googlemail.com", "uid2").unwrap(),
            "j.doe+x@googlemail.com"
        );
        assert_eq!(g("+x@gmail.com", "uid2"), None);
        assert_eq!(g("not an email", "tiktok"), None);
        assert!(
            for_platform("a@b.com", "myspace")
                .unwrap_err()
                .contains("unknown platform")
        );
    }

    #[test]
    fn canonical_mailbox() {
        assert_eq!(
            canonical("J.O.H.N+promo@googlemail.com").unwrap(),
            "john@gmail.com"
        );
        assert_eq!(
            canonical("john+promo@outlook.com").unwrap(),
            "john@outlook.com"
        );
        assert_eq!(
            canonical("john.smith@outlook.com").unwrap(),
            "john.smith@outlook.com"
        );
        assert_eq!(canonical("+promo@outlook.com"), None);
    }
}
