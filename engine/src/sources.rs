//! Sources: tables registered from files or Delta tables where they already are.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use futures::TryStreamExt;
use url::Url;

use crate::delta::TableVersion;
use crate::error::{Error, Result};
use crate::session::Engine;
use crate::storage::{Storage, has_glob};

/// The file or table format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// Apache Parquet files: one file, a folder, a glob, hive-partitioned folders.
    Parquet,
    /// A Delta Lake table (latest, or a given version or timestamp).
    Delta,
    /// Delimited text files.
    Csv,
    /// Newline-delimited JSON.
    Json,
}

impl SourceFormat {
    /// Every format, with the name used in `tessera.toml`.
    pub const ALL: [(&'static str, SourceFormat); 4] = [
        ("parquet", SourceFormat::Parquet),
        ("delta", SourceFormat::Delta),
        ("csv", SourceFormat::Csv),
        ("json", SourceFormat::Json),
    ];

    /// Parses a format name (`parquet`, `delta`, `csv`, `json`/`ndjson`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" => Some(SourceFormat::Json),
            lower => Self::ALL.iter().find(|(n, _)| *n == lower).map(|(_, f)| *f),
        }
    }

    /// The name used in `tessera.toml`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    fn default_extension(self) -> &'static str {
        match self {
            SourceFormat::Parquet | SourceFormat::Delta => ".parquet",
            SourceFormat::Csv => ".csv",
            SourceFormat::Json => ".json",
        }
    }
}

/// How delimited text is read.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Whether the first line holds column names.
    pub has_header: bool,
    /// The field delimiter.
    pub delimiter: u8,
    /// The quote character.
    pub quote: u8,
    /// A regular expression for values read as NULL (e.g. `^(NULL|)$`).
    pub null_regex: Option<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            has_header: true,
            delimiter: b',',
            quote: b'"',
            null_regex: None,
        }
    }
}

/// A source to register: a name, a location and how to read it.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The table name in SQL.
    pub name: String,
    /// Where the data is: a file, a folder, a glob, or a Delta table root.
    pub url: Url,
    /// How to read it.
    pub format: SourceFormat,
    /// Delimited-text options (CSV only).
    pub csv: CsvOptions,
    /// An explicit schema; inferred from the files when `None`.
    pub schema: Option<SchemaRef>,
    /// Hive partition columns (`year=2024/month=05/...`); inferred from the paths when `None`.
    pub partition_columns: Option<Vec<(String, DataType)>>,
    /// The extension of the files to read in a folder; the format's usual one when `None`.
    pub file_extension: Option<String>,
    /// Which version of a Delta table to read.
    pub version: TableVersion,
    /// Bad rows and text encoding (CSV only): anything but the default reads the files row by
    /// row (see [`crate::lenient_csv`]).
    pub rows: crate::lenient_csv::RowPolicy,
}

impl SourceSpec {
    /// A source with default options.
    pub fn new(name: impl Into<String>, url: Url, format: SourceFormat) -> Self {
        Self {
            name: name.into(),
            url,
            format,
            csv: CsvOptions::default(),
            schema: None,
            partition_columns: None,
            file_extension: None,
            version: TableVersion::Latest,
            rows: crate::lenient_csv::RowPolicy::default(),
        }
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Source {
            name: self.name.clone(),
            url: self.url.to_string(),
            message: message.into(),
        }
    }

    fn file_format(&self) -> Arc<dyn FileFormat> {
        match self.format {
            SourceFormat::Csv => Arc::new(
                CsvFormat::default()
                    .with_has_header(self.csv.has_header)
                    .with_delimiter(self.csv.delimiter)
                    .with_quote(self.csv.quote)
                    .with_null_regex(self.csv.null_regex.clone()),
            ),
            SourceFormat::Json => Arc::new(JsonFormat::default()),
            SourceFormat::Parquet | SourceFormat::Delta => Arc::new(ParquetFormat::default()),
        }
    }

    /// True when the location names a folder or a glob rather than one file.
    fn is_collection(&self) -> bool {
        self.url.path().ends_with('/') || has_glob(self.url.path())
    }
}

