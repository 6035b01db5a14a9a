//! `tessera schedule`: a long-running scheduler that runs selections on the cron expressions of
//! `[schedules.<name>]` in `tessera.toml`.
//!
//! Each due schedule runs as a child `tessera run` process (a failing or crashing run cannot take
//! the scheduler down, and its memory is returned when it ends). A schedule never overlaps with
//! itself: a tick that comes while its previous run is still going is skipped and reported.
//! Different schedules may be due together; the warehouse lock serialises their runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::bail;
use crate::errors::Result;
use chrono::{DateTime, Utc};
use croner::Cron;
use serde_json::json;
use tokio::sync::watch;

use crate::project::{Project, Schedule};

/// Options of `tessera schedule`.
#[derive(Debug, Clone, Default)]
pub struct ScheduleArgs {
    /// Only these schedules (all when empty).
    pub only: Vec<String>,
    /// Stop after this many runs in total (then wait for running ones).
    pub max_runs: Option<usize>,
    /// JSON lines instead of text.
    pub json: bool,
    /// How long a run waits for the warehouse lock held by another run.
    pub wait: Duration,
}

/// What the scheduler reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A schedule's run started.
    Started {
        /// The schedule.
        schedule: String,
        /// When it was due.
        at: DateTime<Utc>,
    },
    /// A schedule's run ended with this exit code.
    Finished {
        /// The schedule.
        schedule: String,
        /// The exit code of `tessera run` (-1 when it could not start or was killed).
        exit_code: i32,
    },
    /// A tick came while the schedule's previous run was still going.
    SkippedOverlap {
        /// The schedule.
        schedule: String,
        /// When the skipped run was due.
        at: DateTime<Utc>,
    },
}

