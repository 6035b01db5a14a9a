//! The cluster path: the same engine on an Apache DataFusion Ballista cluster.
//!
//! A project with `[engine] cluster = "ballista://host:50050"` plans every query as on one
//! machine, then ships each part of the plan the cluster can run to the Ballista scheduler,
//! which splits it into stages and spreads them over the executors. A part can be shipped
//! when Ballista can serialise it and every function it calls is one the cluster has: a
//! query over files in object storage (sources in Parquet, CSV or JSON, and Delta tables read
//! as the Parquet files of their current snapshot, see [`crate::Engine::delta_provider`]) with
//! DataFusion's and Tessera's functions. The rest runs on this process, the coordinator,
//! reading the shipped parts' results: Delta writes and merges (delta-rs plans them), the
//! in-memory tables of identity resolution, functions bound to one session (suppression
//! lists, erasure sets) and `information_schema`.
//!
//! Outputs are committed by the coordinator, one Delta commit per table as on one machine:
//! the executors compute, the coordinator writes the result's Parquet files and commits the
//! log, so a failed or killed job leaves every table at its last version. The coordinator
//! streams each result through (it never holds a whole table); at a size where that stream
//! is the bottleneck, executors writing the files themselves is the next step
//! (`docs/scale.md`).
//!
//! `tessera cluster scheduler` and `tessera cluster executor` start Ballista's scheduler and
//! executors with every Tessera function registered ([`run_scheduler`], [`run_executor`]) and
//! the object stores of the project's `[storage]` (credentials come from each process's own
//! configuration and environment, never inside plans).

mod cores;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ballista_core::config::BallistaConfig;
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::{
    SessionConfigExt, ballista_aggregate_functions, ballista_scalar_functions,
    ballista_window_functions,
};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::catalog::Session;
use datafusion::common::DFSchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::registry::FunctionRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::prelude::SessionConfig;
use datafusion_proto::logical_plan::AsLogicalPlan;
use datafusion_proto::protobuf::LogicalPlanNode;
use deltalake::delta_datafusion::planner::DeltaExtensionPlanner;

use crate::error::{Error, Result};
use crate::session::StorageRegistry;
use crate::storage::Storage;

/// The port a Ballista scheduler listens on when the address names none.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// A scheduler's address, from `ballista://host:port` (also `df://`, Ballista's own scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAddress {
    /// Host name or IP address of the scheduler.
    pub host: String,
    /// Its gRPC port.
    pub port: u16,
}

impl ClusterAddress {
    /// Parses `ballista://host[:port]`, `df://host[:port]` or `host[:port]`.
    pub fn parse(text: &str) -> Result<ClusterAddress> {
        let bad = |message: String| Error::InvalidLocation {
            location: text.to_string(),
            message,
        };
        let rest = match text.split_once("://") {
            Some(("ballista" | "df", rest)) => rest,
            Some((scheme, _)) => {
                return Err(bad(format!(
                    "a cluster address starts with ballista:// (not {scheme}://)"
                )));
            }
            None => text,
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad("expected ballista://host:port".into()));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| bad(format!("`{port}` is not a port number")))?;
                (host, port)
            }
            _ => (rest, DEFAULT_SCHEDULER_PORT),
        };
        if host.is_empty() {
            return Err(bad("the scheduler's host is missing".into()));
        }
        Ok(ClusterAddress {
            host: host.to_string(),
            port,
        })
    }

    /// The scheduler's gRPC endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

impl fmt::Display for ClusterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ballista://{}:{}", self.host, self.port)
    }
}

/// What the coordinator did with the plans it was given: parts shipped to the cluster, and
/// plans that ran on the coordinator alone because no part of them could be shipped.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    shipped: AtomicUsize,
    local: AtomicUsize,
}

impl ClusterCounters {
    /// Parts of plans sent to the cluster so far.
    pub fn shipped(&self) -> usize {
        self.shipped.load(Ordering::Relaxed)
    }

    /// Plans that read tables and ran entirely on the coordinator.
    pub fn local(&self) -> usize {
        self.local.load(Ordering::Relaxed)
    }
}

