//! SQL jobs: discovery in a project's `jobs/` folder, the settings header, and the tables a job
//! reads (found by parsing its SQL; CTE names are not inputs).
//!
//! A job file starts with an optional header of `-- @key: value` lines:
//!
//! ```sql
//! -- @materialized: incremental
//! -- @unique_key: order_id
//! -- @watermark: ordered_at
//! -- @partition_by: country
//! -- @tags: daily, pos
//! -- @description: One row per order, cleaned.
//! -- @grain: order_id
//! -- @test: unique(order_id)
//! -- @test: not_null(order_id, customer_id)
//! -- @test: accepted_values(currency, 'EUR', 'GBP', 'USD')
//! -- @test: relationships(customer_id, staging.customers.customer_id)
//! -- @test: row_count(min = 1)
//! -- @test: empty(select * from this where amount < 0)
//! select ...
//! ```
//!
//! Other comment lines are free text; an `@` line with an unknown key is an error naming the file
//! and line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use datafusion::common::TableReference;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::resolve::resolve_table_references;
use serde::Deserialize;

/// How a job's result is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Materialized {
    /// A Delta table replaced on every run (one commit).
    #[default]
    Table,
    /// A Delta table that new rows are merged into (on `unique_key`) or appended to.
    Incremental,
    /// Not stored: planned inline into the jobs that read it.
    View,
    /// A Delta table of person records that identity resolution (`[identity]`) then matches,
    /// writing its tables beside it (see [`Job::outputs`]).
    Identity,
    /// A Delta table kept equal to the query's result row by row on `unique_key` (rows added,
    /// changed and removed in one merge, with Delta's change data feed on), plus
    /// `<name>_changes` (every add/update/remove per run) and `<name>_history` (each row's
    /// versions with `valid_from`/`valid_to`): for segments and audiences that downstream
    /// tools sync by difference.
    Tracked,
    /// A model trained in the engine on the query's rows (`@label` the target, `@unique_key`
    /// the row key, every other column a numeric feature): the table gets one row per model
    /// version, `<name>_metrics` its held-out evaluation.
    Model,
}

impl fmt::Display for Materialized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Materialized::Table => "table",
            Materialized::Incremental => "incremental",
            Materialized::View => "view",
            Materialized::Identity => "identity",
            Materialized::Tracked => "tracked",
            Materialized::Model => "model",
        })
    }
}

/// A data test on a job's output, run before the output is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataTest {
    /// No two rows share these columns' values (NULLs excluded).
    Unique(Vec<String>),
    /// None of these columns is NULL.
    NotNull(Vec<String>),
    /// The column's non-NULL values are among these SQL literals.
    AcceptedValues {
        /// The column.
        column: String,
        /// SQL literals, as written.
        values: Vec<String>,
    },
    /// Every non-NULL value of `column` exists in `to_table.to_column`.
    Relationships {
        /// The column of this job.
        column: String,
        /// The referenced table.
        to_table: String,
        /// The referenced column.
        to_column: String,
    },
    /// The row count lies within bounds.
    RowCount {
        /// Minimum rows (inclusive).
        min: Option<u64>,
        /// Maximum rows (inclusive).
        max: Option<u64>,
    },
    /// A query (reading `this`, the job's new output) that must return no rows.
    Empty(String),
}

impl DataTest {
    /// A short name for logs and the run log.
    pub fn name(&self) -> String {
        match self {
            DataTest::Unique(c) => format!("unique({})", c.join(", ")),
            DataTest::NotNull(c) => format!("not_null({})", c.join(", ")),
            DataTest::AcceptedValues { column, .. } => format!("accepted_values({column})"),
            DataTest::Relationships {
                column,
                to_table,
                to_column,
            } => format!("relationships({column} -> {to_table}.{to_column})"),
            DataTest::RowCount { min, max } => format!(
                "row_count(min = {}, max = {})",
                min.map_or("-".into(), |v| v.to_string()),
                max.map_or("-".into(), |v| v.to_string())
            ),
            DataTest::Empty(_) => "empty(query)".into(),
        }
    }

