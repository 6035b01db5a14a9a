//! The project file `tessera.toml`: what a project reads, where it writes, how the engine is
//! sized. Parsing is strict: an unknown key or a value of the wrong type is an error that names
//! the key and its line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tessera_engine::datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use tessera_engine::sources::parse_timestamp;
use tessera_engine::storage::{parse_duration, resolve_location, validate_storage_option};
use tessera_engine::{
    CsvOptions, Engine, EngineOptions, SourceFormat, SourceSpec, Storage, TableVersion,
};
use url::Url;

/// The name of the project file.
pub const PROJECT_FILE: &str = "tessera.toml";

/// Errors in the project file, each naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// No project file where one was expected.
    #[error("no {PROJECT_FILE} in {dir} (create one with `tessera init {dir}`)")]
    Missing {
        /// The project folder.
        dir: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a wrong type; the message names key, line and column.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key whose value is not acceptable.
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key, such as `sources.crm.format`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl From<ProjectError> for crate::errors::Error {
    fn from(e: ProjectError) -> Self {
        crate::errors::Error::typed(crate::errors::ErrorKind::Usage, e)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProject {
    #[serde(default)]
    project: RawProjectSection,
    #[serde(default)]
    engine: RawEngine,
    #[serde(default)]
    storage: BTreeMap<String, toml::Value>,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    jobs: BTreeMap<String, BTreeMap<String, toml::Value>>,
    #[serde(default)]
    schedules: BTreeMap<String, RawSchedule>,
    #[serde(default)]
    identity: Option<tessera_engine::identity::IdentityConfig>,
    #[serde(default)]
    audiences: BTreeMap<String, crate::audience::AudienceDecl>,
    #[serde(default)]
    privacy: PrivacyConfig,
    #[serde(default)]
    quality: QualityConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    cron: String,
    #[serde(default)]
    select: Vec<String>,
    #[serde(default)]
    full_refresh: bool,
    description: Option<String>,
}

/// A selection run on a cron expression by `tessera schedule`.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The schedule's name (`[schedules.<name>]`).
    pub name: String,
    /// A cron expression: 5 fields (minute granularity) or 6 (seconds first), UTC.
    pub cron: String,
    /// Selectors as for `tessera run --select` (all jobs when empty).
    pub select: Vec<String>,
    /// Run with `--full-refresh`.
    pub full_refresh: bool,
    /// What it is for.
    pub description: Option<String>,
}

/// Job settings `tessera.toml` may give (`[jobs."schema.table"]`), as in a job's header
/// (`tests` is a list of `@test` values).
pub const JOB_SETTINGS: &[&str] = &[
    "materialized",
    "unique_key",
    "watermark",
    "partition_by",
    "tags",
    "description",
    "grain",
    "tests",
    "subject",
];

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProjectSection {
    name: Option<String>,
    warehouse: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    memory_limit: Option<String>,
    spill_dir: Option<String>,
    target_partitions: Option<i64>,
    batch_size: Option<i64>,
    cluster: Option<String>,
    cluster_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    url: String,
    format: String,
    description: Option<String>,
    // CSV
    has_header: Option<bool>,
    delimiter: Option<String>,
    quote: Option<String>,
    null_regex: Option<String>,
    encoding: Option<String>,
    on_error: Option<String>,
    max_error_rate: Option<f64>,
    // Files
    columns: Option<Vec<String>>,
    partition_columns: Option<Vec<String>>,
    file_extension: Option<String>,
    // Delta
    version: Option<i64>,
    timestamp: Option<String>,
    // Privacy: how rows name a person beyond their column names (`kind: SQL`).
    #[serde(default)]
    subject: Vec<String>,
}

/// `encoding`, `on_error` and `max_error_rate` of a CSV source; the key at fault on error.
fn row_policy(
    raw: &RawSource,
) -> std::result::Result<tessera_engine::lenient_csv::RowPolicy, (&'static str, String)> {
    use tessera_engine::lenient_csv::{OnError, RowPolicy};
    let mut policy = RowPolicy::default();
    if let Some(label) = &raw.encoding {
        policy.encoding =
            encoding_rs::Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
                (
                    "encoding",
                    format!(
                        "unknown encoding `{label}` (e.g. utf-8, latin1, windows-1252, utf-16le)"
                    ),
                )
            })?;
    }
    if let Some(on_error) = &raw.on_error {
        policy.on_error = OnError::parse(on_error).ok_or_else(|| {
            (
                "on_error",
                format!("`{on_error}` is not fail, skip or quarantine"),
            )
        })?;
    }
    if let Some(rate) = raw.max_error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err((
                "max_error_rate",
                format!("{rate} is not a share between 0 and 1 (0.01 = 1% of the rows)"),
            ));
        }
        if policy.on_error == OnError::Fail {
            return Err((
                "max_error_rate",
                "only applies with on_error = \"skip\" or \"quarantine\"".into(),
            ));
        }
        policy.max_error_rate = rate;
    }
    Ok(policy)
}