/// DataFusion's functions (those of a default session, nested ones included) with Tessera's
/// scalar and aggregate functions: what every process of a cluster registers, so a plan naming
/// a function decodes the same everywhere.
pub fn cluster_function_registry() -> BallistaFunctionRegistry {
    let state = SessionStateBuilder::new().with_default_features().build();
    let mut registry = BallistaFunctionRegistry {
        scalar_functions: state.scalar_functions().clone(),
        aggregate_functions: state.aggregate_functions().clone(),
        window_functions: state.window_functions().clone(),
        ..BallistaFunctionRegistry::default()
    };
    for f in ballista_scalar_functions()
        .into_iter()
        .chain(tessera_udfs::scalar_functions())
        .chain(crate::identity::score::functions())
    {
        for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
            registry
                .scalar_functions
                .insert(name.to_string(), f.clone());
        }
    }
    for f in ballista_aggregate_functions()
        .into_iter()
        .chain(tessera_udfs::aggregate_functions())
    {
        for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
            registry
                .aggregate_functions
                .insert(name.to_string(), f.clone());
        }
    }
    for f in ballista_window_functions() {
        registry.window_functions.insert(f.name().to_string(), f);
    }
    registry
}

/// The names of the functions every process of a cluster has (aliases included).
fn cluster_function_names() -> HashSet<String> {
    let registry = cluster_function_registry();
    registry
        .scalar_functions
        .keys()
        .chain(registry.aggregate_functions.keys())
        .chain(registry.window_functions.keys())
        .cloned()
        .collect()
}

/// What a session planning for a cluster carries (a `SessionConfig` extension) for the code
/// that builds its own sessions from it, identity resolution: the cluster, and where tables
/// the cluster must read are written.
#[derive(Debug, Clone)]
pub struct OnCluster {
    /// The scheduler.
    pub address: ClusterAddress,
    /// See [`crate::EngineOptions::cluster_timeout`].
    pub timeout: Option<Duration>,
    /// A folder every process of the cluster can read and write (the warehouse's
    /// `_tessera/scratch/`); intermediate tables stay on the coordinator when `None`.
    pub scratch: Option<url::Url>,
}

impl OnCluster {
    /// The extension of a session planning for a cluster; `None` on one machine.
    pub fn of(ctx: &datafusion::prelude::SessionContext) -> Option<Arc<OnCluster>> {
        ctx.state().config().get_extension::<OnCluster>()
    }

    /// A query planner like the engine's, counting what it ships into `counters`.
    pub fn planner(&self, counters: Arc<ClusterCounters>) -> Arc<dyn QueryPlanner + Send + Sync> {
        Arc::new(ClusterPlanner::new(&self.address, counters, self.timeout))
    }
}

/// The query planner of an engine on a cluster: ships what the cluster can run, plans the
/// rest here (with delta-rs' planner for its write and merge nodes).
pub(crate) struct ClusterPlanner {
    scheduler: String,
    functions: HashSet<String>,
    counters: Arc<ClusterCounters>,
    timeout: Option<Duration>,
}

impl fmt::Debug for ClusterPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPlanner")
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

impl ClusterPlanner {
    pub(crate) fn new(
        address: &ClusterAddress,
        counters: Arc<ClusterCounters>,
        timeout: Option<Duration>,
    ) -> Self {
        ClusterPlanner {
            scheduler: address.endpoint(),
            functions: cluster_function_names(),
            counters,
            timeout,
        }
    }

