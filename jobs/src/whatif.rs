//! `tessera plan --impact`: what a change to the project (its `tessera.toml`, its job files)
//! would do to the published tables, measured before anything is published.
//!
//! The jobs the plan would run (changed SQL or settings, changed inputs, and everything
//! downstream of them) run into a **sandbox** under the warehouse
//! (`_tessera/whatif/<id>/`): each writes its tables there, reads the tables it depends on
//! from the sandbox once written there and from the warehouse otherwise, and starts from a
//! copy of its published table when it appends or merges (incremental, tracked and identity
//! history), so the sandbox ends as the warehouse would after the next run. Jobs the plan
//! skips are not run: their published tables are read as they are, and an identity job
//! whose SQL and inputs are unchanged (only `[identity]` changed) reuses its published
//! records instead of computing them again, and its published compared pairs when blocking's
//! settings are unchanged too (`Runner::reusable_pairs`).
//!
//! The sandbox is then compared with the warehouse: for identity, customers merged, split
//! and unchanged, records that change customer, stable ids retired and created, links gained
//! and lost by rule and by comparison level, the largest customers, the match rate per source
//! and a sample of changed decisions explained before and after; for tracked jobs (golden
//! records, segments, audiences), the rows that would be added, removed and updated — for an
//! audience exactly what the next sync would send. The run lock is held throughout (the
//! published side cannot move under the comparison), nothing is published, and the sandbox
//! is removed at the end (a sandbox left by a killed what-if is removed by the next one, and
//! by `tessera forget`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bail;
use crate::errors::{Context, Result};
use chrono::Utc;
use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};
use tessera_engine::identity::IdentityConfig;
use tessera_engine::sql::{ident, literal};
use url::Url;

use crate::explain::pair_explanation;
use crate::job::{Job, Materialized};
use crate::output::grouped as n;
use crate::rows::{Row, rows};
use crate::runner::{JobStatus, RunLock, RunOptions, Runner};
use crate::workspace::{Workspace, load_dag, table_url};

pub use crate::warehouse::SANDBOX_DIR;

/// Options of a what-if.
#[derive(Debug, Clone, Default)]
pub struct ImpactArgs {
    /// Selectors, as for `run` (default: every job).
    pub select: Vec<String>,
    /// Changed identity decisions explained before and after (each way).
    pub examples: usize,
    /// Jobs at once.
    pub concurrency: usize,
    /// How long to wait for a run holding the warehouse lock.
    pub wait: Duration,
    /// Keep the sandbox (to query it) instead of removing it.
    pub keep_sandbox: bool,
    /// Limits whose breach makes the what-if fail (a pull-request check).
    pub limits: Limits,
    /// Say on stderr each job done in the sandbox as it ends (a terminal; a what-if of an
    /// identity change at a million records takes minutes).
    pub progress: bool,
}

/// Limits on the impact; each one exceeded is a breach (exit code 4).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Limits {
    /// Customers that would merge (after-customers holding records of two or more).
    pub max_merged: Option<i64>,
    /// Customers that would split.
    pub max_split: Option<i64>,
    /// Records that would change customer.
    pub max_moved_records: Option<i64>,
    /// Percent an audience may shrink by.
    pub max_audience_shrink: Option<f64>,
    /// Percent an audience may grow by.
    pub max_audience_growth: Option<f64>,
}

/// A job of the what-if.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobLine {
    /// The job.
    pub name: String,
    /// Its materialisation.
    pub materialized: String,
    /// `run` (into the sandbox), `reuse` (the published table is read) or `view`.
    pub action: String,
    /// Why.
    pub reason: String,
    /// How it ended (`success`, `failed`, ...).
    pub status: String,
    /// Its error, when it failed.
    pub error: Option<String>,
    /// Rows written to the sandbox.
    pub rows: Option<u64>,
    /// Seconds it took.
    pub seconds: f64,
}

/// Gains and losses of one group of links.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkChange {
    /// A rule (`rule email_exact`, `model via email`) or a comparison level (`email: exact`).
    pub key: String,
    /// Accepted pairs the change adds.
    pub gained: i64,
    /// Accepted pairs the change removes.
    pub lost: i64,
}

/// One source's share of records linked to another record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceRate {
    /// The source.
    pub source: String,
    /// Its records before / after.
    pub records_before: i64,
    /// After.
    pub records_after: i64,
    /// Share of them in a customer of two records or more, before.
    pub linked_before: f64,
    /// After.
    pub linked_after: f64,
}

/// A record that changes customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Moved {
    /// The record.
    pub record_key: String,
    /// Its customer now.
    pub before: String,
    /// Its customer after the change.
    pub after: String,
}

/// A pair of records whose link the change makes or breaks, explained both ways.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    /// One record.
    pub a: String,
    /// The other.
    pub b: String,
    /// `linked` (the change links them) or `unlinked`.
    pub change: String,
    /// `tessera explain a b` on the published tables.
    pub before: String,
    /// The same on the sandbox.
    pub after: String,
}

