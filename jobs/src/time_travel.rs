//! Time travel in queries: three table functions over the Delta tables Tessera writes, resolved
//! before planning (loading a past version is asynchronous, planning is not):
//!
//! - `at_version('profiles.customers', 3)` — the table as of Delta version 3;
//! - `at_time('profiles.customers', '2026-11-20T10:00:00Z')` — the latest version committed at
//!   or before that time (RFC 3339, or `YYYY-MM-DD[ HH:MM:SS]` read as UTC);
//! - `table_history('profiles.customers')` — one row per commit: `version`, `committed_at`,
//!   `operation`, `job` (the Tessera job that wrote it), `parameters` and `metrics` (JSON).
//!
//! Each call becomes a table registered under a private name, and the query is rewritten to
//! read it (the call's alias, or the table's own name, stays usable as a qualifier).

use std::ops::ControlFlow;
use std::sync::Arc;

use crate::bail;
use crate::errors::{Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::MemTable;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, TableAlias, TableFactor, Value,
    VisitMut, VisitorMut,
};
use tessera_engine::TableVersion;

use crate::warehouse::WarehouseTable;
use tessera_engine::Engine;

/// What one call asks for.
#[derive(Debug, Clone, PartialEq)]
enum Request {
    Version(u64),
    Time(DateTime<Utc>),
    History,
    /// A file, folder, glob or Delta table read where it is (`read_parquet('x')`,
    /// `'data/*.csv'`): only where file reads are allowed (the CLI, not `tessera serve`).
    File {
        format: Option<tessera_engine::SourceFormat>,
        delimiter: Option<u8>,
    },
}

/// A call found in a query: the private name it now reads, the table, the request.
#[derive(Debug, Clone)]
struct Call {
    private: String,
    table: String,
    request: Request,
}

#[derive(Default)]
struct Finder {
    calls: Vec<Call>,
    error: Option<String>,
    /// Whether `read_*` functions and quoted paths are read as files.
    files: bool,
}

/// The format a location's name says, if any (`None`: decided by looking at it).
fn format_of(location: &str) -> Option<tessera_engine::SourceFormat> {
    use tessera_engine::SourceFormat;
    let path = location.trim_end_matches('/').to_ascii_lowercase();
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "parquet" => Some(SourceFormat::Parquet),
        "csv" | "tsv" | "txt" => Some(SourceFormat::Csv),
        "json" | "ndjson" | "jsonl" => Some(SourceFormat::Json),
        _ => None,
    }
}

