//! Hashing for activation: SHA-256 of identifiers normalised per ad platform, encoded as each
//! platform requires (lower-case hex; base64 for UID2).

mod hash_identifier;
mod sha256;

pub use hash_identifier::HashIdentifier;
pub use sha256::Sha256Hex;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Identifier kinds `hash_identifier` knows.
pub const KINDS: &[&str] = &[
    "email",
    "phone",
    "first_name",
    "last_name",
    "city",
    "state",
    "zip",
    "country",
    "external_id",
];

/// Lower-case hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

/// Phone digits in E.164 (`+` and 8 to 15 digits) from text already in international form;
/// `None` otherwise.
fn e164(text: &str) -> Option<String> {
    let trimmed = text.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let international = trimmed.starts_with('+') || trimmed.starts_with("00");
    let digits = if trimmed.starts_with("00") {
        digits[2..].to_string()
    } else {
        digits
    };
    (international && (8..=15).contains(&digits.len()) && !digits.starts_with('0'))
        .then(|| format!("+{digits}"))
}

/// Lower case, letters and digits only (no spaces, punctuation or symbols).
fn compact(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// The normalised value of an identifier as `platform` wants it hashed; `Ok(None)` when the
/// value is unusable (an invalid email, a phone not in international form, empty), `Err` for an
/// unknown kind or platform.
pub fn normalize(value: &str, kind: &str, platform: &str) -> Result<Option<String>, String> {
    let platform = platform.trim().to_ascii_lowercase();
    if !crate::email::PLATFORMS.contains(&platform.as_str()) {
        return Err(format!(
            "unknown platform `{platform}` (expected one of {})",
            crate::email::PLATFORMS.join(", ")
        ));
    }
    let value = match kind.trim().to_ascii_lowercase().as_str() {
        "email" => return crate::email::for_platform(value, &platform),
        "phone" => {
            let Some(phone) = e164(value) else {
                return Ok(None);
            };
            match platform.as_str() {
                // Meta wants the digits with the country code, without `+`.
                "meta" => phone[1..].to_string(),
                // LinkedIn matches on emails only.
                "linkedin" => return Ok(None),
                _ => phone,
            }
        }
        "first_name" | "last_name" | "city" => compact(value),
        "state" => compact(value),
        "zip" => value.trim().to_lowercase().replace([' ', '-'], ""),
        "country" => {
            let c = compact(value);
            if c.len() != 2 {
                return Ok(None);
            }
            c
        }
        "external_id" => value.trim().to_string(),
        other => {
            return Err(format!(
                "unknown identifier kind `{other}` (expected one of {})",
                KINDS.join(", ")
            ));
        }
    };
    Ok((!value.is_empty()).then_some(value))
}

/// `normalize` then SHA-256, hex (base64 for UID2).
pub fn hash(value: &str, kind: &str, platform: &str) -> Result<Option<String>, String> {
    let uid2 = platform.trim().eq_ignore_ascii_case("uid2");
    Ok(normalize(value, kind, platform)?.map(|v| {
        if uid2 {
            sha256_base64(&v)
        } else {
            sha256_hex(&v)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_reference_values() {
        // FIPS 180-2 test vector.
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn uid2_reference_hash() {
        // The UID2 documentation's example: "user@example.com" hashes to this base64 value.
        assert_eq!(
            hash("User@Example.com ", "email", "uid2").unwrap().unwrap(),
            "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ="
        );
    }

    #[test]
    fn phones_per_platform() {
        assert_eq!(
            normalize("+1 (650) 555-1234", "phone", "google")
                .unwrap()
                .unwrap(),
            "+16505551234"
        );
        assert_eq!(
            normalize("+1 (650) 555-1234", "phone", "meta")
                .unwrap()
                .unwrap(),
            "16505551234"
        );
        assert_eq!(
            normalize("0044 20 7946 0958", "phone", "tiktok")
                .unwrap()
                .unwrap(),
            "+442079460958"
        );
        assert_eq!(normalize("650 555 1234", "phone", "google").unwrap(), None);
        assert_eq!(
            normalize("+16505551234", "phone", "linkedin").unwrap(),
            None
        );
    }

    #[test]
    fn unknown_kind_or_platform_is_an_error() {
        assert!(
            hash("x", "ssn", "meta")
                .unwrap_err()
                .contains("unknown identifier kind")
        );
        assert!(
            hash("x", "email", "myspace")
                .unwrap_err()
                .contains("unknown platform")
        );
    }
}
