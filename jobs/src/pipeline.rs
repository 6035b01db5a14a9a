//! `tessera run` as a library call: the selected jobs under the warehouse lock, then the rows
//! the sources rejected, the run log, the retention rules and the report. What happens is told
//! as typed [`RunEvent`]s; the command line renders them as a progress bar, lines or JSON.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;

use crate::dag::{BadSelection, Dag};
use crate::errors::{Context, Result};
use crate::job::{JobError, Materialized};
use crate::quarantine::Outcome;
use crate::runner::{JobResult, JobStatus, RunFailed, RunLock, RunOptions, Runner, append_run_log};
use crate::workspace::{Workspace, load_dag};

/// What a run does (`tessera run`'s options).
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    /// Selectors (`tessera run -s`); none selects every job.
    pub select: Vec<String>,
    /// Rebuild everything selected.
    pub full_refresh: bool,
    /// Jobs at once.
    pub concurrency: usize,
    /// Wait this long for another command's lock.
    pub wait: Duration,
    /// Write the HTML report after the run.
    pub report: bool,
}

/// What happens during a run, in order.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// The lock is held and `jobs` jobs are selected.
    Started {
        /// The run's id (`20261205T101500-0000abcd`).
        run_id: &'a str,
        /// Jobs selected.
        jobs: usize,
    },
    /// A job file that does not parse (counted as a failed job).
    JobInvalid(&'a JobError),
    /// A job ended (ran, was skipped, failed, or was not run after an upstream failure).
    JobFinished {
        /// What happened.
        result: &'a JobResult,
        /// The job is incremental (an incremental job that loads nothing is unchanged).
        incremental: bool,
    },
    /// A source left rows out (kept in a quarantine table or skipped).
    RejectedRows(&'a Outcome),
    /// A retention rule deleted rows.
    Retention {
        /// The table.
        table: &'a str,
        /// Rows deleted.
        rows_deleted: u64,
    },
    /// The HTML report was written.
    Report {
        /// Where.
        path: &'a PathBuf,
        /// Charts it holds.
        charts: usize,
    },
    /// The run's queries went to a cluster.
    Cluster {
        /// The scheduler.
        address: String,
        /// Query parts that ran on the cluster.
        shipped: usize,
        /// Queries that ran in this process.
        local: usize,
    },
    /// The run is over (the lock released, the run log written).
    Finished {
        /// Jobs that ran.
        success: usize,
        /// Jobs skipped (unchanged).
        skipped: usize,
        /// Jobs that failed, were invalid, or did not run after a failure.
        failed: usize,
    },
}

/// Runs the selected jobs as `tessera run` does, telling `on_event` what happens. Fails with
/// [`RunFailed`] when a job failed (every event told first), with a usage error when the
/// selection selects nothing, and with a busy error when another command holds the lock past
/// `args.wait`.
pub async fn run(
    ws: &Workspace,
    args: &RunArgs,
    on_event: &(dyn Fn(RunEvent<'_>) + Sync),
) -> Result<()> {
    let started = Utc::now();
    let run_id = format!(
        "{}-{:08x}",
        started.format("%Y%m%dT%H%M%S"),
        std::process::id()
    );
    let (dag, errors) = load_dag(ws).await?;
    let selected = dag.select(&args.select).map_err(BadSelection)?;
    let lock = RunLock::acquire(ws, &format!("run {run_id}"), args.wait).await?;
    on_event(RunEvent::Started {
        run_id: &run_id,
        jobs: selected.len(),
    });
    let mut all = Vec::new();
    for e in &errors {
        on_event(RunEvent::JobInvalid(e));
        all.push(invalid_job(e, started));
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
            on_event(RunEvent::JobFinished {
                result: r,
                incremental: is_incremental(&dag, &r.name),
            })
        })
        .await;
    all.extend(results);
    // Rows the sources could not read: counted, and kept where a source quarantines them.
    let mut quarantine_error = None;
    match crate::quarantine::publish(ws).await {
        Ok(outcomes) => outcomes
            .iter()
            .for_each(|o| on_event(RunEvent::RejectedRows(o))),
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
        on_event(RunEvent::Retention {
            table: &table,
            rows_deleted: n,
        });
    }
    if args.report {
        // The run's outcome stands whatever happens to the report.
        let path = crate::report::default_path(ws);
        match crate::report::write(ws, &path).await {
            Ok(charts) => on_event(RunEvent::Report {
                path: &path,
                charts,
            }),
            Err(e) => tracing::warn!("cannot write the report: {e:#}"),
        }
    }
    if let Some((address, counters)) = ws.engine.cluster() {
        on_event(RunEvent::Cluster {
            address: address.to_string(),
            shipped: counters.shipped(),
            local: counters.local(),
        });
    }
    let failed = all.iter().filter(|r| r.status.is_failure()).count();
    let count = |s: JobStatus| all.iter().filter(|r| r.status == s).count();
    on_event(RunEvent::Finished {
        success: count(JobStatus::Success),
        skipped: count(JobStatus::Skipped),
        failed,
    });
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

fn is_incremental(dag: &Dag, job: &str) -> bool {
    dag.index(job)
        .is_some_and(|i| dag.jobs[i].config.materialized == Materialized::Incremental)
}

/// A job file that does not parse, as a failed job of the run.
fn invalid_job(e: &JobError, started: chrono::DateTime<Utc>) -> JobResult {
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
