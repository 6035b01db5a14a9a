//! Running jobs: registering inputs, skipping unchanged jobs, incremental filters, data tests
//! before publishing, one Delta commit per job, the run lock and the run log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::errors::{Context, Result};
use crate::{bail, err};
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider,
};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tessera_engine::storage::object_path;
use tessera_engine::{SourceFormat, TableVersion, WriteMode};
use tokio::sync::Semaphore;
use url::Url;

use crate::dag::{Dag, Input};
use crate::job::{Job, Materialized, quote_ident};
use crate::workspace::Workspace;

mod model;
mod tracked;

/// What happened to a job in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Ran and published a new version.
    Success,
    /// Inputs and SQL unchanged since its last successful run.
    Skipped,
    /// The SQL or the write failed.
    Failed,
    /// Its data tests failed; nothing was published.
    TestFailed,
    /// A job it reads failed.
    UpstreamFailed,
}

impl JobStatus {
    /// The name used in the run log.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Success => "success",
            JobStatus::Skipped => "skipped",
            JobStatus::Failed => "failed",
            JobStatus::TestFailed => "test_failed",
            JobStatus::UpstreamFailed => "upstream_failed",
        }
    }

    /// True when the run should exit non-zero.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            JobStatus::Failed | JobStatus::TestFailed | JobStatus::UpstreamFailed
        )
    }
}

/// The outcome of one job.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// Output table.
    pub name: String,
    /// The job file.
    pub path: String,
    /// What happened.
    pub status: JobStatus,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub finished: DateTime<Utc>,
    /// Rows written (new or merged rows for incremental jobs).
    pub rows: Option<u64>,
    /// The Delta version it published.
    pub output_version: Option<u64>,
    /// Each input and its state (Delta version or file listing digest).
    pub inputs: BTreeMap<String, String>,
    /// Why it ran or was skipped.
    pub reason: String,
    /// The error, when it failed.
    pub error: Option<String>,
    /// What went right enough to publish but deserves a look (an identity job's model
    /// warnings); recorded in the run log's `reason`.
    pub warnings: Vec<String>,
}

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rebuild incremental jobs from scratch and run unchanged jobs.
    pub full_refresh: bool,
    /// Jobs run at once.
    pub concurrency: usize,
    /// The run's id, recorded by jobs that keep history (identity resolution).
    pub run_id: String,
    /// A what-if sandbox: outputs are written under this URL instead of the warehouse, and a
    /// table not (yet) written there is read from the warehouse. Nothing is published; a
    /// table a job appends to or merges into is first copied in, so every materialisation
    /// behaves as it would on the warehouse.
    pub sandbox: Option<Url>,
}

/// The commit metadata of an identity job's tables holding the `[identity]` settings used.
pub const IDENTITY_SETTINGS_KEY: &str = "tessera.identity";

/// Where the run log and lock live in the warehouse.
pub const RUNS_TABLE: &str = "_tessera.runs";

/// The warehouse URL of a job's (or any `schema.table`) output.
pub use crate::workspace::table_url;

/// A plan entry: what a job would do and why.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    /// Index in the DAG.
    pub index: usize,
    /// Will it run?
    pub run: bool,
    /// Why (or why not).
    pub reason: String,
    /// Input states.
    pub inputs: BTreeMap<String, String>,
    /// The fingerprint of SQL, settings and inputs.
    pub fingerprint: String,
}

/// Runs jobs of a DAG.
#[derive(Debug)]
pub struct Runner<'a> {
    ws: &'a Workspace,
    dag: &'a Dag,
    options: RunOptions,
    /// Output state of each job processed in this run (for dependents' fingerprints).
    states: Mutex<BTreeMap<String, String>>,
}

impl<'a> Runner<'a> {
    /// A runner over `dag` in workspace `ws`.
    pub fn new(ws: &'a Workspace, dag: &'a Dag, options: RunOptions) -> Self {
        Self {
            ws,
            dag,
            options,
            states: Mutex::new(BTreeMap::new()),
        }
    }

    /// The id of this run (an ad-hoc one when the runner was started without one).
    fn run_id(&self) -> String {
        if self.options.run_id.is_empty() {
            format!("adhoc-{}", Utc::now().format("%Y%m%dT%H%M%S"))
        } else {
            self.options.run_id.clone()
        }
    }

    /// What an input name is: a job of the DAG, a source, or else a warehouse table.
    fn resolve(&self, name: &str) -> Input {
        if self.dag.index(name).is_some() {
            Input::Job(name.to_string())
        } else if self.ws.project.sources.contains_key(name) {
            Input::Source(name.to_string())
        } else {
            Input::Warehouse(name.to_string())
        }
    }

    fn inputs_of(job: &Job) -> Vec<String> {
        let mut refs: Vec<String> = job.references.iter().cloned().collect();
        for t in &job.config.tests {
            refs.extend(t.references());
        }
        refs.sort();
        refs.dedup();
        refs
    }

    /// The state of one input: a Delta version, a file listing digest, a view's fingerprint.
    async fn input_state(&self, name: &str) -> Result<String> {
        if let Some(state) = self.states.lock().expect("poisoned").get(name) {
            return Ok(state.clone());
        }
        // One snapshot per run: a state read once is reused (jobs that run replace theirs).
        let state = match self.resolve(name) {
            Input::Source(source) => {
                let spec = &self.ws.project.sources[&source].spec;
                if spec.format == SourceFormat::Delta {
                    let table = self
                        .ws
                        .engine
                        .open_delta(&spec.url, spec.version.clone())
                        .await?;
                    format!("delta v{}", table.version().unwrap_or_default())
                } else {
                    listing_digest(&self.ws.engine.store_for(&spec.url)?, &spec.url).await?
                }
            }
            Input::Job(job) => {
                let index = self.dag.index(&job).expect("resolved as a job");
                if self.dag.jobs[index].config.materialized == Materialized::View {
                    // Not processed in this run: a view's state is its own fingerprint.
                    let planned = Box::pin(self.plan_job(index)).await?;
                    format!("view {}", &planned.fingerprint[..16])
                } else {
                    self.delta_state(&job).await?
                }
            }
            Input::Warehouse(table) => self.delta_state(&table).await?,
        };
        self.states
            .lock()
            .expect("poisoned")
            .entry(name.to_string())
            .or_insert(state.clone());
        Ok(state)
    }