/// The impact on one identity job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdentityImpact {
    /// The identity job.
    pub job: String,
    /// Customers now.
    pub customers_before: i64,
    /// Customers after the change.
    pub customers_after: i64,
    /// After-customers holding records of two or more customers of now.
    pub merged: i64,
    /// Customers of now whose records would be spread over two or more.
    pub split: i64,
    /// Customers whose records and id stay exactly as they are.
    pub unchanged: i64,
    /// Records after the change.
    pub records: i64,
    /// Records that change customer.
    pub records_moved: i64,
    /// Records not resolved before (new in the sources).
    pub records_new: i64,
    /// Records resolved before and no longer there.
    pub records_gone: i64,
    /// Customer ids of now that would no longer be current.
    pub ids_retired: i64,
    /// Customer ids that would be issued.
    pub ids_created: i64,
    /// Accepted pairs added.
    pub links_gained: i64,
    /// Accepted pairs removed.
    pub links_lost: i64,
    /// Gains and losses by rule (deterministic) or blocking rule (the model).
    pub links_by_rule: Vec<LinkChange>,
    /// Gains and losses by comparison level of the pairs.
    pub links_by_level: Vec<LinkChange>,
    /// The largest customers now (id, records).
    pub largest_before: Vec<(String, i64)>,
    /// After.
    pub largest_after: Vec<(String, i64)>,
    /// Per source, the share of records linked to another.
    pub match_rate: Vec<SourceRate>,
    /// Some records that change customer.
    pub moved_examples: Vec<Moved>,
    /// Some changed decisions, explained.
    pub decisions: Vec<Decision>,
}

/// Entries and exits of one group of a tracked job (a segment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupChange {
    /// The group's key values (`segment=high_value`).
    pub group: String,
    /// Rows that would enter.
    pub entered: i64,
    /// Rows that would exit.
    pub exited: i64,
}

/// How often one column of a tracked job's rows would change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldChange {
    /// The column.
    pub column: String,
    /// Rows (kept keys) whose value would change.
    pub changed: i64,
    /// One of them: its key, its value now and after.
    pub example: Option<(String, String, String)>,
}

/// The impact on one tracked job (golden records, segments, audiences).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackedImpact {
    /// The job.
    pub job: String,
    /// Its unique key.
    pub key: Vec<String>,
    /// Rows now.
    pub rows_before: i64,
    /// Rows after.
    pub rows_after: i64,
    /// Rows that would be added (`add` in `<job>_changes`).
    pub added: i64,
    /// Removed.
    pub removed: i64,
    /// Updated.
    pub updated: i64,
    /// By the key's other columns (a segment), when the key has more than one.
    pub groups: Vec<GroupChange>,
    /// By column, for updated rows.
    pub fields: Vec<FieldChange>,
    /// For an audience: its destination.
    pub destination: Option<String>,
}

/// Where the latest what-if is kept for the HTML report: `<project>/reports/what-if.json`.
pub fn last_path(ws: &Workspace) -> std::path::PathBuf {
    ws.project.dir.join("reports").join("what-if.json")
}

