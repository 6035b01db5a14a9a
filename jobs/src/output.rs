//! Printing query results: an aligned table for people, CSV and JSON for programs.

use std::io::Write;

use crate::errors::Result;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

/// A whole number with its thousands separated by commas (`1,234,567`).
pub fn grouped(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0 { format!("-{out}") } else { out }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned table (at most `--max-rows` rows).
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
}

/// Prints a stream of batches, returning the number of rows.
pub async fn print_stream(
    mut stream: SendableRecordBatchStream,
    format: OutputFormat,
    max_rows: usize,
    out: &mut dyn Write,
) -> Result<u64> {
    let mut rows = 0u64;
    match format {
        OutputFormat::Table => {
            let schema = stream.schema();
            let mut kept: Vec<RecordBatch> = Vec::new();
            let mut shown = 0usize;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                if shown < max_rows {
                    let take = (max_rows - shown).min(batch.num_rows());
                    kept.push(batch.slice(0, take));
                    shown += take;
                }
            }
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::ASCII_MARKDOWN);
            table.set_header(schema.fields().iter().map(|f| f.name().as_str()));
            let options = FormatOptions::default().with_null("NULL");
            for batch in &kept {
                let formatters = batch
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<Result<Vec<_>, _>>()?;
                for row in 0..batch.num_rows() {
                    table.add_row(formatters.iter().map(|f| f.value(row).to_string()));
                }
            }
            writeln!(out, "{table}")?;
            let more = rows.saturating_sub(shown as u64);
            if more > 0 {
                writeln!(
                    out,
                    "({rows} rows, {more} not shown; use --max-rows or --format csv)"
                )?;
            } else {
                writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
            }
        }
        OutputFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            let mut any = false;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
                any = true;
            }
            if !any {
                writer.write(&RecordBatch::new_empty(stream.schema()))?;
            }
        }
        OutputFormat::Json => {
            // Every row carries every column (NULL as `null`), so consumers see a stable shape.
            let mut writer = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut *out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.finish()?;
            drop(writer);
            writeln!(out)?;
        }
        OutputFormat::Jsonl => {
            let mut writer = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut *out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.finish()?;
        }
    }
    out.flush()?;
    Ok(rows)
}