    /// SQL returning the offending rows (a test passes when it returns none). `this` names the
    /// output under test.
    pub fn sql(&self, this: &str) -> String {
        let q = |c: &str| quote_ident(c);
        match self {
            DataTest::Unique(cols) => {
                let list = cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
                let not_null = cols
                    .iter()
                    .map(|c| format!("{} is not null", q(c)))
                    .collect::<Vec<_>>()
                    .join(" and ");
                format!(
                    "select {list}, count(*) as duplicates from {this} where {not_null} \
                     group by {list} having count(*) > 1"
                )
            }
            DataTest::NotNull(cols) => {
                let any_null = cols
                    .iter()
                    .map(|c| format!("{} is null", q(c)))
                    .collect::<Vec<_>>()
                    .join(" or ");
                format!("select * from {this} where {any_null}")
            }
            DataTest::AcceptedValues { column, values } => format!(
                "select {c}, count(*) as n from {this} where {c} is not null and {c} not in ({}) group by {c}",
                values.join(", "),
                c = q(column)
            ),
            DataTest::Relationships {
                column,
                to_table,
                to_column,
            } => format!(
                "select t.{c} from {this} t where t.{c} is not null and not exists \
                 (select 1 from {to_table} r where r.{rc} = t.{c})",
                c = q(column),
                rc = q(to_column)
            ),
            DataTest::RowCount { min, max } => {
                let mut conds = Vec::new();
                if let Some(min) = min {
                    conds.push(format!("n < {min}"));
                }
                if let Some(max) = max {
                    conds.push(format!("n > {max}"));
                }
                if conds.is_empty() {
                    conds.push("false".into());
                }
                format!(
                    "select n from (select count(*) as n from {this}) where {}",
                    conds.join(" or ")
                )
            }
            DataTest::Empty(query) => query.clone(),
        }
    }

    /// Tables the test reads besides `this`.
    pub fn references(&self) -> Vec<String> {
        match self {
            DataTest::Relationships { to_table, .. } => vec![to_table.clone()],
            DataTest::Empty(query) => parse_references(query)
                .map(|refs| refs.into_iter().filter(|r| r != "this").collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Quotes an identifier for SQL when it needs it.
pub use tessera_engine::sql::ident_if_needed as quote_ident;

/// A job's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobConfig {
    /// How the result is kept.
    pub materialized: Materialized,
    /// Merge key of an incremental job (append when empty).
    pub unique_key: Vec<String>,
    /// A column of the output: an incremental run only keeps rows above its last maximum.
    pub watermark: Option<String>,
    /// Partition columns of the Delta table.
    pub partition_by: Vec<String>,
    /// Tags for selection (`tag:x`).
    pub tags: Vec<String>,
    /// What the table holds.
    pub description: Option<String>,
    /// What one row is.
    pub grain: Option<String>,
    /// Tests run before publishing.
    pub tests: Vec<DataTest>,
    /// The label column of a model job.
    pub label: Option<String>,
    /// What a model job fits.
    pub algorithm: ModelAlgorithm,
    /// How a row names a person beyond what its column names say (`@subject: kind: SQL`),
    /// for erasure and subject access.
    pub subject: Vec<(tessera_engine::privacy::IdentifierKind, String)>,
}

/// What a `@materialized: model` job fits (`@algorithm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ModelAlgorithm {
    /// Logistic regression of `@label` on the other numeric columns.
    #[default]
    LogisticRegression,
    /// BG/NBD purchases + Gamma–Gamma spend on customer summaries (`frequency`, `recency`, `t`,
    /// `monetary_value`, optionally `holdout_purchases`, `holdout_revenue`, `holdout_days`).
    BgNbdGammaGamma,
}

impl ModelAlgorithm {
    /// The name used in `@algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Self::LogisticRegression => "logistic_regression",
            Self::BgNbdGammaGamma => "bg_nbd_gamma_gamma",
        }
    }
}

