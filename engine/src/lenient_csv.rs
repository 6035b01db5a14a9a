//! CSV sources read record by record (the `csv` crate), for what DataFusion's CSV reader does
//! not offer: a text encoding other than UTF-8 (`encoding_rs`), and bad rows skipped or set
//! aside in a quarantine table instead of failing the whole source.
//!
//! One convention for places everywhere: a row is named by its file (the path as the user
//! gave it, a URL for object stores) and its **line**, counted from 1 in the file, the header
//! being line 1. A source read this way is loaded into memory the first time a query scans it
//! (once per process), so it suits exports up to a few GB; large clean files are better read by
//! the default reader (`on_error = "fail"`, UTF-8), which streams.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringBuilder};
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{Error, Result};
use crate::sources::SourceSpec;

/// What a source does with a row it cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// The source fails, naming the file, line and reason (the default).
    #[default]
    Fail,
    /// The row is left out; the run reports how many.
    Skip,
    /// The row is left out and kept, with its place and reason, in `quarantine.<source>`.
    Quarantine,
}

impl OnError {
    /// Parses `fail`, `skip` or `quarantine`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fail" => Some(Self::Fail),
            "skip" => Some(Self::Skip),
            "quarantine" => Some(Self::Quarantine),
            _ => None,
        }
    }

    /// The setting's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Skip => "skip",
            Self::Quarantine => "quarantine",
        }
    }
}

/// How bad rows and text encodings are handled for a CSV source.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPolicy {
    /// What a bad row does.
    pub on_error: OnError,
    /// The share of rows that may be rejected (0.0–1.0) before the source fails anyway.
    pub max_error_rate: f64,
    /// The files' text encoding (a WHATWG label: `utf-8`, `latin1`, `windows-1252`...).
    pub encoding: &'static encoding_rs::Encoding,
}

impl Default for RowPolicy {
    fn default() -> Self {
        Self {
            on_error: OnError::Fail,
            max_error_rate: 0.05,
            encoding: encoding_rs::UTF_8,
        }
    }
}

impl RowPolicy {
    /// True when DataFusion's streaming CSV reader does the job (fail on a bad row, UTF-8).
    pub fn is_default_reader(&self) -> bool {
        self.on_error == OnError::Fail && self.encoding == encoding_rs::UTF_8
    }
}

/// A row left out of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The file, as a path for local files, else its URL.
    pub file: String,
    /// The line the row starts on, from 1, the header being line 1.
    pub line: u64,
    /// Why it was left out.
    pub reason: String,
    /// The row's text as read (decoded, invalid bytes replaced).
    pub record: String,
}

/// What one load of a source rejected, kept per source for the run to report and quarantine.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Rows read (accepted and rejected).
    pub rows: u64,
    /// The rows left out.
    pub rejected: Vec<Rejected>,
    /// What the source does with them.
    pub on_error: OnError,
}

/// The loads of this process, by source name: what `tessera run` writes to `quarantine.*`.
#[derive(Debug, Default)]
pub struct RejectLog(Mutex<BTreeMap<String, LoadReport>>);

impl RejectLog {
    fn record(&self, source: &str, report: LoadReport) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(source.to_string(), report);
    }

    /// The reports of the sources loaded so far.
    pub fn reports(&self) -> BTreeMap<String, LoadReport> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A CSV source read by [`load`] on its first scan.
#[derive(Debug)]
pub struct LenientCsvTable {
    spec: SourceSpec,
    policy: RowPolicy,
    store: Arc<dyn ObjectStore>,
    files: Vec<ObjectPath>,
    schema: SchemaRef,
    loaded: tokio::sync::OnceCell<Arc<Vec<RecordBatch>>>,
    log: Arc<RejectLog>,
}

impl LenientCsvTable {
    /// A table over `files`; reads the first file's header for the column names unless the
    /// spec declares its columns (then every column is read as text and cast to its type).
    pub async fn try_new(
        spec: &SourceSpec,
        policy: RowPolicy,
        store: Arc<dyn ObjectStore>,
        files: Vec<ObjectPath>,
        log: Arc<RejectLog>,
    ) -> Result<Self> {
        let schema = match &spec.schema {
            Some(schema) => schema.clone(),
            None => {
                let first = files
                    .first()
                    .ok_or_else(|| source_error(spec, "no files"))?;
                let bytes = read_file(spec, &store, first).await?;
                let header = header_names(spec, &policy, &bytes).map_err(|m| {
                    source_error(spec, format!("{}: {m}", display_file(spec, first)))
                })?;
                Arc::new(Schema::new(
                    header
                        .into_iter()
                        .map(|name| Field::new(name, DataType::Utf8, true))
                        .collect::<Vec<_>>(),
                ))
            }
        };
        Ok(Self {
            spec: spec.clone(),
            policy,
            store,
            files,
            schema,
            loaded: tokio::sync::OnceCell::new(),
            log,
        })
    }

