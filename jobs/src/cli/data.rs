//! `tessera write`, `export`, `demo` and `functions`.

use super::*;

pub(crate) async fn write(
    ws: &Workspace,
    table: &str,
    query: &str,
    mode: Mode,
    partition_by: Vec<String>,
    to: Option<String>,
) -> Result<()> {
    let url = match to {
        Some(to) => resolve_location(&to, &ws.project.dir, true)?,
        None => {
            let parts: Vec<&str> = table.split('.').collect();
            if parts.is_empty()
                || parts.len() > 2
                || parts.iter().any(|p| {
                    p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            {
                bail!(
                    "`{table}` is not a table name (use `schema.table` or `table`, letters, digits and _)"
                );
            }
            ws.project
                .warehouse
                .join(&format!("{}/", parts.join("/")))?
        }
    };
    let df = one_query(ws, query, "write").await?;
    let started = Instant::now();
    let outcome = ws
        .engine
        .write_delta(df, url.clone())
        .with_mode(match mode {
            Mode::Overwrite => WriteMode::Overwrite,
            Mode::Append => WriteMode::Append,
        })
        .with_partition_columns(partition_by)
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return Err(explain_read_error(ws, e.into()).await),
    };
    println!(
        "wrote {} rows to {table} ({url}) as version {} in {:.2}s",
        outcome
            .rows
            .map(|r| r.to_string())
            .unwrap_or_else(|| "?".into()),
        outcome.version,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The one query `command` takes, planned (its tables registered first).
async fn one_query(
    ws: &Workspace,
    query: &str,
    command: &str,
) -> Result<datafusion::dataframe::DataFrame> {
    let statements = ws.prepare_for(query).await?;
    if statements.len() != 1 {
        bail!(
            "{command} takes exactly one query, found {}",
            statements.len()
        );
    }
    let ctx = ws.engine.ctx();
    let plan = ctx
        .state()
        .statement_to_plan(statements.into_iter().next().expect("one statement"))
        .await?;
    Ok(ctx.execute_logical_plan(plan).await?)
}

pub(crate) async fn export(ws: &Workspace, query: &str, to: &str) -> Result<()> {
    let format = ExportFormat::from_path(to)
        .with_context(|| format!("`{to}`: the file name must end in .parquet or .csv"))?;
    let url = resolve_location(to, &ws.project.dir, false)?;
    let df = one_query(ws, query, "export").await?;
    let rows = match ws.engine.export(df, &url, format).await {
        Ok(rows) => rows,
        Err(e) => return Err(explain_read_error(ws, e.into()).await),
    };
    println!("exported {rows} rows to {url}");
    Ok(())
}

pub(crate) async fn run_demo(
    project_dir: &Path,
    out: Option<String>,
    options: DemoOptions,
    query: bool,
    run_jobs: bool,
) -> Result<()> {
    let project_file = project_dir.join(PROJECT_FILE);
    let project = if project_file.exists() {
        Project::load(project_dir)?
    } else {
        // A folder that is neither a project nor empty is someone's: scaffolding the demo in
        // it needs --force.
        let occupied = std::fs::read_dir(project_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .unwrap_or(false);
        if occupied && !options.overwrite {
            return Err(tessera_jobs::dag::BadSelection(format!(
                "{} holds files but no {PROJECT_FILE}: `tessera demo` writes a project there only \
                 with --force (or run it in an empty folder, or in a project)",
                project_dir.display()
            ))
            .into());
        }
        Project::default_for(project_dir)?
    };
    let out_text = out.unwrap_or_else(|| "data".to_string());
    let out_url = resolve_location(&out_text, &project.dir, true)?;
    let engine = project.engine()?;

    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(options.people);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} generating people {pos}/{len} [{bar:30}] {per_sec} eta {eta}",
            )
            .expect("valid template"),
        );
        Some(bar)
    } else {
        None
    };
    let started = Instant::now();
    let summary = demo::generate(&engine, &out_url, &options, |done| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        } else {
            tracing::info!(people = done, "generated");
        }
    })
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Generated {} people in {:.1}s ({:.0} people/s) at {out_url}",
        summary.people,
        secs,
        summary.people as f64 / secs.max(1e-9)
    );
    for t in &summary.tables {
        println!(
            "  {:<18} {:<8} {:>12} rows  {}",
            t.name, t.format, t.rows, t.path
        );
    }

    if !project_file.exists() {
        std::fs::create_dir_all(&project.dir)?;
        std::fs::write(&project_file, demo_project_file(&project.name, &out_text))
            .with_context(|| format!("cannot write {}", project_file.display()))?;
        println!(
            "Wrote {} with a source per demo table",
            project_file.display()
        );
    }
    let has_jobs = !tessera_jobs::job::discover(&project.dir).0.is_empty();
    if !has_jobs || options.overwrite {
        let written = tessera_jobs::library::install(&project.dir, options.overwrite)
            .with_context(|| format!("cannot write jobs under {}", project.dir.display()))?;
        if !written.is_empty() {
            println!(
                "Wrote {} job files from the SQL library under {}",
                written.len(),
                project.dir.join(tessera_jobs::job::JOBS_DIR).display()
            );
        }
    }
    if run_jobs {
        let ws = Workspace::open(Project::load(project_dir)?)?;
        println!();
        // Replaced data invalidates what incremental jobs merged from the old data (newer-only
        // loads would keep the old orders): rebuild everything.
        super::jobs::run(
            &ws,
            &tessera_jobs::pipeline::RunArgs {
                concurrency: 2,
                full_refresh: options.overwrite,
                report: true,
                ..Default::default()
            },
            false,
        )
        .await?;
    }
    if query {
        let project = Project::load(project_dir)?;
        let ws = Workspace::open(project)?;
        let q = "select c.country, count(distinct c.pos_customer_id) as customers, \
                 count(o.order_id) as orders, sum(o.amount) as revenue, min(o.currency) as currency \
                 from pos_customers c left join pos_orders o on o.pos_customer_id = c.pos_customer_id \
                 group by c.country order by customers desc";
        println!("\n{q}\n");
        sql(&ws, q, OutputFormat::Table, 20).await?;
    }
    Ok(())
}