/// A job found in the project.
#[derive(Debug, Clone)]
pub struct Job {
    /// Output table name: `schema.table` or `table`.
    pub name: String,
    /// The file, relative to the project folder (`jobs/profiles/x.sql`).
    pub path: PathBuf,
    /// The SQL without the header.
    pub sql: String,
    /// The settings.
    pub config: JobConfig,
    /// Tables the SQL reads (lower-cased `schema.table` or `table`), CTEs excluded.
    pub references: BTreeSet<String>,
    /// Given/expect tests from `<job>.tests.toml`.
    pub unit_tests: Vec<UnitTest>,
}

impl Job {
    /// Schema part of the name, if any.
    pub fn schema(&self) -> Option<&str> {
        self.name.split_once('.').map(|(s, _)| s)
    }

    /// Every table the job writes: its own and, for identity resolution, the tables beside it
    /// in the same schema (`unify.record_customer`...).
    pub fn outputs(&self) -> Vec<String> {
        let mut out = vec![self.name.clone()];
        if self.config.materialized == Materialized::Identity {
            let prefix = self.schema().map(|s| format!("{s}.")).unwrap_or_default();
            out.extend(
                tessera_engine::identity::OUTPUT_TABLES
                    .iter()
                    .map(|t| format!("{prefix}{t}")),
            );
        }
        if self.config.materialized == Materialized::Tracked {
            out.push(format!("{}_changes", self.name));
            out.push(format!("{}_history", self.name));
        }
        if self.config.materialized == Materialized::Model {
            out.push(format!("{}_metrics", self.name));
        }
        out
    }

    /// Table part of the name.
    pub fn table(&self) -> &str {
        self.name
            .split_once('.')
            .map_or(self.name.as_str(), |(_, t)| t)
    }
}

/// An error in a job file, naming the file and (when known) the line.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct JobError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl From<JobError> for crate::errors::Error {
    fn from(e: JobError) -> Self {
        crate::errors::Error::typed(crate::errors::ErrorKind::Failed, e)
    }
}

/// The folder holding a project's jobs.
pub const JOBS_DIR: &str = "jobs";

/// Finds every `*.sql` file under `<project>/jobs/`, sorted by path. Returns the jobs that
/// parsed and the errors of those that did not (so other jobs can still run).
pub fn discover(project_dir: &Path) -> (Vec<Job>, Vec<JobError>) {
    discover_with(project_dir, &std::collections::BTreeMap::new())
}