/// The checks of the identity records `[quality] fail_on` names.
pub const QUALITY_CHECKS: [&str; 4] = ["empty_column", "fill_drop", "long_values", "row_change"];

/// `[quality]`: bounds of the checks made on the identity records before each resolution
/// (see the `quality` module), and which of them fail the job instead of warning.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// A name or identifier value longer than this many characters is reported.
    pub max_value_length: u64,
    /// A source whose records change by more than this share since the last run is reported.
    pub max_row_change: f64,
    /// A column whose fill rate falls by more than this share since the last run is reported.
    pub max_fill_drop: f64,
    /// Kinds that fail the job: `empty_column`, `fill_drop`, `long_values`, `row_change`, or `all`.
    pub fail_on: Vec<String>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            max_value_length: 256,
            max_row_change: 0.5,
            max_fill_drop: 0.5,
            fail_on: Vec::new(),
        }
    }
}

impl QualityConfig {
    /// True when warnings of `kind` fail the job.
    pub fn fails_on(&self, kind: &str) -> bool {
        self.fail_on.iter().any(|k| k == kind || k == "all")
    }
}

fn validated_quality(q: QualityConfig) -> std::result::Result<QualityConfig, (String, String)> {
    for (i, kind) in q.fail_on.iter().enumerate() {
        if kind != "all" && !QUALITY_CHECKS.contains(&kind.as_str()) {
            return Err((
                format!("quality.fail_on[{i}]"),
                format!(
                    "unknown check `{kind}` (expected all, {})",
                    QUALITY_CHECKS.join(", ")
                ),
            ));
        }
    }
    // A record count may grow by more than 100%; a fill rate cannot fall by more.
    if q.max_row_change.is_nan() || q.max_row_change < 0.0 {
        return Err((
            "quality.max_row_change".into(),
            format!("{} is not a share (0.5 = 50%)", q.max_row_change),
        ));
    }
    if !(0.0..=1.0).contains(&q.max_fill_drop) {
        return Err((
            "quality.max_fill_drop".into(),
            format!(
                "{} is not a share between 0 and 1 (0.5 = half)",
                q.max_fill_drop
            ),
        ));
    }
    Ok(q)
}

/// A source as declared in the project.
#[derive(Debug, Clone)]
pub struct SourceDecl {
    /// How to register it.
    pub spec: SourceSpec,
    /// A description for `tessera tables`.
    pub description: Option<String>,
    /// How a row names a person beyond what its column names say (`subject = ["kind: SQL"]`).
    pub subject: Vec<(tessera_engine::privacy::IdentifierKind, String)>,
}

/// A loaded, validated project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project's folder (relative paths in the file resolve against it).
    pub dir: PathBuf,
    /// The project's name.
    pub name: String,
    /// Where Tessera writes its tables.
    pub warehouse: Url,
    /// Engine sizing.
    pub engine: EngineOptions,
    /// Object store options (endpoint, region, credentials...).
    pub storage: BTreeMap<String, String>,
    /// Sources by name.
    pub sources: BTreeMap<String, SourceDecl>,
    /// Job settings by job name: `(setting, value)` in the header syntax.
    pub jobs: BTreeMap<String, Vec<(String, String)>>,
    /// Schedules by name.
    pub schedules: BTreeMap<String, Schedule>,
    /// Identity resolution settings (`[identity]`), read by the `@materialized: identity` job.
    pub identity: Option<tessera_engine::identity::IdentityConfig>,
    /// Audiences for reverse-ETL (`[audiences.<name>]`): each becomes a job `audiences.<name>`.
    pub audiences: BTreeMap<String, crate::audience::AudienceDecl>,
    /// Erasure, suppression, retention and pseudonymisation settings (`[privacy]`).
    pub privacy: PrivacyConfig,
    /// `[quality]`: checks of the identity records.
    pub quality: QualityConfig,
}

