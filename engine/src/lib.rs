//! The Tessera engine: DataFusion sessions over object storage, sources in Parquet, Delta, CSV
//! and JSON, Delta sinks that commit atomically, and the demo data generator.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tessera_engine::Engine;
//! let engine = Engine::new().unwrap();
//! let df = engine.ctx().sql("select 1 + 1 as two").await.unwrap();
//! let batches = df.collect().await.unwrap();
//! assert_eq!(batches[0].num_rows(), 1);
//! # });
//! ```
#![deny(missing_docs)]

pub mod cluster;
pub mod clv;
pub mod delta;
pub mod demo;
mod error;
pub mod export;
pub mod failpoint;
pub mod identity;
pub mod lenient_csv;
pub mod model;
pub mod privacy;
pub mod scratch;
pub mod session;
pub mod sources;
pub mod sql;
pub mod storage;

pub use datafusion;
pub use delta::{DeltaWrite, PurgeOutcome, TableVersion, WriteMode, WriteOutcome};
pub use deltalake;
pub use error::{Error, Result};
pub use session::{Engine, EngineBuilder, EngineOptions};
pub use sources::{CsvOptions, RegisteredSource, SourceFormat, SourceSpec};
pub use storage::Storage;
pub use tessera_udfs as udfs;