    async fn batches(&self) -> Result<Arc<Vec<RecordBatch>>> {
        self.loaded
            .get_or_try_init(|| async {
                let (batches, report) = load(
                    &self.spec,
                    &self.policy,
                    &self.store,
                    &self.files,
                    &self.schema,
                )
                .await?;
                self.log.record(&self.spec.name, report);
                Ok::<_, Error>(Arc::new(batches))
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl TableProvider for LenientCsvTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batches = self
            .batches()
            .await
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let partitions = vec![batches.as_ref().clone()];
        let exec = MemorySourceConfig::try_new_exec(
            &partitions,
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

fn source_error(spec: &SourceSpec, message: impl Into<String>) -> Error {
    Error::Source {
        name: spec.name.clone(),
        url: spec.url.to_string(),
        message: message.into(),
    }
}

/// A file as people name it: its path for local files, its URL otherwise.
pub fn display_file(spec: &SourceSpec, file: &ObjectPath) -> String {
    let mut url: Url = crate::storage::Storage::root_url(&spec.url);
    url.set_path(&format!("/{file}"));
    if url.scheme() == "file" {
        url.to_file_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| url.to_string())
    } else {
        url.to_string()
    }
}

async fn read_file(
    spec: &SourceSpec,
    store: &Arc<dyn ObjectStore>,
    file: &ObjectPath,
) -> Result<bytes::Bytes> {
    let get = store.get(file).await.map_err(|e| {
        source_error(
            spec,
            format!("cannot read {}: {e}", display_file(spec, file)),
        )
    })?;
    get.bytes().await.map_err(|e| {
        source_error(
            spec,
            format!("cannot read {}: {e}", display_file(spec, file)),
        )
    })
}

fn reader<'a>(spec: &SourceSpec, bytes: &'a [u8]) -> csv::Reader<&'a [u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(spec.csv.delimiter)
        .quote(spec.csv.quote)
        .from_reader(strip_bom(bytes))
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// The column names of a file's header (`column_1`... without one).
fn header_names(
    spec: &SourceSpec,
    policy: &RowPolicy,
    bytes: &[u8],
) -> std::result::Result<Vec<String>, String> {
    let mut records = reader(spec, bytes).into_byte_records();
    let first = match records.next() {
        Some(r) => r.map_err(|e| format!("line 1: {e}"))?,
        None => return Err("the file is empty".into()),
    };
    if !spec.csv.has_header {
        return Ok((1..=first.len()).map(|i| format!("column_{i}")).collect());
    }
    let mut names = Vec::with_capacity(first.len());
    for (i, field) in first.iter().enumerate() {
        let (name, _, bad) = policy.encoding.decode(field);
        if bad {
            return Err(format!(
                "line 1: the header's column {} is not valid {} (set `encoding`)",
                i + 1,
                policy.encoding.name()
            ));
        }
        let name = name.trim().to_string();
        if name.is_empty() {
            return Err(format!("line 1: the header's column {} has no name", i + 1));
        }
        if names.contains(&name) {
            return Err(format!("line 1: the header names column `{name}` twice"));
        }
        names.push(name);
    }
    Ok(names)
}

/// Rows read from text before casting, with where each came from.
struct Pending {
    columns: Vec<StringBuilder>,
    places: Vec<(u64, String)>,
}

impl Pending {
    fn new(width: usize) -> Self {
        Self {
            columns: (0..width).map(|_| StringBuilder::new()).collect(),
            places: Vec::new(),
        }
    }
}

const BATCH_ROWS: usize = 8192;

/// Reads every file: the rows that fit the schema, and a report of those that do not. Fails
/// on the first bad row with `on_error = "fail"`, and when the share rejected passes
/// `max_error_rate`.
pub async fn load(
    spec: &SourceSpec,
    policy: &RowPolicy,
    store: &Arc<dyn ObjectStore>,
    files: &[ObjectPath],
    schema: &SchemaRef,
) -> Result<(Vec<RecordBatch>, LoadReport)> {
    let null_regex = match &spec.csv.null_regex {
        Some(r) => {
            Some(regex::Regex::new(r).map_err(|e| source_error(spec, format!("null_regex: {e}")))?)
        }
        None => None,
    };
    let width = schema.fields().len();
    let mut batches = Vec::new();
    let mut report = LoadReport {
        on_error: policy.on_error,
        ..LoadReport::default()
    };
    for file in files {
        let shown = display_file(spec, file);
        let bytes = read_file(spec, store, file).await?;
        let mut records = reader(spec, &bytes).into_byte_records();
        if spec.csv.has_header {
            records.next();
        }
        let mut pending = Pending::new(width);
        let reject = |report: &mut LoadReport, line: u64, reason: String, record: String| {
            if policy.on_error == OnError::Fail {
                return Err(source_error(
                    spec,
                    format!("{shown}, line {line}: {reason}"),
                ));
            }
            report.rejected.push(Rejected {
                file: shown.clone(),
                line,
                reason,
                record,
            });
            Ok(())
        };
        for record in records {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    report.rows += 1;
                    reject(
                        &mut report,
                        line,
                        format!("unreadable row: {e}"),
                        String::new(),
                    )?;
                    continue;
                }
            };
            report.rows += 1;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let text = || raw_text(policy, &record, spec.csv.delimiter);
            if record.len() != width {
                reject(
                    &mut report,
                    line,
                    format!("expected {width} fields, found {}", record.len()),
                    text(),
                )?;
                continue;
            }
            let mut fields = Vec::with_capacity(width);
            let mut bad = None;
            for (i, raw) in record.iter().enumerate() {
                let (value, malformed) = policy.encoding.decode_without_bom_handling(raw);
                if malformed {
                    bad = Some(format!(
                        "column `{}` is not valid {} text (set `encoding` for this source)",
                        schema.field(i).name(),
                        policy.encoding.name()
                    ));
                    break;
                }
                let is_null =
                    value.is_empty() || null_regex.as_ref().is_some_and(|r| r.is_match(&value));
                fields.push((!is_null).then_some(value));
            }
            if let Some(reason) = bad {
                reject(&mut report, line, reason, text())?;
                continue;
            }
            for (builder, value) in pending.columns.iter_mut().zip(fields) {
                builder.append_option(value);
            }
            // The row's text is kept only where a rejected row is kept with it.
            let kept = if policy.on_error == OnError::Quarantine {
                text()
            } else {
                String::new()
            };
            pending.places.push((line, kept));
            if pending.places.len() >= BATCH_ROWS {
                let full = std::mem::replace(&mut pending, Pending::new(width));
                batches.extend(typed_batch(spec, schema, full, &mut |l, r, t| {
                    reject(&mut report, l, r, t)
                })?);
            }
        }
        if !pending.places.is_empty() {
            batches.extend(typed_batch(spec, schema, pending, &mut |l, r, t| {
                reject(&mut report, l, r, t)
            })?);
        }
    }
    let rejected = report.rejected.len() as u64;
    if rejected > 0 && rejected as f64 > policy.max_error_rate * report.rows as f64 {
        let first = &report.rejected[0];
        return Err(source_error(
            spec,
            format!(
                "{rejected} of {} rows ({:.1}%) cannot be read, more than max_error_rate = {} allows; \
                 the first: {}, line {}: {}",
                report.rows,
                100.0 * rejected as f64 / report.rows.max(1) as f64,
                policy.max_error_rate,
                first.file,
                first.line,
                first.reason
            ),
        ));
    }
    Ok((batches, report))
}

/// The row's fields joined again with the delimiter, decoded (for the quarantine table).
fn raw_text(policy: &RowPolicy, record: &csv::ByteRecord, delimiter: u8) -> String {
    let joined = record.iter().collect::<Vec<_>>().join(&delimiter);
    policy.encoding.decode(&joined).0.into_owned()
}

/// Casts the text columns to the schema's types; rows with a value that does not convert are
/// rejected (`reject` may fail the load).
fn typed_batch(
    spec: &SourceSpec,
    schema: &SchemaRef,
    mut pending: Pending,
    reject: &mut dyn FnMut(u64, String, String) -> Result<()>,
) -> Result<Option<RecordBatch>> {
    let rows = pending.places.len();
    let mut keep = vec![true; rows];
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let safe = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    for (field, builder) in schema.fields().iter().zip(pending.columns.iter_mut()) {
        let text: ArrayRef = Arc::new(builder.finish());
        if field.data_type() == &DataType::Utf8 {
            columns.push(text);
            continue;
        }
        let typed = cast_with_options(&text, field.data_type(), &safe)
            .map_err(|e| source_error(spec, format!("column `{}`: {e}", field.name())))?;
        let strings = text
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .expect("built as strings");
        for (row, keep) in keep.iter_mut().enumerate() {
            if *keep && strings.is_valid(row) && typed.is_null(row) {
                *keep = false;
                let (line, record) = &pending.places[row];
                reject(
                    *line,
                    format!(
                        "column `{}`: `{}` is not a {}",
                        field.name(),
                        truncate(strings.value(row), 60),
                        type_name(field.data_type())
                    ),
                    record.clone(),
                )?;
            }
        }
        columns.push(typed);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    if keep.iter().all(|k| *k) {
        return Ok(Some(batch));
    }
    let mask = BooleanArray::from(keep);
    Ok(Some(filter_record_batch(&batch, &mask)?))
}

/// A type as `columns = [...]` names it.
fn type_name(ty: &DataType) -> String {
    match ty {
        DataType::Boolean => "boolean".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float64 => "double".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        other => other.to_string(),
    }
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