/// Parses sizes such as `4GiB`, `512MB`, `2g` or a plain number of bytes.
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        _ => return None,
    };
    let bytes = number * factor;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as usize)
}

/// Parses a column type as written in `columns = ["id: string", "amount: decimal(12,2)"]`.
pub fn parse_type(text: &str) -> Option<DataType> {
    let t = text.trim().to_ascii_lowercase();
    Some(match t.as_str() {
        "string" | "utf8" | "text" | "varchar" => DataType::Utf8,
        "bool" | "boolean" => DataType::Boolean,
        "int" | "int32" | "integer" => DataType::Int32,
        "bigint" | "int64" | "long" => DataType::Int64,
        "smallint" | "int16" => DataType::Int16,
        "float" | "float32" | "real" => DataType::Float32,
        "double" | "float64" => DataType::Float64,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" | "timestamp with time zone" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        other => {
            let inner = other.strip_prefix("decimal(")?.strip_suffix(')')?;
            let (p, s) = inner.split_once(',')?;
            let p: u8 = p.trim().parse().ok()?;
            let s: i8 = s.trim().parse().ok()?;
            if p == 0 || p > 38 || s < 0 || s as u8 > p {
                return None;
            }
            DataType::Decimal128(p, s)
        }
    })
}

fn single_byte(value: &str) -> Option<u8> {
    let value = if value == "\\t" { "\t" } else { value };
    (value.len() == 1).then(|| value.as_bytes()[0])
}

impl Project {
    /// Loads `dir/tessera.toml`.
    pub fn load(dir: &Path) -> Result<Self, ProjectError> {
        let path = dir.join(PROJECT_FILE);
        if !path.exists() {
            return Err(ProjectError::Missing {
                dir: dir.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ProjectError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, dir, &path)
    }

    /// A project with no file: the folder's defaults (a local `warehouse/`, no sources).
    pub fn default_for(dir: &Path) -> Result<Self, ProjectError> {
        Self::parse("", dir, &dir.join(PROJECT_FILE))
    }

    /// Parses project text; `dir` anchors relative paths, `path` is used in messages.
    pub fn parse(text: &str, dir: &Path, path: &Path) -> Result<Self, ProjectError> {
        let raw: RawProject = toml::from_str(text).map_err(|e| ProjectError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |key: String, message: String| ProjectError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|cwd| cwd.join(dir))
                .unwrap_or_else(|_| dir.to_path_buf())
        };

        let name = raw.project.name.unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "tessera".into())
        });
        let warehouse_text = raw.project.warehouse.unwrap_or_else(|| "warehouse".into());
        let warehouse = resolve_location(&warehouse_text, &dir, true)
            .map_err(|e| invalid("project.warehouse".into(), e.to_string()))?;

        let mut engine = engine_options(&raw.engine, &dir).map_err(|(k, m)| invalid(k, m))?;
        // On a cluster, identity's intermediate tables go where the executors read them.
        engine.cluster_scratch = Url::parse(&format!(
            "{}/_tessera/scratch/",
            warehouse.as_str().trim_end_matches('/')
        ))
        .ok();
        let storage = storage_options(raw.storage).map_err(|(k, m)| invalid(k, m))?;
        let mut sources = BTreeMap::new();
        for (name, raw) in raw.sources {
            let source = source_decl(&name, raw, &dir).map_err(|(k, m)| invalid(k, m))?;
            sources.insert(name, source);
        }
        let jobs = job_settings(raw.jobs).map_err(|(k, m)| invalid(k, m))?;
        let schedules = schedules(raw.schedules).map_err(|(k, m)| invalid(k, m))?;

        Ok(Project {
            dir,
            name,
            warehouse,
            engine,
            storage,
            sources,
            jobs,
            schedules,
            identity: raw.identity,
            audiences: raw.audiences,
            privacy: raw.privacy.validated(&|k, m| invalid(k, m))?,
            quality: validated_quality(raw.quality).map_err(|(k, m)| invalid(k, m))?,
        })
    }

    /// Builds the engine this project runs on.
    pub fn engine(&self) -> tessera_engine::Result<Engine> {
        Engine::builder()
            .with_options(self.engine.clone())
            .with_storage(Storage::new(self.storage.clone()))
            .build()
    }
}

