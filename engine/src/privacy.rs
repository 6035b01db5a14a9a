//! Personal-data primitives for erasure, suppression and subject access: the kinds of
//! identifier a person is found by, how a raw value is normalised before it is compared, salted
//! hashes (a suppression list holds no identifier in clear), and a SQL function testing values
//! against a set without the values ever appearing in a query's text or a commit's log.
//!
//! ```
//! use tessera_engine::privacy::{IdentifierKind, IdentifierSet};
//! let mut set = IdentifierSet::salted(b"secret".to_vec());
//! set.insert(IdentifierKind::Email, "Jane.Doe@Example.com");
//! set.insert(IdentifierKind::Phone, "+33 6 12 34 56 78");
//! assert!(set.contains(IdentifierKind::Email, " jane.doe@example.com "));
//! assert!(set.contains(IdentifierKind::Phone, "06 12 34 56 78")); // read in the stored number's country
//! assert!(!set.contains(IdentifierKind::Email, "john@example.com"));
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use sha2::{Digest, Sha256};
use tessera_udfs::{email, phone};

/// How a person is identified in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierKind {
    /// A Tessera customer id (stable across runs).
    CustomerId,
    /// A source record, `source:id` as in `unify.identity_records.record_key`.
    RecordKey,
    /// An email address, compared in its canonical form (`email_canonical`).
    Email,
    /// A phone number, compared in E.164 (national numbers read in the countries known).
    Phone,
    /// A web account id.
    WebUserId,
    /// A loyalty card number, compared in upper case with only its letters and digits (as
    /// typed with spaces, dashes or in lower case, it is the same card).
    LoyaltyNumber,
}

impl IdentifierKind {
    /// Every kind.
    pub const ALL: [IdentifierKind; 6] = [
        IdentifierKind::CustomerId,
        IdentifierKind::RecordKey,
        IdentifierKind::Email,
        IdentifierKind::Phone,
        IdentifierKind::WebUserId,
        IdentifierKind::LoyaltyNumber,
    ];

    /// The kind's name in SQL and configuration.
    pub fn name(self) -> &'static str {
        match self {
            IdentifierKind::CustomerId => "customer_id",
            IdentifierKind::RecordKey => "record_key",
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::WebUserId => "web_user_id",
            IdentifierKind::LoyaltyNumber => "loyalty_number",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name.trim())
    }

    /// The kind a column holds, guessed from its name: `customer_id`, `previous_customer_id`,
    /// `record_key`, `record_key_a`, `*_record_key`, `web_user_id`, a loyalty card's number
    /// (`loyalty_number`, `loyalty_card`, `loyalty_id`, `*_loyalty_number`, ...: a name holding
    /// `loyalty` and ending in `number`, `card`, `id` or `no`; not `loyalty_tier` or
    /// `loyalty_points`), and any column whose name holds `email` or `phone`.
    pub fn of_column(column: &str) -> Option<Self> {
        let c = column.to_ascii_lowercase();
        if c == "customer_id" || c == "previous_customer_id" {
            Some(IdentifierKind::CustomerId)
        } else if c == "record_key" || c.starts_with("record_key_") || c.ends_with("_record_key") {
            Some(IdentifierKind::RecordKey)
        } else if c == "web_user_id" {
            Some(IdentifierKind::WebUserId)
        } else if c.contains("loyalty")
            && ["number", "card", "id", "no", "num"]
                .iter()
                .any(|end| c.ends_with(end))
        {
            Some(IdentifierKind::LoyaltyNumber)
        } else if c.contains("email") {
            Some(IdentifierKind::Email)
        } else if c.contains("phone") {
            Some(IdentifierKind::Phone)
        } else {
            None
        }
    }

    /// True for the kinds that name one person (a customer or a record) rather than a value
    /// several people may share.
    pub fn is_key(self) -> bool {
        matches!(self, IdentifierKind::CustomerId | IdentifierKind::RecordKey)
    }
}

