//! Quality checks on the identity records before they are resolved: an identifier or name
//! column that is empty, or whose fill rate fell sharply since the last run (an upstream export
//! changed and matching silently loses its evidence); values longer than any name or identifier
//! is (a 1 MB "first name"); a source whose record count swings beyond a bound. Each one is a
//! warning under the job's line (and in the run log); `[quality] fail_on` makes the kinds it
//! names fail the job, publishing nothing. What each run measured is appended to
//! `_tessera.quality`, the baseline of the next.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::errors::{Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use tessera_engine::WriteMode;
use tessera_engine::identity::config::IdentityConfig;

use crate::project::QualityConfig;
use crate::workspace::Workspace;

/// Where each run's measurements go.
pub const TABLE: &str = "_tessera.quality";

/// A kind of quality warning (the names `[quality] fail_on` takes).
pub use crate::project::QUALITY_CHECKS as KINDS;

/// One measurement: a column of the records of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// The source (`source` column of the records).
    pub source: String,
    /// The column.
    pub column: String,
    /// Records of the source.
    pub rows: u64,
    /// Share of them with a value.
    pub fill_rate: f64,
    /// Longest value, in characters.
    pub max_length: u64,
}

/// A warning and its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// What to say.
    pub message: String,
}

/// The columns checked: identifiers, compared columns and names the records have.
fn checked_columns(config: &IdentityConfig, columns: &[String]) -> Vec<String> {
    let mut wanted: Vec<String> = config
        .identifiers
        .iter()
        .map(|i| i.column.clone())
        .chain(config.comparisons.iter().filter_map(|c| c.column.clone()))
        .chain(["first_name", "last_name"].map(String::from))
        .collect();
    wanted.retain(|c| columns.contains(c));
    wanted.sort();
    wanted.dedup();
    wanted
}

/// A table name of the session no other query uses (identity jobs may run concurrently).
fn scratch_name(what: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("__quality_{what}_{n}")
}