    /// Replaces each largest part of `plan` the cluster can run by a [`Shipped`] node.
    fn ship(&self, plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
        if let Some(reason) = self.unshippable(&plan) {
            tracing::trace!("not shipped ({reason}): {}", plan.display());
            return plan
                .map_children(|child| self.ship(child).map(Transformed::yes))
                .map(|t| t.data);
        }
        Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(Shipped { plan }),
        }))
    }

    /// Why `plan` as a whole cannot run on the cluster; `None` when it can.
    fn unshippable(&self, plan: &LogicalPlan) -> Option<String> {
        match plan {
            LogicalPlan::Extension(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_) => return Some("not a query".into()),
            _ => {}
        }
        let mut scans = false;
        let mut works = false;
        let mut unknown = None;
        let _ = plan.apply_with_subqueries(|node| {
            match node {
                LogicalPlan::TableScan(_) => scans = true,
                LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {}
                _ => works = true,
            }
            node.apply_expressions(|e| {
                e.apply(|e| {
                    let name = match e {
                        Expr::ScalarFunction(f) => Some(f.func.name()),
                        Expr::AggregateFunction(f) => Some(f.func.name()),
                        _ => None,
                    };
                    if let Some(name) = name
                        && !self.functions.contains(name)
                    {
                        unknown = Some(name.to_string());
                        return Ok(TreeNodeRecursion::Stop);
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        });
        if !scans {
            return Some("reads no table".into());
        }
        // Every row read comes back: the executors would read the files, then re-encode and
        // compress every batch to send it here (Ballista's Flight results, LZ4 at ~10 MB/s
        // per executor core: 58 MB of identity records took 10 s). Reading them here is the
        // same read without that.
        if !works {
            return Some("only reads a table: cheaper here than through the cluster".into());
        }
        if let Some(name) = unknown {
            return Some(format!("calls `{name}`, a function of this session only"));
        }
        let codec = BallistaLogicalExtensionCodec::default();
        if let Err(e) = LogicalPlanNode::try_from_logical_plan(plan, &codec) {
            return Some(format!("cannot be serialised: {e}"));
        }
        None
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let rewritten = self.ship(logical_plan.clone())?;
        let mut shipped = 0;
        rewritten.apply(|node| {
            if let LogicalPlan::Extension(e) = node
                && e.node.as_any().is::<Shipped>()
            {
                shipped += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if shipped > 0 {
            self.counters.shipped.fetch_add(shipped, Ordering::Relaxed);
        } else if logical_plan
            .exists(|n| Ok(matches!(n, LogicalPlan::TableScan(_))))
            .unwrap_or(false)
        {
            self.counters.local.fetch_add(1, Ordering::Relaxed);
        }
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(ShippedPlanner {
                scheduler: self.scheduler.clone(),
                timeout: self.timeout,
            }),
            DeltaExtensionPlanner::new(),
        ]);
        planner
            .create_physical_plan(&rewritten, session_state)
            .await
    }
}

/// A part of a plan that runs on the cluster; its result streams back to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
struct Shipped {
    plan: LogicalPlan,
}

impl UserDefinedLogicalNodeCore for Shipped {
    fn name(&self) -> &str {
        "ShippedToCluster"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        Vec::new()
    }

    fn schema(&self) -> &DFSchemaRef {
        self.plan.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ShippedToCluster")
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        _inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        Ok(self.clone())
    }
}

struct ShippedPlanner {
    scheduler: String,
    timeout: Option<Duration>,
}

#[async_trait]
impl ExtensionPlanner for ShippedPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        session_state: &dyn Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> datafusion::error::Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(shipped) = node.as_any().downcast_ref::<Shipped>() else {
            return Ok(None);
        };
        let config: BallistaConfig = session_state.config().ballista_config();
        let planned = Arc::new(shipped.plan.schema().as_arrow().clone());
        let query: Arc<dyn ExecutionPlan> =
            Arc::new(DistributedQueryExec::<LogicalPlanNode>::with_extension(
                self.scheduler.clone(),
                config,
                plain_output(shipped.plan.clone())?,
                Arc::new(BallistaLogicalExtensionCodec::default()),
                session_state.session_id().to_string(),
            ));
        Ok(Some(Arc::new(Aligned::new(
            query,
            self.timeout,
            self.scheduler.clone(),
            planned,
        ))))
    }
}

/// A shipped part's results with the schema the coordinator planned. The batches that come
/// back from the executors carry the schema the scheduler planned, which can differ in
/// nullability (a left join's or a sum's column) or in string representation; delta-rs checks
/// every batch against the plan's schema. Values are cast where types differ, and a column
/// declared non-null that holds nulls is an error (Arrow checks it), not a silent change.
#[derive(Debug)]
struct Aligned {
    input: Arc<dyn ExecutionPlan>,
    /// The whole result must have come back within this time.
    timeout: Option<Duration>,
    /// The scheduler the part ran on, told when its results can go.
    scheduler: String,
    /// The schema the coordinator planned the part with.
    properties: Arc<datafusion::physical_plan::PlanProperties>,
}

impl Aligned {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        timeout: Option<Duration>,
        scheduler: String,
        planned: datafusion::arrow::datatypes::SchemaRef,
    ) -> Self {
        use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
        let properties = Arc::new(datafusion::physical_plan::PlanProperties::new(
            datafusion::physical_expr::EquivalenceProperties::new(planned),
            input.properties().output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Aligned {
            input,
            timeout,
            scheduler,
            properties,
        }
    }
}

impl datafusion::physical_plan::DisplayAs for Aligned {
    fn fmt_as(
        &self,
        _t: datafusion::physical_plan::DisplayFormatType,
        f: &mut fmt::Formatter,
    ) -> fmt::Result {
        write!(f, "ShippedToCluster")
    }
}

impl ExecutionPlan for Aligned {
    fn name(&self) -> &str {
        "ShippedToCluster"
    }

    fn properties(&self) -> &Arc<datafusion::physical_plan::PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> datafusion::error::Result<TreeNodeRecursion>,
    ) -> datafusion::error::Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Arc::new(Aligned::new(
                input,
                self.timeout,
                self.scheduler.clone(),
                self.schema(),
            ))),
            _ => Err(datafusion::error::DataFusionError::Internal(
                "ShippedToCluster takes one input".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<datafusion::execution::TaskContext>,
    ) -> datafusion::error::Result<datafusion::execution::SendableRecordBatchStream> {
        use futures::StreamExt;
        let schema = self.schema();
        let target = schema.clone();
        let stream = self.input.execute(partition, context)?.map(move |batch| {
            let batch = batch?;
            if batch.schema() == target {
                return Ok(batch);
            }
            let columns = batch
                .columns()
                .iter()
                .zip(target.fields())
                .map(|(column, field)| {
                    if column.data_type() == field.data_type() {
                        Ok(column.clone())
                    } else {
                        datafusion::arrow::compute::cast(column, field.data_type())
                    }
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(datafusion::arrow::record_batch::RecordBatch::try_new(
                target.clone(),
                columns,
            )?)
        });
        let deadline = self.timeout.map(|t| (tokio::time::Instant::now() + t, t));
        let release = Release {
            query: self.input.clone(),
            scheduler: self.scheduler.clone(),
            finished: false,
        };
        let stream = futures::stream::unfold(
            Some((Box::pin(stream), deadline, release)),
            |state| async move {
                let (mut stream, deadline, mut release) = state?;
                let next = match deadline {
                    None => stream.next().await,
                    Some((at, limit)) => match tokio::time::timeout_at(at, stream.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            let message = format!(
                                "the cluster did not return this query's result within {} \
                                 (`[engine] cluster_timeout`); a lost executor can leave a \
                                 Ballista job waiting",
                                humantime::format_duration(limit)
                            );
                            // Cancelled and freed before the error surfaces: the command
                            // may exit on it at once, before a background task would run.
                            release.finished = true;
                            release.abandon().await;
                            return Some((
                                Err(datafusion::error::DataFusionError::Execution(message)),
                                None,
                            ));
                        }
                    },
                };
                match next {
                    Some(item) => Some((item, Some((stream, deadline, release)))),
                    None => {
                        // Freed before the stream ends, so that a command's last query does
                        // not leave its results behind when the process exits.
                        release.finished = true;
                        release.now().await;
                        None
                    }
                }
            },
        );
        Ok(Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, stream),
        ))
    }
}

/// `plan` with its string and binary views cast to plain strings and binaries, so that the
/// executors send plain arrays back: Arrow IPC writes a view column's shared buffers whole with
/// every batch (1M identity keys came back as 620 MB of views and grew past 10 GB on the
/// coordinator). [`Aligned`] casts them back to the planned types.
fn plain_output(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    use datafusion::arrow::datatypes::DataType;
    let plain = |t: &DataType| match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    };
    if !plan
        .schema()
        .fields()
        .iter()
        .any(|f| plain(f.data_type()).is_some())
    {
        return Ok(plan);
    }
    let exprs: Vec<Expr> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::from((qualifier, field)));
            match plain(field.data_type()) {
                Some(to) => datafusion::logical_expr::cast(column, to).alias(field.name()),
                None => column,
            }
        })
        .collect();
    datafusion::logical_expr::LogicalPlanBuilder::from(plan)
        .project(exprs)?
        .build()
}

