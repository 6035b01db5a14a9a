//! Rows a source could not read, after a run: counted in the run output and, for sources with
//! `on_error = "quarantine"`, kept in the Delta table `quarantine.<source>` (file, line, reason,
//! the row's text), replaced by each run that reads the source. The table holds personal data
//! like its source: `tessera forget` deletes the rows that name the person.

use std::sync::Arc;

use crate::errors::{Context, Result};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use tessera_engine::WriteMode;
use tessera_engine::lenient_csv::{LoadReport, OnError};

use crate::workspace::Workspace;

/// The schema quarantine tables live in.
pub const SCHEMA: &str = "quarantine";

/// What the run says about one source's rejected rows.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The source.
    pub source: String,
    /// Rows read.
    pub rows: u64,
    /// Rows left out.
    pub rejected: usize,
    /// The quarantine table written, when the source quarantines.
    pub table: Option<String>,
    /// The first rejected row's place and reason.
    pub first: Option<String>,
}

impl Outcome {
    /// One line for the run output.
    pub fn summary(&self) -> String {
        let what = match &self.table {
            Some(table) => format!("kept in {table}"),
            None => "skipped".into(),
        };
        let first = self
            .first
            .as_ref()
            .map(|f| format!("; first: {f}"))
            .unwrap_or_default();
        format!(
            "source `{}`: {} of {} rows could not be read, {what}{first}",
            self.source, self.rejected, self.rows
        )
    }
}

/// Writes `quarantine.<source>` for each quarantining source this process read, and reports
/// every source that rejected rows.
pub async fn publish(ws: &Workspace) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for (source, report) in ws.engine.reject_log().reports() {
        let table = if report.on_error == OnError::Quarantine {
            let name = format!("{SCHEMA}.{source}");
            crate::failpoint::check("quarantine:before-write")?;
            write(ws, &name, &report)
                .await
                .with_context(|| format!("cannot write the quarantine table {name}"))?;
            Some(name)
        } else {
            None
        };
        if report.rejected.is_empty() {
            continue;
        }
        outcomes.push(Outcome {
            source,
            rows: report.rows,
            rejected: report.rejected.len(),
            first: report
                .rejected
                .first()
                .map(|r| format!("{}, line {}: {}", r.file, r.line, r.reason)),
            table,
        });
    }
    Ok(outcomes)
}

async fn write(ws: &Workspace, name: &str, report: &LoadReport) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, false),
    ]));
    let rows = &report.rejected;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.file))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.line))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| &r.reason),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| &r.record),
        )),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    let df = ws.engine.ctx().read_batch(batch)?;
    let url = crate::workspace::table_url(&ws.project.warehouse, name)?;
    ws.engine
        .write_delta(df, url)
        .with_mode(WriteMode::Overwrite)
        .await?;
    Ok(())
}