fn string_arg(arg: &FunctionArg) -> Option<String> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            Value::Number(n, _) => Some(n.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Reads a point in time: RFC 3339, or a date / date-time without zone taken as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(ts) = DateTime::parse_from_rfc3339(t) {
        return Some(ts.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(ts) = NaiveDateTime::parse_from_str(t, format) {
            return Some(ts.and_utc());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|ts| ts.and_utc())
}

impl Finder {
    fn request(&self, function: &str, args: &[FunctionArg]) -> Result<(String, Request), String> {
        if let Some(kind) = function.strip_prefix("read_") {
            let usage = format!("{function}('path, folder, glob or URL')");
            let location = args
                .first()
                .and_then(string_arg)
                .ok_or_else(|| format!("{usage}: the location is a quoted text"))?;
            let format = match kind {
                "parquet" => Some(tessera_engine::SourceFormat::Parquet),
                "csv" => Some(tessera_engine::SourceFormat::Csv),
                "json" => Some(tessera_engine::SourceFormat::Json),
                _ => Some(tessera_engine::SourceFormat::Delta),
            };
            let delimiter = match args.get(1).and_then(string_arg) {
                Some(d) if kind == "csv" && d.len() == 1 => Some(d.as_bytes()[0]),
                Some(_) => {
                    return Err(format!(
                        "{usage}: read_csv takes one more argument, a one-character delimiter; the others none"
                    ));
                }
                None => None,
            };
            if args.len() > 2 {
                return Err(format!("{usage} takes at most 2 arguments"));
            }
            return Ok((location, Request::File { format, delimiter }));
        }
        let usage = match function {
            "at_version" => "at_version('schema.table', version)",
            "at_time" => "at_time('schema.table', 'timestamp')",
            _ => "table_history('schema.table')",
        };
        let wanted = if function == "table_history" { 1 } else { 2 };
        if args.len() != wanted {
            return Err(format!("{usage} takes {wanted} argument(s)"));
        }
        let table =
            string_arg(&args[0]).ok_or_else(|| format!("{usage}: the table is a quoted name"))?;
        let request = match function {
            "at_version" => Request::Version(
                string_arg(&args[1])
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| format!("{usage}: the version is a whole number ≥ 0"))?,
            ),
            "at_time" => {
                let text = string_arg(&args[1])
                    .ok_or_else(|| format!("{usage}: the time is a quoted timestamp"))?;
                Request::Time(parse_time(&text).ok_or_else(|| {
                    format!(
                        "{usage}: `{text}` is not a timestamp (use RFC 3339, e.g. 2026-11-20T10:00:00Z, or YYYY-MM-DD [HH:MM:SS] in UTC)"
                    )
                })?)
            }
            _ => Request::History,
        };
        Ok((table, request))
    }
}

impl VisitorMut for Finder {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name, args, alias, ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let function = name.to_string().to_ascii_lowercase();
        // A quoted path as a table (`from 'data/orders.parquet'`), as DuckDB and
        // datafusion-cli read it.
        if self.files
            && args.is_none()
            && let [part] = name.0.as_slice()
            && let Some(ident) = part.as_ident()
            && ident.quote_style == Some('\'')
        {
            let location = ident.value.clone();
            let private = private_name();
            if alias.is_none() {
                *alias = Some(TableAlias {
                    explicit: true,
                    name: Ident::new("t"),
                    columns: Vec::new(),
                    at: None,
                });
            }
            *name = ObjectName::from(vec![Ident::new(private.clone())]);
            self.calls.push(Call {
                private,
                request: Request::File {
                    format: format_of(&location),
                    delimiter: None,
                },
                table: location,
            });
            return ControlFlow::Continue(());
        }
        let reads_file = self.files
            && matches!(
                function.as_str(),
                "read_parquet" | "read_csv" | "read_json" | "read_delta"
            );
        if !reads_file
            && !matches!(
                function.as_str(),
                "at_version" | "at_time" | "table_history"
            )
        {
            return ControlFlow::Continue(());
        }
        let Some(call_args) = args.as_ref() else {
            self.error = Some(format!("{function} needs arguments"));
            return ControlFlow::Break(());
        };
        match self.request(&function, &call_args.args) {
            Ok((table, request)) => {
                let private = private_name();
                if alias.is_none() {
                    // `from at_version('profiles.customers', 3)` still answers to `customers`.
                    let short = table.rsplit('.').next().unwrap_or(&table).to_string();
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: Ident::new(short),
                        columns: Vec::new(),
                        at: None,
                    });
                }
                *name = ObjectName::from(vec![Ident::new(private.clone())]);
                *args = None;
                self.calls.push(Call {
                    private,
                    table,
                    request,
                });
                ControlFlow::Continue(())
            }
            Err(message) => {
                self.error = Some(message);
                ControlFlow::Break(())
            }
        }
    }
}