/// What was registered: the table's schema and, for Delta, its version.
#[derive(Debug, Clone)]
pub struct RegisteredSource {
    /// The table's schema as SQL sees it.
    pub schema: SchemaRef,
    /// The Delta version read, for Delta sources.
    pub delta_version: Option<u64>,
    /// The number of data files behind the table.
    pub files: usize,
}

impl Engine {
    /// Registers `spec` as a table named `spec.name`, replacing any table of that name.
    pub async fn register_source(&self, spec: &SourceSpec) -> Result<RegisteredSource> {
        let (provider, registered) = self.source_provider(spec).await?;
        let reference = TableReference::bare(spec.name.as_str());
        self.ctx().deregister_table(reference.clone())?;
        self.ctx().register_table(reference, provider)?;
        Ok(registered)
    }

    /// Builds the table provider for a source without registering it.
    pub async fn source_provider(
        &self,
        spec: &SourceSpec,
    ) -> Result<(Arc<dyn TableProvider>, RegisteredSource)> {
        match spec.format {
            SourceFormat::Delta => {
                let table = self
                    .open_delta(&spec.url, spec.version.clone())
                    .await
                    .map_err(|e| spec.error(e.to_string()))?;
                let version = table.version();
                let files = table
                    .snapshot()
                    .map(|s| s.log_data().num_files())
                    .unwrap_or(0);
                let provider = self.delta_provider(&table).await?;
                let registered = RegisteredSource {
                    schema: provider.schema(),
                    delta_version: version,
                    files,
                };
                Ok((provider, registered))
            }
            _ => {
                if !matches!(spec.version, TableVersion::Latest) {
                    return Err(spec.error(format!(
                        "a version or timestamp can only be read from a Delta source, not {}",
                        spec.format.name()
                    )));
                }
                if spec.format == SourceFormat::Csv && !spec.rows.is_default_reader() {
                    return self.lenient_table(spec).await;
                }
                let (table, files) = self.listing_table(spec).await?;
                let registered = RegisteredSource {
                    schema: table.schema(),
                    delta_version: None,
                    files,
                };
                Ok((Arc::new(table), registered))
            }
        }
    }

    /// A CSV source read row by row: bad rows skipped or quarantined, any text encoding.
    async fn lenient_table(
        &self,
        spec: &SourceSpec,
    ) -> Result<(Arc<dyn TableProvider>, RegisteredSource)> {
        let (_, files) = self.list_source_files(spec).await?;
        let store = self.store_for(&spec.url)?;
        let paths = files.into_iter().map(|f| f.location).collect::<Vec<_>>();
        let count = paths.len();
        let table = crate::lenient_csv::LenientCsvTable::try_new(
            spec,
            spec.rows.clone(),
            store,
            paths,
            self.reject_log().clone(),
        )
        .await?;
        let registered = RegisteredSource {
            schema: table.schema(),
            delta_version: None,
            files: count,
        };
        Ok((Arc::new(table), registered))
    }

    /// The files of a file-based source (an error naming it when there are none), and the
    /// extension looked for.
    async fn list_source_files(
        &self,
        spec: &SourceSpec,
    ) -> Result<(String, Vec<object_store::ObjectMeta>)> {
        let state = self.ctx().state();
        let table_url =
            listing_url(&spec.url).map_err(|e| spec.error(format!("not a valid location: {e}")))?;
        let extension = match &spec.file_extension {
            Some(ext) => ext.clone(),
            None if spec.is_collection() => spec.format.default_extension().to_string(),
            None => String::new(),
        };
        let store = self.store_for(&spec.url)?;
        let mut files: Vec<_> = table_url
            .list_all_files(&state, store.as_ref(), &extension)
            .await
            .map_err(|e| spec.error(format!("cannot list files: {e}")))?
            .try_collect()
            .await
            .map_err(|e| spec.error(format!("cannot list files: {e}")))?;
        if files.is_empty() {
            let what = if spec.is_collection() {
                format!("no `*{extension}` files found")
            } else {
                "the file does not exist".to_string()
            };
            return Err(spec.error(what));
        }
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Ok((extension, files))
    }