/// The normalised forms under which `raw` is compared: the canonical email; the E.164 number,
/// read as international and in each of `regions`; a loyalty card's letters and digits in
/// upper case (as `unify.identity_records` holds it); the trimmed text for ids.
pub fn match_forms(kind: IdentifierKind, raw: &str, regions: &BTreeSet<String>) -> Vec<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Vec::new();
    }
    match kind {
        IdentifierKind::Email => email::canonical(raw).into_iter().collect(),
        IdentifierKind::Phone => {
            let mut forms: Vec<String> = Vec::new();
            if raw.starts_with('+') || raw.starts_with("00") {
                forms.extend(phone::e164(raw, None));
            }
            for region in regions {
                if let Some(e) = phone::e164(raw, Some(region))
                    && !forms.contains(&e)
                {
                    forms.push(e);
                }
            }
            forms
        }
        IdentifierKind::LoyaltyNumber => {
            let card = loyalty_number(raw);
            if card.is_empty() {
                Vec::new()
            } else {
                vec![card]
            }
        }
        _ => vec![raw.to_string()],
    }
}

/// A loyalty card number's normal form: upper-cased (Unicode rules, as SQL's `upper`), then
/// only `A`–`Z` and `0`–`9` kept; the same as `regexp_replace(upper(card), '[^A-Z0-9]', '',
/// 'g')` in `sql/unify/identity_records.sql`, so a value found in a source compares with the
/// one the identity graph holds.
pub fn loyalty_number(raw: &str) -> String {
    raw.to_uppercase()
        .chars()
        .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        .collect()
}

/// 32 random bytes from the operating system's generator, for a new salt.
pub fn random_salt() -> [u8; 32] {
    rand::random()
}

/// SHA-256 hex of `salt`, the kind and the normalised value (NUL-separated).
pub fn salted_hash(salt: &[u8], kind: IdentifierKind, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update([0]);
    h.update(kind.name().as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// A set of identifiers by kind, in clear (a subject being looked up, in memory only) or as
/// salted hashes (a suppression list).
#[derive(Debug, Clone, Default)]
pub struct IdentifierSet {
    salt: Option<Vec<u8>>,
    keys: HashMap<IdentifierKind, HashSet<String>>,
    regions: BTreeSet<String>,
}

impl IdentifierSet {
    /// A set holding values in clear.
    pub fn clear() -> Self {
        Self::default()
    }

    /// A set holding salted hashes.
    pub fn salted(salt: Vec<u8>) -> Self {
        Self {
            salt: Some(salt),
            ..Self::default()
        }
    }

    /// The key stored for a normalised value.
    pub fn key(&self, kind: IdentifierKind, normalised: &str) -> String {
        match &self.salt {
            Some(salt) => salted_hash(salt, kind, normalised),
            None => normalised.to_string(),
        }
    }

    /// Adds a raw value (normalised first); returns the normalised form, or `None` when the
    /// value normalises to nothing (an invalid email or phone).
    pub fn insert(&mut self, kind: IdentifierKind, raw: &str) -> Option<String> {
        let form = match kind {
            IdentifierKind::Phone => {
                let e = phone::e164(raw.trim(), None)?;
                self.add_region_of(&e);
                e
            }
            _ => match_forms(kind, raw, &self.regions).into_iter().next()?,
        };
        let key = self.key(kind, &form);
        self.keys.entry(kind).or_default().insert(key);
        Some(form)
    }

    /// Adds an already computed key (a stored salted hash).
    pub fn insert_key(&mut self, kind: IdentifierKind, key: String) {
        self.keys.entry(kind).or_default().insert(key);
    }

    /// Reads national phone numbers in `region` (ISO 3166 alpha-2) too.
    pub fn add_region(&mut self, region: &str) {
        if phone::region(region).is_ok() {
            self.regions.insert(region.to_ascii_uppercase());
        }
    }

    fn add_region_of(&mut self, e164: &str) {
        if let Some(region) = phone::country(e164, None) {
            self.regions.insert(region);
        }
    }

    /// The regions national numbers are read in.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().map(String::as_str)
    }

    /// True when `raw` (normalised) is in the set.
    pub fn contains(&self, kind: IdentifierKind, raw: &str) -> bool {
        let Some(keys) = self.keys.get(&kind) else {
            return false;
        };
        if keys.is_empty() {
            return false;
        }
        match_forms(kind, raw, &self.regions)
            .iter()
            .any(|form| keys.contains(&self.key(kind, form)))
    }

    /// The number of entries of `kind`.
    pub fn len_of(&self, kind: IdentifierKind) -> usize {
        self.keys.get(&kind).map_or(0, HashSet::len)
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.values().all(HashSet::is_empty)
    }

    /// The SQL function `name(kind, value) -> boolean` testing values against this set (NULL
    /// and unparseable values are not in it: `false`, never NULL, so `NOT name(...)` keeps
    /// them).
    pub fn udf(self: Arc<Self>, name: &str) -> ScalarUDF {
        ScalarUDF::new_from_impl(InSet {
            name: name.to_string(),
            set: self,
            signature: Signature::string(2, Volatility::Immutable),
        })
    }
}

#[derive(Debug)]
struct InSet {
    name: String,
    set: Arc<IdentifierSet>,
    signature: Signature,
}

impl PartialEq for InSet {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.set, &other.set)
    }
}
impl Eq for InSet {}
impl Hash for InSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        (Arc::as_ptr(&self.set) as usize).hash(state);
    }
}