/// Rewrites the time-travel calls of `statements` and registers what they read; returns the
/// names registered (a plan holds its tables, so they may be dropped once it is planned).
pub async fn resolve(
    engine: &Engine,
    warehouse_root: &url::Url,
    files: Option<&std::path::Path>,
    statements: &mut [Statement],
) -> Result<Vec<String>> {
    let mut finder = Finder {
        files: files.is_some(),
        ..Finder::default()
    };
    for statement in statements.iter_mut() {
        visit(statement, &mut finder);
        if let Some(e) = finder.error.take() {
            bail!("{e}");
        }
    }
    if finder.calls.is_empty() {
        return Ok(Vec::new());
    }
    let warehouse = crate::warehouse::list(engine, warehouse_root).await?;
    let mut registered = Vec::new();
    for call in finder.calls {
        let ctx = engine.ctx();
        if let Request::File { format, delimiter } = &call.request {
            let base = files.expect("file reads only when allowed");
            let provider = file_table(engine, base, &call.table, *format, *delimiter).await?;
            ctx.register_table(call.private.as_str(), provider)?;
            registered.push(call.private);
            continue;
        }
        let table = find(&warehouse, &call.table)?;
        let provider = match call.request {
            Request::File { .. } => unreachable!("read above"),
            Request::History => history_table(engine, table).await?,
            Request::Version(v) => {
                let delta = engine
                    .open_delta(&table.url, TableVersion::Version(v))
                    .await
                    .with_context(|| format!("{} at version {v}", table.name))?;
                engine.delta_provider(&delta).await?
            }
            Request::Time(ts) => {
                let delta = engine
                    .open_delta(&table.url, TableVersion::Timestamp(ts))
                    .await
                    .with_context(|| format!("{} at {ts}", table.name))?;
                engine.delta_provider(&delta).await?
            }
        };
        ctx.register_table(call.private.as_str(), provider)?;
        registered.push(call.private);
    }
    Ok(registered)
}

/// A table over a file, folder, glob or Delta table named in a query: read as a source would
/// be (the format from the name, or a Delta log / Parquet files found in a folder).
async fn file_table(
    engine: &Engine,
    base: &std::path::Path,
    location: &str,
    format: Option<tessera_engine::SourceFormat>,
    delimiter: Option<u8>,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    use tessera_engine::SourceFormat;
    let folder_url = tessera_engine::storage::resolve_location(location, base, true)?;
    let format = match format {
        Some(f) => f,
        None if engine.delta_exists(&folder_url).await.unwrap_or(false) => SourceFormat::Delta,
        None => SourceFormat::Parquet,
    };
    let is_dir = format == SourceFormat::Delta || location.ends_with('/');
    let url = tessera_engine::storage::resolve_location(location, base, is_dir)?;
    let mut spec = tessera_engine::SourceSpec::new(location, url, format);
    if let Some(d) = delimiter {
        spec.csv.delimiter = d;
    } else if format == SourceFormat::Csv && location.to_ascii_lowercase().ends_with(".tsv") {
        spec.csv.delimiter = b'\t';
    }
    if format == SourceFormat::Parquet && !location.to_ascii_lowercase().ends_with(".parquet") {
        // A folder of Parquet files.
        spec.url = folder_url;
    }
    let (provider, _) = engine.source_provider(&spec).await?;
    Ok(provider)
}

/// A fresh name for a call's table: unique in the process, so concurrent queries
/// (`tessera serve`) never see each other's registrations.
fn private_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("__tessera_time_travel_{n}")
}

fn visit(statement: &mut Statement, finder: &mut Finder) {
    match statement {
        Statement::Statement(s) => {
            let _ = s.visit(finder);
        }
        Statement::Explain(e) => visit(&mut e.statement, finder),
        _ => {}
    }
}

fn find<'a>(warehouse: &'a [WarehouseTable], name: &str) -> Result<&'a WarehouseTable> {
    warehouse.iter().find(|t| t.name == name).with_context(|| {
        let mut names: Vec<&str> = warehouse.iter().map(|t| t.name.as_str()).collect();
        names.truncate(30);
        format!(
            "`{name}` is not a table of the warehouse (time travel reads Tessera's Delta tables; some are: {})",
            names.join(", ")
        )
    })
}

