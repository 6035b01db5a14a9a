//! Survivorship aggregates for golden records: which value of a customer's records survives.
//! NULL values never survive; ties are broken deterministically (the smallest value wins), so a
//! golden record is the same on every run whatever the row order.

mod aggregate;
mod best;
mod distinct;
mod most_frequent;
mod tally;

pub use best::{EarliestValue, LatestValue, LongestValue, PriorityValue};
pub use distinct::DistinctValues;
pub use most_frequent::MostFrequent;