    async fn listing_table(&self, spec: &SourceSpec) -> Result<(ListingTable, usize)> {
        let state = self.ctx().state();
        let table_url =
            listing_url(&spec.url).map_err(|e| spec.error(format!("not a valid location: {e}")))?;
        let store = self.store_for(&spec.url)?;
        let (extension, files) = self.list_source_files(spec).await?;
        let format = spec.file_format();
        let mut options = ListingOptions::new(format.clone()).with_file_extension(&extension);
        let partitions = match &spec.partition_columns {
            Some(cols) => cols.clone(),
            None if spec.is_collection() => options
                .infer_partitions(&state, &table_url)
                .await
                .map_err(|e| spec.error(format!("cannot infer partitions: {e}")))?
                .into_iter()
                .map(|name| (name, DataType::Utf8))
                .collect(),
            None => Vec::new(),
        };
        options = options.with_table_partition_cols(partitions);
        let schema = match &spec.schema {
            Some(schema) => schema.clone(),
            None => match options.infer_schema(&state, &table_url).await {
                Ok(schema) => schema,
                Err(e) => {
                    // Infer file by file: names the file that cannot be read, and reconciles
                    // files whose types drifted compatibly (Utf8 / Utf8View, Int32 / Int64...).
                    let mut schemas = Vec::with_capacity(files.len());
                    for file in &files {
                        match format
                            .infer_schema(&state, &store, std::slice::from_ref(file))
                            .await
                        {
                            Ok(schema) => schemas.push((file.location.to_string(), schema)),
                            Err(file_err) => {
                                return Err(spec.error(format!(
                                    "cannot read file {}: {file_err}",
                                    crate::lenient_csv::display_file(spec, &file.location)
                                )));
                            }
                        }
                    }
                    match merge_drifted_schemas(&schemas) {
                        Ok(schema) => Arc::new(schema),
                        Err(drift) => {
                            return Err(
                                spec.error(format!("cannot infer the schema: {drift} ({e})"))
                            );
                        }
                    }
                }
            },
        };
        // On a cluster, strings are read as plain strings even where the files' Arrow schema
        // says views (see `scratch::plain_schema`): shuffles and results stay their size.
        let schema = if crate::cluster::OnCluster::of(self.ctx()).is_some() {
            crate::scratch::plain_schema(&schema)
        } else {
            schema
        };
        let config = ListingTableConfig::new(table_url)
            .with_listing_options(options)
            .with_schema(schema);
        let table = ListingTable::try_new(config)?;
        Ok((table, files.len()))
    }