/// Keeps `impact` as the latest what-if (the report shows it in its own section).
pub fn save_last(ws: &Workspace, impact: &Impact) -> Result<()> {
    let path = last_path(ws);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(impact)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The latest what-if, if one was kept and can be read.
pub fn load_last(ws: &Workspace) -> Option<Impact> {
    let text = std::fs::read(last_path(ws)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The change exceeds limits set on the command line (exit code 4).
#[derive(Debug, thiserror::Error)]
#[error("the change exceeds {} limit(s): {}", .0.len(), .0.join("; "))]
pub struct LimitsExceeded(pub Vec<String>);

impl From<LimitsExceeded> for crate::errors::Error {
    fn from(e: LimitsExceeded) -> Self {
        crate::errors::Error::typed(crate::errors::ErrorKind::LimitsExceeded, e)
    }
}

/// The what-if's verdict: an error when a job failed in the sandbox (the change breaks the
/// pipeline) or a limit is exceeded.
pub fn verdict(impact: &Impact) -> Result<()> {
    let failed = impact.failed();
    if !failed.is_empty() {
        // The jobs that failed themselves; those not run after them are counted.
        let own: Vec<String> = failed
            .iter()
            .filter(|j| j.status != "upstream_failed")
            .map(|j| format!("{}: {}", j.name, j.error.as_deref().unwrap_or("")))
            .collect();
        bail!(
            "the change fails: {} job(s) failed in the sandbox ({} more not run after them): {}",
            own.len(),
            failed.len() - own.len(),
            own.join("; ")
        );
    }
    if !impact.breaches.is_empty() {
        return Err(LimitsExceeded(impact.breaches.clone()).into());
    }
    Ok(())
}

/// What a change would do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Impact {
    /// The what-if's id (its sandbox's name).
    pub id: String,
    /// When it was measured (RFC 3339, UTC).
    #[serde(default)]
    pub measured_at: String,
    /// Seconds it took.
    pub seconds: f64,
    /// Each selected job: run into the sandbox or reused.
    pub jobs: Vec<JobLine>,
    /// Identity jobs that ran.
    pub identity: Vec<IdentityImpact>,
    /// Tracked jobs that ran (golden records, segments, audiences).
    pub tracked: Vec<TrackedImpact>,
    /// Limits exceeded.
    pub breaches: Vec<String>,
    /// The limits checked.
    pub limits: Limits,
    /// Where the sandbox is, when kept.
    pub sandbox: Option<String>,
}

impl Impact {
    /// Jobs that failed in the sandbox.
    pub fn failed(&self) -> Vec<&JobLine> {
        self.jobs.iter().filter(|j| j.error.is_some()).collect()
    }
}

/// Runs the what-if: the plan's jobs into a sandbox, then the comparison. Fails only when it
/// cannot measure; jobs failing in the sandbox and exceeded limits are in the result.
pub async fn impact(ws: &Workspace, args: &ImpactArgs) -> Result<Impact> {
    let started = Instant::now();
    let (dag, errors) = load_dag(ws).await?;
    if !errors.is_empty() {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        bail!(
            "{} job files have errors, nothing measured: {}",
            errors.len(),
            list.join("; ")
        );
    }
    let selected = dag.select(&args.select).map_err(crate::dag::BadSelection)?;
    let id = format!(
        "whatif-{}-{:08x}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        std::process::id()
    );
    let lock = RunLock::acquire(ws, &format!("what-if {id}"), args.wait).await?;
    let root = ws.project.warehouse.join(SANDBOX_DIR)?;
    // Under the lock no other what-if runs: anything here was left by a killed one.
    ws.engine
        .remove_all(&root)
        .await
        .context("removing sandboxes left by an earlier what-if")?;
    let sandbox = root.join(&format!("{id}/"))?;
    let outcome = measure(ws, &dag, &selected, &id, &sandbox, args).await;
    if !args.keep_sandbox
        && let Err(e) = ws.engine.remove_all(&sandbox).await
    {
        tracing::warn!("cannot remove the what-if sandbox at {sandbox}: {e}");
    }
    lock.release().await;
    let mut impact = outcome?;
    impact.seconds = started.elapsed().as_secs_f64();
    impact.sandbox = args.keep_sandbox.then(|| sandbox.to_string());
    Ok(impact)
}

async fn measure(
    ws: &Workspace,
    dag: &crate::dag::Dag,
    selected: &[usize],
    id: &str,
    sandbox: &Url,
    args: &ImpactArgs,
) -> Result<Impact> {
    let runner = Runner::new(
        ws,
        dag,
        RunOptions {
            full_refresh: false,
            concurrency: args.concurrency.max(1),
            run_id: id.to_string(),
            sandbox: Some(sandbox.clone()),
        },
    );
    let results = runner
        .run(selected, |r| {
            if args.progress && r.status != JobStatus::Skipped {
                let seconds = (r.finished - r.started).num_milliseconds() as f64 / 1000.0;
                eprintln!(
                    "  what-if  {:<8} {:<34} {seconds:>7.2}s",
                    r.status.as_str(),
                    r.name
                );
            }
        })
        .await;
    let mut impact = Impact {
        id: id.to_string(),
        measured_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        limits: args.limits.clone(),
        ..Impact::default()
    };
    let mut ran = Vec::new();
    for (&index, result) in selected.iter().zip(&results) {
        let job = &dag.jobs[index];
        let action = match (job.config.materialized, &result.status) {
            (Materialized::View, _) => "view",
            (_, JobStatus::Skipped) => "reuse",
            _ => "run",
        };
        if result.status == JobStatus::Success && job.config.materialized != Materialized::View {
            ran.push(job);
        }
        impact.jobs.push(JobLine {
            name: job.name.clone(),
            materialized: job.config.materialized.to_string(),
            action: action.into(),
            reason: result.reason.clone(),
            status: result.status.as_str().into(),
            error: result.error.clone(),
            rows: result.rows,
            seconds: (result.finished - result.started).num_milliseconds() as f64 / 1000.0,
        });
    }
    let ctx = SessionContext::new_with_state(ws.engine.ctx().state());
    let tables = Tables {
        ws,
        ctx: &ctx,
        sandbox,
    };
    for job in &ran {
        match job.config.materialized {
            Materialized::Identity => {
                let mut identity = tables
                    .identity(job)
                    .await
                    .with_context(|| format!("comparing {} with the published tables", job.name))?;
                identity.decisions = decisions(ws, sandbox, &tables, job, args.examples).await?;
                impact.identity.push(identity);
            }
            Materialized::Tracked => {
                let mut tracked = tables
                    .tracked(job, id)
                    .await
                    .with_context(|| format!("comparing {} with the published table", job.name))?;
                tracked.destination = job
                    .name
                    .strip_prefix("audiences.")
                    .and_then(|a| ws.project.audiences.get(a))
                    .map(|a| format!("{:?}", a.destination).to_lowercase());
                impact.tracked.push(tracked);
            }
            _ => {}
        }
    }
    impact.breaches = breaches(&impact, &args.limits);
    Ok(impact)
}

/// The limits the impact exceeds.
fn breaches(impact: &Impact, limits: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    for i in &impact.identity {
        let checks = [
            (limits.max_merged, i.merged, "customers would merge"),
            (limits.max_split, i.split, "customers would split"),
            (
                limits.max_moved_records,
                i.records_moved,
                "records would change customer",
            ),
        ];
        for (limit, value, what) in checks {
            if let Some(limit) = limit
                && value > limit
            {
                out.push(format!("{}: {value} {what} (limit {limit})", i.job));
            }
        }
    }
    for t in impact.tracked.iter().filter(|t| t.destination.is_some()) {
        let Some(change) = percent_change(t.rows_before, t.rows_after) else {
            continue;
        };
        if let Some(limit) = limits.max_audience_shrink
            && -change > limit
        {
            out.push(format!(
                "{}: the audience would shrink by {:.1}% ({} → {} rows; limit {limit}%)",
                t.job, -change, t.rows_before, t.rows_after
            ));
        }
        if let Some(limit) = limits.max_audience_growth
            && change > limit
        {
            out.push(format!(
                "{}: the audience would grow by {change:.1}% ({} → {} rows; limit {limit}%)",
                t.job, t.rows_before, t.rows_after
            ));
        }
    }
    out
}

/// The change from `before` to `after` in percent (None from nothing).
pub fn percent_change(before: i64, after: i64) -> Option<f64> {
    (before > 0).then(|| (after - before) as f64 * 100.0 / before as f64)
}

/// The published and sandbox tables, registered side by side in a private session.
struct Tables<'a> {
    ws: &'a Workspace,
    ctx: &'a SessionContext,
    sandbox: &'a Url,
}

impl Tables<'_> {
    /// A table's provider at `root`, or None when there is none.
    async fn provider(&self, root: &Url, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        crate::warehouse::provider_if_exists(&self.ws.engine, &table_url(root, name)?).await
    }

    /// Registers the published `name` as `before_<alias>` and its sandbox copy as
    /// `after_<alias>` (an absent side is an empty table of the other's columns).
    async fn pair(&self, name: &str, alias: &str) -> Result<()> {
        let after = self.provider(self.sandbox, name).await?;
        let before = self.provider(&self.ws.project.warehouse, name).await?;
        let empty = |like: &Arc<dyn TableProvider>| -> Result<Arc<dyn TableProvider>> {
            Ok(Arc::new(MemTable::try_new(like.schema(), vec![vec![]])?))
        };
        let (before, after) = match (before, after) {
            (Some(b), Some(a)) => (b, a),
            (None, Some(a)) => (empty(&a)?, a),
            (Some(b), None) => (b.clone(), empty(&b)?),
            (None, None) => bail!("{name} is neither published nor written by the what-if"),
        };
        for (side, provider) in [("before", before), ("after", after)] {
            let table = format!("{side}_{alias}");
            let _ = self.ctx.deregister_table(table.as_str());
            self.ctx.register_table(table.as_str(), provider)?;
        }
        Ok(())
    }

    /// The first row of `sql`, each column as a whole number.
    async fn ints(&self, sql: &str) -> Result<Vec<i64>> {
        let batches = self.ctx.sql(sql).await?.collect().await?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(vec![0; 0]);
        };
        batch
            .columns()
            .iter()
            .map(|c| {
                let c = datafusion::arrow::compute::cast(c, &DataType::Int64)?;
                let a = c
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("cast to Int64");
                Ok(if a.is_null(0) { 0 } else { a.value(0) })
            })
            .collect()
    }

    /// The columns of a registered table.
    async fn columns(&self, table: &str) -> Result<Vec<String>> {
        Ok(self
            .ctx
            .table(table)
            .await?
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect())
    }

    async fn rows(&self, sql: &str) -> Result<Vec<Row>> {
        Ok(rows(&self.ctx.sql(sql).await?.collect().await?))
    }

    async fn identity(&self, job: &Job) -> Result<IdentityImpact> {
        let beside = |table: &str| match job.schema() {
            Some(schema) => format!("{schema}.{table}"),
            None => table.to_string(),
        };
        self.pair(&beside("record_customer"), "rc").await?;
        self.pair(&beside("match_pairs"), "mp").await?;
        let mut out = IdentityImpact {
            job: job.name.clone(),
            ..IdentityImpact::default()
        };
        let counts = self
            .ints(
                "select \
                 (select count(distinct customer_id) from before_rc) as customers_before, \
                 (select count(distinct customer_id) from after_rc) as customers_after, \
                 (select count(*) from after_rc) as records, \
                 count(*) filter (where b.record_key is not null and a.record_key is not null \
                                  and b.customer_id <> a.customer_id) as moved, \
                 count(*) filter (where b.record_key is null) as new, \
                 count(*) filter (where a.record_key is null) as gone \
                 from before_rc b full join after_rc a on b.record_key = a.record_key",
            )
            .await?;
        if let [cb, ca, records, moved, new, gone] = counts[..] {
            (
                out.customers_before,
                out.customers_after,
                out.records,
                out.records_moved,
                out.records_new,
                out.records_gone,
            ) = (cb, ca, records, moved, new, gone);
        }
        let shapes = self
            .ints(
                "with j as (select b.customer_id as b, a.customer_id as a \
                   from before_rc b join after_rc a on b.record_key = a.record_key), \
                 nb as (select customer_id, count(*) as n from before_rc group by customer_id), \
                 na as (select customer_id, count(*) as n from after_rc group by customer_id), \
                 same as (select a as customer_id, count(*) as n from j where a = b group by a) \
                 select \
                 (select count(*) from (select a from j group by a having count(distinct b) > 1)) as merged, \
                 (select count(*) from (select b from j group by b having count(distinct a) > 1)) as split, \
                 (select count(*) from same join nb on nb.customer_id = same.customer_id \
                    join na on na.customer_id = same.customer_id \
                    where same.n = nb.n and same.n = na.n) as unchanged, \
                 (select count(*) from (select distinct customer_id from before_rc) x \
                    where not exists (select 1 from after_rc y where y.customer_id = x.customer_id)) as retired, \
                 (select count(*) from (select distinct customer_id from after_rc) x \
                    where not exists (select 1 from before_rc y where y.customer_id = x.customer_id)) as created",
            )
            .await?;
        if let [merged, split, unchanged, retired, created] = shapes[..] {
            (
                out.merged,
                out.split,
                out.unchanged,
                out.ids_retired,
                out.ids_created,
            ) = (merged, split, unchanged, retired, created);
        }
        for (side, into) in [
            ("before", &mut out.largest_before),
            ("after", &mut out.largest_after),
        ] {
            for row in self
                .rows(&format!(
                    "select customer_id, count(*) as n from {side}_rc group by customer_id \
                     order by n desc, customer_id limit 5"
                ))
                .await?
            {
                into.push((row.text("customer_id"), row.int("n")));
            }
        }
        for row in self
            .rows(
                "with s as ( \
                   select source, 'b' as side, count(*) as n, \
                     avg(case when cluster_size > 1 then 1.0 else 0.0 end) as linked \
                   from before_rc group by source \
                   union all \
                   select source, 'a', count(*), avg(case when cluster_size > 1 then 1.0 else 0.0 end) \
                   from after_rc group by source) \
                 select source, \
                   sum(case when side = 'b' then n else 0 end) as records_before, \
                   sum(case when side = 'a' then n else 0 end) as records_after, \
                   sum(case when side = 'b' then linked else 0 end) as linked_before, \
                   sum(case when side = 'a' then linked else 0 end) as linked_after \
                 from s group by source order by source",
            )
            .await?
        {
            out.match_rate.push(SourceRate {
                source: row.text("source"),
                records_before: row.int("records_before"),
                records_after: row.int("records_after"),
                linked_before: row.float("linked_before"),
                linked_after: row.float("linked_after"),
            });
        }
        for row in self
            .rows(
                "select b.record_key, b.customer_id as before, a.customer_id as after \
                 from before_rc b join after_rc a on b.record_key = a.record_key \
                 where b.customer_id <> a.customer_id order by b.record_key limit 5",
            )
            .await?
        {
            out.moved_examples.push(Moved {
                record_key: row.text("record_key"),
                before: row.text("before"),
                after: row.text("after"),
            });
        }
        self.links(job, &mut out).await?;
        Ok(out)
    }

    /// Accepted pairs gained and lost, by rule and by comparison level.
    async fn links(&self, job: &Job, out: &mut IdentityImpact) -> Result<()> {
        let before_columns = self.columns("before_mp").await?;
        let gammas: Vec<String> = self
            .columns("after_mp")
            .await?
            .into_iter()
            .filter(|c| c.starts_with("gamma_") && before_columns.contains(c))
            .collect();
        let rule = "case when linked_by = 'probabilistic' \
                    then 'model via ' || coalesce(blocking_rule, '?') \
                    else 'rule ' || linked_by end";
        let select = format!(
            "select record_key_a, record_key_b, {rule} as rule{} from {{side}}_mp where accepted",
            gammas
                .iter()
                .map(|g| format!(", {}", ident(g)))
                .collect::<String>()
        );
        let changed = format!(
            "select 'gained' as change, a.* from ({after}) a where not exists \
               (select 1 from ({before}) b where b.record_key_a = a.record_key_a \
                and b.record_key_b = a.record_key_b) \
             union all \
             select 'lost', b.* from ({before}) b where not exists \
               (select 1 from ({after}) a where b.record_key_a = a.record_key_a \
                and b.record_key_b = a.record_key_b)",
            after = select.replace("{side}", "after"),
            before = select.replace("{side}", "before"),
        );
        let batches = self.ctx.sql(&changed).await?.collect().await?;
        let changes = Arc::new(MemTable::try_new(
            batches
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty())),
            vec![batches.clone()],
        )?);
        let _ = self.ctx.deregister_table("link_changes");
        if batches.is_empty() {
            return Ok(());
        }
        self.ctx.register_table("link_changes", changes)?;
        let totals = self
            .ints(
                "select count(*) filter (where change = 'gained') as gained, \
                 count(*) filter (where change = 'lost') as lost from link_changes",
            )
            .await?;
        if let [gained, lost] = totals[..] {
            (out.links_gained, out.links_lost) = (gained, lost);
        }
        let grouped = |key: String| {
            format!(
                "select {key} as key, count(*) filter (where change = 'gained') as gained, \
                 count(*) filter (where change = 'lost') as lost \
                 from link_changes group by {key} order by gained + lost desc, key"
            )
        };
        for row in self.rows(&grouped("rule".into())).await? {
            out.links_by_rule.push(link_change(&row, row.text("key")));
        }
        // A level is named by the settings of the side its pair comes from: a lost pair's
        // level by the published settings (a level may have been removed or renamed).
        let published = published_settings(self.ws, job).await?;
        let now = self.ws.project.identity.as_ref();
        let level_name = |settings: Option<&IdentityConfig>, comparison: &str, level: usize| {
            settings
                .and_then(|s| s.comparisons.iter().find(|c| c.name == comparison))
                .and_then(|c| c.levels.get(level))
                .map_or("else".to_string(), |l| l.name.clone())
        };
        let mut by_level: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for gamma in &gammas {
            let name = gamma.trim_start_matches("gamma_");
            // NULL: a side had no value, no evidence either way; not a level.
            for row in self
                .rows(&format!(
                    "select change, cast({g} as bigint) as level, count(*) as n \
                     from link_changes where {g} is not null group by change, level",
                    g = ident(gamma)
                ))
                .await?
            {
                let level = usize::try_from(row.int("level")).unwrap_or_default();
                let count = row.int("n");
                let entry = if row.text("change") == "gained" {
                    let key = format!("{name}: {}", level_name(now, name, level));
                    &mut by_level.entry(key).or_default().0
                } else {
                    let key = format!(
                        "{name}: {}",
                        level_name(published.as_ref().or(now), name, level)
                    );
                    &mut by_level.entry(key).or_default().1
                };
                *entry += count;
            }
        }
        out.links_by_level = by_level
            .into_iter()
            .map(|(key, (gained, lost))| LinkChange { key, gained, lost })
            .collect();
        out.links_by_level
            .sort_by_key(|l| std::cmp::Reverse(l.gained + l.lost));
        Ok(())
    }

    async fn tracked(&self, job: &Job, run_id: &str) -> Result<TrackedImpact> {
        let key = job.config.unique_key.clone();
        self.pair(&job.name, "t").await?;
        self.pair(&format!("{}_changes", job.name), "c").await?;
        let run = literal(run_id);
        let counts = self
            .ints(&format!(
                "select (select count(*) from before_t) as rows_before, \
                 (select count(*) from after_t) as rows_after, \
                 count(*) filter (where change = 'add') as added, \
                 count(*) filter (where change = 'remove') as removed, \
                 count(*) filter (where change = 'update') as updated \
                 from after_c where run_id = {run}"
            ))
            .await?;
        let mut out = TrackedImpact {
            job: job.name.clone(),
            key: key.clone(),
            rows_before: 0,
            rows_after: 0,
            added: 0,
            removed: 0,
            updated: 0,
            groups: Vec::new(),
            fields: Vec::new(),
            destination: None,
        };
        if let [rb, ra, added, removed, updated] = counts[..] {
            (
                out.rows_before,
                out.rows_after,
                out.added,
                out.removed,
                out.updated,
            ) = (rb, ra, added, removed, updated);
        }
        if key.len() > 1 {
            let group: Vec<String> = key[1..].iter().map(|k| ident(k)).collect();
            let label = group
                .iter()
                .zip(&key[1..])
                .map(|(g, k)| {
                    format!(
                        "{} || '=' || coalesce(cast({g} as varchar), 'NULL')",
                        literal(k)
                    )
                })
                .collect::<Vec<_>>()
                .join(" || ', ' || ");
            for row in self
                .rows(&format!(
                    "select {label} as grp, count(*) filter (where change = 'add') as entered, \
                     count(*) filter (where change = 'remove') as exited \
                     from after_c where run_id = {run} group by {list} \
                     order by entered + exited desc, grp",
                    list = group.join(", ")
                ))
                .await?
            {
                out.groups.push(GroupChange {
                    group: row.text("grp"),
                    entered: row.int("entered"),
                    exited: row.int("exited"),
                });
            }
        }
        if out.updated > 0 {
            out.fields = self.fields(&key).await?;
        }
        Ok(out)
    }

    /// Per column, the kept keys whose value would change, with one example.
    async fn fields(&self, key: &[String]) -> Result<Vec<FieldChange>> {
        let before = self.columns("before_t").await?;
        let columns: Vec<String> = self
            .columns("after_t")
            .await?
            .into_iter()
            .filter(|c| !key.contains(c) && before.contains(c))
            .collect();
        if columns.is_empty() {
            return Ok(Vec::new());
        }
        let on = key
            .iter()
            .map(|k| format!("b.{k} = a.{k}", k = ident(k)))
            .collect::<Vec<_>>()
            .join(" and ");
        let join = format!("from before_t b join after_t a on {on}");
        let counts = self
            .ints(&format!(
                "select {} {join}",
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!(
                        "count(*) filter (where b.{c} is distinct from a.{c}) as c{i}",
                        c = ident(c)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .await?;
        let key_text = key
            .iter()
            .map(|k| format!("coalesce(cast(a.{} as varchar), 'NULL')", ident(k)))
            .collect::<Vec<_>>()
            .join(" || ', ' || ");
        let mut out = Vec::new();
        for (column, changed) in columns.iter().zip(counts) {
            if changed == 0 {
                continue;
            }
            let c = ident(column);
            let example = self
                .rows(&format!(
                    "select {key_text} as k, cast(b.{c} as varchar) as before, \
                     cast(a.{c} as varchar) as after {join} \
                     where b.{c} is distinct from a.{c} order by k limit 1"
                ))
                .await?
                .into_iter()
                .next()
                .map(|r| (r.text("k"), r.text("before"), r.text("after")));
            out.push(FieldChange {
                column: column.clone(),
                changed,
                example,
            });
        }
        out.sort_by_key(|f| std::cmp::Reverse(f.changed));
        Ok(out)
    }
}

fn link_change(row: &Row, key: String) -> LinkChange {
    LinkChange {
        key,
        gained: row.int("gained"),
        lost: row.int("lost"),
    }
}

/// Up to `n` gained and `n` lost links, each explained on the published tables and on the
/// sandbox (`tessera explain a b`, both ways).
async fn decisions(
    ws: &Workspace,
    sandbox: &Url,
    tables: &Tables<'_>,
    job: &Job,
    n: usize,
) -> Result<Vec<Decision>> {
    if n == 0 || !tables.ctx.table_exist("link_changes").unwrap_or(false) {
        return Ok(Vec::new());
    }
    // Links that merge two customers of now, or split one, before links inside a customer
    // that stays whole (the other links hold its records together either way).
    let picked = tables
        .rows(&format!(
            "select change, record_key_a, record_key_b from ( \
               select l.*, row_number() over (partition by change \
                 order by case when (change = 'gained' and ba.customer_id is distinct from bb.customer_id) \
                   or (change = 'lost' and aa.customer_id is distinct from ab.customer_id) \
                   then 0 else 1 end, record_key_a, record_key_b) as k \
               from link_changes l \
               left join before_rc ba on ba.record_key = l.record_key_a \
               left join before_rc bb on bb.record_key = l.record_key_b \
               left join after_rc aa on aa.record_key = l.record_key_a \
               left join after_rc ab on ab.record_key = l.record_key_b) \
             where k <= {n} order by change, k"
        ))
        .await?;
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    let mut project = ws.project.clone();
    project.warehouse = sandbox.clone();
    let after_ws = Workspace::open(project)?;
    // The published decisions are explained with the settings that made them.
    let before_ws = match published_settings(ws, job).await? {
        Some(settings) => {
            let mut project = ws.project.clone();
            project.identity = Some(settings);
            Some(Workspace::open(project)?)
        }
        None => None,
    };
    let before_ws = before_ws.as_ref().unwrap_or(ws);
    let mut out = Vec::new();
    for row in picked {
        let (a, b) = (&row.text("record_key_a"), &row.text("record_key_b"));
        out.push(Decision {
            a: a.clone(),
            b: b.clone(),
            change: if row.text("change") == "gained" {
                "linked".into()
            } else {
                "unlinked".into()
            },
            before: explained(before_ws, a, b).await,
            after: explained(&after_ws, a, b).await,
        });
    }
    Ok(out)
}

/// The `[identity]` settings the published tables of identity job `job` were resolved with
/// (kept in their commit; None for tables written before they were).
async fn published_settings(ws: &Workspace, job: &Job) -> Result<Option<IdentityConfig>> {
    Ok(ws
        .engine
        .last_commit_metadata(&table_url(&ws.project.warehouse, &job.name)?)
        .await?
        .and_then(|m| m.get(crate::runner::IDENTITY_SETTINGS_KEY).cloned())
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// `tessera explain a b` in `ws`, or why it cannot be.
async fn explained(ws: &Workspace, a: &str, b: &str) -> String {
    match pair_explanation(ws, a, b).await {
        Ok(text) => text,
        Err(e) => format!("(cannot explain: {})\n", crate::errors::error_text(&e)),
    }
}

/// `+gained −lost`.
fn delta(gained: i64, lost: i64) -> String {
    format!("+{} -{}", n(gained), n(lost))
}

/// The impact as the terminal shows it.
pub fn render(impact: &Impact) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let ran = impact.jobs.iter().filter(|j| j.action == "run").count();
    let reused = impact.jobs.iter().filter(|j| j.action == "reuse").count();
    let _ = writeln!(
        out,
        "what-if {}: {ran} jobs run in a sandbox, {reused} reused as published, {:.1} s; nothing was published",
        impact.id, impact.seconds
    );
    for j in &impact.jobs {
        let status = match &j.error {
            Some(e) => format!("FAILED: {e}"),
            None => j.reason.clone(),
        };
        let _ = writeln!(
            out,
            "  {:<5} {:<34} {:<11} {status}",
            j.action.to_uppercase(),
            j.name,
            j.materialized
        );
    }
    for i in &impact.identity {
        render_identity(&mut out, i);
    }
    for t in &impact.tracked {
        render_tracked(&mut out, t);
    }
    if impact.breaches.is_empty() {
        let _ = writeln!(out, "\nlimits: none exceeded");
    } else {
        let _ = writeln!(out, "\nlimits exceeded:");
        for b in &impact.breaches {
            let _ = writeln!(out, "  {b}");
        }
    }
    out
}

/// An identity job's impact, as the terminal shows it.
fn render_identity(out: &mut String, i: &IdentityImpact) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\nidentity ({}):", i.job);
    let _ = writeln!(
        out,
        "  customers {} -> {}: {} merged, {} split, {} unchanged",
        n(i.customers_before),
        n(i.customers_after),
        n(i.merged),
        n(i.split),
        n(i.unchanged)
    );
    let _ = writeln!(
        out,
        "  records that change customer: {} of {} ({} new, {} gone)",
        n(i.records_moved),
        n(i.records),
        n(i.records_new),
        n(i.records_gone)
    );
    let _ = writeln!(
        out,
        "  stable ids: {} retired, {} created",
        n(i.ids_retired),
        n(i.ids_created)
    );
    let _ = writeln!(
        out,
        "  links (accepted pairs): {}",
        delta(i.links_gained, i.links_lost)
    );
    for (title, list) in [
        ("by rule", &i.links_by_rule),
        ("by comparison level", &i.links_by_level),
    ] {
        if list.is_empty() {
            continue;
        }
        let parts: Vec<String> = list
            .iter()
            .take(8)
            .map(|l| format!("{} {}", l.key, delta(l.gained, l.lost)))
            .collect();
        let more = list.len().saturating_sub(8);
        let _ = writeln!(
            out,
            "    {title}: {}{}",
            parts.join("; "),
            if more > 0 {
                format!("; {more} more (--json)")
            } else {
                String::new()
            }
        );
    }
    let sizes = |l: &[(String, i64)]| l.iter().map(|(_, s)| n(*s)).collect::<Vec<_>>().join(", ");
    let _ = writeln!(
        out,
        "  largest customers (records): {} -> {}",
        sizes(&i.largest_before),
        sizes(&i.largest_after)
    );
    if !i.match_rate.is_empty() {
        let _ = writeln!(out, "  records linked to another record, per source:");
        for r in &i.match_rate {
            let _ = writeln!(
                out,
                "    {:<24} {:>5.1}% -> {:>5.1}%  ({} -> {} records)",
                r.source,
                r.linked_before * 100.0,
                r.linked_after * 100.0,
                n(r.records_before),
                n(r.records_after)
            );
        }
    }
    for m in &i.moved_examples {
        let _ = writeln!(
            out,
            "  record {} moves {} -> {}",
            m.record_key, m.before, m.after
        );
    }
    for d in &i.decisions {
        let _ = writeln!(out, "\n  {} {} and {}:", d.change, d.a, d.b);
        let _ = writeln!(out, "  -- now --");
        for line in d.before.lines() {
            let _ = writeln!(out, "    {line}");
        }
        let _ = writeln!(out, "  -- after the change --");
        for line in d.after.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
}

/// A tracked job's impact (golden records, segments, audiences), as the terminal shows it.
fn render_tracked(out: &mut String, t: &TrackedImpact) {
    use std::fmt::Write as _;
    let what = match &t.destination {
        Some(d) => format!("audience for {d} (what the next sync sends)"),
        None => format!("keyed on {}", t.key.join(", ")),
    };
    let _ = writeln!(
        out,
        "\n{} ({what}): {} -> {} rows; {} added, {} removed, {} updated",
        t.job,
        n(t.rows_before),
        n(t.rows_after),
        n(t.added),
        n(t.removed),
        n(t.updated)
    );
    for g in &t.groups {
        let _ = writeln!(
            out,
            "  {:<40} {} enter, {} exit",
            g.group,
            n(g.entered),
            n(g.exited)
        );
    }
    for f in &t.fields {
        let example = f.example.as_ref().map_or(String::new(), |(k, b, a)| {
            format!(" (e.g. {k}: {b:?} -> {a:?})")
        });
        let _ = writeln!(out, "  {:<24} {} changed{example}", f.column, n(f.changed));
    }
}
