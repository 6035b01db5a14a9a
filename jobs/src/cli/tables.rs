//! `tessera tables` and `tessera profile`.

use super::*;

/// Prints `tessera profile`.
pub(crate) async fn profile(ws: &Workspace, table: &str, format: OutputFormat) -> Result<()> {
    use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray, UInt64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let profiles = tessera_jobs::mapping::profile(ws, table).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("column", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("filled", DataType::Utf8, false),
        Field::new("distinct", DataType::UInt64, false),
        Field::new("max_len", DataType::UInt64, false),
        Field::new("looks_like", DataType::Utf8, true),
        Field::new("confidence", DataType::Float64, true),
        Field::new("examples", DataType::Utf8, false),
    ]));
    let p = &profiles;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|c| c.column.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|c| c.data_type.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|c| format!("{:.1}%", c.fill_rate * 100.0)),
            )),
            Arc::new(UInt64Array::from_iter_values(p.iter().map(|c| c.distinct))),
            Arc::new(UInt64Array::from_iter_values(
                p.iter().map(|c| c.max_length as u64),
            )),
            Arc::new(StringArray::from_iter(
                p.iter().map(|c| c.kind.map(|k| k.name())),
            )),
            Arc::new(Float64Array::from_iter(
                p.iter().map(|c| c.kind.map(|_| c.confidence)),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|c| c.examples.join(" | ")),
            )),
        ],
    )?;
    let rows = p.first().map_or(0, |c| c.rows);
    let stream = ws.engine.ctx().read_batch(batch)?.execute_stream().await?;
    let mut out = std::io::stdout();
    tessera_jobs::output::print_stream(stream, format, usize::MAX, &mut out).await?;
    if format == OutputFormat::Table {
        println!("{rows} rows in `{table}`");
    }
    Ok(())
}

/// One line of `tessera tables`: a source, a warehouse table or a view.
pub(crate) struct TableLine {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) format: String,
    pub(crate) rows: Option<i64>,
    pub(crate) version: Option<u64>,
    pub(crate) location: String,
    /// The description, or why it cannot be read (`unavailable: …`).
    pub(crate) note: Option<String>,
}

pub(crate) async fn tables(ws: &Workspace, format: OutputFormat, count: bool) -> Result<()> {
    let lines = table_lines(ws, count).await?;
    if format == OutputFormat::Table {
        print_table_lines(ws, &lines);
        return Ok(());
    }
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, UInt64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, true),
        Field::new("delta_version", DataType::UInt64, true),
        Field::new("location", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    let strings = |f: &dyn Fn(&TableLine) -> Option<&str>| {
        std::sync::Arc::new(StringArray::from_iter(lines.iter().map(f)))
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            strings(&|l| Some(l.name.as_str())),
            strings(&|l| Some(l.kind)),
            strings(&|l| Some(l.format.as_str())),
            std::sync::Arc::new(Int64Array::from_iter(lines.iter().map(|l| l.rows))),
            std::sync::Arc::new(UInt64Array::from_iter(lines.iter().map(|l| l.version))),
            strings(&|l| Some(l.location.as_str())),
            strings(&|l| l.note.as_deref()),
        ],
    )?;
    let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
        batch.schema(),
        futures::stream::iter(vec![Ok(batch)]),
    );
    print_stream(
        Box::pin(stream),
        format,
        usize::MAX,
        &mut std::io::stdout().lock(),
    )
    .await?;
    Ok(())
}