/// `tessera functions`: the library's functions and their documentation.
pub(crate) async fn functions(pattern: Option<&str>, format: OutputFormat) -> Result<()> {
    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::Documentation;

    let mut all: Vec<(String, Option<Documentation>)> = tessera_engine::udfs::scalar_functions()
        .iter()
        .map(|f| (f.name().to_string(), f.documentation().cloned()))
        .collect();
    all.extend(
        tessera_engine::udfs::aggregate_functions()
            .iter()
            .map(|f| (f.name().to_string(), f.documentation().cloned())),
    );
    let pattern = pattern.map(str::to_lowercase);
    let chosen: Vec<&(String, Option<Documentation>)> = all
        .iter()
        .filter(|(name, _)| pattern.as_deref().is_none_or(|p| name.contains(p)))
        .collect();
    if let (Some(p), [(name, doc)]) = (&pattern, chosen.as_slice())
        && name == p
    {
        let doc = doc.as_ref().context("no documentation")?;
        println!("{name}  ({})\n", doc.doc_section.label);
        println!("{}\n", doc.description);
        println!("Syntax: {}\n", doc.syntax_example);
        if let Some(args) = &doc.arguments {
            println!("Arguments:");
            for (arg, text) in args {
                println!("  {arg}: {text}");
            }
            println!();
        }
        if let Some(example) = &doc.sql_example {
            println!("{example}");
        }
        return Ok(());
    }
    if chosen.is_empty() {
        bail!(
            "no Tessera function matches `{}`",
            pattern.unwrap_or_default()
        );
    }
    let column = |f: &dyn Fn(&str, Option<&Documentation>) -> String| {
        std::sync::Arc::new(StringArray::from(
            chosen
                .iter()
                .map(|(name, doc)| f(name, doc.as_ref()))
                .collect::<Vec<_>>(),
        )) as datafusion::arrow::array::ArrayRef
    };
    let batch = RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![
            Field::new("function", DataType::Utf8, false),
            Field::new("section", DataType::Utf8, false),
            Field::new("syntax", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
        ])),
        vec![
            column(&|name, _| name.to_string()),
            column(&|_, d| {
                d.map(|d| d.doc_section.label.to_string())
                    .unwrap_or_default()
            }),
            column(&|_, d| d.map(|d| d.syntax_example.clone()).unwrap_or_default()),
            column(&|_, d| {
                d.map(|d| {
                    let first = d.description.split(". ").next().unwrap_or_default();
                    first.trim_end_matches('.').to_string()
                })
                .unwrap_or_default()
            }),
        ],
    )?;
    let ctx = datafusion::prelude::SessionContext::new();
    let stream = ctx.read_batch(batch)?.execute_stream().await?;
    print_stream(stream, format, usize::MAX, &mut std::io::stdout()).await?;
    Ok(())
}