/// Runs `schedules` until `max_runs` runs have finished (or forever), or `stop` turns true.
/// `launch` runs one schedule and returns its exit code; `report` hears every event.
pub async fn drive<L, F>(
    schedules: Vec<Schedule>,
    max_runs: Option<usize>,
    stop: watch::Receiver<bool>,
    launch: L,
    report: impl Fn(Event) + Send + Sync + 'static,
) -> Result<()>
where
    L: Fn(Schedule) -> F + Send + Sync + 'static,
    F: Future<Output = i32> + Send + 'static,
{
    let mut crons = Vec::new();
    for s in &schedules {
        match Cron::from_str(&s.cron) {
            Ok(cron) => crons.push(cron),
            Err(e) => bail!(
                "schedule `{}`: `{}` is not a cron expression: {e}",
                s.name,
                s.cron
            ),
        }
    }
    let launch = Arc::new(launch);
    let report = Arc::new(report);
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (schedule, cron) in schedules.into_iter().zip(crons) {
        let launch = launch.clone();
        let report = report.clone();
        let started = started.clone();
        let finished = finished.clone();
        let done_tx = done_tx.clone();
        let mut stop = stop.clone();
        let mut done_rx = done_rx.clone();
        tasks.push(tokio::spawn(async move {
            let running = Arc::new(AtomicBool::new(false));
            let mut runs = Vec::new();
            loop {
                let now = Utc::now();
                let Ok(next) = cron.find_next_occurrence(&now, false) else {
                    break;
                };
                let pause = (next - now).to_std().unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.wait_for(|s| *s) => break,
                    _ = done_rx.wait_for(|d| *d) => break,
                }
                if running.load(Ordering::SeqCst) {
                    report(Event::SkippedOverlap {
                        schedule: schedule.name.clone(),
                        at: next,
                    });
                    continue;
                }
                if max_runs.is_some_and(|max| started.fetch_add(1, Ordering::SeqCst) >= max) {
                    break;
                }
                running.store(true, Ordering::SeqCst);
                report(Event::Started {
                    schedule: schedule.name.clone(),
                    at: next,
                });
                let run = launch(schedule.clone());
                let running = running.clone();
                let report = report.clone();
                let finished = finished.clone();
                let done_tx = done_tx.clone();
                let name = schedule.name.clone();
                runs.push(tokio::spawn(async move {
                    let exit_code = run.await;
                    running.store(false, Ordering::SeqCst);
                    report(Event::Finished {
                        schedule: name,
                        exit_code,
                    });
                    let total = finished.fetch_add(1, Ordering::SeqCst) + 1;
                    if max_runs.is_some_and(|max| total >= max) {
                        let _ = done_tx.send(true);
                    }
                }));
            }
            for run in runs {
                let _ = run.await;
            }
        }));
    }
    drop(done_tx);
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// `tessera schedule`.
pub async fn schedule(project: &Project, args: &ScheduleArgs) -> Result<()> {
    if project.schedules.is_empty() {
        bail!(
            "{} has no [schedules.<name>] (each with a `cron` expression and a `select` list)",
            project.dir.join(crate::project::PROJECT_FILE).display()
        );
    }
    for name in &args.only {
        if !project.schedules.contains_key(name) {
            bail!(
                "no schedule named `{name}` (there are: {})",
                project
                    .schedules
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let schedules: Vec<Schedule> = project
        .schedules
        .values()
        .filter(|s| args.only.is_empty() || args.only.contains(&s.name))
        .cloned()
        .collect();
    let exe = std::env::current_exe()?;
    let dir = project.dir.clone();
    let json = args.json;
    let wait = args.wait;
    let emit = move |value: serde_json::Value, text: String| {
        if json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    };
    for s in &schedules {
        let next = Cron::from_str(&s.cron)?
            .find_next_occurrence(&Utc::now(), false)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|_| "never".into());
        emit(
            json!({"event": "schedule_loaded", "schedule": s.name, "cron": s.cron,
                   "select": s.select, "next_run": next}),
            format!(
                "schedule {}: `{}` runs {} (next {next} UTC)",
                s.name,
                s.cron,
                if s.select.is_empty() {
                    "all jobs".to_string()
                } else {
                    s.select.join(" ")
                }
            ),
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        // Ctrl-C, or SIGTERM from a service manager: stop scheduling, let running runs end.
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let launch = move |s: Schedule| {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("-C").arg(&dir).arg("run");
        if json {
            cmd.arg("--json");
        }
        if s.full_refresh {
            cmd.arg("--full-refresh");
        }
        cmd.arg("--wait").arg(wait.as_secs().to_string());
        if !s.select.is_empty() {
            cmd.arg("--select").args(&s.select);
        }
        cmd.env("TESSERA_SCHEDULE", &s.name);
        async move {
            match cmd.status().await {
                Ok(status) => status.code().unwrap_or(-1),
                Err(e) => {
                    tracing::error!("cannot start `tessera run` for schedule {}: {e}", s.name);
                    -1
                }
            }
        }
    };
    let failures = Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let failures_seen = failures.clone();
    let report = move |event: Event| match event {
        Event::Started { schedule, at } => emit(
            json!({"event": "schedule_run_started", "schedule": schedule, "due_at": at.to_rfc3339()}),
            format!(
                "[{}] schedule {schedule}: run started",
                Utc::now().format("%H:%M:%S")
            ),
        ),
        Event::Finished {
            schedule,
            exit_code,
        } => {
            if exit_code != 0 {
                *failures_seen
                    .lock()
                    .expect("poisoned")
                    .entry(schedule.clone())
                    .or_default() += 1;
            }
            emit(
                json!({"event": "schedule_run_finished", "schedule": schedule, "exit_code": exit_code}),
                format!(
                    "[{}] schedule {schedule}: run finished, exit code {exit_code}",
                    Utc::now().format("%H:%M:%S")
                ),
            )
        }
        Event::SkippedOverlap { schedule, at } => emit(
            json!({"event": "schedule_tick_skipped", "schedule": schedule, "due_at": at.to_rfc3339(),
                   "reason": "the previous run of this schedule is still running"}),
            format!(
                "[{}] schedule {schedule}: skipped the {} run, the previous one is still running",
                Utc::now().format("%H:%M:%S"),
                at.format("%H:%M:%S")
            ),
        ),
    };
    drive(schedules, args.max_runs, stop_rx, launch, report).await?;
    let failures = failures.lock().expect("poisoned");
    if !failures.is_empty() {
        bail!(
            "failed runs: {}",
            failures
                .iter()
                .map(|(s, n)| format!("{s} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM from a service manager.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn every_second(name: &str) -> Schedule {
        Schedule {
            name: name.into(),
            cron: "* * * * * *".into(),
            select: vec![],
            full_refresh: false,
            description: None,
        }
    }

    #[tokio::test]
    async fn a_schedule_never_overlaps_itself_and_max_runs_stops_the_scheduler() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let concurrent = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (c, p) = (concurrent.clone(), peak.clone());
        let (_stop_tx, stop_rx) = watch::channel(false);
        // Each run lasts 2.5 s; ticks come every second.
        drive(
            vec![every_second("slow")],
            Some(2),
            stop_rx,
            move |_s| {
                let (c, p) = (c.clone(), p.clone());
                async move {
                    let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2500)).await;
                    c.fetch_sub(1, Ordering::SeqCst);
                    0
                }
            },
            move |e| seen.lock().unwrap().push(e),
        )
        .await
        .unwrap();
        let events = events.lock().unwrap();
        let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
        assert_eq!(
            count(|e| matches!(e, Event::Started { .. })),
            2,
            "{events:?}"
        );
        assert_eq!(
            count(|e| matches!(e, Event::Finished { exit_code: 0, .. })),
            2
        );
        assert!(
            count(|e| matches!(e, Event::SkippedOverlap { .. })) >= 2,
            "{events:?}"
        );
        assert_eq!(
            peak.load(Ordering::SeqCst),
            1,
            "a schedule ran twice at once"
        );
    }

    #[tokio::test]
    async fn stop_ends_the_scheduler() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let handle = tokio::spawn(drive(
            vec![every_second("a"), every_second("b")],
            None,
            stop_rx,
            move |_s| {
                r.fetch_add(1, Ordering::SeqCst);
                async { 0 }
            },
            |_| {},
        ));
        tokio::time::sleep(Duration::from_millis(2200)).await;
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(3), handle)
            .await
            .expect("stops")
            .unwrap()
            .unwrap();
        assert!(runs.load(Ordering::SeqCst) >= 2);
    }
}
