//! The engine's error type: every variant says what failed and where (source, table, URL, key).

use std::path::PathBuf;

/// Errors raised by the Tessera engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model cannot be trained on what its query returned.
    #[error("cannot train the model: {message}")]
    InvalidModel {
        /// What is wrong.
        message: String,
    },
    /// A location is not a URL or path Tessera can use.
    #[error("invalid location `{location}`: {message}")]
    InvalidLocation {
        /// The location as written.
        location: String,
        /// What is wrong with it.
        message: String,
    },

    /// An object store could not be configured for a URL.
    #[error("cannot configure storage for {url}: {source}")]
    Storage {
        /// The URL whose store failed.
        url: String,
        /// The object store error.
        #[source]
        source: object_store::Error,
    },

    /// A source could not be registered.
    #[error("source `{name}` ({url}): {message}")]
    Source {
        /// The source's name in `tessera.toml`.
        name: String,
        /// Its URL.
        url: String,
        /// What went wrong.
        message: String,
    },

    /// A Delta table operation failed.
    #[error("Delta table {url}: {source}")]
    Delta {
        /// The table's URL.
        url: String,
        /// The delta-rs error.
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },

    /// There is no Delta table at a location (no `_delta_log` commits).
    #[error("no Delta table at {url} (no _delta_log commits found)")]
    NoDeltaTable {
        /// The location.
        url: String,
    },

    /// A requested Delta version or timestamp does not exist.
    #[error("Delta table {url}: {message}")]
    DeltaVersion {
        /// The table's URL.
        url: String,
        /// Which version or timestamp was asked for and what exists.
        message: String,
    },

    /// Writing a query result failed; the target is unchanged.
    #[error("writing {target} failed, the previous version is unchanged: {source}")]
    Write {
        /// The target URL.
        target: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The Ballista cluster refused or failed a request.
    #[error("cluster: {0}")]
    Cluster(String),

    /// Identity resolution cannot run as configured (the message names the setting).
    #[error("identity resolution: {0}")]
    Identity(String),

    /// A query failed to plan or execute.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// An Arrow error outside of a query (for example while generating data).
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    /// A Parquet encoding error outside of a query.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// An object store error outside of a query.
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),

    /// An IO error with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn delta(url: impl ToString, source: deltalake::DeltaTableError) -> Self {
        Error::Delta {
            url: url.to_string(),
            source: Box::new(source),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