async fn history_table(
    engine: &Engine,
    table: &WarehouseTable,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    let commits = engine.table_history(&table.url).await?;
    let json = |v: &serde_json::Value| v.to_string();
    let mut version = Vec::new();
    let mut at = Vec::new();
    let mut operation = Vec::new();
    let mut job = Vec::new();
    let mut parameters = Vec::new();
    let mut metrics = Vec::new();
    for (v, c) in &commits {
        version.push(*v as i64);
        at.push(c.timestamp.map(|ms| ms * 1000));
        operation.push(c.operation.clone());
        job.push(
            c.info
                .get("tessera.job")
                .and_then(|j| j.as_str())
                .map(str::to_string),
        );
        parameters.push(c.operation_parameters.as_ref().map(|p| {
            json(&serde_json::Value::Object(
                p.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ))
        }));
        metrics.push(c.info.get("operationMetrics").map(json));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("version", DataType::Int64, false),
        Field::new(
            "committed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("operation", DataType::Utf8, true),
        Field::new("job", DataType::Utf8, true),
        Field::new("parameters", DataType::Utf8, true),
        Field::new("metrics", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(version)),
            Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
            Arc::new(StringArray::from(operation)),
            Arc::new(StringArray::from(job)),
            Arc::new(StringArray::from(parameters)),
            Arc::new(StringArray::from(metrics)),
        ],
    )?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = |s: &str| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2026-11-20T10:00:00Z").unwrap(),
            "2026-11-20T10:00:00+00:00"
        );
        assert_eq!(
            t("2026-11-20T11:00:00+01:00").unwrap(),
            "2026-11-20T10:00:00+00:00"
        );
        assert_eq!(
            t("2026-11-20 10:00:00").unwrap(),
            "2026-11-20T10:00:00+00:00"
        );
        assert_eq!(t("2026-11-20").unwrap(), "2026-11-20T00:00:00+00:00");
        assert_eq!(t("yesterday"), None);
        assert_eq!(t(""), None);
    }

    #[test]
    fn calls_are_rewritten_with_an_alias() {
        let mut statements: Vec<Statement> = datafusion::sql::parser::DFParser::parse_sql(
            "select c.customer_id from at_version('profiles.customers', 2) c \
             join at_time('profiles.customers', '2026-01-01') on true \
             where exists (select 1 from table_history('scores.rfm'))",
        )
        .unwrap()
        .into_iter()
        .collect();
        let mut finder = Finder::default();
        visit(&mut statements[0], &mut finder);
        assert!(finder.error.is_none());
        let requests: Vec<_> = finder
            .calls
            .iter()
            .map(|c| (c.table.as_str(), c.request.clone()))
            .collect();
        assert_eq!(requests[0], ("profiles.customers", Request::Version(2)));
        assert!(matches!(requests[1].1, Request::Time(_)));
        assert_eq!(requests[2], ("scores.rfm", Request::History));
        let sql = statements[0].to_string();
        assert!(
            sql.contains(&format!("{} c ", finder.calls[0].private)),
            "{sql}"
        );
        assert!(
            sql.contains(&format!("{} AS customers", finder.calls[1].private)),
            "{sql}"
        );
        assert_ne!(finder.calls[0].private, finder.calls[1].private);
        assert!(!sql.contains("at_version"), "{sql}");
    }

    #[test]
    fn bad_calls_say_how_to_call() {
        for (sql, wanted) in [
            ("select * from at_version('t')", "takes 2"),
            ("select * from at_version('t', 'x')", "whole number"),
            ("select * from at_time('t', 'soon')", "not a timestamp"),
            ("select * from at_version(t, 1)", "quoted name"),
        ] {
            let mut statements: Vec<Statement> = datafusion::sql::parser::DFParser::parse_sql(sql)
                .unwrap()
                .into_iter()
                .collect();
            let mut finder = Finder::default();
            visit(&mut statements[0], &mut finder);
            let e = finder.error.unwrap_or_default();
            assert!(e.contains(wanted), "{sql}: {e}");
        }
    }
}