/// A key of `tessera.toml` and what is wrong with its value.
type Invalid = (String, String);

fn bad(key: String, message: String) -> Invalid {
    (key, message)
}

/// `[engine]`.
fn engine_options(raw: &RawEngine, dir: &Path) -> Result<EngineOptions, Invalid> {
    let mut engine = EngineOptions::default();
    if let Some(limit) = &raw.memory_limit {
        engine.memory_limit = Some(parse_size(limit).ok_or_else(|| {
            bad(
                "engine.memory_limit".into(),
                format!("`{limit}` is not a size such as 4GiB or 512MB"),
            )
        })?);
    }
    if let Some(spill) = &raw.spill_dir {
        engine.spill_dir = Some(dir.join(spill));
    }
    if let Some(n) = raw.target_partitions {
        if !(1..=1024).contains(&n) {
            return Err(bad(
                "engine.target_partitions".into(),
                format!("{n} is not between 1 and 1024"),
            ));
        }
        engine.target_partitions = Some(n as usize);
    }
    if let Some(n) = raw.batch_size {
        if !(1..=1_048_576).contains(&n) {
            return Err(bad(
                "engine.batch_size".into(),
                format!("{n} is not between 1 and 1048576"),
            ));
        }
        engine.batch_size = Some(n as usize);
    }
    if let Some(cluster) = raw.cluster.as_deref().filter(|c| !c.trim().is_empty()) {
        engine.cluster = Some(
            tessera_engine::cluster::ClusterAddress::parse(cluster.trim())
                .map_err(|e| bad("engine.cluster".into(), e.to_string()))?,
        );
    }
    if let Some(timeout) = &raw.cluster_timeout {
        engine.cluster_timeout = Some(humantime::parse_duration(timeout).map_err(|e| {
            bad(
                "engine.cluster_timeout".into(),
                format!("`{timeout}` is not a duration such as 30m or 2h: {e}"),
            )
        })?);
    }
    Ok(engine)
}

/// `[storage]`: object-store options, as text.
fn storage_options(
    raw: BTreeMap<String, toml::Value>,
) -> Result<BTreeMap<String, String>, Invalid> {
    let mut storage = BTreeMap::new();
    for (key, value) in raw {
        validate_storage_option(&key).map_err(|m| bad(format!("storage.{key}"), m))?;
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Integer(i) => i.to_string(),
            other => {
                return Err(bad(
                    format!("storage.{key}"),
                    format!(
                        "expected a string, a number or a boolean, found {}",
                        other.type_str()
                    ),
                ));
            }
        };
        if key == "retry_timeout" && parse_duration(&value).is_none() {
            return Err(bad(
                format!("storage.{key}"),
                format!("`{value}` is not a duration such as 30s"),
            ));
        }
        storage.insert(key, value);
    }
    Ok(storage)
}