    /// The state of a table this run wrote (version `version`): a what-if's tables are never
    /// taken for the published ones, so the jobs reading them run too.
    pub(super) fn written_state(&self, version: u64) -> String {
        match &self.options.sandbox {
            Some(_) => format!("what-if delta v{version}"),
            None => format!("delta v{version}"),
        }
    }

    /// Where outputs are written: the warehouse, or the what-if sandbox.
    fn write_root(&self) -> &Url {
        self.options
            .sandbox
            .as_ref()
            .unwrap_or(&self.ws.project.warehouse)
    }

    /// The URL a table is written at (in the sandbox, when there is one).
    fn output_url(&self, name: &str) -> Result<Url> {
        table_url(self.write_root(), name)
    }

    /// The URL a table is read from: its sandbox copy once written there, else the warehouse.
    async fn read_url(&self, name: &str) -> Result<Url> {
        if let Some(sandbox) = &self.options.sandbox {
            let url = table_url(sandbox, name)?;
            if self.ws.engine.delta_exists(&url).await? {
                return Ok(url);
            }
        }
        table_url(&self.ws.project.warehouse, name)
    }

    /// In a sandbox, copies the published `name` in before an incremental job appends to or
    /// merges into it, so the sandbox's table ends as the warehouse's would.
    async fn sandbox_copy(&self, name: &str) -> Result<()> {
        let Some(sandbox) = &self.options.sandbox else {
            return Ok(());
        };
        let url = table_url(sandbox, name)?;
        if self.ws.engine.delta_exists(&url).await? {
            return Ok(());
        }
        let published = table_url(&self.ws.project.warehouse, name)?;
        let Some(provider) =
            crate::warehouse::provider_if_exists(&self.ws.engine, &published).await?
        else {
            return Ok(());
        };
        let df = self.ws.engine.ctx().read_table(provider)?;
        self.ws
            .engine
            .write_delta(df, url)
            .await
            .with_context(|| format!("copying {name} into the what-if sandbox"))?;
        Ok(())
    }

    async fn delta_state(&self, name: &str) -> Result<String> {
        let url = self.read_url(name).await?;
        // A table the what-if wrote is never in the state of a published one.
        let sandboxed = if self
            .options
            .sandbox
            .as_ref()
            .is_some_and(|s| url.as_str().starts_with(s.as_str()))
        {
            "what-if "
        } else {
            ""
        };
        match self.ws.engine.open_delta(&url, TableVersion::Latest).await {
            Ok(table) => Ok(format!(
                "{sandboxed}delta v{}",
                table.version().unwrap_or_default()
            )),
            Err(tessera_engine::Error::NoDeltaTable { .. }) => Ok("absent".into()),
            Err(e) => Err(e.into()),
        }
    }

    /// What a job would do now, and why.
    pub async fn plan_job(&self, index: usize) -> Result<PlannedJob> {
        let job = &self.dag.jobs[index];
        let mut inputs = BTreeMap::new();
        for name in Self::inputs_of(job) {
            let state = self
                .input_state(&name)
                .await
                .with_context(|| format!("input `{name}`"))?;
            inputs.insert(name, state);
        }
        if job.config.materialized == Materialized::Identity {
            let settings = serde_json::to_string(&self.ws.project.identity).unwrap_or_default();
            inputs.insert(
                "[identity]".into(),
                sha256_hex(&[&settings])[..16].to_string(),
            );
        }
        let fingerprint = fingerprint(job, &inputs);
        let (run, reason) = if job.config.materialized == Materialized::View {
            (
                true,
                "view: planned inline into the jobs that read it".to_string(),
            )
        } else if self.options.full_refresh {
            (true, "full refresh".to_string())
        } else {
            let url = self.read_url(&job.name).await?;
            match self.ws.engine.last_commit_metadata(&url).await? {
                None => (true, "never run".to_string()),
                Some(meta) => explain_change(&meta, job, &inputs, &fingerprint),
            }
        };
        Ok(PlannedJob {
            index,
            run,
            reason,
            inputs,
            fingerprint,
        })
    }

    /// The plan of the selected jobs (DAG order): a job whose inputs are unchanged still runs
    /// when a selected job it reads will publish a new version first.
    pub async fn plan(&self, selected: &[usize]) -> Result<Vec<PlannedJob>> {
        let mut changes = std::collections::BTreeSet::new();
        let mut plans = Vec::with_capacity(selected.len());
        for &index in selected {
            let mut planned = self.plan_job(index).await?;
            let job = &self.dag.jobs[index];
            let changed_upstream: Vec<&str> = self.dag.upstream[index]
                .iter()
                .filter(|u| changes.contains(*u))
                .map(|&u| self.dag.jobs[u].name.as_str())
                .collect();
            if !planned.run && !changed_upstream.is_empty() {
                planned.run = true;
                planned.reason = format!("runs after {} change", changed_upstream.join(", "));
            }
            let will_change = if job.config.materialized == Materialized::View {
                !changed_upstream.is_empty()
            } else {
                planned.run
            };
            if will_change {
                changes.insert(index);
            }
            plans.push(planned);
        }
        Ok(plans)
    }

    /// Registers a job's inputs in the engine so its SQL can be planned.
    async fn register_inputs(&self, job: &Job) -> Result<()> {
        for name in Self::inputs_of(job) {
            self.register_table(&name).await?;
        }
        Ok(())
    }

    async fn register_table(&self, name: &str) -> Result<()> {
        let ctx = self.ws.engine.ctx();
        let reference = table_reference(name);
        // `table_exist` errors when the schema is not registered yet: that means "no".
        if ctx.table_exist(reference.clone()).unwrap_or(false) {
            return Ok(());
        }
        match self.resolve(name) {
            Input::Source(source) => {
                if let Err(e) = self.ws.register_source(&source).await {
                    // Another job registered it while this one was reading its files.
                    if !ctx.table_exist(reference.clone()).unwrap_or(false) {
                        return Err(e);
                    }
                }
            }
            Input::Job(job) => {
                let index = self.dag.index(&job).expect("resolved as a job");
                let upstream = &self.dag.jobs[index];
                if upstream.config.materialized == Materialized::View {
                    Box::pin(self.register_inputs(upstream)).await?;
                    let df = ctx.sql(&upstream.sql).await.with_context(|| {
                        format!("view {} ({})", upstream.name, upstream.path.display())
                    })?;
                    register_under(ctx, name, df.into_view())?;
                } else {
                    self.register_delta(name).await?;
                }
            }
            Input::Warehouse(table) => self.register_delta(&table).await?,
        }
        Ok(())
    }