/// [`discover`] with per-job settings from the project file (by job name). A setting for a
/// job that does not exist is an error.
pub fn discover_with(
    project_dir: &Path,
    overrides: &std::collections::BTreeMap<String, Vec<(String, String)>>,
) -> (Vec<Job>, Vec<JobError>) {
    let root = project_dir.join(JOBS_DIR);
    let mut files = Vec::new();
    let mut errors = Vec::new();
    collect_sql_files(&root, &mut files, &mut errors);
    files.sort();
    let mut jobs: Vec<Job> = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(project_dir)
            .unwrap_or(&file)
            .to_path_buf();
        match std::fs::read_to_string(&file) {
            Ok(text) => match job_name(&relative)
                .map_err(|message| JobError {
                    path: relative.clone(),
                    line: None,
                    message,
                })
                .and_then(|name| {
                    let none = Vec::new();
                    parse_job_with(&relative, &text, overrides.get(&name).unwrap_or(&none))
                })
                .and_then(|mut job| {
                    job.unit_tests = load_unit_tests(project_dir, &relative)?;
                    Ok(job)
                }) {
                Ok(job) => {
                    if let Some(other) = jobs.iter().find(|j| j.name == job.name) {
                        errors.push(JobError {
                            path: relative,
                            line: None,
                            message: format!(
                                "job `{}` is also defined by {}",
                                job.name,
                                other.path.display()
                            ),
                        });
                    } else {
                        jobs.push(job);
                    }
                }
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(JobError {
                path: relative,
                line: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    for name in overrides.keys() {
        if !jobs.iter().any(|j| &j.name == name)
            && !errors
                .iter()
                .any(|e| job_name(&e.path).ok().as_ref() == Some(name))
        {
            errors.push(JobError {
                path: PathBuf::from("tessera.toml"),
                line: None,
                message: format!(
                    "[jobs.\"{name}\"]: there is no job `{name}` (no file jobs/{}.sql)",
                    name.replace('.', "/")
                ),
            });
        }
    }
    (jobs, errors)
}

fn collect_sql_files(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<JobError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            errors.push(JobError {
                path: dir.to_path_buf(),
                line: None,
                message: format!("cannot list: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_sql_files(&path, files, errors);
        } else if path.extension().is_some_and(|e| e == "sql") {
            files.push(path);
        }
    }
}

/// The output name for a job file: `jobs/a/b.sql` → `a.b`; `jobs/b.sql` → `b`.
pub fn job_name(relative: &Path) -> Result<String, String> {
    let inner = relative.strip_prefix(JOBS_DIR).unwrap_or(relative);
    let parts: Vec<String> = inner
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_lowercase())
        .collect();
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    match parts.as_slice() {
        [table] if valid(table) => Ok(table.clone()),
        [schema, table] if valid(schema) && valid(table) => Ok(format!("{schema}.{table}")),
        [_, _] | [_] => Err(
            "job file and folder names must be letters, digits and `_` (not starting with a digit)"
                .into(),
        ),
        _ => Err("jobs may be nested one folder deep at most (`jobs/<schema>/<table>.sql`)".into()),
    }
}

/// Parses one job file.
pub fn parse_job(relative: &Path, text: &str) -> Result<Job, JobError> {
    parse_job_with(relative, text, &[])
}

/// Settings of a job given in `tessera.toml` (`[jobs."schema.table"]`): `(key, value)` pairs
/// in the header's syntax, applied after the header (they win; tests add up).
pub type SettingOverrides = [(String, String)];

/// Parses a job file, then applies `overrides` from the project file.
pub fn parse_job_with(
    relative: &Path,
    text: &str,
    overrides: &SettingOverrides,
) -> Result<Job, JobError> {
    let err = |line: Option<usize>, message: String| JobError {
        path: relative.to_path_buf(),
        line,
        message,
    };
    let name = job_name(relative).map_err(|m| err(None, m))?;
    let mut config = JobConfig::default();
    let mut body_start = 0;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim();
        let line_no = i + 1;
        if trimmed.is_empty() {
            offset += line.len();
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            body_start = offset;
            break;
        };
        offset += line.len();
        body_start = offset;
        let Some(setting) = comment.trim().strip_prefix('@') else {
            continue;
        };
        let (key, value) = setting.split_once(':').ok_or_else(|| {
            err(
                Some(line_no),
                format!("`@{setting}`: expected `@key: value`"),
            )
        })?;
        apply_setting(&mut config, key.trim(), value.trim()).map_err(|m| err(Some(line_no), m))?;
    }
    let sql = text[body_start..]
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string();
    if sql.is_empty() {
        return Err(err(None, "the file has no SQL".into()));
    }
    let header_lines = text[..body_start].matches('\n').count();
    let references = parse_references(&sql).map_err(|m| {
        let (line, message) = locate_parse_error(&m, header_lines);
        err(line, message)
    })?;
    for (key, value) in overrides {
        apply_setting(&mut config, key, value).map_err(|m| {
            err(
                None,
                format!("{m} (from [jobs.\"{name}\"] {key} in tessera.toml)"),
            )
        })?;
    }
    if config.materialized == Materialized::Incremental
        && config.unique_key.is_empty()
        && config.watermark.is_none()
    {
        return Err(err(
            None,
            "an incremental job needs `@unique_key` (merge) or `@watermark` (append newer rows)"
                .into(),
        ));
    }
    if config.materialized == Materialized::Model
        && config.algorithm == ModelAlgorithm::LogisticRegression
        && (config.unique_key.is_empty() || config.label.is_none())
    {
        return Err(err(
            None,
            "a model job needs `@label` (the column to predict) and `@unique_key` (the row key, which also picks the held-out rows)"
                .into(),
        ));
    }
    if config.materialized == Materialized::Model
        && config.algorithm == ModelAlgorithm::BgNbdGammaGamma
        && config.label.is_some()
    {
        return Err(err(
            None,
            "a bg_nbd_gamma_gamma model has no `@label`: it reads the columns frequency, recency, t and monetary_value"
                .into(),
        ));
    }
    if config.materialized != Materialized::Model
        && (config.label.is_some() || config.algorithm != ModelAlgorithm::default())
    {
        return Err(err(
            None,
            "`@label` and `@algorithm` are settings of `@materialized: model` jobs".into(),
        ));
    }
    if config.materialized == Materialized::Tracked && config.unique_key.is_empty() {
        return Err(err(
            None,
            "a tracked job needs `@unique_key` (the columns that identify a row across runs)"
                .into(),
        ));
    }
    Ok(Job {
        name,
        path: relative.to_path_buf(),
        sql,
        config,
        references,
        unit_tests: Vec::new(),
    })
}

/// Shifts the line of a parser error ("at Line: 3, Column: 7") past the header.
fn locate_parse_error(message: &str, header_lines: usize) -> (Option<usize>, String) {
    let line = message
        .split("Line: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n + header_lines);
    (line, message.to_string())
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

const SETTINGS: &[&str] = &[
    "materialized",
    "unique_key",
    "label",
    "algorithm",
    "watermark",
    "partition_by",
    "tags",
    "description",
    "grain",
    "test",
    "subject",
];

fn apply_setting(config: &mut JobConfig, key: &str, value: &str) -> Result<(), String> {
    match key {
        "materialized" => {
            config.materialized = match value {
                "table" => Materialized::Table,
                "incremental" => Materialized::Incremental,
                "view" => Materialized::View,
                "identity" => Materialized::Identity,
                "tracked" => Materialized::Tracked,
                "model" => Materialized::Model,
                other => {
                    return Err(format!(
                        "@materialized: `{other}` is not one of table, incremental, view, identity, tracked, model"
                    ));
                }
            }
        }
        "unique_key" => config.unique_key = list(value),
        "label" => config.label = Some(value.to_string()),
        "algorithm" => {
            config.algorithm = match value {
                "logistic_regression" => ModelAlgorithm::LogisticRegression,
                "bg_nbd_gamma_gamma" => ModelAlgorithm::BgNbdGammaGamma,
                other => {
                    return Err(format!(
                        "@algorithm: `{other}` is not one of logistic_regression, bg_nbd_gamma_gamma"
                    ));
                }
            }
        }
        "watermark" => config.watermark = Some(value.to_string()),
        "partition_by" => config.partition_by = list(value),
        "tags" => config.tags = list(value),
        "description" => config.description = Some(value.to_string()),
        "grain" => config.grain = Some(value.to_string()),
        "test" => config.tests.push(parse_test(value)?),
        "subject" => config.subject.push(parse_subject(value)?),
        other => {
            return Err(format!(
                "unknown setting `@{other}` (known: {})",
                SETTINGS.join(", ")
            ));
        }
    }
    Ok(())
}

/// `kind: SQL expression`, e.g. `record_key: 'pos_customers:' || pos_customer_id`.
pub fn parse_subject(
    value: &str,
) -> Result<(tessera_engine::privacy::IdentifierKind, String), String> {
    use tessera_engine::privacy::IdentifierKind;
    let (kind, expr) = value
        .split_once(':')
        .ok_or_else(|| format!("@subject: `{value}`: expected `kind: SQL expression`"))?;
    let kind = IdentifierKind::parse(kind).ok_or_else(|| {
        format!(
            "@subject: `{}` is not one of customer_id, record_key, email, phone, web_user_id",
            kind.trim()
        )
    })?;
    let expr = expr.trim();
    if expr.is_empty() {
        return Err(format!("@subject: `{value}`: no SQL expression"));
    }
    Ok((kind, expr.to_string()))
}

fn parse_test(value: &str) -> Result<DataTest, String> {
    let (kind, rest) = value
        .split_once('(')
        .ok_or_else(|| format!("@test: `{value}`: expected `kind(arguments)`"))?;
    let args = rest
        .trim_end()
        .strip_suffix(')')
        .ok_or_else(|| format!("@test: `{value}`: missing `)`"))?
        .trim();
    let test = match kind.trim() {
        "unique" => DataTest::Unique(list(args)),
        "not_null" => DataTest::NotNull(list(args)),
        "accepted_values" => {
            let mut parts = list(args).into_iter();
            let column = parts.next().ok_or("@test accepted_values: no column")?;
            let values: Vec<String> = parts.collect();
            if values.is_empty() {
                return Err("@test accepted_values: no values".into());
            }
            DataTest::AcceptedValues { column, values }
        }
        "relationships" => {
            let parts = list(args);
            let [column, target] = parts.as_slice() else {
                return Err("@test relationships: expected `(column, table.column)`".into());
            };
            let (to_table, to_column) = target
                .rsplit_once('.')
                .ok_or("@test relationships: the target must be `table.column`")?;
            DataTest::Relationships {
                column: column.clone(),
                to_table: to_table.to_string(),
                to_column: to_column.to_string(),
            }
        }
        "row_count" => {
            let mut min = None;
            let mut max = None;
            for part in list(args) {
                let (k, v) = part
                    .split_once('=')
                    .ok_or("@test row_count: expected `min = n, max = n`")?;
                let v: u64 = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("@test row_count: `{}` is not a count", v.trim()))?;
                match k.trim() {
                    "min" => min = Some(v),
                    "max" => max = Some(v),
                    other => return Err(format!("@test row_count: unknown bound `{other}`")),
                }
            }
            DataTest::RowCount { min, max }
        }
        "empty" => {
            parse_references(args)?;
            DataTest::Empty(args.to_string())
        }
        other => {
            return Err(format!(
                "@test: unknown test `{other}` (unique, not_null, accepted_values, \
                 relationships, row_count, empty)"
            ));
        }
    };
    match &test {
        DataTest::Unique(c) | DataTest::NotNull(c) if c.is_empty() => {
            Err(format!("@test {}: no columns", kind.trim()))
        }
        _ => Ok(test),
    }
}

/// The tables `sql` reads (lower-cased, `schema.table` or `table`), without CTE names.
pub fn parse_references(sql: &str) -> Result<BTreeSet<String>, String> {
    let statements = DFParser::parse_sql(sql).map_err(|e| format!("SQL syntax error: {e}"))?;
    let mut refs = BTreeSet::new();
    for statement in &statements {
        if !matches!(statement, Statement::Statement(_)) {
            return Err("a job must be a query (SELECT or WITH ... SELECT)".into());
        }
        let (tables, _ctes) =
            resolve_table_references(statement, true).map_err(|e| e.to_string())?;
        for t in tables {
            refs.insert(reference_name(&t));
        }
    }
    if statements.len() != 1 {
        return Err(format!(
            "a job must be exactly one query ({} statements found)",
            statements.len()
        ));
    }
    Ok(refs)
}

fn reference_name(t: &TableReference) -> String {
    match t.schema() {
        Some(schema) => format!("{schema}.{}", t.table()),
        None => t.table().to_string(),
    }
}

/// One given/expect test.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitTest {
    /// What it checks.
    pub name: String,
    /// A query per table the job reads.
    #[serde(default)]
    pub given: BTreeMap<String, String>,
    /// The rows the job must return.
    pub expect: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitFile {
    #[serde(default)]
    unit: Vec<UnitTest>,
}

/// The unit-test file of a job file: `jobs/x/y.sql` → `jobs/x/y.tests.toml`.
pub fn unit_file(job_path: &Path) -> PathBuf {
    job_path.with_extension("tests.toml")
}

/// Reads a job's given/expect unit tests (`tessera test --unit`; run by [`crate::unit`]) (none when the file does not exist).
pub fn load_unit_tests(project_dir: &Path, job_path: &Path) -> Result<Vec<UnitTest>, JobError> {
    let relative = unit_file(job_path);
    let text = match std::fs::read_to_string(project_dir.join(&relative)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(JobError {
                path: relative,
                line: None,
                message: format!("cannot read: {e}"),
            });
        }
    };
    let file: UnitFile = toml::from_str(&text).map_err(|e| JobError {
        line: e
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1),
        path: relative.clone(),
        message: e.message().to_string(),
    })?;
    Ok(file.unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_file_path() {
        assert_eq!(
            job_name(Path::new("jobs/profiles/traits.sql")).unwrap(),
            "profiles.traits"
        );
        assert_eq!(job_name(Path::new("jobs/orders.sql")).unwrap(), "orders");
        assert!(job_name(Path::new("jobs/a/b/c.sql")).is_err());
        assert!(job_name(Path::new("jobs/my-table.sql")).is_err());
    }

    #[test]
    fn headers_and_references_parse() {
        let text = "-- Orders, cleaned.\n-- @materialized: incremental\n-- @unique_key: order_id\n\
                    -- @tags: daily, pos\n-- @test: unique(order_id)\n-- @test: row_count(min = 1)\n\n\
                    with recent as (select * from pos_orders) \
                    select r.* from recent r join staging.customers c on c.id = r.customer_id;\n";
        let job = parse_job(Path::new("jobs/staging/orders.sql"), text).unwrap();
        assert_eq!(job.name, "staging.orders");
        assert_eq!(job.config.materialized, Materialized::Incremental);
        assert_eq!(job.config.unique_key, vec!["order_id"]);
        assert_eq!(job.config.tags, vec!["daily", "pos"]);
        assert_eq!(job.config.tests.len(), 2);
        let refs: Vec<&str> = job.references.iter().map(String::as_str).collect();
        assert_eq!(refs, vec!["pos_orders", "staging.customers"]);
        assert!(job.sql.starts_with("with recent"));
    }

    #[test]
    fn bad_headers_and_sql_name_file_and_line() {
        let e = parse_job(Path::new("jobs/x.sql"), "-- @materialised: view\nselect 1").unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(
            e.to_string()
                .starts_with("jobs/x.sql:1: unknown setting `@materialised`"),
            "{e}"
        );
        let e = parse_job(Path::new("jobs/x.sql"), "-- @tags: a\n\nselect (1 from t").unwrap_err();
        assert!(e.to_string().contains("SQL syntax error"), "{e}");
        let e = parse_job(
            Path::new("jobs/x.sql"),
            "-- @materialized: incremental\nselect 1",
        )
        .unwrap_err();
        assert!(e.message.contains("@unique_key"), "{e}");
        let e = parse_job(Path::new("jobs/x.sql"), "select 1; select 2").unwrap_err();
        assert!(e.message.contains("exactly one query"), "{e}");
    }

    #[test]
    fn tests_render_to_sql() {
        let t = parse_test("accepted_values(currency, 'EUR', 'USD')").unwrap();
        assert_eq!(
            t.sql("this"),
            "select currency, count(*) as n from this where currency is not null and currency not in ('EUR', 'USD') group by currency"
        );
        let t = parse_test("relationships(customer_id, staging.customers.id)").unwrap();
        assert_eq!(t.references(), vec!["staging.customers"]);
        assert!(parse_test("unique()").is_err());
        assert!(parse_test("between(a)").is_err());
    }
}
