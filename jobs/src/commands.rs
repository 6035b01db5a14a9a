//! `tessera run | plan | compile | test | ls`: the job commands.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use serde_json::json;

use crate::dag::Dag;
use crate::job::Materialized;
pub use crate::runner::register_view_jobs;
use crate::runner::{JobResult, JobStatus, RunLock, RunOptions, Runner, append_run_log};
use crate::workspace::Workspace;
pub use crate::workspace::load_dag;

/// At least one job failed (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} {what} failed")]
pub struct RunFailed {
    /// "jobs" or "tests".
    pub what: &'static str,
    /// Failed jobs (including test failures, upstream failures and invalid job files).
    pub failed: usize,
    /// Jobs considered.
    pub total: usize,
}

pub use crate::dag::BadSelection;

fn select(dag: &Dag, selectors: &[String]) -> Result<Vec<usize>> {
    Ok(dag.select(selectors).map_err(BadSelection)?)
}

/// Options of `tessera run`.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    /// Selectors.
    pub select: Vec<String>,
    /// Rebuild everything selected.
    pub full_refresh: bool,
    /// Jobs at once.
    pub concurrency: usize,
    /// JSON lines on stdout instead of text.
    pub json: bool,
    /// Wait this long for another run's lock.
    pub wait: Duration,
    /// Write the HTML report after the run.
    pub report: bool,
}