    /// Finds which file of a file-based source fails to read, by scanning its files one at a
    /// time. Used after a query fails to point at the file (and, for CSV, the line) at fault.
    pub async fn locate_read_error(&self, spec: &SourceSpec) -> Option<(String, String)> {
        if spec.format == SourceFormat::Delta {
            return None;
        }
        let state = self.ctx().state();
        let (table, _) = self.listing_table(spec).await.ok()?;
        // Partition values live in the paths: a single file has only the other columns.
        let partition_names: Vec<&String> = table
            .options()
            .table_partition_cols
            .iter()
            .map(|(name, _)| name)
            .collect();
        let full = table.schema();
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            full.fields()
                .iter()
                .filter(|f| !partition_names.contains(&f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let table_url = ListingTableUrl::parse(spec.url.as_str()).ok()?;
        let store = self.store_for(&spec.url).ok()?;
        let extension = table.options().file_extension.clone();
        let files: Vec<_> = table_url
            .list_all_files(&state, store.as_ref(), &extension)
            .await
            .ok()?
            .try_collect()
            .await
            .ok()?;
        for file in files {
            let mut file_url = Storage::root_url(&spec.url);
            file_url.set_path(&format!("/{}", file.location));
            let one = SourceSpec {
                url: file_url,
                schema: Some(schema.clone()),
                partition_columns: Some(Vec::new()),
                file_extension: Some(String::new()),
                ..spec.clone()
            };
            let Ok((table, _)) = self.listing_table(&one).await else {
                continue;
            };
            let Ok(df) = self.ctx().read_table(Arc::new(table)) else {
                continue;
            };
            if let Err(e) = df.collect().await {
                return Some((
                    crate::lenient_csv::display_file(spec, &file.location),
                    e.to_string(),
                ));
            }
        }
        None
    }
}

/// Parses a timestamp for Delta time travel: RFC 3339 or a plain date.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(ts) = DateTime::parse_from_rfc3339(text) {
        return Some(ts.with_timezone(&Utc));
    }
    if let Ok(ts) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Some(ts.and_utc());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// A listing URL for `url`; a glob in its path (`…/exports/*.csv`, `…/day=2026-*/`) becomes the
/// listing's pattern below the folder that precedes it, for every kind of store.
fn listing_url(url: &Url) -> datafusion::error::Result<ListingTableUrl> {
    let path = url.path();
    let Some(glob_at) = path.find(['*', '?', '[']) else {
        return ListingTableUrl::try_new(url.clone(), None);
    };
    let folder_end = path[..glob_at].rfind('/').map_or(0, |i| i + 1);
    let pattern = crate::storage::percent_decode(&path[folder_end..]);
    let pattern = glob::Pattern::new(pattern.trim_end_matches('/'))
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    let mut base = url.clone();
    base.set_path(&path[..folder_end]);
    ListingTableUrl::try_new(base, Some(pattern))
}

/// Merges the schemas of a source's files whose column types drifted in compatible ways: string
/// encodings (Utf8, LargeUtf8, Utf8View), binary encodings, integer widths, integers with floats.
/// Incompatible drift is an error naming the column and both files.
fn merge_drifted_schemas(
    schemas: &[(String, SchemaRef)],
) -> std::result::Result<datafusion::arrow::datatypes::Schema, String> {
    use datafusion::arrow::datatypes::{Field, Schema};
    let mut fields: Vec<(Field, &str)> = Vec::new();
    for (file, schema) in schemas {
        for field in schema.fields() {
            match fields.iter_mut().find(|(f, _)| f.name() == field.name()) {
                None => fields.push((field.as_ref().clone().with_nullable(true), file)),
                Some((existing, first_file)) => {
                    let merged =
                        reconcile(existing.data_type(), field.data_type()).ok_or_else(|| {
                            format!(
                                "column `{}` is {} in {first_file} but {} in {file}",
                                field.name(),
                                existing.data_type(),
                                field.data_type()
                            )
                        })?;
                    *existing = existing.clone().with_data_type(merged);
                }
            }
        }
    }
    Ok(Schema::new(
        fields.into_iter().map(|(f, _)| f).collect::<Vec<_>>(),
    ))
}

fn reconcile(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    let string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let binary = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView);
    let rank = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    match (a, b) {
        _ if a == b => Some(a.clone()),
        (Null, t) | (t, Null) => Some(t.clone()),
        _ if string(a) && string(b) => Some(Utf8View),
        _ if binary(a) && binary(b) => Some(BinaryView),
        _ if rank(a).is_some() && rank(b).is_some() => Some(if rank(a) >= rank(b) {
            a.clone()
        } else {
            b.clone()
        }),
        _ if (a.is_integer() || a.is_floating()) && (b.is_integer() || b.is_floating()) => {
            Some(Float64)
        }
        (Timestamp(_, tz_a), Timestamp(_, tz_b)) if tz_a == tz_b => Some(Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            tz_a.clone(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod drift_tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), false))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn compatible_drift_is_reconciled_and_new_columns_are_nullable() {
        let merged = merge_drifted_schemas(&[
            (
                "a.parquet".into(),
                schema(&[("id", DataType::Utf8), ("n", DataType::Int32)]),
            ),
            (
                "b.parquet".into(),
                schema(&[
                    ("id", DataType::Utf8View),
                    ("n", DataType::Int64),
                    ("x", DataType::Float32),
                ]),
            ),
        ])
        .unwrap();
        assert_eq!(merged.field(0).data_type(), &DataType::Utf8View);
        assert_eq!(merged.field(1).data_type(), &DataType::Int64);
        assert!(merged.field(2).is_nullable());
    }

    #[test]
    fn incompatible_drift_names_the_column_and_both_files() {
        let err = merge_drifted_schemas(&[
            ("a.parquet".into(), schema(&[("amount", DataType::Int64)])),
            ("b.parquet".into(), schema(&[("amount", DataType::Utf8)])),
        ])
        .unwrap_err();
        assert!(
            err.contains("`amount`") && err.contains("a.parquet") && err.contains("b.parquet"),
            "{err}"
        );
    }
}