/// `[sources.<name>]`.
fn source_decl(name: &str, raw: RawSource, dir: &Path) -> Result<SourceDecl, Invalid> {
    let key = |k: &str| format!("sources.{name}.{k}");
    if !is_identifier(name) {
        return Err(bad(
            format!("sources.{name}"),
            "a source name must start with a letter or _ and hold only letters, digits and _"
                .into(),
        ));
    }
    let format = SourceFormat::parse(&raw.format).ok_or_else(|| {
        bad(
            key("format"),
            format!(
                "unknown format `{}` (expected parquet, delta, csv or json)",
                raw.format
            ),
        )
    })?;
    let is_dir = format == SourceFormat::Delta || raw.url.ends_with('/');
    let url =
        resolve_location(&raw.url, dir, is_dir).map_err(|e| bad(key("url"), e.to_string()))?;
    let mut spec = SourceSpec::new(name.to_string(), url, format);

    let csv_only = [
        ("has_header", raw.has_header.is_some()),
        ("delimiter", raw.delimiter.is_some()),
        ("quote", raw.quote.is_some()),
        ("null_regex", raw.null_regex.is_some()),
        ("encoding", raw.encoding.is_some()),
        ("on_error", raw.on_error.is_some()),
        ("max_error_rate", raw.max_error_rate.is_some()),
    ];
    for (k, set) in csv_only {
        if set && format != SourceFormat::Csv {
            return Err(bad(
                key(k),
                format!("only applies to csv sources, not {}", format.name()),
            ));
        }
    }
    let delta_only = [
        ("version", raw.version.is_some()),
        ("timestamp", raw.timestamp.is_some()),
    ];
    for (k, set) in delta_only {
        if set && format != SourceFormat::Delta {
            return Err(bad(
                key(k),
                format!("only applies to delta sources, not {}", format.name()),
            ));
        }
    }
    let file_only = [
        ("columns", raw.columns.is_some()),
        ("partition_columns", raw.partition_columns.is_some()),
        ("file_extension", raw.file_extension.is_some()),
    ];
    for (k, set) in file_only {
        if set && format == SourceFormat::Delta {
            return Err(bad(
                key(k),
                "does not apply to delta sources (the table log holds it)".into(),
            ));
        }
    }

    let mut csv = CsvOptions::default();
    if let Some(h) = raw.has_header {
        csv.has_header = h;
    }
    if let Some(d) = &raw.delimiter {
        csv.delimiter = single_byte(d).ok_or_else(|| {
            bad(
                key("delimiter"),
                format!("`{d}` is not a single ASCII character"),
            )
        })?;
    }
    if let Some(q) = &raw.quote {
        csv.quote = single_byte(q).ok_or_else(|| {
            bad(
                key("quote"),
                format!("`{q}` is not a single ASCII character"),
            )
        })?;
    }
    if let Some(r) = &raw.null_regex {
        regex_is_valid(r).map_err(|m| bad(key("null_regex"), m))?;
        csv.null_regex = Some(r.clone());
    }
    spec.csv = csv;
    spec.rows = row_policy(&raw).map_err(|(k, m)| bad(key(k), m))?;

    if let Some(columns) = &raw.columns {
        let mut fields = Vec::new();
        for (i, column) in columns.iter().enumerate() {
            let (col, ty) = column.split_once(':').ok_or_else(|| {
                bad(
                    format!("{}[{i}]", key("columns")),
                    format!("`{column}` is not `name: type`"),
                )
            })?;
            let ty = parse_type(ty).ok_or_else(|| {
                bad(
                    format!("{}[{i}]", key("columns")),
                    format!("unknown type `{}` (string, boolean, int, bigint, double, date, timestamp, timestamptz, decimal(p,s))", ty.trim()),
                )
            })?;
            fields.push(Field::new(col.trim(), ty, true));
        }
        spec.schema = Some(Arc::new(Schema::new(fields)));
    }
    if let Some(parts) = &raw.partition_columns {
        spec.partition_columns = Some(parts.iter().map(|p| (p.clone(), DataType::Utf8)).collect());
    }
    spec.file_extension = raw.file_extension.clone();
    spec.version = match (raw.version, &raw.timestamp) {
        (Some(_), Some(_)) => {
            return Err(bad(
                key("version"),
                "give a version or a timestamp, not both".into(),
            ));
        }
        (Some(v), None) if v < 0 => {
            return Err(bad(key("version"), format!("{v} is negative")));
        }
        (Some(v), None) => TableVersion::Version(v.unsigned_abs()),
        (None, Some(ts)) => TableVersion::Timestamp(parse_timestamp(ts).ok_or_else(|| {
            bad(
                key("timestamp"),
                format!("`{ts}` is not an RFC 3339 timestamp or a date"),
            )
        })?),
        (None, None) => TableVersion::Latest,
    };
    let subject = raw
        .subject
        .iter()
        .map(|v| crate::job::parse_subject(v))
        .collect::<Result<_, _>>()
        .map_err(|m| bad(key("subject"), m))?;
    Ok(SourceDecl {
        spec,
        description: raw.description,
        subject,
    })
}

/// `[jobs."<name>"]`: settings written in the job's header, as header lines.
fn job_settings(
    raw: BTreeMap<String, BTreeMap<String, toml::Value>>,
) -> Result<BTreeMap<String, Vec<(String, String)>>, Invalid> {
    let mut jobs = BTreeMap::new();
    for (job, settings) in raw {
        let mut pairs = Vec::new();
        for (key, value) in settings {
            let at = format!("jobs.\"{job}\".{key}");
            if !JOB_SETTINGS.contains(&key.as_str()) {
                return Err(bad(
                    at,
                    format!("unknown job setting (known: {})", JOB_SETTINGS.join(", ")),
                ));
            }
            let text = |v: &toml::Value| match v {
                toml::Value::String(s) => Ok(s.clone()),
                other => Err(bad(
                    at.clone(),
                    format!("expected a string, found {}", other.type_str()),
                )),
            };
            match (key.as_str(), &value) {
                ("tests", toml::Value::Array(items)) => {
                    for item in items {
                        pairs.push(("test".to_string(), text(item)?));
                    }
                }
                ("subject", toml::Value::Array(items)) => {
                    for item in items {
                        pairs.push(("subject".to_string(), text(item)?));
                    }
                }
                (_, toml::Value::Array(items)) => {
                    let items = items.iter().map(text).collect::<Result<Vec<_>, _>>()?;
                    pairs.push((key.clone(), items.join(", ")));
                }
                ("tests", v) => pairs.push(("test".to_string(), text(v)?)),
                (_, v) => pairs.push((key.clone(), text(v)?)),
            }
        }
        jobs.insert(job.to_lowercase(), pairs);
    }
    Ok(jobs)
}