/// The project's sources, warehouse tables and views, with their rows when `count`.
pub(crate) async fn table_lines(ws: &Workspace, count: bool) -> Result<Vec<TableLine>> {
    use datafusion::arrow::array::Int64Array;
    let ctx = ws.engine.ctx();
    let count_rows = |name: String| async move {
        if !count {
            return Ok::<_, tessera_jobs::errors::Error>(None);
        }
        let df = ctx.sql(&format!("select count(*) from {name}")).await?;
        let batches = df.collect().await?;
        Ok(batches.first().and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .map(|a| a.value(0))
        }))
    };
    let mut lines = Vec::new();
    for (name, decl) in &ws.project.sources {
        let mut line = TableLine {
            name: name.clone(),
            kind: "source",
            format: decl.spec.format.name().to_string(),
            rows: None,
            version: None,
            location: decl.spec.url.to_string(),
            note: decl.description.clone(),
        };
        match ws.register_source(name).await {
            Ok(registered) => {
                line.version = registered.delta_version;
                match count_rows(quote_ident(name)).await {
                    Ok(n) => line.rows = n,
                    Err(e) => line.note = Some(format!("{e:#}")),
                }
            }
            Err(e) => line.note = Some(format!("unavailable: {e:#}")),
        }
        lines.push(line);
    }
    for table in ws.warehouse_tables().await? {
        let mut line = TableLine {
            name: table.name.clone(),
            kind: "warehouse",
            format: "delta".into(),
            rows: None,
            version: None,
            location: table.url.to_string(),
            note: None,
        };
        match ws.register_warehouse_table(&table).await {
            Ok(version) => {
                line.version = Some(version);
                line.rows = count_rows(table.sql()).await.unwrap_or(None);
            }
            Err(e) => line.note = Some(format!("unavailable: {e:#}")),
        }
        lines.push(line);
    }
    // View jobs: planned when read, so listed without a count.
    let (jobs, _) = tessera_jobs::job::discover_with(&ws.project.dir, &ws.project.jobs);
    for job in jobs
        .iter()
        .filter(|j| j.config.materialized == tessera_jobs::job::Materialized::View)
    {
        lines.push(TableLine {
            name: job.name.clone(),
            kind: "view",
            format: "sql".into(),
            rows: None,
            version: None,
            location: job.path.display().to_string(),
            note: job.config.description.clone(),
        });
    }
    Ok(lines)
}

/// `tessera tables` for people, in 100 columns: the sources (format, rows, location under
/// the project relative to it), then the warehouse's tables and the views (kind, rows,
/// version); notes only in `--format json`, except why a table cannot be read (on stderr).
pub(crate) fn print_table_lines(ws: &Workspace, lines: &[TableLine]) {
    let root = url::Url::from_directory_path(&ws.project.dir).ok();
    let dir_prefix = format!("{}/", ws.project.dir.display());
    let relative = |location: &str| -> String {
        root.as_ref()
            .and_then(|r| location.strip_prefix(r.as_str()))
            .or_else(|| location.strip_prefix(&dir_prefix))
            .unwrap_or(location)
            .to_string()
    };
    let shown = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let mut sources = comfy_table::Table::new();
    sources.load_style(comfy_table::presets::ASCII_MARKDOWN);
    sources.set_header(["source", "format", "rows", "location"]);
    let mut tables = comfy_table::Table::new();
    tables.load_style(comfy_table::presets::ASCII_MARKDOWN);
    tables.set_header(["table", "kind", "rows", "version"]);
    for l in lines {
        match l.kind {
            "source" => {
                sources.add_row([
                    l.name.clone(),
                    l.format.clone(),
                    shown(l.rows),
                    relative(&l.location),
                ]);
            }
            kind => {
                tables.add_row([
                    l.name.clone(),
                    if kind == "warehouse" { "table" } else { kind }.to_string(),
                    shown(l.rows),
                    l.version.map(|v| v.to_string()).unwrap_or_default(),
                ]);
            }
        }
    }
    if !sources.is_empty() {
        println!("{sources}");
    }
    if !tables.is_empty() {
        if !sources.is_empty() {
            println!();
        }
        println!("{tables}");
    }
    // What cannot be read is said, not left as an empty cell.
    for l in lines {
        if let Some(why) = l
            .note
            .as_deref()
            .and_then(|n| n.strip_prefix("unavailable: "))
        {
            eprintln!("warning: {} is unavailable: {why}", l.name);
        }
    }
}