    async fn register_delta(&self, name: &str) -> Result<()> {
        let url = self.read_url(name).await?;
        let table = match self.ws.engine.open_delta(&url, TableVersion::Latest).await {
            Ok(table) => table,
            Err(tessera_engine::Error::NoDeltaTable { .. }) => {
                bail!("`{name}` has no table yet at {url} (has its job run?)")
            }
            Err(e) => return Err(e.into()),
        };
        let provider = self.ws.engine.delta_provider(&table).await?;
        register_under(self.ws.engine.ctx(), name, provider)?;
        Ok(())
    }

    /// The exact SQL a job runs now (with the incremental filter resolved).
    pub async fn compile(&self, index: usize) -> Result<String> {
        let job = &self.dag.jobs[index];
        if job.config.materialized != Materialized::Incremental || self.options.full_refresh {
            return Ok(job.sql.clone());
        }
        let Some(watermark) = &job.config.watermark else {
            return Ok(job.sql.clone());
        };
        let url = self.read_url(&job.name).await?;
        if !self.ws.engine.delta_exists(&url).await? {
            return Ok(job.sql.clone());
        }
        let this = self
            .ws
            .engine
            .open_delta(&url, TableVersion::Latest)
            .await?;
        let provider = self.ws.engine.delta_provider(&this).await?;
        let ctx = SessionContext::new_with_state(self.ws.engine.ctx().state());
        let df = ctx.read_table(provider.clone())?.aggregate(
            vec![],
            vec![datafusion::functions_aggregate::expr_fn::max(
                datafusion::prelude::ident(watermark),
            )],
        )?;
        let batches = df.collect().await?;
        let max = batches
            .first()
            .filter(|b| b.num_rows() > 0)
            .map(|b| ScalarValue::try_from_array(b.column(0), 0))
            .transpose()?;
        match max {
            Some(max) if !max.is_null() => {
                let literal =
                    datafusion::sql::unparser::expr_to_sql(&datafusion::prelude::lit(max))?;
                // Rows newer than the newest stored, and rows *at* it that are not stored as
                // they are (late rows with the same timestamp): `>` alone lost those.
                let stored = format!("__tessera_stored_{}", job.name.replace(['.', '-'], "_"));
                let engine_ctx = self.ws.engine.ctx();
                let _ = engine_ctx.deregister_table(stored.as_str());
                engine_ctx.register_table(stored.as_str(), provider.clone())?;
                self.register_inputs(job).await?;
                let input_columns: Vec<String> = engine_ctx
                    .sql(&job.sql)
                    .await
                    .context("planning failed")?
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let stored_schema = provider.schema();
                let same = input_columns
                    .iter()
                    .filter(|c| stored_schema.field_with_name(c).is_ok())
                    .map(|c| {
                        format!(
                            "(s.{c} is not distinct from incremental_input.{c})",
                            c = quote_ident(c)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" and ");
                let w = quote_ident(watermark);
                Ok(format!(
                    "select * from (\n{}\n) as incremental_input\nwhere {w} > {literal} \
                     or ({w} = {literal} and not exists (select 1 from {stored} s \
                     where s.{w} = {literal} and {same}))",
                    job.sql,
                ))
            }
            _ => Ok(job.sql.clone()),
        }
    }

    /// Runs the selected jobs (indexes in DAG order), `concurrency` at a time, each as soon as
    /// the jobs it reads are done. Jobs downstream of a failure are reported, not run.
    pub async fn run(
        &self,
        selected: &[usize],
        on_done: impl Fn(&JobResult) + Sync,
    ) -> Vec<JobResult> {
        let selected_set: std::collections::BTreeSet<usize> = selected.iter().copied().collect();
        let results: Mutex<BTreeMap<usize, JobResult>> = Mutex::new(BTreeMap::new());
        let semaphore = Semaphore::new(self.options.concurrency.max(1));
        let notify = tokio::sync::Notify::new();
        let run_one = |index: usize| {
            let results = &results;
            let semaphore = &semaphore;
            let notify = &notify;
            let on_done = &on_done;
            let selected_set = &selected_set;
            async move {
                // Wait for selected upstream jobs.
                let failed_upstream = loop {
                    let notified = notify.notified();
                    {
                        let done = results.lock().expect("poisoned");
                        let pending: Vec<&usize> = self.dag.upstream[index]
                            .iter()
                            .filter(|u| selected_set.contains(u) && !done.contains_key(u))
                            .collect();
                        if pending.is_empty() {
                            break self.dag.upstream[index]
                                .iter()
                                .find(|u| done.get(u).is_some_and(|r| r.status.is_failure()))
                                .map(|&u| self.dag.jobs[u].name.clone());
                        }
                    }
                    notified.await;
                };
                let result = match failed_upstream {
                    Some(up) => {
                        let now = Utc::now();
                        let job = &self.dag.jobs[index];
                        JobResult {
                            name: job.name.clone(),
                            path: job.path.display().to_string(),
                            status: JobStatus::UpstreamFailed,
                            started: now,
                            finished: now,
                            rows: None,
                            output_version: None,
                            inputs: BTreeMap::new(),
                            reason: format!("`{up}` failed"),
                            error: Some(format!("not run: `{up}` failed")),
                            warnings: Vec::new(),
                        }
                    }
                    None => {
                        let _permit = semaphore.acquire().await.expect("never closed");
                        self.run_job(index).await
                    }
                };
                on_done(&result);
                results.lock().expect("poisoned").insert(index, result);
                notify.notify_waiters();
            }
        };
        futures::future::join_all(selected.iter().map(|&i| run_one(i))).await;
        let mut results = results.into_inner().expect("poisoned");
        selected.iter().filter_map(|i| results.remove(i)).collect()
    }

    async fn run_job(&self, index: usize) -> JobResult {
        let job = &self.dag.jobs[index];
        let started = Utc::now();
        let mut result = JobResult {
            name: job.name.clone(),
            path: job.path.display().to_string(),
            status: JobStatus::Failed,
            started,
            finished: started,
            rows: None,
            output_version: None,
            inputs: BTreeMap::new(),
            reason: String::new(),
            error: None,
            warnings: Vec::new(),
        };
        // `job:<name>:after-commit`: a kill or failure after a job's output is committed and
        // before the next step (its dependents, the run log).
        let outcome = match self.execute(index, &mut result).await {
            Ok(status) => {
                crate::failpoint::check(&format!("job:{}:after-commit", job.name)).map(|()| status)
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(status) => result.status = status,
            Err(e) => {
                result.status = if result.status == JobStatus::TestFailed {
                    JobStatus::TestFailed
                } else {
                    JobStatus::Failed
                };
                // Readers quote the values they fail on: keep the place, not the data.
                let mut error = tessera_engine::privacy::redact_values(&format!(
                    "{}: {}",
                    job.path.display(),
                    crate::errors::error_text(&e)
                ));
                // DataFusion's "Resources exhausted" names its operator, not the setting.
                if let Some(limit) = self.ws.project.engine.memory_limit
                    && (error.contains("Resources exhausted")
                        || error.contains("Not enough memory"))
                    && !error.contains("[engine] memory_limit")
                {
                    error.push_str(&format!(
                        " (the job needs more memory than `[engine] memory_limit` = {} MiB \
                         allows: raise the limit)",
                        limit >> 20
                    ));
                }
                result.error = Some(error);
            }
        }
        result.finished = Utc::now();
        // Under a memory limit, what the job freed goes back to the system before the next
        // job (or the other one running) reserves its own.
        tessera_engine::session::return_freed_memory();
        result
    }

    async fn execute(&self, index: usize, result: &mut JobResult) -> Result<JobStatus> {
        let job = &self.dag.jobs[index];
        let planned = self.plan_job(index).await?;
        result.inputs = planned.inputs.clone();
        result.reason = planned.reason.clone();
        if job.config.materialized == Materialized::View {
            return self.execute_view(job, &planned).await;
        }
        let url = self.output_url(&job.name)?;
        if !planned.run {
            let state = self.delta_state(&job.name).await?;
            self.states
                .lock()
                .expect("poisoned")
                .insert(job.name.clone(), state);
            return Ok(JobStatus::Skipped);
        }
        let failures = self.run_unit_tests(job).await?;
        if !failures.is_empty() {
            result.status = JobStatus::TestFailed;
            bail!(
                "unit tests failed, nothing published: {}",
                failures.join("; ")
            );
        }
        self.register_inputs(job).await?;
        let sql = self.compile(index).await?;
        let ctx = self.ws.engine.ctx();
        let reused = self.reusable_records(job, &planned).await?;
        let records_reused = reused.is_some();
        let df = match reused {
            // Stored as published: already pseudonymised when the project says so.
            Some(records) => {
                result.reason.push_str("; its published records are reused");
                ctx.read_table(records)?
            }
            None => {
                let df = ctx.sql(&sql).await.context("planning failed")?;
                if self.ws.project.privacy.pseudonymize.contains(&job.name) {
                    tessera_engine::privacy::pseudonymize(df)?
                } else {
                    df
                }
            }
        };
        let incremental = job.config.materialized == Materialized::Incremental
            && !self.options.full_refresh
            && self
                .ws
                .engine
                .delta_exists(&self.read_url(&job.name).await?)
                .await?;
        if incremental {
            self.sandbox_copy(&job.name).await?;
        }
        if incremental && let Some(warning) = self.null_watermarks(job).await? {
            result.warnings.push(warning);
        }
        let mode = if !incremental {
            WriteMode::Overwrite
        } else if job.config.unique_key.is_empty() {
            WriteMode::Append
        } else {
            WriteMode::Merge
        };
        // An identity job reads its records several times (its tests, the guards, the
        // numbering, the output): computed once, held in memory, or under a memory limit in
        // temporary Arrow files.
        let spilled = if job.config.materialized == Materialized::Identity {
            Some(
                tessera_engine::identity::hold_records(
                    ctx,
                    df.clone(),
                    "computing the records",
                    self.ws.project.engine.memory_limit.is_some(),
                )
                .await
                .context("computing the records")?,
            )
        } else {
            None
        };
        let (df, staged_copy) = if job.config.tests.is_empty() {
            (df, None)
        } else {
            self.tested(job, df, spilled.as_ref(), result).await?
        };
        let status = async {
            if let Some(records) = &spilled {
                return self
                    .execute_identity(job, &planned, (records, records_reused), result)
                    .await;
            }
            if job.config.materialized == Materialized::Tracked {
                return self.execute_tracked(job, &planned, df, result).await;
            }
            if job.config.materialized == Materialized::Model {
                return self.execute_model(job, &planned, df, result).await;
            }
            let meta = commit_metadata(job, &planned);
            let mut write = self
                .ws
                .engine
                .write_delta(df, url.clone())
                .with_mode(mode)
                .with_merge_keys(job.config.unique_key.clone())
                .with_partition_columns(job.config.partition_by.clone());
            for (k, v) in meta {
                write = write.with_commit_metadata(k, v);
            }
            let outcome = write.await?;
            result.rows = outcome.rows;
            result.output_version = Some(outcome.version);
            // Dependents read the new version.
            let _ = ctx.deregister_table(table_reference(&job.name));
            self.states
                .lock()
                .expect("poisoned")
                .insert(job.name.clone(), self.written_state(outcome.version));
            Ok(JobStatus::Success)
        }
        .await;
        // The staged copy was for the tests; once published it is a stale copy of personal
        // data (a failed publish keeps it for inspection).
        if status.is_ok()
            && let Some(staging) = staged_copy
            && let Err(e) = self.ws.engine.remove_all(&staging).await
        {
            tracing::warn!("cannot remove the staged copy at {staging}: {e}");
        }
        status
    }

    /// A view: registered, and planned now so that an error in it is reported against its
    /// file.
    async fn execute_view(&self, job: &Job, planned: &PlannedJob) -> Result<JobStatus> {
        self.register_table(&job.name).await?;
        self.ws
            .engine
            .ctx()
            .table(table_reference(&job.name))
            .await?;
        self.states.lock().expect("poisoned").insert(
            job.name.clone(),
            format!("view {}", &planned.fingerprint[..16]),
        );
        Ok(JobStatus::Success)
    }

    /// An incremental job's input rows without a watermark: they cannot be told new or old,
    /// so an incremental run does not load them — said in a warning rather than dropped in
    /// silence.
    async fn null_watermarks(&self, job: &Job) -> Result<Option<String>> {
        let Some(watermark) = &job.config.watermark else {
            return Ok(None);
        };
        let nulls = self
            .ws
            .engine
            .ctx()
            .sql(&format!(
                "select count(*) from ({}) as incremental_input where {} is null",
                job.sql,
                quote_ident(watermark)
            ))
            .await?
            .collect()
            .await?;
        let n = nulls
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0);
        Ok((n > 0).then(|| format!(
            "{n} input rows have a NULL `{watermark}` (the @watermark): an incremental run cannot tell whether they are new, so they are not loaded; fix them at the source, or run with --full-refresh to load them"
        )))
    }

    /// A job's rows tested before anything is published: an identity job's held records as
    /// they are, another job's staged under `_tessera/staging/` first (returned, to be removed
    /// once published). Fails, publishing nothing, when a test fails.
    async fn tested(
        &self,
        job: &Job,
        df: datafusion::prelude::DataFrame,
        held: Option<&tessera_engine::identity::HeldRecords>,
        result: &mut JobResult,
    ) -> Result<(datafusion::prelude::DataFrame, Option<Url>)> {
        let mut staged_copy = None;
        let provider: Arc<dyn datafusion::catalog::TableProvider> = match held {
            Some(records) => records.provider.clone(),
            None => {
                let staging = self
                    .write_root()
                    .join(&format!("_tessera/staging/{}/", job.name.replace('.', "/")))?;
                self.ws
                    .engine
                    .write_delta(df, staging.clone())
                    .await
                    .context("staging the output for its tests")?;
                let staged = self
                    .ws
                    .engine
                    .open_delta(&staging, TableVersion::Latest)
                    .await?;
                staged_copy = Some(staging);
                self.ws.engine.delta_provider(&staged).await?
            }
        };
        let failures = self.run_tests(job, provider.clone()).await?;
        if !failures.is_empty() {
            result.status = JobStatus::TestFailed;
            bail!(
                "data tests failed, nothing published: {}",
                failures.join("; ")
            );
        }
        Ok((self.ws.engine.ctx().read_table(provider)?, staged_copy))
    }

    /// The identity records' quality measures, and the warnings they give against the last
    /// run's; fails (nothing published) when a warning is of a kind `[quality] fail_on`
    /// names.
    async fn records_quality(
        &self,
        job: &Job,
        records: Arc<dyn datafusion::catalog::TableProvider>,
        config: &tessera_engine::identity::config::IdentityConfig,
    ) -> Result<(Vec<crate::quality::Measure>, Vec<crate::quality::Warning>)> {
        let quality_config = &self.ws.project.quality;
        let before = crate::quality::previous(
            self.ws,
            self.existing_table(crate::quality::TABLE).await?,
            &job.name,
        )
        .await?;
        let measures = crate::quality::measure(self.ws, records, config).await?;
        let quality = crate::quality::warnings(&measures, &before, quality_config);
        let failing: Vec<&str> = quality
            .iter()
            .filter(|w| quality_config.fails_on(w.kind))
            .map(|w| w.message.as_str())
            .collect();
        if !failing.is_empty() {
            bail!(
                "the identity records fail their quality checks, nothing published ([quality] fail_on): {}",
                failing.join("; ")
            );
        }
        Ok((measures, quality))
    }

    /// What an identity job's last run left (`beside` names its tables): the record →
    /// customer map, the id history, the stored model and its term frequencies (not with
    /// --full-refresh, which retrains), and the published pairs when they can be reused.
    async fn previous_identity(
        &self,
        job: &Job,
        records_reused: bool,
        beside: &dyn Fn(&str) -> String,
    ) -> Result<tessera_engine::identity::PreviousState> {
        let previous_customers = self.existing_table(&beside("record_customer")).await?;
        let previous_history = self.existing_table(&beside("customer_id_history")).await?;
        let (previous_model, previous_tf) = if self.options.full_refresh {
            (None, None)
        } else {
            (
                self.existing_table(&beside("match_model")).await?,
                self.existing_table(&beside("match_term_frequencies"))
                    .await?,
            )
        };
        let mut previous = tessera_engine::identity::previous_state(
            self.ws.engine.ctx(),
            previous_customers,
            previous_history,
            previous_model,
            previous_tf,
        )
        .await?;
        previous.compared = self
            .reusable_pairs(job, records_reused, &beside("match_pairs"))
            .await?;
        Ok(previous)
    }

    /// An identity job: keeps its records, resolves them, then writes the records table and
    /// every identity table (each one commit; nothing is written when resolution fails).
    async fn execute_identity(
        &self,
        job: &Job,
        planned: &PlannedJob,
        (records, records_reused): (&tessera_engine::identity::HeldRecords, bool),
        result: &mut JobResult,
    ) -> Result<JobStatus> {
        use tessera_engine::identity;
        let config = self.ws.project.identity.clone().ok_or_else(|| {
            err!(
                "`@materialized: identity` needs an [identity] section in tessera.toml \
                 (`tessera init` writes the default one)"
            )
        })?;
        let ctx = self.ws.engine.ctx();
        tracing::debug!(
            job = job.name,
            rows = records.rows,
            mib = records.bytes >> 20,
            spilled = records.spilled,
            "identity: records computed"
        );
        let records = records.provider.clone();
        let beside = |table: &str| match job.schema() {
            Some(schema) => format!("{schema}.{table}"),
            None => table.to_string(),
        };
        // The records' quality first: an export that lost a column fails here (with
        // `[quality] fail_on`) or warns, instead of matching on less evidence in silence.
        let (measures, quality) = self.records_quality(job, records.clone(), &config).await?;
        let previous = self.previous_identity(job, records_reused, &beside).await?;
        let run_id = self.run_id();
        let resolution = identity::resolve(
            ctx,
            records.clone(),
            &config,
            &previous,
            &run_id,
            Utc::now().timestamp_micros(),
        )
        .await?;
        // Not needed for writing (its memory was reserved while resolving).
        drop(previous);
        if resolution.pairs_reused > 0 {
            result.reason.push_str(&format!(
                ", with the compared pairs of {} of its {} blocking rules (unchanged)",
                resolution.pairs_reused,
                config.blocking.len()
            ));
        }
        // On a cluster, the folder `match_pairs` is read from while it is written.
        let scratch = resolution.scratch;
        if !resolution.warnings.is_empty()
            && config.on_model_warning == identity::config::OnModelWarning::Fail
        {
            identity::Resolution::remove_scratch(scratch, ctx).await;
            bail!(
                "the match model is not sane, nothing published (`on_model_warning = \"fail\"`): {}",
                resolution.warnings.join("; ")
            );
        }
        result.warnings = resolution.warnings.clone();
        result.warnings.extend(
            quality
                .iter()
                .map(|w| format!("quality ({}): {}", w.kind, w.message)),
        );
        let mut meta = commit_metadata(job, planned);
        // The settings that decided, for explaining this run's decisions later (a what-if
        // explains the published decisions with them, not with the edited file's).
        meta.push((
            IDENTITY_SETTINGS_KEY.into(),
            serde_json::to_value(&config).unwrap_or_default(),
        ));
        let mut outputs = Vec::new();
        // The tables stay reserved in the memory pool until they are written.
        let _memory = resolution.memory;
        tracing::debug!("identity: writing the tables");
        for (table, provider) in resolution.tables {
            let mode = if identity::APPENDED_TABLES.contains(&table) {
                WriteMode::Append
            } else {
                WriteMode::Overwrite
            };
            outputs.push((beside(table), ctx.read_table(provider)?, mode));
        }
        let write_one = |name: String, df: datafusion::prelude::DataFrame, mode: WriteMode| {
            let meta = &meta;
            async move {
                // In a what-if the appended logs (id history, stats) hold this run's rows only.
                let url = self.output_url(&name)?;
                let mut write = self.ws.engine.write_delta(df, url).with_mode(mode);
                for (k, v) in meta {
                    write = write.with_commit_metadata(k.clone(), v.clone());
                }
                let outcome = write.await.with_context(|| format!("writing {name}"))?;
                Ok::<_, crate::errors::Error>((name, outcome))
            }
        };
        // The identity tables first (independent Delta logs, written concurrently), the records
        // table last: it carries the job's fingerprint, so a run failed or killed between these
        // commits leaves the fingerprint of the previous run, and the next run resolves and
        // publishes everything again instead of skipping the job as unchanged with
        // record_customer, match_pairs and the id history half-written.
        let written = futures::future::join_all(
            outputs
                .into_iter()
                .map(|(name, df, mode)| write_one(name, df, mode)),
        )
        .await;
        identity::Resolution::remove_scratch(scratch, ctx).await;
        let mut failed = None;
        let mut done = Vec::new();
        for w in written {
            match w {
                Ok(ok) => done.push(ok),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e.context(
                "the identity tables were not all published; the next run publishes them again",
            ));
        }
        crate::failpoint::check("identity:before-records-commit")?;
        done.push(
            write_one(
                job.name.clone(),
                ctx.read_table(records)?,
                WriteMode::Overwrite,
            )
            .await?,
        );
        for (name, outcome) in done {
            if name == job.name {
                result.rows = outcome.rows;
                result.output_version = Some(outcome.version);
            }
            let _ = ctx.deregister_table(table_reference(&name));
            self.states
                .lock()
                .expect("poisoned")
                .insert(name, self.written_state(outcome.version));
        }
        // The next run's baseline; losing it loses no published data. A what-if publishes
        // nothing, not even a baseline.
        if self.options.sandbox.is_none()
            && let Err(e) = crate::quality::record(self.ws, &job.name, &run_id, &measures).await
        {
            result.warnings.push(format!("{e:#}"));
        }
        Ok(JobStatus::Success)
    }

    /// An identity job whose SQL and inputs are those of its published records (only the
    /// `[identity]` settings changed, as in a what-if of a threshold or a comparison): the
    /// published records table, which holds exactly what the SQL would compute again.
    async fn reusable_records(
        &self,
        job: &Job,
        planned: &PlannedJob,
    ) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        if job.config.materialized != Materialized::Identity || self.options.full_refresh {
            return Ok(None);
        }
        let url = self.read_url(&job.name).await?;
        let Some(meta) = self.ws.engine.last_commit_metadata(&url).await? else {
            return Ok(None);
        };
        if meta.get("tessera.sql_hash").and_then(|v| v.as_str()) != Some(sql_hash(job).as_str()) {
            return Ok(None);
        }
        let before = stored_inputs(&meta);
        let data_inputs = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter()
                .filter(|(k, _)| k.as_str() != "[identity]")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        if data_inputs(&before) != data_inputs(&planned.inputs) {
            return Ok(None);
        }
        self.existing_table(&job.name).await
    }

    /// The published `match_pairs` of an identity job whose records are reused (see
    /// [`Self::reusable_records`]), with the settings that wrote it, when it was written with
    /// those records (the same commit fingerprint): the engine reads the compared pairs of each
    /// blocking rule whose settings are unchanged instead of blocking again (a what-if of a
    /// threshold, say, at a fraction of the cost).
    async fn reusable_pairs(
        &self,
        job: &Job,
        records_reused: bool,
        pairs_table: &str,
    ) -> Result<Option<tessera_engine::identity::PublishedPairs>> {
        if !records_reused {
            return Ok(None);
        }
        let engine = &self.ws.engine;
        let records = engine
            .last_commit_metadata(&self.read_url(&job.name).await?)
            .await?;
        let pairs = engine
            .last_commit_metadata(&self.read_url(pairs_table).await?)
            .await?;
        let (Some(records), Some(pairs)) = (records, pairs) else {
            return Ok(None);
        };
        let fingerprint = |m: &serde_json::Map<String, serde_json::Value>| {
            m.get("tessera.fingerprint")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        if fingerprint(&records).is_none() || fingerprint(&records) != fingerprint(&pairs) {
            return Ok(None);
        }
        let Some(settings) = pairs
            .get(IDENTITY_SETTINGS_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
        else {
            return Ok(None);
        };
        Ok(self
            .existing_table(pairs_table)
            .await?
            .map(|table| tessera_engine::identity::PublishedPairs { table, settings }))
    }

    /// The provider of a warehouse table, or None when it does not exist yet.
    async fn existing_table(
        &self,
        name: &str,
    ) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        crate::warehouse::provider_if_exists(&self.ws.engine, &self.read_url(name).await?).await
    }

    /// The published output of a job (a view is planned over its inputs).
    pub async fn output_provider(
        &self,
        index: usize,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        let job = &self.dag.jobs[index];
        if job.config.materialized == Materialized::View {
            self.register_table(&job.name)
                .await
                .with_context(|| format!("view {} ({})", job.name, job.path.display()))?;
            return Ok(self
                .ws
                .engine
                .ctx()
                .table_provider(table_reference(&job.name))
                .await?);
        }
        let url = self.read_url(&job.name).await?;
        match self.ws.engine.open_delta(&url, TableVersion::Latest).await {
            Ok(table) => Ok(self.ws.engine.delta_provider(&table).await?),
            Err(tessera_engine::Error::NoDeltaTable { .. }) => {
                bail!("`{}` has no table yet at {url} (run it first)", job.name)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs a job's given/expect tests; returns the failures.
    pub async fn run_unit_tests(&self, job: &Job) -> Result<Vec<String>> {
        let mut failures = Vec::new();
        for test in &job.unit_tests {
            match crate::unit::run(self.ws.engine.ctx(), job, test).await {
                Ok(None) => {}
                Ok(Some(diff)) => failures.push(format!("unit test `{}`: {diff}", test.name)),
                Err(e) => failures.push(format!("unit test `{}` cannot run: {e:#}", test.name)),
            }
        }
        Ok(failures)
    }

    /// Runs a job's data tests with `this` bound to `provider`; returns the failures.
    pub async fn run_tests(
        &self,
        job: &Job,
        provider: Arc<dyn datafusion::catalog::TableProvider>,
    ) -> Result<Vec<String>> {
        // A private catalog per test run: `this` of concurrent jobs never collide.
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema("public", Arc::new(MemorySchemaProvider::new()))?;
        datafusion::catalog::CatalogProviderList::register_catalog(
            catalogs.as_ref(),
            "datafusion".into(),
            catalog.clone(),
        );
        let state = SessionStateBuilder::new_from_existing(self.ws.engine.ctx().state())
            .with_catalog_list(catalogs)
            .build();
        let test_ctx = SessionContext::new_with_state(state);
        test_ctx.register_table("this", provider)?;
        for name in job.config.tests.iter().flat_map(|t| t.references()) {
            self.register_table(&name).await?;
            let table = self
                .ws
                .engine
                .ctx()
                .table_provider(table_reference(&name))
                .await?;
            if let Some((schema, _)) = name.split_once('.')
                && catalog.schema(schema).is_none()
            {
                catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
            }
            test_ctx.register_table(table_reference(&name), table)?;
        }
        let mut failures = Vec::new();
        for test in &job.config.tests {
            let sql = test.sql("this");
            let df = test_ctx
                .sql(&sql)
                .await
                .with_context(|| format!("test {}", test.name()))?;
            let bad = count_rows(df)
                .await
                .with_context(|| format!("test {}", test.name()))?;
            if bad > 0 {
                failures.push(format!("{} ({bad} failing rows)", test.name()));
            }
        }
        Ok(failures)
    }
}

async fn count_rows(df: DataFrame) -> Result<u64> {
    let mut stream = df.execute_stream().await?;
    let mut n = 0u64;
    while let Some(batch) = stream.next().await {
        n += batch?.num_rows() as u64;
    }
    Ok(n)
}

fn table_reference(name: &str) -> TableReference {
    match name.split_once('.') {
        Some((schema, table)) => TableReference::partial(schema, table),
        None => TableReference::bare(name),
    }
}

fn register_under(
    ctx: &SessionContext,
    name: &str,
    provider: Arc<dyn datafusion::catalog::TableProvider>,
) -> Result<()> {
    if let Some((schema, _)) = name.split_once('.') {
        let catalog = ctx.catalog("datafusion").context("no default catalog")?;
        if catalog.schema(schema).is_none() {
            catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
        }
    }
    // Concurrent jobs reading the same table may both have registered it meanwhile: the
    // first registration stands (both describe the same state).
    if !ctx.table_exist(table_reference(name)).unwrap_or(false) {
        ctx.register_table(table_reference(name), provider)?;
    }
    Ok(())
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fingerprint(job: &Job, inputs: &BTreeMap<String, String>) -> String {
    let inputs = serde_json::to_string(inputs).unwrap_or_default();
    sha256_hex(&[&job.sql, &format!("{:?}", job.config), &inputs])
}

fn sql_hash(job: &Job) -> String {
    sha256_hex(&[&job.sql, &format!("{:?}", job.config)])
}

fn commit_metadata(job: &Job, planned: &PlannedJob) -> Vec<(String, serde_json::Value)> {
    vec![
        ("tessera.job".into(), job.name.clone().into()),
        (
            "tessera.fingerprint".into(),
            planned.fingerprint.clone().into(),
        ),
        ("tessera.sql_hash".into(), sql_hash(job).into()),
        (
            "tessera.inputs".into(),
            serde_json::to_value(&planned.inputs).unwrap_or_default(),
        ),
    ]
}

/// The input states a commit recorded (`tessera.inputs`; empty when it recorded none).
fn stored_inputs(meta: &serde_json::Map<String, serde_json::Value>) -> BTreeMap<String, String> {
    meta.get("tessera.inputs")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn explain_change(
    meta: &serde_json::Map<String, serde_json::Value>,
    job: &Job,
    inputs: &BTreeMap<String, String>,
    fingerprint: &str,
) -> (bool, String) {
    if meta.get("tessera.fingerprint").and_then(|v| v.as_str()) == Some(fingerprint) {
        return (false, "unchanged since the last run".into());
    }
    if meta.get("tessera.sql_hash").and_then(|v| v.as_str()) != Some(sql_hash(job).as_str()) {
        if meta.get("tessera.sql_hash").is_none() {
            return (true, "the table was not written by this job".into());
        }
        return (true, "SQL or settings changed".into());
    }
    let before = stored_inputs(meta);
    let changed: Vec<String> = inputs
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| match before.get(k) {
            Some(old) => format!("{k} ({old} -> {v})"),
            None => format!("{k} (new input)"),
        })
        .collect();
    (true, format!("inputs changed: {}", changed.join(", ")))
}

/// A digest of the files under a file-based source (paths, sizes, modification times).
async fn listing_digest(store: &Arc<dyn ObjectStore>, url: &Url) -> Result<String> {
    let path = url.path();
    let glob_at = path.find(['*', '?', '[']);
    let prefix_url = match glob_at {
        Some(at) => {
            let mut u = url.clone();
            u.set_path(&path[..path[..at].rfind('/').map_or(0, |i| i + 1)]);
            u
        }
        None => url.clone(),
    };
    let prefix = object_path(&prefix_url);
    let mut entries = Vec::new();
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        entries.push(format!(
            "{} {} {}",
            meta.location,
            meta.size,
            meta.last_modified.timestamp_micros()
        ));
    }
    // A single-file source: listing a file's path lists nothing, so ask for the file itself.
    if entries.is_empty() && glob_at.is_none() {
        match store.head(&prefix).await {
            Ok(meta) => entries.push(format!(
                "{} {} {}",
                meta.location,
                meta.size,
                meta.last_modified.timestamp_micros()
            )),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    entries.sort();
    let parts: Vec<&str> = entries.iter().map(String::as_str).collect();
    Ok(format!(
        "files {} {}",
        entries.len(),
        &sha256_hex(&parts)[..16]
    ))
}

pub use crate::lock::{LockHeld, RunLock};

/// Appends a run and its jobs to `_tessera.runs`.
pub async fn append_run_log(
    ws: &Workspace,
    run_id: &str,
    started: DateTime<Utc>,
    selection: &str,
    results: &[JobResult],
    run_error: Option<&str>,
) -> Result<()> {
    let ts = |t: DateTime<Utc>| t.timestamp_micros();
    let finished = Utc::now();
    let failed = results.iter().filter(|r| r.status.is_failure()).count();
    let mut kind = vec!["run".to_string()];
    let mut job = vec![None];
    let mut path = vec![None];
    let mut status = vec![
        if failed > 0 || run_error.is_some() {
            "failed"
        } else {
            "success"
        }
        .to_string(),
    ];
    let mut start = vec![ts(started)];
    let mut end = vec![ts(finished)];
    let mut rows: Vec<Option<u64>> = vec![Some(results.iter().filter_map(|r| r.rows).sum())];
    let mut version: Vec<Option<u64>> = vec![None];
    let mut inputs: Vec<Option<String>> = vec![None];
    let mut reason: Vec<Option<String>> =
        vec![Some(format!("{} jobs: {} failed", results.len(), failed))];
    let mut error: Vec<Option<String>> =
        vec![run_error.map(tessera_engine::privacy::redact_values)];
    for r in results {
        kind.push("job".into());
        job.push(Some(r.name.clone()));
        path.push(Some(r.path.clone()));
        status.push(r.status.as_str().into());
        start.push(ts(r.started));
        end.push(ts(r.finished));
        rows.push(r.rows);
        version.push(r.output_version);
        inputs.push(Some(serde_json::to_string(&r.inputs)?));
        reason.push(Some(if r.warnings.is_empty() {
            r.reason.clone()
        } else {
            format!("{}; warnings: {}", r.reason, r.warnings.join("; "))
        }));
        error.push(r.error.clone());
    }
    let n = kind.len();
    let tz: Arc<str> = Arc::from("UTC");
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("job", DataType::Utf8, true),
        Field::new("path", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new(
            "started_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz.clone())),
            false,
        ),
        Field::new(
            "finished_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz.clone())),
            false,
        ),
        Field::new("duration_ms", DataType::Int64, false),
        Field::new("rows_written", DataType::UInt64, true),
        Field::new("output_version", DataType::UInt64, true),
        Field::new("input_versions", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
        Field::new("selection", DataType::Utf8, false),
    ]));
    let duration: Vec<i64> = start
        .iter()
        .zip(&end)
        .map(|(s, e)| (e - s) / 1000)
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run_id; n])),
        Arc::new(StringArray::from(kind)),
        Arc::new(StringArray::from(job)),
        Arc::new(StringArray::from(path)),
        Arc::new(StringArray::from(status)),
        Arc::new(TimestampMicrosecondArray::from(start).with_timezone(tz.clone())),
        Arc::new(TimestampMicrosecondArray::from(end).with_timezone(tz)),
        Arc::new(Int64Array::from(duration)),
        Arc::new(UInt64Array::from(rows)),
        Arc::new(UInt64Array::from(version)),
        Arc::new(StringArray::from(inputs)),
        Arc::new(StringArray::from(reason)),
        Arc::new(StringArray::from(error)),
        Arc::new(StringArray::from(vec![selection; n])),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    let df = ws.engine.ctx().read_batch(batch)?;
    let url = table_url(&ws.project.warehouse, RUNS_TABLE)?;
    ws.engine
        .write_delta(df, url)
        .with_mode(WriteMode::Append)
        .await
        .context("cannot append to the run log _tessera.runs")?;
    Ok(())
}

/// Plans the project's view jobs (`materialized = "view"`) whose names `wanted` accepts over
/// their inputs, as a run would, and registers them; returns how many.
pub async fn register_view_jobs(ws: &Workspace, wanted: impl Fn(&str) -> bool) -> Result<usize> {
    let (jobs, _) = crate::job::discover_with(&ws.project.dir, &ws.project.jobs);
    if !jobs
        .iter()
        .any(|j| j.config.materialized == Materialized::View && wanted(&j.name))
    {
        return Ok(0);
    }
    let (dag, _) = crate::workspace::load_dag(ws).await?;
    let runner = Runner::new(ws, &dag, Default::default());
    let mut registered = 0;
    for (index, job) in dag.jobs.iter().enumerate() {
        if job.config.materialized == Materialized::View && wanted(&job.name) {
            runner.output_provider(index).await?;
            registered += 1;
        }
    }
    Ok(registered)
}

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

impl From<RunFailed> for crate::errors::Error {
    fn from(e: RunFailed) -> Self {
        crate::errors::Error::typed(crate::errors::ErrorKind::Failed, e)
    }
}
