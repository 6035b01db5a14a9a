//! Tessera's SQL functions: identifier normalisation, similarity, phonetics, activation hashing
//! and survivorship aggregates, registered into any DataFusion session by [`register_all`].
#![deny(missing_docs)]

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub use datafusion;

/// Every scalar function of the library.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    Vec::new()
}

/// Every aggregate function of the library.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    Vec::new()
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