/// Frees a shipped part's results on the executors once the coordinator is done with them.
///
/// A Ballista client reads a job's final-stage partitions lazily, one after another, while the
/// coordinator writes what it has read; the scheduler deletes a finished job's files after a
/// fixed delay (300 s by default), so a result read for longer than that lost its later
/// partitions (`Failed to open partition file …/data-1.arrow` at 1M records). Tessera's
/// scheduler keeps results for `--keep-results` instead, and the coordinator asks for the
/// job's data to be removed as soon as it has read everything — or cancels the job and removes
/// it when the read was abandoned (an error downstream, `cluster_timeout`).
struct Release {
    query: Arc<dyn ExecutionPlan>,
    scheduler: String,
    finished: bool,
}

impl Release {
    /// The job the part ran as: the physical optimizer may have put operators between the
    /// alignment and Ballista's query node.
    fn job(&self) -> Option<ballista_core::JobId> {
        let mut pending = vec![&self.query];
        while let Some(plan) = pending.pop() {
            if let Some(query) = plan.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>() {
                return query.job_id();
            }
            pending.extend(plan.children());
        }
        None
    }

    /// Cancels and frees a job whose results will not be read.
    async fn abandon(&self) {
        if let Some(job) = self.job() {
            release_job(&self.scheduler, job.as_str(), false).await;
        }
    }

