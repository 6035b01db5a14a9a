//! `tessera run | plan | compile | test | ls`: the job commands.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::json;
use tessera_jobs::bail;
use tessera_jobs::dag::{BadSelection, Dag};
use tessera_jobs::errors::Result;
use tessera_jobs::job::Materialized;
use tessera_jobs::pipeline::{RunArgs, RunEvent};
use tessera_jobs::runner::{JobResult, JobStatus, RunFailed, RunOptions, Runner};
use tessera_jobs::workspace::{Workspace, load_dag};

fn select(dag: &Dag, selectors: &[String]) -> Result<Vec<usize>> {
    Ok(dag.select(selectors).map_err(BadSelection)?)
}

/// `tessera run`: the pipeline's events as a progress bar and lines on a terminal, lines
/// otherwise (logs, cron, CI), or JSON lines with `--json`.
pub(crate) async fn run(ws: &Workspace, args: &RunArgs, json: bool) -> Result<()> {
    let bar = std::sync::OnceLock::new();
    let run_id = std::sync::OnceLock::new();
    let on_event = |event: RunEvent<'_>| {
        if let RunEvent::Started { run_id: id, jobs } = &event {
            let _ = run_id.set(id.to_string());
            if !json && std::io::stdout().is_terminal() {
                let _ = bar.set(progress_bar(*jobs));
            }
        }
        let (value, line) = render(&event, run_id.get().map_or("", String::as_str));
        let mut out = std::io::stdout();
        if json {
            let _ = writeln!(out, "{value}");
        } else if let Some(bar) = bar.get() {
            bar.println(line);
        } else {
            let _ = writeln!(out, "{line}");
        }
        if let (RunEvent::JobFinished { result, .. }, Some(bar)) = (&event, bar.get()) {
            bar.inc(1);
            bar.set_message(result.name.clone());
        }
        if let (RunEvent::Finished { .. }, Some(bar)) = (&event, bar.get()) {
            bar.finish_and_clear();
        }
    };
    let outcome = tessera_jobs::pipeline::run(ws, args, &on_event).await;
    std::io::stdout().flush()?;
    outcome
}

/// An event as `--json` says it (one JSON object) and as a line of the run's output.
fn render(event: &RunEvent<'_>, run_id: &str) -> (serde_json::Value, String) {
    match event {
        RunEvent::Started { run_id, jobs } => (
            json!({"event": "run_started", "run_id": run_id, "jobs": jobs}),
            format!("run {run_id}: {jobs} jobs"),
        ),
        RunEvent::JobInvalid(e) => (
            json!({"event": "job_invalid", "path": e.path.display().to_string(), "line": e.line, "error": e.message}),
            format!("  INVALID  {e}"),
        ),
        RunEvent::JobFinished {
            result,
            incremental,
        } => job_finished(result, *incremental, run_id),
        RunEvent::RejectedRows(o) => (
            json!({"event": "rejected_rows", "run_id": run_id, "source": o.source,
                   "rows": o.rows, "rejected": o.rejected, "table": o.table,
                   "first": o.first}),
            format!("  {:<15} {}", "WARNING", o.summary()),
        ),
        RunEvent::Retention {
            table,
            rows_deleted,
        } => (
            json!({"event": "retention", "run_id": run_id, "table": table, "rows_deleted": rows_deleted}),
            format!("  RETENTION       {table:<32} {rows_deleted} row(s) past retention deleted"),
        ),
        RunEvent::Report { path, charts } => (
            json!({"event": "report", "path": path, "charts": charts}),
            format!("  REPORT          {} ({charts} charts)", path.display()),
        ),
        RunEvent::Cluster {
            address,
            shipped,
            local,
        } => (
            json!({"event": "cluster", "run_id": run_id, "cluster": address,
                   "shipped": shipped, "local": local}),
            format!(
                "  CLUSTER         {address}: {shipped} query parts ran on the cluster, {local} queries on this process"
            ),
        ),
        RunEvent::Finished {
            success,
            skipped,
            failed,
        } => (
            json!({"event": "run_finished", "run_id": run_id, "failed": failed,
                   "success": success, "skipped": skipped}),
            format!("done: {success} ran, {skipped} skipped (unchanged), {failed} failed"),
        ),
    }
}

