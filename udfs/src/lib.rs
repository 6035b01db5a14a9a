//! Tessera's SQL functions: identifier normalisation, similarity, phonetics, activation hashing
//! survivorship aggregates and lifetime-value predictions, registered into any DataFusion session by [`register_all`].
//!
//! Every function is total: NULL or malformed input gives NULL (documented per function), never
//! a panic, and one bad row never fails a query. Arguments may be Utf8, LargeUtf8 or Utf8View
//! arrays or scalars; all-scalar calls are computed once.
#![deny(missing_docs)]

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub use datafusion;

pub mod clv;
pub mod date;
pub mod email;
pub mod hash;
pub mod name;
pub mod phone;
pub mod phonetic;
pub mod place;
pub mod similarity;
pub mod survivorship;
pub mod util;

/// Every scalar function of the library.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(email::EmailNormalize::default())),
        Arc::new(ScalarUDF::from(email::EmailCanonical::default())),
        Arc::new(ScalarUDF::from(email::EmailIsValid::default())),
        Arc::new(ScalarUDF::from(email::EmailDomain::default())),
        Arc::new(ScalarUDF::from(phone::PhoneE164::default())),
        Arc::new(ScalarUDF::from(phone::PhoneIsValid::default())),
        Arc::new(ScalarUDF::from(phone::PhoneCountry::default())),
        Arc::new(ScalarUDF::from(phone::PhoneType::default())),
        Arc::new(ScalarUDF::from(phone::PhoneKey::default())),
        Arc::new(ScalarUDF::from(name::NameNormalize::default())),
        Arc::new(ScalarUDF::from(name::NamePart::default())),
        Arc::new(ScalarUDF::from(name::NicknameRoot::default())),
        Arc::new(ScalarUDF::from(name::NamesEquivalent::default())),
        Arc::new(ScalarUDF::from(name::NamesSimilarity::default())),
        Arc::new(ScalarUDF::from(name::NamesConflict::default())),
        Arc::new(ScalarUDF::from(place::CountryCode::default())),
        Arc::new(ScalarUDF::from(place::PostalCodeNormalize::default())),
        Arc::new(ScalarUDF::from(place::StreetNormalize::default())),
        Arc::new(ScalarUDF::from(place::CityNormalize::default())),
        Arc::new(ScalarUDF::from(place::RegionCode::default())),
        Arc::new(ScalarUDF::from(date::ParseDate::default())),
        Arc::new(ScalarUDF::from(hash::Sha256Hex::default())),
        Arc::new(ScalarUDF::from(hash::HashIdentifier::default())),
        Arc::new(ScalarUDF::from(similarity::Jaro::default())),
        Arc::new(ScalarUDF::from(similarity::JaroWinkler::default())),
        Arc::new(ScalarUDF::from(similarity::LevenshteinSimilarity::default())),
        Arc::new(ScalarUDF::from(similarity::DamerauLevenshtein::default())),
        Arc::new(ScalarUDF::from(similarity::JaccardTokens::default())),
        Arc::new(ScalarUDF::from(similarity::TokenSortRatio::default())),
        Arc::new(ScalarUDF::from(similarity::TokenSetRatio::default())),
        Arc::new(ScalarUDF::from(similarity::JaccardQgrams::default())),
        Arc::new(ScalarUDF::from(similarity::LcsRatio::default())),
        Arc::new(ScalarUDF::from(similarity::DaysBetween::default())),
        Arc::new(ScalarUDF::from(similarity::RelativeDifference::default())),
        Arc::new(ScalarUDF::from(phonetic::Soundex::default())),
        Arc::new(ScalarUDF::from(phonetic::DoubleMetaphone::default())),
        Arc::new(ScalarUDF::from(phonetic::DoubleMetaphoneAlt::default())),
        Arc::new(ScalarUDF::from(phonetic::Nysiis::default())),
        Arc::new(ScalarUDF::from(phonetic::DaitchMokotoff::default())),
        Arc::new(ScalarUDF::from(clv::BgNbdPAlive::default())),
        Arc::new(ScalarUDF::from(clv::BgNbdExpectedPurchases::default())),
        Arc::new(ScalarUDF::from(clv::GammaGammaAverageValue::default())),
    ]
}

/// Every aggregate function of the library.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::from(survivorship::LatestValue::default())),
        Arc::new(AggregateUDF::from(survivorship::EarliestValue::default())),
        Arc::new(AggregateUDF::from(survivorship::PriorityValue::default())),
        Arc::new(AggregateUDF::from(survivorship::LongestValue::default())),
        Arc::new(AggregateUDF::from(survivorship::MostFrequent::default())),
        Arc::new(AggregateUDF::from(survivorship::DistinctValues::default())),
    ]
}

/// Registers every Tessera function into `registry` (for example a `SessionContext`).
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for f in scalar_functions() {
        registry.register_udf(f)?;
    }
    for f in aggregate_functions() {
        registry.register_udaf(f)?;
    }
    Ok(())
}