/// `[schedules.<name>]`.
fn schedules(raw: BTreeMap<String, RawSchedule>) -> Result<BTreeMap<String, Schedule>, Invalid> {
    let mut schedules = BTreeMap::new();
    for (name, raw) in raw {
        if let Err(e) = <croner::Cron as std::str::FromStr>::from_str(&raw.cron) {
            return Err(bad(
                format!("schedules.{name}.cron"),
                format!("`{}` is not a cron expression: {e}", raw.cron),
            ));
        }
        schedules.insert(
            name.clone(),
            Schedule {
                name,
                cron: raw.cron,
                select: raw.select,
                full_refresh: raw.full_refresh,
                description: raw.description,
            },
        );
    }
    Ok(schedules)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn regex_is_valid(pattern: &str) -> Result<(), String> {
    // DataFusion compiles it when reading; an empty pattern would match every value.
    if pattern.is_empty() {
        return Err("an empty pattern would read every value as NULL".into());
    }
    Ok(())
}

/// `[privacy]` in `tessera.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// The environment variable holding the suppression salt.
    #[serde(default = "default_salt_env")]
    pub salt_env: String,
    /// Retention rules applied by `tessera retention` (and after each `tessera run`).
    #[serde(default)]
    pub retention: Vec<RetentionRule>,
    /// Output tables that keep only hashed identifiers: their email and phone columns hold
    /// the SHA-256 hex of the normalised value (`hash_identifier(value, kind, 'default')`).
    #[serde(default)]
    pub pseudonymize: Vec<String>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            salt_env: default_salt_env(),
            retention: Vec::new(),
            pseudonymize: Vec::new(),
        }
    }
}

fn default_salt_env() -> String {
    "TESSERA_SUPPRESSION_SALT".into()
}

/// `[[privacy.retention]]`: rows of `table` whose `column` is older than `keep` are deleted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// A warehouse table, `schema.table`.
    pub table: String,
    /// A date or timestamp column.
    pub column: String,
    /// How long rows are kept: `400 days`, `13 months`, `2 years`...
    pub keep: String,
}

/// `N unit` → (N, SQL interval unit).
pub fn parse_keep(text: &str) -> Option<(u32, &'static str)> {
    let mut parts = text.split_whitespace();
    let n: u32 = parts.next()?.parse().ok()?;
    let unit = match parts.next()?.to_ascii_lowercase().as_str() {
        "day" | "days" => "days",
        "week" | "weeks" => "weeks",
        "month" | "months" => "months",
        "year" | "years" => "years",
        _ => return None,
    };
    (parts.next().is_none() && n > 0).then_some((n, unit))
}