impl ScalarUDFImpl for InSet {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let kind = match &args.args[0] {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(k))
                | ScalarValue::LargeUtf8(Some(k))
                | ScalarValue::Utf8View(Some(k)),
            ) => match IdentifierKind::parse(k) {
                Some(kind) => kind,
                None => {
                    return plan_err!(
                        "{}: unknown identifier kind `{k}` (customer_id, record_key, email, phone or web_user_id)",
                        self.name
                    );
                }
            },
            _ => return plan_err!("{}: the kind must be a constant string", self.name),
        };
        match &args.args[1] {
            ColumnarValue::Scalar(value) => {
                let text = match value {
                    ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                        v.clone()
                    }
                    _ => None,
                };
                let hit = text.is_some_and(|t| self.set.contains(kind, &t));
                Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(hit))))
            }
            ColumnarValue::Array(array) => {
                let strings: ArrayRef = cast(array, &DataType::Utf8)?;
                let strings = strings
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8 gives a StringArray");
                let empty = self.set.len_of(kind) == 0;
                let out: BooleanArray = (0..strings.len())
                    .map(|i| {
                        Some(
                            !empty
                                && strings.is_valid(i)
                                && self.set.contains(kind, strings.value(i)),
                        )
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_match_in_canonical_form_and_hashes_hide_them() {
        let mut set = IdentifierSet::salted(b"s".to_vec());
        assert_eq!(
            set.insert(IdentifierKind::Email, " Ann@Example.COM")
                .as_deref(),
            Some("ann@example.com")
        );
        assert!(set.contains(IdentifierKind::Email, "ann@example.com"));
        assert!(!set.contains(IdentifierKind::Phone, "ann@example.com"));
        let stored: Vec<&String> = set.keys[&IdentifierKind::Email].iter().collect();
        assert_eq!(stored.len(), 1);
        assert!(!stored[0].contains("ann"));
        assert_eq!(stored[0].len(), 64);
        // Another salt, another hash.
        assert_ne!(
            salted_hash(b"s", IdentifierKind::Email, "ann@example.com"),
            salted_hash(b"t", IdentifierKind::Email, "ann@example.com")
        );
    }

    #[test]
    fn phones_match_national_and_international_forms() {
        let mut set = IdentifierSet::clear();
        assert_eq!(
            set.insert(IdentifierKind::Phone, "+33 6 12 34 56 78")
                .as_deref(),
            Some("+33612345678")
        );
        assert!(set.contains(IdentifierKind::Phone, "06 12 34 56 78"));
        assert!(set.contains(IdentifierKind::Phone, "0033612345678"));
        assert!(!set.contains(IdentifierKind::Phone, "06 12 34 56 79"));
        // A national number alone cannot be stored: its country is unknown.
        assert_eq!(set.insert(IdentifierKind::Phone, "06 12 34 56 78"), None);
    }

    #[test]
    fn column_names_say_the_kind() {
        assert_eq!(
            IdentifierKind::of_column("email_record_key"),
            Some(IdentifierKind::RecordKey)
        );
        assert_eq!(
            IdentifierKind::of_column("subject_email"),
            Some(IdentifierKind::Email)
        );
        assert_eq!(
            IdentifierKind::of_column("PHONE_SHA256"),
            Some(IdentifierKind::Phone)
        );
        assert_eq!(IdentifierKind::of_column("city"), None);
        for card in [
            "loyalty_number",
            "LoyaltyCard",
            "pos_loyalty_id",
            "loyalty_no",
        ] {
            assert_eq!(
                IdentifierKind::of_column(card),
                Some(IdentifierKind::LoyaltyNumber),
                "{card}"
            );
        }
        for other in ["loyalty_tier", "loyalty_points", "loyalty_since"] {
            assert_eq!(IdentifierKind::of_column(other), None, "{other}");
        }
    }

    #[test]
    fn loyalty_cards_match_however_they_were_typed() {
        let mut set = IdentifierSet::salted(b"s".to_vec());
        assert_eq!(
            set.insert(IdentifierKind::LoyaltyNumber, "ly 1234-5678")
                .as_deref(),
            Some("LY12345678")
        );
        for typed in ["LY12345678", " ly12345678 ", "LY 1234 5678", "Ly-1234-5678"] {
            assert!(
                set.contains(IdentifierKind::LoyaltyNumber, typed),
                "{typed}"
            );
        }
        assert!(!set.contains(IdentifierKind::LoyaltyNumber, "LY12345679"));
        assert!(!set.contains(IdentifierKind::Email, "LY12345678"));
        // Nothing left after normalising: no card, never a match.
        assert_eq!(set.insert(IdentifierKind::LoyaltyNumber, " - "), None);
        assert!(!set.contains(IdentifierKind::LoyaltyNumber, "--"));
        // As SQL's upper() does it: the sharp s is SS, other letters go.
        assert_eq!(loyalty_number("straße-7"), "STRASSE7");
        assert_eq!(loyalty_number("ＬＹ１"), "");
    }
}

/// Error text with the data values readers quote taken out, so that a failed run's message
/// (kept in `_tessera.runs`, printed as JSON, shown in the report) holds no personal data:
/// arrow's CSV, JSON and cast errors ("Error while parsing value '…' … Row data: '[…]'",
/// "Error parsing timestamp from '…'", "Cannot cast string '…'") keep the column, type and
/// line they name, not the value or the row.
pub fn redact_values(text: &str) -> String {
    let mut out = text.to_string();
    // "Row data: '[...]'" runs to the last quote of its message: the row may hold quotes.
    while let Some(start) = out.find("Row data: '") {
        let body = start + "Row data: '".len();
        let end = out[body..]
            .rfind('\'')
            .map_or(out.len(), |i| body + i + 1)
            .max(body);
        out.replace_range(start..end, "Row data: <redacted>");
    }
    // Phrases after which a value follows, and where it ends.
    const QUOTING: [(&str, &str); 7] = [
        ("parsing value '", "' as type"),
        ("Cannot cast string '", "' to value"),
        ("Cannot cast value '", "' to value"),
        ("parsing timestamp from '", "'"),
        ("parsing timestamp '", "'"),
        ("Failed to parse '", "' as"),
        ("Failed to parse ", " as interval"),
    ];
    for (before, after) in QUOTING {
        let mut from = 0;
        while let Some(i) = out[from..].find(before) {
            let body = from + i + before.len();
            let Some(len) = out[body..].find(after) else {
                break;
            };
            let note = format!("<{} characters>", out[body..body + len].chars().count());
            out.replace_range(body..body + len, &note);
            from = body + note.len();
        }
    }
    out
}

/// A pseudonymised output (`[privacy] pseudonymize`): every text column whose name says it
/// holds an email or a phone keeps only `hash_identifier(value, kind, 'default')`, the SHA-256
/// hex of the normalised value (what ad platforms match on; still personal data under the
/// GDPR, but no identifier in clear). Customer ids and other columns are unchanged.
pub fn pseudonymize(
    df: datafusion::prelude::DataFrame,
) -> datafusion::error::Result<datafusion::prelude::DataFrame> {
    let hash = ScalarUDF::new_from_impl(tessera_udfs::hash::HashIdentifier::default());
    let exprs: Vec<datafusion::prelude::Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let column =
                datafusion::prelude::Expr::Column(datafusion::common::Column::from_name(f.name()));
            match IdentifierKind::of_column(f.name()) {
                Some(kind @ (IdentifierKind::Email | IdentifierKind::Phone))
                    if matches!(
                        f.data_type(),
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    ) =>
                {
                    hash.call(vec![
                        column,
                        datafusion::prelude::lit(kind.name()),
                        datafusion::prelude::lit("default"),
                    ])
                    .alias(f.name())
                }
                _ => column,
            }
        })
        .collect();
    df.select(exprs)
}