/// The run's progress bar (a terminal's): jobs done of `jobs`, with the last one's name.
fn progress_bar(jobs: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(jobs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} jobs [{bar:30}] {elapsed} {msg}",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A job's end as the run says it: the `job_finished` event (`--json`) and its line.
fn job_finished(r: &JobResult, incremental: bool, run_id: &str) -> (serde_json::Value, String) {
    let seconds = (r.finished - r.started).num_milliseconds() as f64 / 1000.0;
    let detail = match r.status {
        JobStatus::Success if r.output_version.is_none() => "view (planned inline)".into(),
        JobStatus::Success if r.rows == Some(0) && incremental => {
            format!(
                "v{} unchanged: no new rows",
                r.output_version.unwrap_or_default()
            )
        }
        JobStatus::Success => format!(
            "{}{}",
            r.output_version
                .map(|v| format!("v{v} "))
                .unwrap_or_default(),
            r.rows.map(|n| format!("{n} rows")).unwrap_or_default()
        ),
        JobStatus::Skipped => r.reason.clone(),
        _ => r.error.clone().unwrap_or_default(),
    };
    (
        json!({
            "event": "job_finished", "run_id": run_id, "job": r.name, "path": r.path,
            "status": r.status.as_str(), "rows": r.rows, "output_version": r.output_version,
            "seconds": seconds, "reason": r.reason, "error": r.error,
            "warnings": r.warnings,
        }),
        format!(
            "  {:<15} {:<32} {:>7.2}s  {detail}{}",
            r.status.as_str().to_uppercase(),
            r.name,
            seconds,
            r.warnings
                .iter()
                .map(|w| format!("\n  {:<15} {w}", "WARNING"))
                .collect::<String>()
        ),
    )
}

/// A runner that plans and compiles (one job at a time, nothing run).
fn planner<'a>(ws: &'a Workspace, dag: &'a Dag, full_refresh: bool) -> Runner<'a> {
    Runner::new(
        ws,
        dag,
        RunOptions {
            full_refresh,
            concurrency: 1,
            ..RunOptions::default()
        },
    )
}

/// `tessera plan`: what would run, in order, and why.
pub(crate) async fn plan(ws: &Workspace, selectors: &[String], full_refresh: bool) -> Result<()> {
    let (dag, errors) = load_dag(ws).await?;
    for e in &errors {
        println!("INVALID  {e}");
    }
    let selected = select(&dag, selectors)?;
    let runner = planner(ws, &dag, full_refresh);
    let plans = runner.plan(&selected).await?;
    for (n, planned) in plans.into_iter().enumerate() {
        let job = &dag.jobs[planned.index];
        let action = if job.config.materialized == Materialized::View {
            "VIEW"
        } else if planned.run {
            "RUN "
        } else {
            "SKIP"
        };
        let reason = planned.reason;
        println!(
            "{:>3}. {action} {:<32} {:<11} {}",
            n + 1,
            job.name,
            job.config.materialized.to_string(),
            reason
        );
    }
    if !errors.is_empty() {
        bail!("{} job files have errors", errors.len());
    }
    Ok(())
}

/// `tessera compile`: the SQL each selected job will run.
pub(crate) async fn compile(
    ws: &Workspace,
    selectors: &[String],
    full_refresh: bool,
) -> Result<()> {
    let (dag, errors) = load_dag(ws).await?;
    let selected = select(&dag, selectors)?;
    let runner = planner(ws, &dag, full_refresh);
    for &i in &selected {
        let job = &dag.jobs[i];
        println!(
            "-- {} ({}, {})",
            job.name,
            job.path.display(),
            job.config.materialized
        );
        let compiled = runner.compile(i).await?;
        println!("{compiled};\n");
        if job.config.materialized == Materialized::Identity
            && let Some(config) = &ws.project.identity
        {
            println!("{}", identity_sql(ws, config, &compiled).await);
        }
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    if !errors.is_empty() {
        bail!("{} job files have errors", errors.len());
    }
    Ok(())
}

/// The SQL identity resolution runs over an identity job's rows (registered as
/// `__id_records`), for `tessera compile`. The columns come from planning the job's SQL, or
/// from the settings when its inputs do not exist yet.
async fn identity_sql(
    ws: &Workspace,
    config: &tessera_engine::identity::IdentityConfig,
    job_sql: &str,
) -> String {
    let planned = match ws.prepare_for(job_sql).await {
        Ok(_) => ws.engine.ctx().sql(job_sql).await.ok(),
        Err(_) => None,
    };
    let columns: Vec<String> = match planned {
        Some(df) => df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        None => {
            let mut columns = vec!["record_key".to_string(), "source".to_string()];
            let mentioned = config
                .identifiers
                .iter()
                .map(|i| &i.column)
                .chain(
                    config
                        .rules
                        .iter()
                        .chain(&config.blocking)
                        .flat_map(|r| &r.on),
                )
                .chain(config.comparisons.iter().filter_map(|c| c.column.as_ref()));
            for c in mentioned {
                if !columns.contains(c) {
                    columns.push(c.clone());
                }
            }
            columns
        }
    };
    format!(
        "-- identity resolution ([identity] in tessera.toml) over the rows above, as __id_records.\n\
         -- Random pairs for u, EM for m, scoring and union-find clustering run natively over the\n\
         -- pairs these queries produce.\n\n{}",
        tessera_engine::identity::sql::describe(config, "__id_records", &columns)
    )
}

/// `tessera test`: each selected job's given/expect unit tests, then (unless `unit_only`) its
/// data tests against its published table.
pub(crate) async fn test(ws: &Workspace, selectors: &[String], unit_only: bool) -> Result<()> {
    let (dag, errors) = load_dag(ws).await?;
    let selected = select(&dag, selectors)?;
    let runner = Runner::new(ws, &dag, RunOptions::default());
    let mut failed = 0;
    let mut total = 0;
    for &i in &selected {
        let job = &dag.jobs[i];
        let mut failures = runner.run_unit_tests(job).await?;
        let mut count = job.unit_tests.len();
        if !unit_only && !job.config.tests.is_empty() {
            count += job.config.tests.len();
            match runner.output_provider(i).await {
                Ok(provider) => failures.extend(runner.run_tests(job, provider).await?),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        if count == 0 {
            continue;
        }
        total += count;
        if failures.is_empty() {
            println!("PASS  {:<32} {count} tests", job.name);
        } else {
            failed += failures.len();
            println!("FAIL  {:<32} {}", job.name, failures.join("; "));
        }
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    println!("{total} tests, {failed} failed");
    if failed > 0 || !errors.is_empty() {
        return Err(RunFailed {
            what: "tests",
            failed: failed + errors.len(),
            total,
        }
        .into());
    }
    Ok(())
}

/// `tessera ls`: the jobs, in run order.
pub(crate) async fn ls(ws: &Workspace, selectors: &[String]) -> Result<()> {
    let (dag, errors) = load_dag(ws).await?;
    let selected = select(&dag, selectors)?;
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::ASCII_MARKDOWN);
    table.set_header([
        "job",
        "materialized",
        "tags",
        "reads",
        "path",
        "description",
    ]);
    for &i in &selected {
        let job = &dag.jobs[i];
        table.add_row([
            job.name.clone(),
            job.config.materialized.to_string(),
            job.config.tags.join(", "),
            job.references
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            job.path.display().to_string(),
            job.config.description.clone().unwrap_or_default(),
        ]);
    }
    println!("{table}");
    for e in &errors {
        eprintln!("error: {e}");
    }
    if !errors.is_empty() {
        bail!("{} job files have errors", errors.len());
    }
    Ok(())
}