/// `tessera run`.
pub async fn run(ws: &Workspace, args: &RunArgs) -> Result<()> {
    let started = Utc::now();
    let run_id = format!(
        "{}-{:08x}",
        started.format("%Y%m%dT%H%M%S"),
        std::process::id()
    );
    let (dag, errors) = load_dag(ws).await?;
    let selected = select(&dag, &args.select)?;
    let lock = RunLock::acquire(ws, &format!("run {run_id}"), args.wait).await?;
    let mut out = std::io::stdout();
    // A progress bar on a terminal; plain lines otherwise (logs, cron, CI).
    let bar = (!args.json && std::io::stdout().is_terminal()).then(|| progress_bar(selected.len()));
    let emit = |value: serde_json::Value, text: String| {
        let mut out = std::io::stdout();
        if args.json {
            let _ = writeln!(out, "{value}");
        } else if let Some(bar) = &bar {
            bar.println(text);
        } else {
            let _ = writeln!(out, "{text}");
        }
    };
    emit(
        json!({"event": "run_started", "run_id": run_id, "jobs": selected.len()}),
        format!("run {run_id}: {} jobs", selected.len()),
    );
    let mut invalid = Vec::new();
    for e in &errors {
        emit(
            json!({"event": "job_invalid", "path": e.path.display().to_string(), "line": e.line, "error": e.message}),
            format!("  INVALID  {e}"),
        );
        invalid.push(invalid_job(e, started));
    }
    let runner = Runner::new(
        ws,
        &dag,
        RunOptions {
            full_refresh: args.full_refresh,
            concurrency: args.concurrency,
            run_id: run_id.clone(),
            sandbox: None,
        },
    );
    let results = runner
        .run(&selected, |r| {
            let (event, line) = job_finished(r, &dag, &run_id);
            emit(event, line);
            if let Some(bar) = &bar {
                bar.inc(1);
                bar.set_message(r.name.clone());
            }
        })
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let mut all = invalid;
    all.extend(results);
    // Rows the sources could not read: counted, and kept where a source quarantines them.
    let mut quarantine_error = None;
    match crate::quarantine::publish(ws).await {
        Ok(outcomes) => {
            for o in outcomes {
                emit(
                    json!({"event": "rejected_rows", "run_id": run_id, "source": o.source,
                           "rows": o.rows, "rejected": o.rejected, "table": o.table,
                           "first": o.first}),
                    format!("  {:<15} {}", "WARNING", o.summary()),
                );
            }
        }
        // The jobs' tables stand; the rejected rows must not vanish unsaid: the run fails.
        Err(e) => quarantine_error = Some(e),
    }
    crate::failpoint::check("run:before-log")?;
    let log = append_run_log(ws, &run_id, started, &args.select.join(" "), &all, None).await;
    crate::failpoint::check("run:before-retention")?;
    // Retention rules apply after each successful run, under the run's lock.
    let retention = if log.is_ok()
        && !ws.project.privacy.retention.is_empty()
        && !all.iter().any(|r| r.status.is_failure())
    {
        crate::privacy::apply_retention(ws).await.map(Some)
    } else {
        Ok(None)
    };
    lock.release().await;
    log?;
    if let Some(e) = quarantine_error {
        return Err(e.context("the rows the sources rejected were not saved"));
    }
    for (table, n) in retention
        .context("applying the retention rules")?
        .unwrap_or_default()
    {
        emit(
            json!({"event": "retention", "run_id": run_id, "table": table, "rows_deleted": n}),
            format!("  RETENTION       {table:<32} {n} row(s) past retention deleted"),
        );
    }
    if args.report {
        // The run's outcome stands whatever happens to the report.
        let path = crate::report::default_path(ws);
        match crate::report::write(ws, &path).await {
            Ok(charts) => emit(
                json!({"event": "report", "path": path, "charts": charts}),
                format!("  REPORT          {} ({charts} charts)", path.display()),
            ),
            Err(e) => tracing::warn!("cannot write the report: {e:#}"),
        }
    }
    if let Some((address, counters)) = ws.engine.cluster() {
        emit(
            json!({"event": "cluster", "run_id": run_id, "cluster": address.to_string(),
                   "shipped": counters.shipped(), "local": counters.local()}),
            format!(
                "  CLUSTER         {address}: {} query parts ran on the cluster, {} queries on this process",
                counters.shipped(),
                counters.local()
            ),
        );
    }
    let failed = all.iter().filter(|r| r.status.is_failure()).count();
    let count = |s: JobStatus| all.iter().filter(|r| r.status == s).count();
    emit(
        json!({"event": "run_finished", "run_id": run_id, "failed": failed,
               "success": count(JobStatus::Success), "skipped": count(JobStatus::Skipped)}),
        format!(
            "done: {} ran, {} skipped (unchanged), {} failed",
            count(JobStatus::Success),
            count(JobStatus::Skipped),
            failed
        ),
    );
    out.flush()?;
    if failed > 0 {
        return Err(RunFailed {
            what: "jobs",
            failed,
            total: all.len(),
        }
        .into());
    }
    Ok(())
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

/// A job file that does not parse, as a failed job of the run.
fn invalid_job(e: &crate::job::JobError, started: chrono::DateTime<Utc>) -> JobResult {
    JobResult {
        name: crate::job::job_name(&e.path).unwrap_or_else(|_| e.path.display().to_string()),
        path: e.path.display().to_string(),
        status: JobStatus::Failed,
        started,
        finished: Utc::now(),
        rows: None,
        output_version: None,
        inputs: Default::default(),
        reason: "invalid job".into(),
        error: Some(e.to_string()),
        warnings: Vec::new(),
    }
}

/// A job's end as the run says it: the `job_finished` event (`--json`) and its line.
fn job_finished(r: &JobResult, dag: &Dag, run_id: &str) -> (serde_json::Value, String) {
    let seconds = (r.finished - r.started).num_milliseconds() as f64 / 1000.0;
    let detail = match r.status {
        JobStatus::Success if r.output_version.is_none() => "view (planned inline)".into(),
        JobStatus::Success
            if r.rows == Some(0)
                && dag.index(&r.name).is_some_and(|i| {
                    dag.jobs[i].config.materialized == Materialized::Incremental
                }) =>
        {
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

/// `tessera plan`: what would run, in order, and why.
pub async fn plan(ws: &Workspace, selectors: &[String], full_refresh: bool) -> Result<()> {
    let (dag, errors) = load_dag(ws).await?;
    for e in &errors {
        println!("INVALID  {e}");
    }
    let selected = select(&dag, selectors)?;
    let runner = Runner::new(
        ws,
        &dag,
        RunOptions {
            full_refresh,
            concurrency: 1,
            ..RunOptions::default()
        },
    );
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
pub async fn compile(ws: &Workspace, selectors: &[String], full_refresh: bool) -> Result<()> {
    let (dag, errors) = load_dag(ws).await?;
    let selected = select(&dag, selectors)?;
    let runner = Runner::new(
        ws,
        &dag,
        RunOptions {
            full_refresh,
            concurrency: 1,
            ..RunOptions::default()
        },
    );
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
pub async fn test(ws: &Workspace, selectors: &[String], unit_only: bool) -> Result<()> {
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
pub async fn ls(ws: &Workspace, selectors: &[String]) -> Result<()> {
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