/// Measures the records, per source and column.
pub async fn measure(
    ws: &Workspace,
    records: Arc<dyn TableProvider>,
    config: &IdentityConfig,
) -> Result<Vec<Measure>> {
    let columns: Vec<String> = records
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if !columns.iter().any(|c| c == "source") {
        return Ok(Vec::new());
    }
    let checked = checked_columns(config, &columns);
    let ctx = ws.engine.ctx();
    let df = ctx.read_table(records)?;
    let mut select = vec![
        "cast(source as varchar) as source".to_string(),
        "count(*) as n".into(),
    ];
    for (i, c) in checked.iter().enumerate() {
        let text = format!(
            "nullif(trim(cast({} as varchar)), '')",
            tessera_engine::sql::ident(c)
        );
        select.push(format!("count({text}) as f{i}"));
        select.push(format!("max(character_length({text})) as l{i}"));
    }
    let name = scratch_name("records");
    ctx.register_table(&name, df.into_view())?;
    let batches = ctx
        .sql(&format!(
            "select {} from {name} group by source",
            select.join(", ")
        ))
        .await?
        .collect()
        .await;
    ctx.deregister_table(&name)?;
    let batches = batches.context("measuring the identity records")?;
    let mut out = Vec::new();
    for b in &batches {
        let sources = cast(b.column(0), &DataType::Utf8)?;
        let sources = sources
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("utf8");
        let int = |i: usize| -> Result<Int64Array> {
            let a = cast(b.column(i), &DataType::Int64)?;
            Ok(a.as_any()
                .downcast_ref::<Int64Array>()
                .expect("i64")
                .clone())
        };
        let n = int(1)?;
        for (i, c) in checked.iter().enumerate() {
            let (f, l) = (int(2 + 2 * i)?, int(3 + 2 * i)?);
            for r in 0..b.num_rows() {
                let rows = n.value(r).max(0) as u64;
                out.push(Measure {
                    source: if sources.is_valid(r) {
                        sources.value(r).to_string()
                    } else {
                        String::new()
                    },
                    column: c.clone(),
                    rows,
                    fill_rate: if rows == 0 {
                        0.0
                    } else {
                        f.value(r) as f64 / rows as f64
                    },
                    max_length: if l.is_valid(r) {
                        l.value(r).max(0) as u64
                    } else {
                        0
                    },
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.source, &a.column).cmp(&(&b.source, &b.column)));
    Ok(out)
}

/// The last run's measurements of `job` from `_tessera.quality` (none on a first run).
pub async fn previous(
    ws: &Workspace,
    table: Option<Arc<dyn TableProvider>>,
    job: &str,
) -> Result<Vec<Measure>> {
    let Some(table) = table else {
        return Ok(Vec::new());
    };
    let ctx = ws.engine.ctx();
    let name = scratch_name("before");
    ctx.register_table(&name, ctx.read_table(table)?.into_view())?;
    let job = tessera_engine::sql::literal(job);
    let sql = format!(
        "select source, \"column\", rows, fill_rate, max_length from {name} \
         where job = {job} and run_id = (select max(run_id) from {name} where job = {job})"
    );
    let batches = ctx.sql(&sql).await?.collect().await;
    ctx.deregister_table(&name)?;
    let batches = batches.with_context(|| format!("reading {TABLE}"))?;
    let mut out = Vec::new();
    for b in &batches {
        let s = |i: usize| -> Result<StringArray> {
            Ok(cast(b.column(i), &DataType::Utf8)?
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8")
                .clone())
        };
        let u = |i: usize| -> Result<UInt64Array> {
            Ok(cast(b.column(i), &DataType::UInt64)?
                .as_any()
                .downcast_ref::<UInt64Array>()
                .expect("u64")
                .clone())
        };
        let (source, column, rows, len) = (s(0)?, s(1)?, u(2)?, u(4)?);
        let fill = cast(b.column(3), &DataType::Float64)?;
        let fill = fill.as_any().downcast_ref::<Float64Array>().expect("f64");
        for r in 0..b.num_rows() {
            out.push(Measure {
                source: source.value(r).to_string(),
                column: column.value(r).to_string(),
                rows: rows.value(r),
                fill_rate: fill.value(r),
                max_length: len.value(r),
            });
        }
    }
    Ok(out)
}

/// The warnings the measurements give against the last run's.
pub fn warnings(now: &[Measure], before: &[Measure], config: &QualityConfig) -> Vec<Warning> {
    let mut out = Vec::new();
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    // A column empty in every record, whatever the source, that had values last run (a
    // column empty from the start is the model's warning: its comparison tells nothing).
    let mut by_column: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    for m in now {
        let e = by_column.entry(&m.column).or_default();
        e.0 += m.rows;
        e.1 += m.fill_rate * m.rows as f64;
    }
    for (column, (rows, filled)) in &by_column {
        let had_values = before
            .iter()
            .any(|p| p.column == *column && p.fill_rate > 0.0);
        if *rows > 0 && *filled == 0.0 && had_values {
            out.push(Warning {
                kind: "empty_column",
                message: format!(
                    "`{column}` is empty in all {rows} records, and had values last run: matching \
                     cannot use it (did an export or a mapping change?)"
                ),
            });
        }
    }
    let previous: BTreeMap<(&str, &str), &Measure> = before
        .iter()
        .map(|m| ((m.source.as_str(), m.column.as_str()), m))
        .collect();
    let mut sources_seen = std::collections::BTreeSet::new();
    for m in now {
        let Some(p) = previous.get(&(m.source.as_str(), m.column.as_str())) else {
            continue;
        };
        if by_column
            .get(m.column.as_str())
            .is_some_and(|(_, f)| *f == 0.0)
        {
            // Said once for the whole column above.
        } else if p.fill_rate >= 0.05 && m.fill_rate < p.fill_rate * (1.0 - config.max_fill_drop) {
            out.push(Warning {
                kind: "fill_drop",
                message: format!(
                    "source `{}`: `{}` filled in {} of its records, {} last run",
                    m.source,
                    m.column,
                    pct(m.fill_rate),
                    pct(p.fill_rate)
                ),
            });
        }
        if sources_seen.insert(m.source.as_str()) && p.rows > 0 {
            let change = (m.rows as f64 - p.rows as f64) / p.rows as f64;
            if change.abs() > config.max_row_change {
                out.push(Warning {
                    kind: "row_change",
                    message: format!(
                        "source `{}`: {} records, {} last run ({:+.0}%)",
                        m.source,
                        m.rows,
                        p.rows,
                        100.0 * change
                    ),
                });
            }
        }
    }
    for m in now {
        if m.max_length > config.max_value_length {
            out.push(Warning {
                kind: "long_values",
                message: format!(
                    "source `{}`: `{}` holds a value of {} characters (more than max_value_length = {})",
                    m.source, m.column, m.max_length, config.max_value_length
                ),
            });
        }
    }
    out
}

/// Appends this run's measurements of `job` to `_tessera.quality`.
pub async fn record(ws: &Workspace, job: &str, run_id: &str, measures: &[Measure]) -> Result<()> {
    if measures.is_empty() {
        return Ok(());
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("job", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("fill_rate", DataType::Float64, false),
        Field::new("max_length", DataType::UInt64, false),
    ]));
    let n = measures.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run_id; n])),
        Arc::new(StringArray::from(vec![job; n])),
        Arc::new(StringArray::from_iter_values(
            measures.iter().map(|m| &m.source),
        )),
        Arc::new(StringArray::from_iter_values(
            measures.iter().map(|m| &m.column),
        )),
        Arc::new(UInt64Array::from_iter_values(
            measures.iter().map(|m| m.rows),
        )),
        Arc::new(Float64Array::from_iter_values(
            measures.iter().map(|m| m.fill_rate),
        )),
        Arc::new(UInt64Array::from_iter_values(
            measures.iter().map(|m| m.max_length),
        )),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    let df = ws.engine.ctx().read_batch(batch)?;
    let url = crate::workspace::table_url(&ws.project.warehouse, TABLE)?;
    ws.engine
        .write_delta(df, url)
        .with_mode(WriteMode::Append)
        .await
        .with_context(|| format!("cannot append to {TABLE}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(source: &str, column: &str, rows: u64, fill: f64, len: u64) -> Measure {
        Measure {
            source: source.into(),
            column: column.into(),
            rows,
            fill_rate: fill,
            max_length: len,
        }
    }

    #[test]
    fn each_kind_is_found_and_steady_data_says_nothing() {
        let config = QualityConfig::default();
        let before = vec![
            m("crm", "email", 1000, 0.9, 40),
            m("crm", "phone", 1000, 0.8, 15),
        ];
        assert!(warnings(&before, &before, &config).is_empty());
        let now = vec![
            m("crm", "email", 1000, 0.0, 0),
            m("crm", "phone", 1000, 0.3, 15),
        ];
        let kinds: Vec<&str> = warnings(&now, &before, &config)
            .iter()
            .map(|w| w.kind)
            .collect();
        assert_eq!(kinds, ["empty_column", "fill_drop"]);
        let now = vec![
            m("crm", "email", 300, 0.9, 1_048_576),
            m("crm", "phone", 300, 0.8, 15),
        ];
        let w = warnings(&now, &before, &config);
        let kinds: Vec<&str> = w.iter().map(|w| w.kind).collect();
        assert_eq!(kinds, ["row_change", "long_values"], "{w:?}");
        assert!(
            w[0].message.contains("300 records, 1000 last run (-70%)"),
            "{w:?}"
        );
        // A column empty from the start is not a change.
        assert!(warnings(&[m("crm", "loyalty", 10, 0.0, 0)], &[], &config).is_empty());
        // A first run: only what needs no baseline.
        let kinds: Vec<&str> = warnings(&now, &[], &config)
            .iter()
            .map(|w| w.kind)
            .collect();
        assert_eq!(kinds, ["long_values"]);
    }
}