    /// Frees a job whose results were all read.
    async fn now(&self) {
        tracing::debug!(job = ?self.job(), "results read");
        if let Some(job) = self.job() {
            release_job(&self.scheduler, job.as_str(), true).await;
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        tracing::debug!(job = ?self.job(), finished = self.finished, "results dropped");
        if self.finished {
            return;
        }
        // Abandoned: cancelled and freed in the background (best effort).
        let (Some(job), Ok(runtime)) = (self.job(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let scheduler = self.scheduler.clone();
        runtime.spawn(async move { release_job(&scheduler, job.as_str(), false).await });
    }
}

async fn release_job(scheduler: &str, job: &str, finished: bool) {
    if let Err(e) = try_release_job(scheduler, job, finished).await {
        tracing::warn!(job, "could not free the job's results on the cluster: {e}");
    }
}

async fn try_release_job(
    scheduler: &str,
    job: &str,
    finished: bool,
) -> std::result::Result<(), String> {
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    use ballista_core::serde::protobuf::{CancelJobParams, CleanJobDataParams};
    let endpoint = ballista_core::utils::create_grpc_client_endpoint(scheduler.to_string(), None)
        .map_err(|e| e.to_string())?;
    let mut client = SchedulerGrpcClient::new(endpoint.connect().await.map_err(|e| e.to_string())?);
    if !finished {
        client
            .cancel_job(CancelJobParams {
                job_id: job.to_string(),
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    client
        .clean_job_data(CleanJobDataParams {
            job_id: job.to_string(),
            remove_stage_ids: Vec::new(),
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The session a scheduler plans a client's queries in: DataFusion's and Tessera's functions,
/// the object stores of `storage`.
fn scheduler_session(
    config: SessionConfig,
    storage: Arc<Storage>,
) -> datafusion::error::Result<SessionState> {
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(StorageRegistry(storage)))
        .build_arc()?;
    let mut state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .build();
    for f in ballista_scalar_functions()
        .into_iter()
        .chain(tessera_udfs::scalar_functions())
        .chain(crate::identity::score::functions())
    {
        state.register_udf(f)?;
    }
    for f in ballista_aggregate_functions()
        .into_iter()
        .chain(tessera_udfs::aggregate_functions())
    {
        state.register_udaf(f)?;
    }
    for f in ballista_window_functions() {
        state.register_udwf(f)?;
    }
    Ok(state)
}

/// How `tessera cluster scheduler` runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address the scheduler's gRPC service listens on.
    pub bind: SocketAddr,
    /// How long a finished job's results stay on the executors when its client does not free
    /// them (see [`Release`]).
    pub keep_results: Duration,
    /// How long an executor may go without a heartbeat before it counts as lost (its tasks
    /// and the results it held then run again elsewhere). Executors beat every
    /// [`EXECUTOR_HEARTBEAT`].
    pub executor_timeout: Duration,
}

/// How often an executor tells the scheduler it is alive.
pub const EXECUTOR_HEARTBEAT: Duration = Duration::from_secs(2);

/// Runs a Ballista scheduler until the process is stopped.
pub async fn run_scheduler(options: SchedulerOptions, storage: Storage) -> Result<()> {
    crate::delta::register_log_stores();
    let storage = Arc::new(storage);
    let defaults = ballista_scheduler::config::SchedulerConfig::default();
    let config = ballista_scheduler::config::SchedulerConfig {
        bind_host: options.bind.ip().to_string(),
        bind_port: options.bind.port(),
        // Bound to every interface: advertised under Ballista's default name.
        external_host: if options.bind.ip().is_unspecified() {
            defaults.external_host.clone()
        } else {
            options.bind.ip().to_string()
        },
        // A lost executor is noticed within `executor_timeout` (20 s by default; Ballista's
        // 180 s would hold a run that long); its tasks then run again elsewhere.
        executor_timeout_seconds: options.executor_timeout.as_secs().max(1),
        expire_dead_executor_interval_seconds: (options.executor_timeout.as_secs() / 4).clamp(1, 5),
        no_executors_grace_period_seconds: 20,
        // Ballista removes a finished job's results 300 s after it ends, even when its client
        // is still reading them; the coordinator frees them itself once read.
        finished_job_data_clean_up_interval_seconds: options.keep_results.as_secs().max(1),
        override_session_builder: Some(Arc::new(move |config: SessionConfig| {
            scheduler_session(config, storage.clone())
        })),
        ..defaults
    };
    // Ballista's in-memory state, with the executors' free cores kept honest (see
    // [`cores`]): a lost executor otherwise leaks the survivors' cores until jobs hang.
    let memory = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
        .await
        .map_err(cluster_error)?;
    let cluster = ballista_scheduler::cluster::BallistaCluster::new(
        Arc::new(cores::HonestCores::default()),
        memory.job_state(),
    );
    ballista_scheduler::scheduler_process::start_server(cluster, options.bind, Arc::new(config))
        .await
        .map_err(cluster_error)
}

/// How `tessera cluster executor` runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler to register with.
    pub scheduler: ClusterAddress,
    /// Address the executor listens on (its Arrow Flight port serves shuffle data and results).
    pub bind: SocketAddr,
    /// Port of the executor's gRPC service.
    pub grpc_port: u16,
    /// Tasks run at once; the number of cores when `None`.
    pub concurrent_tasks: Option<usize>,
    /// Where shuffle files and spills go; a folder under the system temp folder when `None`.
    pub work_dir: Option<PathBuf>,
    /// Bytes all running tasks may hold before spilling; Ballista's share of the machine's
    /// memory when `None`.
    pub memory_limit: Option<usize>,
    /// How long a stopping executor (SIGTERM, ctrl-c) lets its running tasks finish before
    /// it exits anyway; a second signal exits at once. See [`Stopped`].
    pub stop_timeout: Duration,
}

/// How `tessera cluster executor` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Ballista's executor stopped by itself (its tasks drained, its services shut down).
    Drained,
    /// Asked to stop, it was still running past `stop_timeout` (or was asked twice): the
    /// caller should exit the process. A stopping executor waits for its running tasks, and
    /// with its scheduler gone one was seen still alive 50 minutes after SIGTERM; what it held
    /// is redone on the other executors.
    TimedOut,
}

/// Runs a Ballista executor until the process is stopped (see [`Stopped`]).
pub async fn run_executor(options: ExecutorOptions, storage: Storage) -> Result<Stopped> {
    crate::delta::register_log_stores();
    let storage = Arc::new(storage);
    let work_dir = options.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tessera-executor-{}", options.bind.port()))
    });
    std::fs::create_dir_all(&work_dir).map_err(|source| Error::Io {
        path: work_dir.clone(),
        source,
    })?;
    let spill = work_dir.clone();
    let mut config = ballista_executor::executor_process::ExecutorProcessConfig {
        bind_host: options.bind.ip().to_string(),
        external_host: (!options.bind.ip().is_unspecified()).then(|| options.bind.ip().to_string()),
        port: options.bind.port(),
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler.host.clone(),
        scheduler_port: options.scheduler.port,
        scheduler_connect_timeout_seconds: 30,
        executor_heartbeat_interval_seconds: EXECUTOR_HEARTBEAT.as_secs(),
        work_dir: Some(work_dir.to_string_lossy().to_string()),
        memory_pool_size: options.memory_limit.map(|n| n as u64),
        override_function_registry: Some(Arc::new(cluster_function_registry())),
        override_runtime_producer: Some(Arc::new(move |_config: &SessionConfig| {
            RuntimeEnvBuilder::new()
                .with_temp_file_path(spill.clone())
                .with_object_store_registry(Arc::new(StorageRegistry(storage.clone())))
                .build_arc()
        })),
        ..Default::default()
    };
    if let Some(n) = options.concurrent_tasks {
        config.vcores = n.max(1);
    }
    let executor = ballista_executor::executor_process::start_executor_process(Arc::new(config));
    tokio::select! {
        ended = executor => ended.map(|()| Stopped::Drained).map_err(cluster_error),
        () = asked_to_stop_past(options.stop_timeout) => Ok(Stopped::TimedOut),
    }
}

/// Returns `timeout` after the first SIGTERM or ctrl-c (Ballista's executor reacts to the same
/// signal by draining its tasks), or at a second one.
async fn asked_to_stop_past(timeout: Duration) {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(
                    "cannot watch for SIGTERM ({e}): the executor stops when Ballista's does"
                );
                return std::future::pending().await;
            }
        };
    let mut asked = async || {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    };
    asked().await;
    tokio::select! {
        () = tokio::time::sleep(timeout) => {},
        () = asked() => {},
    }
}

fn cluster_error(e: ballista_core::error::BallistaError) -> Error {
    Error::Cluster(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_addresses_parse_with_their_default_port() {
        let a = ClusterAddress::parse("ballista://10.0.0.5:6000").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("10.0.0.5", 6000));
        assert_eq!(a.endpoint(), "http://10.0.0.5:6000");
        let a = ClusterAddress::parse("df://sched").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("sched", DEFAULT_SCHEDULER_PORT));
        assert_eq!(ClusterAddress::parse("sched:7").unwrap().port, 7);
        for bad in [
            "http://x:1",
            "ballista://",
            "ballista://x:port",
            "ballista://x/y",
        ] {
            assert!(ClusterAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_part_that_only_reads_a_table_is_read_here() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "a,b\n1,x\n2,y\n").unwrap();
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_csv("t", file.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        let planner = ClusterPlanner::new(
            &ClusterAddress::parse("ballista://localhost").unwrap(),
            Arc::default(),
            None,
        );
        let plan = |sql: &str| {
            let ctx = ctx.clone();
            let sql = sql.to_string();
            async move {
                let df = ctx.sql(&sql).await.unwrap();
                ctx.state().optimize(df.logical_plan()).unwrap()
            }
        };
        // Every row comes back: reading them here beats re-encoding them on the executors.
        let why = planner.unshippable(&plan("select a, upper(b) as b from t").await);
        assert!(why.unwrap().contains("only reads a table"));
        // Work that reduces what comes back is shipped.
        // What comes back is plain strings (views carry whole shared buffers through IPC).
        let viewed = plan("select arrow_cast(b, 'Utf8View') as v, a from t order by a").await;
        let sent = plain_output(viewed.clone()).unwrap();
        let types = |p: &LogicalPlan| -> Vec<String> {
            p.schema()
                .fields()
                .iter()
                .map(|f| format!("{}:{}", f.name(), f.data_type()))
                .collect()
        };
        assert_eq!(types(&sent), ["v:Utf8", "a:Int64"]);
        assert_eq!(types(&viewed)[0], "v:Utf8View");
        let plain = plan("select b from t order by a").await;
        assert_eq!(plain_output(plain.clone()).unwrap(), plain);
        for sql in [
            "select b, count(*) from t group by b",
            "select * from t where a > 1",
            "select * from t order by a",
            "select l.a from t l join t r on l.a = r.a",
        ] {
            assert_eq!(planner.unshippable(&plan(sql).await), None, "{sql}");
        }
    }

    #[test]
    fn every_function_of_an_engine_is_in_the_cluster_registry() {
        // What the coordinator may ship, executors must decode: DataFusion's nested functions
        // (array_sort...) as Tessera's.
        let engine = crate::Engine::new().unwrap();
        let state = engine.ctx().state();
        let registry = cluster_function_registry();
        for name in state.scalar_functions().keys() {
            assert!(registry.scalar_functions.contains_key(name), "{name}");
        }
        for name in state.aggregate_functions().keys() {
            assert!(registry.aggregate_functions.contains_key(name), "{name}");
        }
        for name in state.window_functions().keys() {
            assert!(registry.window_functions.contains_key(name), "{name}");
        }
        assert!(registry.scalar_functions.contains_key("array_sort"));
        assert!(registry.scalar_functions.contains_key("email_canonical"));
    }
}