#[cfg(test)]
mod redact_tests {
    use super::redact_values;

    #[test]
    fn parse_errors_keep_their_place_and_lose_their_values() {
        let e = "crm_contacts: Arrow error: Parser error: Error while parsing value 'jane@x.com' as type 'Int64' for column 3 at line 5. Row data: '[C1,Jane,O'Neil,jane@x.com]'";
        let r = redact_values(e);
        assert_eq!(
            r,
            "crm_contacts: Arrow error: Parser error: Error while parsing value '<10 characters>' as type 'Int64' for column 3 at line 5. Row data: <redacted>"
        );
        let e = "Error parsing column 13 at line 2232: Parser error: Error parsing timestamp from 'jane@x.com': error parsing date";
        assert_eq!(
            redact_values(e),
            "Error parsing column 13 at line 2232: Parser error: Error parsing timestamp from '<10 characters>': error parsing date"
        );
        assert!(!r.contains("jane") && !r.contains("Neil"));
        let plain = "incorrect number of fields for line 1030, expected 5 got 6";
        assert_eq!(redact_values(plain), plain);
    }
}

/// The SQL function `name(a, b) -> boolean`: true when the pair of texts is in `pairs`
/// (held in memory only, so a Delta `DELETE` using it writes no value into its commit).
/// NULLs are not in it (`false`).
pub fn pair_set_udf(name: &str, pairs: HashSet<(String, String)>) -> ScalarUDF {
    ScalarUDF::new_from_impl(PairSet {
        name: name.to_string(),
        pairs: Arc::new(pairs),
        signature: Signature::string(2, Volatility::Immutable),
    })
}

#[derive(Debug)]
struct PairSet {
    name: String,
    pairs: Arc<HashSet<(String, String)>>,
    signature: Signature,
}

impl PartialEq for PairSet {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.pairs, &other.pairs)
    }
}
impl Eq for PairSet {}
impl Hash for PairSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        (Arc::as_ptr(&self.pairs) as usize).hash(state);
    }
}

impl ScalarUDFImpl for PairSet {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (a, b) = (
            cast(&arrays[0], &DataType::Utf8)?,
            cast(&arrays[1], &DataType::Utf8)?,
        );
        let a = a.as_any().downcast_ref::<StringArray>().expect("Utf8");
        let b = b.as_any().downcast_ref::<StringArray>().expect("Utf8");
        let out: BooleanArray = (0..a.len())
            .map(|i| {
                Some(
                    a.is_valid(i)
                        && b.is_valid(i)
                        && self
                            .pairs
                            .contains(&(a.value(i).to_string(), b.value(i).to_string())),
                )
            })
            .collect();
        if args
            .args
            .iter()
            .all(|v| matches!(v, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(
                out.value(0),
            ))));
        }
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
