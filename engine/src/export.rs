//! Exports of query results to plain files (Parquet, CSV), for tools that do not read Delta.

use datafusion::config::{CsvOptions as DfCsvOptions, TableParquetOptions};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::DataFrame;
use url::Url;

use crate::error::{Error, Result};
use crate::session::Engine;

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One Parquet file (zstd-compressed).
    Parquet,
    /// One CSV file with a header line.
    Csv,
}

impl ExportFormat {
    /// Guesses the format from a file name's extension.
    pub fn from_path(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".parquet") {
            Some(Self::Parquet)
        } else if lower.ends_with(".csv") {
            Some(Self::Csv)
        } else {
            None
        }
    }
}

impl Engine {
    /// Writes the result of `df` to one file at `url`. The file appears whole or not at all:
    /// object stores publish a multipart upload only when it completes, and the local file
    /// system writes to a temporary name that is renamed at the end.
    pub async fn export(&self, df: DataFrame, url: &Url, format: ExportFormat) -> Result<u64> {
        let options = DataFrameWriteOptions::new().with_single_file_output(true);
        let written = match format {
            ExportFormat::Parquet => {
                let mut parquet = TableParquetOptions::default();
                parquet.global.compression = Some("zstd(3)".into());
                df.write_parquet(url.as_str(), options, Some(parquet)).await
            }
            ExportFormat::Csv => {
                let csv = DfCsvOptions::default().with_has_header(true);
                df.write_csv(url.as_str(), options, Some(csv)).await
            }
        }
        .map_err(|e| Error::Write {
            target: url.to_string(),
            source: Box::new(e),
        })?;
        let rows = written
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0);
        Ok(rows)
    }
}