impl PrivacyConfig {
    pub(crate) fn validated(
        self,
        invalid: &dyn Fn(String, String) -> ProjectError,
    ) -> std::result::Result<Self, ProjectError> {
        for (i, rule) in self.retention.iter().enumerate() {
            if parse_keep(&rule.keep).is_none() {
                return Err(invalid(
                    format!("privacy.retention[{i}].keep"),
                    format!(
                        "`{}` is not a period such as `400 days`, `13 months` or `2 years`",
                        rule.keep
                    ),
                ));
            }
            if !rule.table.contains('.') {
                return Err(invalid(
                    format!("privacy.retention[{i}].table"),
                    format!("`{}`: expected `schema.table`", rule.table),
                ));
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Project, ProjectError> {
        Project::parse(
            text,
            Path::new("/p/retail"),
            Path::new("/p/retail/tessera.toml"),
        )
    }

    #[test]
    fn defaults_point_at_a_local_warehouse() {
        let p = parse("").unwrap();
        assert_eq!(p.name, "retail");
        assert_eq!(p.warehouse.as_str(), "file:///p/retail/warehouse/");
        assert!(p.sources.is_empty());
    }

    #[test]
    fn a_full_project_parses() {
        let p = parse(
            r#"
            [project]
            name = "shop"
            warehouse = "s3://lake/wh"
            [engine]
            memory_limit = "2GiB"
            target_partitions = 2
            [storage]
            aws_endpoint = "http://127.0.0.1:9000"
            allow_http = true
            [sources.crm]
            url = "data/crm.csv"
            format = "csv"
            delimiter = ";"
            columns = ["id: string", "amount: decimal(12,2)"]
            [sources.mail]
            url = "data/mail"
            format = "delta"
            version = 3
            "#,
        )
        .unwrap();
        assert_eq!(p.warehouse.as_str(), "s3://lake/wh/");
        assert_eq!(p.engine.memory_limit, Some(2 * 1024 * 1024 * 1024));
        assert_eq!(p.storage["allow_http"], "true");
        let crm = &p.sources["crm"].spec;
        assert_eq!(crm.csv.delimiter, b';');
        assert_eq!(
            crm.schema.as_ref().unwrap().field(1).data_type(),
            &DataType::Decimal128(12, 2)
        );
        assert_eq!(crm.url.as_str(), "file:///p/retail/data/crm.csv");
        assert_eq!(p.sources["mail"].spec.version, TableVersion::Version(3));
        assert_eq!(
            p.sources["mail"].spec.url.as_str(),
            "file:///p/retail/data/mail/"
        );
    }

    #[test]
    fn an_unknown_key_names_the_key_and_line() {
        let err = parse("[sources.crm]\nurl = \"x.csv\"\nformt = \"csv\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("formt"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let err = parse("[engine]\ntarget_partitions = \"two\"\n").unwrap_err();
        assert!(err.to_string().contains("target_partitions"), "{err}");
        let err = parse("[engine]\nmemory_limit = \"lots\"\n").unwrap_err();
        assert!(err.to_string().contains("`engine.memory_limit`"), "{err}");
    }

    #[test]
    fn bad_source_values_name_the_source_key() {
        let err = parse("[quality]\nfail_on = [\"empty_column\", \"nope\"]\n").unwrap_err();
        assert!(err.to_string().contains("`quality.fail_on[1]`"), "{err}");
        let err = parse("[quality]\nmax_fill_drop = 1.5\n").unwrap_err();
        assert!(err.to_string().contains("`quality.max_fill_drop`"), "{err}");
        let err = parse("[quality]\nmax_lenght = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_lenght"), "{err}");
        let q = parse("[quality]\nfail_on = [\"all\"]\nmax_row_change = 2.0\n")
            .unwrap()
            .quality;
        assert!(q.fails_on("row_change") && q.max_row_change == 2.0);
        let err = parse("[sources.crm]\nurl = \"x\"\nformat = \"xlsx\"\n").unwrap_err();
        assert!(err.to_string().contains("`sources.crm.format`"), "{err}");
        let err = parse("[sources.crm]\nurl = \"x\"\nformat = \"parquet\"\ndelimiter = \";\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("`sources.crm.delimiter`"), "{err}");
        let err = parse("[sources.crm]\nurl = \"x\"\nformat = \"csv\"\ncolumns = [\"a: blob\"]\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("`sources.crm.columns[0]`"),
            "{err}"
        );
        let err = parse("[sources.crm]\nurl = \"ftp://h/x\"\nformat = \"csv\"\n").unwrap_err();
        assert!(err.to_string().contains("`sources.crm.url`"), "{err}");
        let err = parse("[storage]\naws_endpont = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("`storage.aws_endpont`"), "{err}");
        let err = parse("[sources.\"my-crm\"]\nurl = \"x\"\nformat = \"csv\"\n").unwrap_err();
        assert!(err.to_string().contains("sources.my-crm"), "{err}");
    }

    #[test]
    fn sizes_and_types() {
        assert_eq!(parse_size("512MB"), Some(512_000_000));
        assert_eq!(parse_size("1kib"), Some(1024));
        assert_eq!(parse_size("-1"), None);
        assert_eq!(
            parse_type("TimestampTZ").unwrap(),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(parse_type("decimal(40,2)"), None);
    }
}
