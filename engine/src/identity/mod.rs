//! Identity resolution: from the standardised records of every source to one customer each,
//! with stable ids.
//!
//! The pipeline, each step SQL run by DataFusion except the model and the clustering:
//!
//! 1. **Guards**: identifier values shared by too many records, or listed as junk, are set
//!    aside; a value different people hold (a household mailbox) is split by person (see
//!    [`guards`]); all reported in `identity_guard_hits`.
//! 2. **Deterministic rules**: records equal on every column of a rule are linked.
//! 3. **Blocking**: equi-joins propose pairs (each rule only the pairs no earlier rule
//!    proposed); blocks above a size cap are skipped and reported.
//! 4. **Fellegi–Sunter**: u from seeded random pairs, m and the prior by EM starting from the
//!    deterministic links, term-frequency adjusted weights, a weight and probability per pair.
//! 5. **Clustering**: union-find over the accepted links, strongest first, refusing links that
//!    would join two values of a unique identifier, a never-match pair, or exceed the size cap.
//! 6. **Stable ids** (see [`ids`]) and their history.
//!
//! [`resolve`] returns the tables; the caller writes them (see [`OUTPUT_TABLES`]).

pub mod cluster;
mod components;
pub mod config;
pub mod guards;
pub mod ids;
mod kept;
pub mod model;
pub mod score;
mod spill;
pub mod sql;
mod steps;

pub use spill::{HeldRecords, hold_records};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Array, Float64Builder, Int8Array, Int8Builder,
    Int32Array, Int64Array, RecordBatch, StringArray, StringBuilder, StructArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use rand::{RngExt, SeedableRng};

pub use config::IdentityConfig;
pub use model::Model;

use crate::error::{Error, Result};

/// The tables identity resolution writes, beside the records table, in the same schema.
pub const OUTPUT_TABLES: [&str; 7] = [
    "record_customer",
    "match_pairs",
    "match_model",
    "match_term_frequencies",
    "customer_id_history",
    "identity_guard_hits",
    "identity_stats",
];

/// Tables appended to on every run (the others are replaced).
pub const APPENDED_TABLES: [&str; 2] = ["customer_id_history", "identity_stats"];

/// What the previous run left: the record → customer map and every id ever issued.
#[derive(Debug, Default)]
pub struct PreviousState {
    /// Where the previous run's record → customer map and id history are read from, when the
    /// stable ids are assigned (see [`PreviousIdTables::read`]).
    pub id_tables: PreviousIdTables,
    /// The model the last training run stored, if any (`None` forces training).
    pub model: Option<StoredModel>,
    /// The term frequencies stored with it: (comparison, value as text, frequency).
    pub term_frequencies: Vec<(String, String, f64)>,
    /// The published `unify.match_pairs` with the settings that wrote it, when this run's
    /// records are the ones that run resolved (see [`PublishedPairs`]).
    pub compared: Option<PublishedPairs>,
}

/// The previous run's `record_customer` and `customer_id_history`, read only when this run's
/// clusters get their stable ids: held from the start, their map (≈ 140 bytes a record: 1.4
/// GB at 9.9M records) sat in memory through numbering, blocking and the model passes, the
/// stages that need the most, without being read.
#[derive(Default)]
pub struct PreviousIdTables {
    /// The session the tables were opened with.
    ctx: Option<SessionContext>,
    /// `record_customer` (absent: a first run).
    record_customer: Option<Arc<dyn TableProvider>>,
    /// `customer_id_history` (absent: a first run).
    history: Option<Arc<dyn TableProvider>>,
}

impl std::fmt::Debug for PreviousIdTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviousIdTables")
            .field("record_customer", &self.record_customer.is_some())
            .field("history", &self.history.is_some())
            .finish()
    }
}

/// The previous run's ids: record key → its customer (each customer held once), and the other
/// customer ids issued so far (in the id history, no longer held by a record).
#[derive(Debug, Default)]
pub struct PreviousIdMap {
    /// Record key → its customer.
    pub assignment: ids::PreviousIds,
    /// Ids issued before and no longer held.
    pub used_ids: rustc_hash::FxHashSet<String>,
}

impl PreviousIdMap {
    /// Bytes held (strings with their allocation, hash-table slots).
    pub fn bytes(&self) -> usize {
        let text = |s: &String| s.capacity() + size_of::<String>() + 16;
        self.assignment.bytes() + self.used_ids.iter().map(|s| text(s) + 8).sum::<usize>()
    }
}

impl PreviousIdTables {
    /// Reads the map (empty on a first run).
    pub async fn read(&self) -> Result<PreviousIdMap> {
        let mut map = PreviousIdMap::default();
        let Some(ctx) = &self.ctx else {
            return Ok(map);
        };
        if let Some(table) = &self.record_customer {
            let df = ctx.read_table(table.clone())?;
            let df = df.select_columns(&["record_key", "customer_id", "customer_created_at"])?;
            let mut stream = df.execute_stream().await?;
            while let Some(b) = stream.next().await {
                let b = b?;
                let (k, id) = (strs(&b, "record_key")?, strs(&b, "customer_id")?);
                let at = column(
                    &b,
                    "customer_created_at",
                    &DataType::Timestamp(TimeUnit::Microsecond, None),
                )?;
                let at = cast(&at, &DataType::Int64)?;
                let at = at.as_any().downcast_ref::<Int64Array>().expect("int64");
                for r in 0..b.num_rows() {
                    map.assignment.insert(k.value(r), id.value(r), at.value(r));
                }
            }
        }
        if let Some(table) = &self.history {
            let df = ctx
                .read_table(table.clone())?
                .select_columns(&["customer_id", "previous_customer_id"])?;
            let mut stream = df.execute_stream().await?;
            while let Some(b) = stream.next().await {
                let b = b?;
                for name in ["customer_id", "previous_customer_id"] {
                    let ids = strs(&b, name)?;
                    for id in ids.iter().flatten() {
                        if !map.assignment.holds(id) && !map.used_ids.contains(id) {
                            map.used_ids.insert(id.to_string());
                        }
                    }
                }
            }
        }
        Ok(map)
    }
}

/// The compared pairs a run published, for a run over the same records: each blocking rule
/// whose [`IdentityConfig::blocking_signature`] is unchanged is read from them instead of
/// blocked and compared again, when the term frequencies in them are this run's too (the
/// stored model is reused, or the publishing run computed its frequencies from these records,
/// or no comparison weighs by frequency).
#[derive(Debug)]
pub struct PublishedPairs {
    /// The published `match_pairs`.
    pub table: Arc<dyn TableProvider>,
    /// The `[identity]` settings of the run that wrote it.
    pub settings: IdentityConfig,
}

impl PreviousState {
    /// The stored model when it still fits these settings and records, with the run that
    /// trained it.
    fn usable_model(&self, config: &IdentityConfig, records: usize) -> Option<(Model, String)> {
        let stored = self.model.as_ref()?;
        let model = stored.usable(config, records)?;
        Some((model, stored.run_id.clone()))
    }

    /// Bytes held (strings with their allocation, hash-table slots): reserved in the pool while
    /// the records are resolved.
    pub fn bytes(&self) -> usize {
        let text = |s: &String| s.capacity() + size_of::<String>() + 16;
        self.term_frequencies
            .iter()
            .map(|(c, v, _)| text(c) + text(v) + size_of::<f64>())
            .sum()
    }
}

/// A trained model as `unify.match_model` holds it.
#[derive(Debug, Clone)]
pub struct StoredModel {
    /// [`IdentityConfig::model_signature`] of the settings it was trained with.
    pub signature: String,
    /// Records it was trained on.
    pub records: u64,
    /// The run that trained it.
    pub run_id: String,
    /// The run that published it (a later run may reuse a model trained earlier).
    pub published_by: String,
    /// (comparison, level name) per row, in order, then m and u; the prior first.
    pub rows: Vec<(String, i32, String, f64, f64)>,
}

impl StoredModel {
    /// The model, if it was trained with these settings on about this many records.
    fn usable(&self, config: &IdentityConfig, records: usize) -> Option<Model> {
        if self.signature != config.model_signature() {
            return None;
        }
        let change = (records as f64 - self.records as f64).abs() / (self.records.max(1) as f64);
        if change > config.retrain_growth {
            return None;
        }
        let find = |comparison: &str, index: i32, level: &str| {
            self.rows
                .iter()
                .find(|r| r.0 == comparison && r.1 == index && r.2 == level)
                .map(|r| (r.3, r.4))
        };
        let lambda = self.rows.iter().find(|r| r.0 == "prior" && r.1 == -1)?.3;
        let mut m = Vec::new();
        let mut u = Vec::new();
        for c in &config.comparisons {
            let (mut mc, mut uc) = (Vec::new(), Vec::new());
            for l in 0..=c.levels.len() {
                let name = c.levels.get(l).map_or("else", |x| x.name.as_str());
                let (ml, ul) = find(&c.name, l as i32, name)?;
                mc.push(ml);
                uc.push(ul);
            }
            m.push(mc);
            u.push(uc);
        }
        Some(Model {
            lambda,
            m,
            u,
            iterations: 0,
            converged: true,
            pooled: Vec::new(),
            matched_pairs: 0.0,
        })
    }
}

/// The result of a resolution: the output tables (name without schema → rows) and a summary.
#[derive(Debug)]
pub struct Resolution {
    /// Table → its rows, for each of [`OUTPUT_TABLES`] (`match_pairs` is made as it is read).
    pub tables: Vec<(&'static str, Arc<dyn TableProvider>)>,
    /// Records resolved.
    pub records: usize,
    /// Customers formed.
    pub customers: usize,
    /// Pairs compared.
    pub compared_pairs: usize,
    /// Blocking rules whose compared pairs were read from the published `match_pairs` (see
    /// [`PublishedPairs`]) rather than blocked and compared again.
    pub pairs_reused: usize,
    /// The model.
    pub model: Model,
    /// What is wrong with the model (see [`model::diagnose`]), empty when nothing is; when
    /// the settings say `on_model_warning = "fail"` the caller publishes nothing.
    pub warnings: Vec<String>,
    /// The memory the tables hold, reserved in the session's pool: drop it once they are
    /// written.
    pub memory: MemoryReservation,
    /// On a cluster, the resolution's scratch folder: `match_pairs` is read from the pairs
    /// kept there while it is written. Remove it once the tables are written
    /// ([`Resolution::remove_scratch`]); a folder a killed process left is removed a day later.
    pub scratch: Option<crate::scratch::Scratch>,
}

impl Resolution {
    /// Removes the resolution's scratch folder (a warning when it cannot).
    pub async fn remove_scratch(scratch: Option<crate::scratch::Scratch>, ctx: &SessionContext) {
        if let Some(scratch) = scratch
            && let Err(e) = scratch.remove(ctx).await
        {
            tracing::warn!("could not remove identity's intermediate tables: {e}");
        }
    }
}

/// A pair proposed by blocking, with its comparison vector.
#[derive(Clone, Copy)]
struct Pair {
    a: u32,
    b: u32,
}

/// The term frequencies of the compared pairs (`tf_count` per pair, in pair order), each held
/// as a code into the distinct values met: a frequency is a value's count over the records, so
/// there are a few thousand distinct ones at millions of records, and a pair's frequency takes
/// 4 bytes instead of 8 while reading back to the same bits.
#[derive(Default)]
struct Frequencies {
    codes: Vec<u32>,
    values: Vec<f64>,
    index: rustc_hash::FxHashMap<u64, u32>,
}

/// The code of a NULL (or not finite) frequency.
const NO_FREQUENCY: u32 = u32::MAX;

impl Frequencies {
    /// Appends a frequency (NaN or another non-finite value: none).
    fn push(&mut self, f: f64) {
        if !f.is_finite() {
            self.codes.push(NO_FREQUENCY);
            return;
        }
        let next = self.values.len() as u32;
        let code = *self.index.entry(f.to_bits()).or_insert(next);
        if code == next {
            self.values.push(f);
        }
        self.codes.push(code);
    }

    /// The `i`th frequency (NaN: none).
    fn get(&self, i: usize) -> f64 {
        match self.codes[i] {
            NO_FREQUENCY => f64::NAN,
            code => self.values[code as usize],
        }
    }

    /// Bytes held.
    fn bytes(&self) -> usize {
        self.codes.capacity() * size_of::<u32>()
            + self.values.capacity() * size_of::<f64>()
            + self.index.capacity() * (size_of::<(u64, u32)>() + 1)
    }
}

/// Marks the start of a stage of resolution in the debug log, and (under a memory limit) gives
/// the memory the last stage freed back to the system before the next one reserves its own.
fn stage(name: &str) {
    crate::session::return_freed_memory();
    tracing::debug!(
        resident_mib = crate::session::resident_bytes().map(|b| b >> 20),
        "identity stage: {name}"
    );
}

fn identity_err(message: impl Into<String>) -> Error {
    Error::Identity(message.into())
}

/// A private session over the engine's functions and runtime: the pipeline's temporary tables
/// never collide with a project's.
/// On a cluster: the counts of the resolution's own query planner, and the folder its
/// intermediate tables are written to (see [`crate::scratch`]).
#[derive(Default)]
struct OnCluster {
    counters: Arc<crate::cluster::ClusterCounters>,
    scratch: Option<crate::scratch::Scratch>,
}

impl OnCluster {
    /// How many query parts the resolution sent to the cluster, on a cluster.
    fn count(&self, stats: &mut Stats) {
        if self.scratch.is_some() || self.counters.shipped() > 0 {
            stats.push("cluster_query_parts", "", self.counters.shipped() as f64);
        }
    }
}

async fn private_session(
    ctx: &SessionContext,
    run_id: &str,
) -> Result<(SessionContext, OnCluster)> {
    let mut builder = SessionStateBuilder::new_from_existing(ctx.state()).with_catalog_list(
        Arc::new(datafusion::catalog::MemoryCatalogProviderList::new()),
    );
    let mut on_cluster = OnCluster::default();
    if let Some(cluster) = crate::cluster::OnCluster::of(ctx) {
        builder = builder.with_query_planner(cluster.planner(on_cluster.counters.clone()));
        if let Some(root) = &cluster.scratch {
            let name = format!("identity-{run_id}-{}", ctx.session_id());
            let scratch = crate::scratch::Scratch::create(ctx, root, &name).await?;
            if let Some(config) = builder.config() {
                *config = std::mem::take(config).with_extension(Arc::new(scratch.clone()));
            }
            on_cluster.scratch = Some(scratch);
        }
    }
    let private = SessionContext::new_with_state(builder.build());
    for f in score::functions() {
        private.register_udf(f.as_ref().clone());
    }
    let catalog = Arc::new(datafusion::catalog::MemoryCatalogProvider::new());
    let _ = datafusion::catalog::CatalogProvider::register_schema(
        catalog.as_ref(),
        "public",
        Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
    );
    private.register_catalog("datafusion", catalog);
    Ok((private, on_cluster))
}

async fn collect(ctx: &SessionContext, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| identity_err(format!("{what}: {e}")))?;
    df.collect()
        .await
        .map_err(|e| identity_err(format!("{what}: {e}")))
}

/// Registers an intermediate table: held in memory, or on a cluster written to the
/// resolution's scratch folder so that the queries over it run on the executors.
async fn register(
    ctx: &SessionContext,
    name: &str,
    batches: Vec<RecordBatch>,
    schema: SchemaRef,
) -> Result<()> {
    let table: Arc<dyn TableProvider> = match ctx
        .state()
        .config()
        .get_extension::<crate::scratch::Scratch>()
    {
        Some(scratch) => {
            let files = ctx.copied_config().target_partitions().max(1);
            scratch.table(ctx, name, &batches, schema, files).await?
        }
        None => Arc::new(MemTable::try_new(schema, vec![batches])?),
    };
    ctx.deregister_table(name)?;
    ctx.register_table(name, table)?;
    Ok(())
}

/// Registers `batch` split into the session's target partitions, in batches of the session's
/// batch size, so queries over it run on every core (one partition holding one large batch
/// runs on one).
fn register_partitioned(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
    let config = ctx.copied_config();
    let (parts, size) = (
        config.target_partitions().max(1),
        config.batch_size().max(1),
    );
    let rows = batch.num_rows();
    let per_part = rows.div_ceil(parts).max(1);
    let partitions: Vec<Vec<RecordBatch>> = (0..parts)
        .map(|p| {
            let (start, end) = ((p * per_part).min(rows), ((p + 1) * per_part).min(rows));
            (start..end)
                .step_by(size)
                .map(|o| batch.slice(o, size.min(end - o)))
                .collect()
        })
        .collect();
    let table = MemTable::try_new(batch.schema(), partitions)?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| identity_err(format!("internal: no column {name}")))?;
    Ok(cast(array, to)?)
}

fn i64s(batch: &RecordBatch, name: &str) -> Result<Int64Array> {
    let a = column(batch, name, &DataType::Int64)?;
    Ok(a.as_any()
        .downcast_ref::<Int64Array>()
        .expect("int64")
        .clone())
}

fn strs(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let a = column(batch, name, &DataType::Utf8)?;
    Ok(a.as_any()
        .downcast_ref::<StringArray>()
        .expect("utf8")
        .clone())
}

/// The numbered records: their batches with `rid` first, and the record keys and sources
/// indexed by rid.
struct Numbering {
    batches: Vec<RecordBatch>,
    record_keys: StringArray,
    sources: StringArray,
}

/// A string column of every batch, as the batches hold it (cast only when it is not a string
/// type), for reading its values in place.
fn string_parts(batches: &[RecordBatch], name: &str) -> Result<Vec<ArrayRef>> {
    batches
        .iter()
        .map(|b| {
            let a = b
                .column_by_name(name)
                .ok_or_else(|| identity_err(format!("internal: no column {name}")))?;
            match a.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(a.clone()),
                _ => column(b, name, &DataType::Utf8),
            }
        })
        .collect()
}

/// The values of `parts` in order, borrowed from their buffers.
fn string_values(parts: &[ArrayRef]) -> Vec<Option<&str>> {
    use datafusion::arrow::array::AsArray;
    let mut out = Vec::with_capacity(parts.iter().map(|a| a.len()).sum());
    for a in parts {
        match a.data_type() {
            DataType::Utf8View => out.extend(a.as_string_view().iter()),
            DataType::LargeUtf8 => out.extend(a.as_string::<i64>().iter()),
            _ => out.extend(a.as_string::<i32>().iter()),
        }
    }
    out
}

/// Adds `rid`, each record's rank by record key (0-based, byte order, NULL keys last), as the
/// first column of the records' batches, which stay in the order they came, and gathers the
/// record keys and sources in rid order. Only the keys are sorted (row numbers compared through
/// the batches' own string buffers: no copy of the column, no concatenation), never the
/// records' rows; each string is copied once, into its rid-ordered array.
fn number_by_record_key(batches: Vec<RecordBatch>) -> Result<Numbering> {
    let (key_parts, source_parts) = (
        string_parts(&batches, "record_key")?,
        string_parts(&batches, "source")?,
    );
    let (record_keys, sources, rank) = {
        let keys = string_values(&key_parts);
        let mut order: Vec<u32> = (0..keys.len() as u32).collect();
        // NULL keys last; equal keys (an error, reported later) by row: one order.
        order.sort_unstable_by(|&a, &b| {
            let (x, y) = (keys[a as usize], keys[b as usize]);
            x.is_none()
                .cmp(&y.is_none())
                .then_with(|| x.cmp(&y))
                .then(a.cmp(&b))
        });
        let record_keys: StringArray = order.iter().map(|&r| keys[r as usize]).collect();
        drop(keys);
        let sources = string_values(&source_parts);
        let sources: StringArray = order.iter().map(|&r| sources[r as usize]).collect();
        let mut rank = vec![0i64; order.len()];
        for (position, &row) in order.iter().enumerate() {
            rank[row as usize] = position as i64;
        }
        (record_keys, sources, rank)
    };
    drop((key_parts, source_parts));
    let mut start = 0;
    let batches = batches
        .into_iter()
        .map(|b| {
            let rows = b.num_rows();
            let rid: ArrayRef = Arc::new(Int64Array::from(rank[start..start + rows].to_vec()));
            start += rows;
            let mut fields = vec![Arc::new(Field::new("rid", DataType::Int64, false))];
            fields.extend(b.schema().fields().iter().cloned());
            let mut columns = vec![rid];
            columns.extend(b.columns().iter().cloned());
            Ok(RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                columns,
            )?)
        })
        .collect::<Result<_>>()?;
    Ok(Numbering {
        batches,
        record_keys,
        sources,
    })
}

/// Sampled pairs whose levels are computed per query.
const SAMPLE_CHUNK: usize = 1 << 16;

/// The keys table's batches and where each rid's row is in them.
struct KeyRows {
    batches: Vec<RecordBatch>,
    at: Vec<(u32, u32)>,
}

impl KeyRows {
    fn new(batches: Vec<RecordBatch>) -> Result<KeyRows> {
        let n = batches.iter().map(|b| b.num_rows()).sum();
        let mut at = vec![(u32::MAX, u32::MAX); n];
        for (i, b) in batches.iter().enumerate() {
            for (row, rid) in i64s(b, "rid")?.values().iter().enumerate() {
                let slot = usize::try_from(*rid)
                    .ok()
                    .and_then(|r| at.get_mut(r))
                    .ok_or_else(|| identity_err(format!("internal: rid {rid} out of range")))?;
                *slot = (i as u32, row as u32);
            }
        }
        Ok(KeyRows { batches, at })
    }

    fn len(&self) -> usize {
        self.at.len()
    }

    /// Frees the rows and the keys table the joins read, once nothing reads them (the sample
    /// for u is drawn, or a stored model is reused): the model passes and the tables then have
    /// the memory. At 986,486 records that is 182 MiB of the 595 MiB the passes held.
    fn release(self, ctx: &SessionContext, budget: &mut Budget) -> Result<()> {
        let bytes = batches_size(&self.batches);
        drop(self);
        ctx.deregister_table(sql::KEYS)?;
        budget.shrink(Part::Records, bytes, "dropping the keys table")
    }

    /// The rows of `rids`, in that order, as one struct array.
    fn gather(&self, rids: impl Iterator<Item = u32>) -> Result<StructArray> {
        let indices: Vec<(usize, usize)> = rids
            .map(|r| {
                let (b, row) = self.at[r as usize];
                (b as usize, row as usize)
            })
            .collect();
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        let rows = datafusion::arrow::compute::interleave_record_batch(&batches, &indices)?;
        Ok(StructArray::from(rows))
    }
}

/// The link kinds: deterministic rules first, then probabilistic, then overrides.
struct Kinds {
    rules: usize,
}

impl Kinds {
    fn probabilistic(&self) -> u16 {
        self.rules as u16
    }
    fn always(&self) -> u16 {
        self.rules as u16 + 1
    }
    /// An `always_match` link: stronger than any other.
    fn always_link(&self, a: u32, b: u32) -> cluster::Link {
        cluster::Link {
            a,
            b,
            kind: self.always(),
            strength: 10.0,
        }
    }
    fn name(&self, kind: u16, config: &IdentityConfig) -> String {
        match kind as usize {
            k if k < self.rules => format!("rule:{}", config.rules[k].name),
            k if k == self.rules => "probabilistic".into(),
            _ => "always_match".into(),
        }
    }
}

/// Resolves `records` (one row per source record, a unique `record_key` and a `source`
/// column, plus the columns the settings name).
pub async fn resolve(
    engine_ctx: &SessionContext,
    records: Arc<dyn TableProvider>,
    config: &IdentityConfig,
    previous: &PreviousState,
    run_id: &str,
    now_micros: i64,
) -> Result<Resolution> {
    let (ctx, on_cluster) = private_session(engine_ctx, run_id).await?;
    let resolved = resolve_in(
        &ctx,
        &on_cluster,
        records,
        config,
        previous,
        run_id,
        now_micros,
    )
    .await;
    match resolved {
        Ok(mut resolution) => {
            resolution.scratch = on_cluster.scratch;
            Ok(resolution)
        }
        Err(e) => {
            Resolution::remove_scratch(on_cluster.scratch, engine_ctx).await;
            Err(e)
        }
    }
}

async fn resolve_in(
    ctx: &SessionContext,
    on_cluster: &OnCluster,
    records: Arc<dyn TableProvider>,
    config: &IdentityConfig,
    previous: &PreviousState,
    run_id: &str,
    now_micros: i64,
) -> Result<Resolution> {
    let mut budget = Budget::new(ctx, previous.bytes())?;
    let records_schema = records.schema();
    let columns = steps::check_columns(&records_schema, config)?;
    ctx.register_table("__id_records", records)?;

    stage("guards");
    // 1. Guards.
    let mut guard_rows: Vec<GuardRow> = Vec::new();
    let mut stats = Stats::default();
    let text_splits =
        steps::guard_values(ctx, config, &records_schema, &mut stats, &mut guard_rows).await?;
    stage("numbering the records");
    // 2. Keys: numbered, guarded records, held in memory for the joins below.
    let steps::Numbered {
        key_batches,
        n,
        record_keys,
        sources,
    } = steps::number_records(ctx, config, &columns, &text_splits, &mut budget).await?;
    // A stored model that still fits is reused, with the term frequencies it was trained with
    // (values first seen later keep the frequency they had then): earlier pairs score exactly
    // as before.
    let stored = previous.usable_model(config, n);
    let steps::Keys {
        labels,
        unique,
        mut key_rows,
    } = steps::register_keys(
        ctx,
        config,
        key_batches,
        &columns,
        (&record_keys, &sources),
        &mut budget,
    )
    .await?;

    stage("deterministic rules");
    // 3. Deterministic rules.
    let kinds = Kinds {
        rules: config.rules.len(),
    };
    let (mut links, deterministic) = steps::rule_links(ctx, config, n, &mut stats).await?;

    stage("term frequencies");
    // 4. Term frequencies, then check every level's SQL on its own (errors name the level).
    steps::term_frequencies(ctx, config, previous, stored.is_some()).await?;
    steps::frequency_columns(ctx, config, &mut key_rows, &mut budget).await?;
    stage("blocking and comparison vectors");
    // 5. Blocking and comparison vectors (or the published pairs of unchanged rules).
    let tf_index = steps::tf_index(config);
    let published = steps::published_rules(config, previous, stored.is_some(), &record_keys);
    let compared = steps::compare_blocked(
        ctx,
        config,
        &tf_index,
        published,
        &mut budget,
        &mut stats,
        &mut guard_rows,
    )
    .await?;
    // 6–8. Model, scores and clusters, in passes: u from random pairs that are not in one
    // customer, the prior from the pairs inside customers (at first the deterministic links
    // over their assumed recall), m by EM; then score and cluster, and again with what the
    // clusters say.
    // Labelled pairs (a label column, always_match, never_match) are known: they leave EM's
    // unlabelled sessions, and the labelled matches count in m as they are.
    let sessions = em_sessions(ctx, config, &compared, &deterministic, &labels).await?;
    let (always, never) = steps::override_pairs(config, &record_keys, &mut guard_rows);
    links.extend(always.iter().map(|&(a, b)| kinds.always_link(a, b)));
    let labelled_matches =
        steps::labelled_matches(ctx, config, &key_rows, &always, &labels, &mut stats).await?;
    // Scores every compared pair with a model, and clusters the accepted ones.
    let scorer = steps::Scorer {
        config,
        n,
        kinds: &kinds,
        pairs: &compared.pairs,
        gammas: &compared.gammas,
        tfs: &compared.tfs,
        kept: compared.kept.as_ref(),
        tf_index: &tf_index,
        fixed_links: &links,
        unique: &unique,
        never: &never,
    };
    let steps::Fitted {
        trained: (model, weights, links, clusters),
        trained_by,
        warnings,
    } = steps::fit(
        ctx,
        key_rows,
        &scorer,
        stored,
        (&sessions, &labelled_matches),
        deterministic,
        run_id,
        (&mut budget, &mut stats),
    )
    .await?;
    let refused = steps::refused_links(
        &clusters.refused,
        (&kinds, config, &config.unique_identifiers()),
        &record_keys,
        &mut stats,
        &mut guard_rows,
    );

    stage("stable ids");
    // 9. Stable ids.
    let members = steps::members(&clusters.component);
    let member_lists: Vec<&Vec<u32>> = members.iter().collect();
    let (previous_ids, now) = ((previous, &mut budget), now_micros);
    let ids = steps::stable_ids(&member_lists, &record_keys, previous_ids, now);
    let (assignment, customer_of) = ids.await?;

    stage("tables");
    // 10–11. Statistics of the clusters, and the tables.
    let (compared_pairs, pairs_reused) = (compared.len(), compared.reused_rules);
    on_cluster.count(&mut stats);
    let tables = steps::Decided {
        record_keys,
        sources,
        member_lists: &member_lists,
        customer_of: &customer_of,
        assignment: &assignment,
        linked_by: &clusters.linked_by,
        compared,
        weights,
        links: &links,
        refused,
        model: &model,
        trained_by: &trained_by,
        guard_rows,
        stats,
    }
    .tables(
        ctx,
        config,
        (&kinds, &tf_index),
        &mut budget,
        run_id,
        now_micros,
    )
    .await?;
    Ok(Resolution {
        warnings,
        tables,
        records: n,
        customers: member_lists.len(),
        compared_pairs,
        pairs_reused,
        model,
        memory: budget.into_output(),
        scratch: None,
    })
}

/// The identity engine's own structures (the numbered records, the candidate pairs with their
/// comparison levels, scores and links, the output tables) reserved in the session's memory
/// pool, as one consumer that cannot spill: under `[engine] memory_limit`, DataFusion's joins,
/// sorts and aggregations get what is left (and spill), and a run that cannot fit fails with an
/// error naming the limit instead of outgrowing it.
struct Budget {
    reservation: MemoryReservation,
    pool: Arc<dyn MemoryPool>,
    /// Bytes held per part (see [`Part`]).
    parts: [usize; Part::COUNT],
}

/// What the budget holds.
#[derive(Clone, Copy)]
enum Part {
    /// The numbered records (the keys table the joins read) and their per-record vectors.
    Records,
    /// Candidate pairs, their comparison levels and term frequencies.
    Pairs,
    /// Scores, links and clusters of the current pass.
    Scores,
    /// The tables being returned, and what `match_pairs` is made from while it is written.
    Output,
    /// The previous run's assignment and ids (the caller drops them after resolving).
    Previous,
}

impl Part {
    const COUNT: usize = 5;
}

impl Budget {
    /// The budget, holding what the previous run left that this one reads (its model).
    fn new(ctx: &SessionContext, previous: usize) -> Result<Self> {
        let pool = ctx.runtime_env().memory_pool.clone();
        let reservation = MemoryConsumer::new("IdentityResolution")
            .with_can_spill(false)
            .register(&pool);
        let mut budget = Budget {
            reservation,
            pool,
            parts: [0; Part::COUNT],
        };
        budget.hold(Part::Previous, previous, "holding the previous run's model")?;
        Ok(budget)
    }

    /// Sets what `part` holds; fails when the pool cannot grant it.
    fn hold(&mut self, part: Part, bytes: usize, what: &str) -> Result<()> {
        let mut parts = self.parts;
        parts[part as usize] = bytes;
        let total: usize = parts.iter().sum();
        self.reservation.try_resize(total).map_err(|e| {
            identity_err(format!(
                "{what}: the identity engine needs {} MiB in all, more than `[engine] \
                 memory_limit` leaves it ({e}); raise the limit",
                total >> 20
            ))
        })?;
        self.parts = parts;
        if matches!(part, Part::Pairs) {
            // Once per batch of pairs: too many to log.
            return Ok(());
        }
        tracing::debug!(
            what,
            part = bytes >> 20,
            identity_mib = total >> 20,
            pool_mib = self.pool.reserved() >> 20,
            "identity memory"
        );
        Ok(())
    }

    /// Gives back `bytes` of what `part` holds.
    fn shrink(&mut self, part: Part, bytes: usize, what: &str) -> Result<()> {
        let left = self.parts[part as usize].saturating_sub(bytes);
        self.hold(part, left, what)
    }

    /// The reservation of the output tables alone, for the caller to hold while writing them.
    fn into_output(self) -> MemoryReservation {
        self.reservation
            .shrink(self.reservation.size() - self.parts[Part::Output as usize]);
        self.reservation
    }
}

/// Bytes of one scoring pass: a weight per pair (and, at most as many, the distinct weights
/// the pass's sums are grouped by), the links (and the clustering's copy), the components.
fn scores_bytes(pairs: usize, links: usize, records: usize) -> usize {
    pairs * size_of::<f64>() * 2
        + links * size_of::<cluster::Link>() * 2
        + records * size_of::<u32>() * 4
}

/// Bytes of the batches' rows. Batches a query returns are often slices of larger buffers,
/// which `get_array_memory_size` counts whole for every slice (13 GB for 1M records that
/// take 0.5 GB): the slices' own bytes are counted instead.
pub fn batches_size(batches: &[RecordBatch]) -> usize {
    batches
        .iter()
        .flat_map(|b| b.columns())
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// At most this many passes of model → scores → clusters (they stop when nothing changes).
const MAX_PASSES: usize = 10;

/// Pairs of records inside the same component.
/// (Components are named by one of their records: a count per record.)
fn pairs_within(component: &[u32]) -> u64 {
    let mut sizes = vec![0u32; component.len()];
    for &c in component {
        sizes[c as usize] += 1;
    }
    sizes
        .iter()
        .map(|&s| u64::from(s) * u64::from(s.max(1) - 1) / 2)
        .sum()
}

/// One EM session per blocking rule: the pairs it proposed first, with their full comparison
/// vectors; the posterior reads the comparisons that do not read the rule's columns (see
/// [`model::Session`]).
async fn em_sessions(
    ctx: &SessionContext,
    config: &IdentityConfig,
    compared: &steps::Compared,
    deterministic: &[u32],
    labels: &[Option<u32>],
) -> Result<Vec<model::Session>> {
    if let Some(kept) = &compared.kept {
        let sessions = no_sessions(config);
        return kept
            .sessions(ctx, config, sessions, deterministic, labels)
            .await;
    }
    let (pairs, gammas) = (&compared.pairs, &compared.gammas);
    // Labelled pairs (both records labelled) are known: they leave EM's sessions.
    let labelled = |pair: &Pair| {
        labels.get(pair.a as usize).copied().flatten().is_some()
            && labels.get(pair.b as usize).copied().flatten().is_some()
    };
    let comparisons = config.comparisons.len();
    let mut sessions = no_sessions(config);
    for (p, pair) in pairs.iter().enumerate() {
        if labelled(pair) {
            continue;
        }
        let linked = deterministic[pair.a as usize] == deterministic[pair.b as usize];
        let vector = gammas[p * comparisons..(p + 1) * comparisons].to_vec();
        let entry = sessions[compared.rule_of(p)]
            .patterns
            .entry(vector)
            .or_default();
        entry.0 += 1;
        entry.1 += u64::from(linked);
    }
    Ok(sessions)
}

/// One EM session per blocking rule, with no pairs yet.
fn no_sessions(config: &IdentityConfig) -> Vec<model::Session> {
    let comparisons = config.comparisons.len();
    config
        .blocking
        .iter()
        .map(|rule| model::Session {
            patterns: model::Patterns::new(),
            trains: (0..comparisons)
                .map(|c| {
                    !config.comparison_reads(c, &rule.on)
                        && !config.comparison_reads(c, &rule.implies)
                })
                .collect(),
        })
        .collect()
}

/// Records of one label counted at most (a label held by hundreds is a placeholder).
const MAX_LABEL_GROUP: usize = 50;

/// Seeded random pairs of records with their comparison vectors: what u is estimated from.
struct Sample {
    /// `(a, b)` per sampled pair, `a < b`, no pair twice.
    pairs: Vec<(u32, u32)>,
    /// Comparison vectors, `comparisons` per pair (-1: NULL).
    gammas: Vec<i8>,
}

impl Sample {
    async fn draw(ctx: &SessionContext, config: &IdentityConfig, keys: &KeyRows) -> Result<Sample> {
        let comparisons = config.comparisons.len();
        let n = keys.len();
        if n < 2 || comparisons == 0 {
            return Ok(Sample {
                pairs: Vec::new(),
                gammas: Vec::new(),
            });
        }
        let possible = (n as u128) * (n as u128 - 1) / 2;
        let samples = (config.u_sample_pairs as u128).min(possible / 2).max(1) as usize;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
        // Drawn in rounds, each round's draws sorted and deduplicated against what is kept (a
        // hash set of a million pairs cost more than the draws): sorted by (a, b), no pair twice.
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(samples);
        let mut attempts = 0usize;
        while pairs.len() < samples && attempts < samples.saturating_mul(20) {
            let wanted = samples - pairs.len();
            attempts += wanted;
            pairs.extend((0..wanted).filter_map(|_| {
                let (x, y) = (rng.random_range(0..n as u32), rng.random_range(0..n as u32));
                (x != y).then(|| (x.min(y), x.max(y)))
            }));
            pairs.sort_unstable();
            pairs.dedup();
        }
        Self::levels_of(ctx, config, keys, pairs, "sampling random pairs for u").await
    }

    /// The comparison vectors of the given record pairs (`a < b`, sorted).
    async fn levels_of(
        ctx: &SessionContext,
        config: &IdentityConfig,
        keys: &KeyRows,
        pairs: Vec<(u32, u32)>,
        what: &str,
    ) -> Result<Sample> {
        let comparisons = config.comparisons.len();
        // The levels of the pairs, a chunk at a time: each chunk's two records are
        // gathered by rid into struct columns `l` and `r` (the level SQL reads `l.<column>`
        // as a field of them), so no join runs. Joining a million pairs to the records twice
        // held hundreds of MB in one hash table.
        let query = sql::sampled_pairs(config, "__id_sample");
        let mut gammas = vec![-1i8; pairs.len() * comparisons];
        let chunk_batch = |c: usize, chunk: &[(u32, u32)]| -> Result<RecordBatch> {
            let start = c * SAMPLE_CHUNK;
            let l = keys.gather(chunk.iter().map(|p| p.0))?;
            let r = keys.gather(chunk.iter().map(|p| p.1))?;
            let schema = Arc::new(Schema::new(vec![
                Field::new("i", DataType::Int64, false),
                Field::new("l", l.data_type().clone(), false),
                Field::new("r", r.data_type().clone(), false),
            ]));
            Ok(RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(Int64Array::from_iter_values(
                        (start..start + chunk.len()).map(|i| i as i64),
                    )),
                    Arc::new(l),
                    Arc::new(r),
                ],
            )?)
        };
        let mut read = |batches: &[RecordBatch]| -> Result<()> {
            for b in batches {
                let index = i64s(b, "i")?;
                for (c, comparison) in config.comparisons.iter().enumerate() {
                    let g = column(b, &format!("gamma_{}", comparison.name), &DataType::Int8)?;
                    let g = g.as_any().downcast_ref::<Int8Array>().expect("int8");
                    for r in 0..b.num_rows() {
                        if g.is_valid(r) {
                            gammas[index.value(r) as usize * comparisons + c] = g.value(r);
                        }
                    }
                }
            }
            Ok(())
        };
        let scratch = ctx
            .state()
            .config()
            .get_extension::<crate::scratch::Scratch>();
        match scratch {
            // On a cluster: the chunks written as the parts of one table (one chunk held at a
            // time), whose levels the executors compute in one query.
            Some(scratch) if !pairs.is_empty() => {
                static SAMPLES: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = SAMPLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let folder = scratch.within(&format!("sample-{n}"))?;
                let mut schema = None;
                for (c, chunk) in pairs.chunks(SAMPLE_CHUNK).enumerate() {
                    let batch = chunk_batch(c, chunk)?;
                    schema.get_or_insert_with(|| batch.schema());
                    folder.write_part(ctx, "pairs", c, batch).await?;
                }
                let schema = schema.expect("at least one chunk");
                ctx.deregister_table("__id_sample")?;
                ctx.register_table("__id_sample", folder.read("pairs", &schema)?)?;
                // The cluster's planner keeps a plain projection of a table here (every row
                // comes back anyway); this one's rows shrink from two records to a few levels
                // and its functions are the costly ones, so a filter marks it as work to ship.
                let query = format!("{query} where i >= 0");
                let levels = collect(ctx, &query, what).await;
                if let Err(e) = folder.remove(ctx).await {
                    tracing::warn!("could not remove the sampled pairs' table: {e}");
                }
                read(&levels?)?;
            }
            _ => {
                for (c, chunk) in pairs.chunks(SAMPLE_CHUNK).enumerate() {
                    register_partitioned(ctx, "__id_sample", chunk_batch(c, chunk)?)?;
                    read(&collect(ctx, &query, what).await?)?;
                }
            }
        }
        ctx.deregister_table("__id_sample")?;
        Ok(Sample { pairs, gammas })
    }

    /// For each sampled pair, the index of the same pair among the compared `pairs`
    /// (`u32::MAX` when blocking did not propose it): one merge of two sorted lists, so the
    /// passes look nothing up.
    fn compared(&self, pairs: &[Pair]) -> Vec<u32> {
        let mut keyed: Vec<((u32, u32), u32)> = pairs
            .iter()
            .enumerate()
            .map(|(p, pair)| ((pair.a.min(pair.b), pair.a.max(pair.b)), p as u32))
            .collect();
        keyed.sort_unstable();
        let mut out = vec![u32::MAX; self.pairs.len()];
        let mut k = 0;
        for (s, key) in self.pairs.iter().enumerate() {
            while k < keyed.len() && keyed[k].0 < *key {
                k += 1;
            }
            if k < keyed.len() && keyed[k].0 == *key {
                out[s] = keyed[k].1;
            }
        }
        out
    }

    /// Level counts over the sampled pairs, each weighted by the chance it is a non-match:
    /// 0 inside one component, `1 − p` for a compared pair across components, 1 otherwise.
    /// (On small data random pairs hold real matches often enough to inflate u.)
    fn u_counts(
        &self,
        config: &IdentityConfig,
        component: &[u32],
        probability: impl Fn(usize) -> Option<f64>,
    ) -> Vec<Vec<f64>> {
        let comparisons = config.comparisons.len();
        let mut counts: Vec<Vec<f64>> = config
            .comparisons
            .iter()
            .map(|c| vec![0.0; c.levels.len() + 1])
            .collect();
        for (s, &(a, b)) in self.pairs.iter().enumerate() {
            let weight = if component[a as usize] == component[b as usize] {
                0.0
            } else {
                probability(s).map_or(1.0, |p| 1.0 - p)
            };
            if weight <= 0.0 {
                continue;
            }
            for (c, row) in counts.iter_mut().enumerate() {
                let g = self.gammas[s * comparisons + c];
                if g >= 0 {
                    row[g as usize] += weight;
                }
            }
        }
        counts
    }
}

/// An equality level counted over all pairs (see
/// [`IdentityConfig::counted_exact_levels`]): on large data random sampling cannot see how
/// rarely two different people share an email (u of 1e-8 needs far more than 1M pairs).
struct CountedLevel {
    comparison: usize,
    /// Pairs of non-NULL values.
    pairs: f64,
    /// Pairs agreeing on a value held by more records than the block cap (never compared:
    /// counted as non-matches).
    over_cap: f64,
}

impl CountedLevel {
    /// u of the equality level: pairs agreeing there, weighted by the chance they are not a
    /// match (0 inside one component, `1 − p` across), over all non-NULL pairs; the other
    /// levels keep their sampled shares of the rest.
    fn apply(&self, u: &mut [Vec<f64>], agreeing: f64) {
        if self.pairs <= 0.0 {
            return;
        }
        let u0 = (agreeing + self.over_cap + 1.0) / (self.pairs + 1.0);
        let row = &mut u[self.comparison];
        let rest: f64 = row[1..].iter().sum();
        if rest <= 0.0 || u0 >= 1.0 {
            return;
        }
        row[0] = u0;
        for v in &mut row[1..] {
            *v = *v / rest * (1.0 - u0);
        }
    }
}

async fn counted_levels(
    ctx: &SessionContext,
    config: &IdentityConfig,
) -> Result<Vec<CountedLevel>> {
    let mut out = Vec::new();
    for (comparison, rule) in config.counted_exact_levels() {
        let column = config.comparisons[comparison]
            .column
            .as_deref()
            .expect("counted levels have a column");
        let q = sql::ident(column);
        let query = format!(
            "select cast(sum(n) as double) as n, \
             cast(coalesce(sum(case when n > {cap} then n * (n - 1) / 2 end), 0) as double) as over_cap \
             from (select count(*) as n from {keys} where {q} is not null group by {q}) v",
            cap = config.block_cap(&config.blocking[rule]),
            keys = sql::KEYS
        );
        let batches = collect(ctx, &query, &format!("counting values of `{column}`")).await?;
        let value = |name: &str| -> f64 {
            batches
                .first()
                .and_then(|b| b.column_by_name(name))
                .and_then(|a| {
                    a.as_any()
                        .downcast_ref::<Float64Array>()
                        .map(|a| if a.is_null(0) { 0.0 } else { a.value(0) })
                })
                .unwrap_or(0.0)
        };
        let non_null = value("n");
        out.push(CountedLevel {
            comparison,
            pairs: non_null * (non_null - 1.0).max(0.0) / 2.0,
            over_cap: value("over_cap"),
        });
    }
    Ok(out)
}

/// Sums over the compared pairs across components (their two records in different customers)
/// under a pass's weights (none before the first pass: a probability of 0): the matches
/// expected among them (Σ p) and, per counted level, the chance that those agreeing there
/// are non-matches (Σ 1 − p). Summed per distinct weight ([`score::WeightSums`]), so the
/// pairs' order does not change a bit, in memory or on a cluster.
struct Across {
    matches: f64,
    agreeing: Vec<f64>,
}

impl Across {
    fn of(
        pairs: &[Pair],
        gammas: &[i8],
        comparisons: usize,
        component: &[u32],
        weights: &[f64],
        counted: &[CountedLevel],
    ) -> Across {
        let mut sums = score::WeightSums::new(1 + counted.len());
        let mut n = vec![1u64; 1 + counted.len()];
        for (p, pair) in pairs.iter().enumerate() {
            if component[pair.a as usize] == component[pair.b as usize] {
                continue;
            }
            for (k, level) in counted.iter().enumerate() {
                n[k + 1] = u64::from(gammas[p * comparisons + level.comparison] == 0);
            }
            sums.add(weights.get(p).copied().unwrap_or(f64::NEG_INFINITY), &n);
        }
        Across::from_sums(&sums, counted.len())
    }

    fn from_sums(sums: &score::WeightSums, counted: usize) -> Across {
        Across {
            matches: sums.sum(0, score::probability),
            agreeing: (0..counted)
                .map(|k| sums.sum(k + 1, |w| 1.0 - score::probability(w)))
                .collect(),
        }
    }
}

async fn keys_field_type(ctx: &SessionContext, column: &str) -> Result<DataType> {
    let table = ctx.table(sql::KEYS).await?;
    Ok(table
        .schema()
        .field_with_unqualified_name(column)
        .map(|f| f.data_type().clone())
        .unwrap_or(DataType::Utf8))
}

type Table = (SchemaRef, Vec<RecordBatch>);

fn in_memory((schema, batches): Table) -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

/// `unify.match_pairs`, built a batch at a time while it is written: at millions of pairs the
/// whole table (~200 bytes a pair) was the largest thing the job held. It owns the pairs, their
/// levels and scores (reserved in the pool until the write ends) and makes each batch of
/// PAIRS_BATCH rows straight into Arrow buffers when the writer asks for it.
struct PairsTable {
    config: IdentityConfig,
    kinds: Kinds,
    keys: StringArray,
    /// The compared pairs, their levels and frequencies.
    compared: steps::Compared,
    tf_count: usize,
    weights: Vec<f64>,
    /// Deterministic and override links (no comparison vector), after the compared pairs.
    extra: Vec<cluster::Link>,
    refused: HashMap<(u32, u32), String>,
    schema: SchemaRef,
    /// With pairs kept on a cluster: the session reading them and the final model.
    scan: Option<(SessionContext, Model)>,
}

impl std::fmt::Debug for PairsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairsTable")
            .field("pairs", &self.compared.pairs.len())
            .field("extra", &self.extra.len())
            .finish()
    }
}

impl PairsTable {
    #[allow(clippy::too_many_arguments)]
    fn new(
        config: &IdentityConfig,
        keys: StringArray,
        compared: steps::Compared,
        tf_index: &[Option<usize>],
        weights: Vec<f64>,
        links: &[cluster::Link],
        refused: HashMap<(u32, u32), String>,
    ) -> PairsTable {
        let kinds = Kinds {
            rules: config.rules.len(),
        };
        let mut fields = vec![
            Field::new("record_key_a", DataType::Utf8, false),
            Field::new("record_key_b", DataType::Utf8, false),
            Field::new("linked_by", DataType::Utf8, false),
            Field::new("blocking_rule", DataType::Utf8, true),
            Field::new("match_weight", DataType::Float64, true),
            Field::new("match_probability", DataType::Float64, false),
            Field::new("accepted", DataType::Boolean, false),
            Field::new("refused_reason", DataType::Utf8, true),
        ];
        fields.extend(kept::vector_fields(config, tf_index));
        let extra = links
            .iter()
            .filter(|l| l.kind != kinds.probabilistic())
            .copied()
            .collect();
        PairsTable {
            config: config.clone(),
            kinds,
            keys,
            compared,
            tf_count: tf_index.iter().flatten().count(),
            weights,
            extra,
            refused,
            schema: Arc::new(Schema::new(fields)),
            scan: None,
        }
    }

    /// With pairs kept on a cluster, the table reads them through `ctx`, scored by `model`.
    fn scored_by(mut self, ctx: &SessionContext, model: &Model) -> PairsTable {
        if self.compared.kept.is_some() {
            self.scan = Some((ctx.clone(), model.clone()));
        }
        self
    }

    fn rows(&self) -> usize {
        self.compared.pairs.len() + self.extra.len()
    }

    /// Bytes held (the record keys aside: record_customer holds them too), with one batch in
    /// the making per core.
    fn bytes(&self) -> usize {
        self.compared.bytes()
            + self.weights.capacity() * size_of::<f64>()
            + self.extra.capacity() * size_of::<cluster::Link>()
            + self.refused.capacity() * (size_of::<((u32, u32), String)>() + 32)
            + self.rows().min(PAIRS_BATCH) * 256 * 2
    }

    /// The table, streamed: one partition per core, each a run of the rows.
    fn provider(self, partitions: usize) -> Result<Arc<dyn TableProvider>> {
        let table = Arc::new(self);
        let total = table.rows();
        let per_part = total.div_ceil(partitions.max(1)).max(1);
        let streams: Vec<Arc<dyn PartitionStream>> = (0..partitions.max(1))
            .map(|p| {
                Arc::new(PairsPartition {
                    table: table.clone(),
                    rows: (p * per_part).min(total)..((p + 1) * per_part).min(total),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let mut streams = streams;
        if table.scan.is_some() {
            streams.push(Arc::new(KeptPartition {
                table: table.clone(),
            }));
        }
        Ok(Arc::new(StreamingTable::try_new(
            table.schema.clone(),
            streams,
        )?))
    }

    /// The output rows of a batch of kept pairs scored on the cluster (`rule, a, b`, levels,
    /// frequencies, `w`): the same rows as [`PairsTable::batch`] makes from memory.
    fn kept_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let (config, keys) = (&self.config, &self.keys);
        let (rule, a, b) = (i64s(batch, "rule")?, i64s(batch, "a")?, i64s(batch, "b")?);
        let w = column(batch, "w", &DataType::Float64)?;
        let w = w.as_any().downcast_ref::<Float64Array>().expect("f64");
        let vectors = kept::Vectors::of(batch, config)?;
        let len = batch.num_rows();
        let mut ka = StringBuilder::with_capacity(len, len * 24);
        let mut kb = StringBuilder::with_capacity(len, len * 24);
        let mut linked_by = StringBuilder::with_capacity(len, len * 13);
        let mut blocking = StringBuilder::with_capacity(len, len * 16);
        let mut probability = Float64Builder::with_capacity(len);
        let mut accepted = BooleanBuilder::with_capacity(len);
        let mut reason = StringBuilder::new();
        for r in 0..len {
            let (x, y) = (a.value(r) as u32, b.value(r) as u32);
            ka.append_value(keys.value(x as usize));
            kb.append_value(keys.value(y as usize));
            linked_by.append_value("probabilistic");
            blocking.append_value(&config.blocking[rule.value(r) as usize].name);
            let p = score::probability(w.value(r));
            probability.append_value(p);
            let ok = p >= config.threshold;
            let why = self.refused.get(&(x.min(y), x.max(y))).filter(|_| ok);
            accepted.append_value(ok && why.is_none());
            reason.append_option(why);
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(ka.finish()),
            Arc::new(kb.finish()),
            Arc::new(linked_by.finish()),
            Arc::new(blocking.finish()),
            Arc::new(w.clone()),
            Arc::new(probability.finish()),
            Arc::new(accepted.finish()),
            Arc::new(reason.finish()),
        ];
        // NULL for no evidence (a level below 0), as in memory.
        for g in vectors.gammas {
            let levels: Int8Array = g.iter().map(|g| g.filter(|g| *g >= 0)).collect();
            arrays.push(Arc::new(levels));
        }
        for t in vectors.tfs.into_iter().flatten() {
            // NULL for a frequency that is not finite, as in memory.
            let finite: Float64Array = t.iter().map(|f| f.filter(|f| f.is_finite())).collect();
            arrays.push(Arc::new(finite));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }

    /// Rows `rows` (compared pairs first, then the extra links) as one batch.
    fn batch(&self, rows: std::ops::Range<usize>) -> Result<RecordBatch> {
        let (config, keys, pairs) = (&self.config, &self.keys, &self.compared.pairs);
        let comparisons = config.comparisons.len();
        let tf_count = self.tf_count;
        let key = |x: u32, y: u32| (x.min(y), x.max(y));
        let len = rows.len();
        let mut a = StringBuilder::with_capacity(len, len * 24);
        let mut b = StringBuilder::with_capacity(len, len * 24);
        let mut linked_by = StringBuilder::with_capacity(len, len * 13);
        let mut blocking = StringBuilder::with_capacity(len, len * 16);
        let mut weight = Float64Builder::with_capacity(len);
        let mut probability = Float64Builder::with_capacity(len);
        let mut accepted = BooleanBuilder::with_capacity(len);
        let mut reason = StringBuilder::new();
        let mut gamma: Vec<Int8Builder> = (0..comparisons)
            .map(|_| Int8Builder::with_capacity(len))
            .collect();
        let mut tf: Vec<Float64Builder> = (0..tf_count)
            .map(|_| Float64Builder::with_capacity(len))
            .collect();
        for row in rows {
            if let Some(pair) = pairs.get(row) {
                a.append_value(keys.value(pair.a as usize));
                b.append_value(keys.value(pair.b as usize));
                linked_by.append_value("probabilistic");
                blocking.append_value(&config.blocking[self.compared.rule_of(row)].name);
                let p = score::probability(self.weights[row]);
                weight.append_value(self.weights[row]);
                probability.append_value(p);
                let ok = p >= config.threshold;
                let why = self.refused.get(&key(pair.a, pair.b)).filter(|_| ok);
                accepted.append_value(ok && why.is_none());
                reason.append_option(why);
                for (c, g) in gamma.iter_mut().enumerate() {
                    g.append_option(
                        Some(self.compared.gammas[row * comparisons + c]).filter(|g| *g >= 0),
                    );
                }
                for (k, t) in tf.iter_mut().enumerate() {
                    t.append_option(
                        Some(self.compared.tfs.get(row * tf_count + k)).filter(|f| f.is_finite()),
                    );
                }
            } else {
                let link = &self.extra[row - pairs.len()];
                a.append_value(keys.value(link.a as usize));
                b.append_value(keys.value(link.b as usize));
                linked_by.append_value(self.kinds.name(link.kind, config));
                blocking.append_null();
                weight.append_null();
                probability.append_value(1.0);
                let why = self.refused.get(&key(link.a, link.b));
                accepted.append_value(why.is_none());
                reason.append_option(why);
                gamma.iter_mut().for_each(|g| g.append_null());
                tf.iter_mut().for_each(|t| t.append_null());
            }
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(a.finish()),
            Arc::new(b.finish()),
            Arc::new(linked_by.finish()),
            Arc::new(blocking.finish()),
            Arc::new(weight.finish()),
            Arc::new(probability.finish()),
            Arc::new(accepted.finish()),
            Arc::new(reason.finish()),
        ];
        arrays.extend(gamma.iter_mut().map(|g| Arc::new(g.finish()) as ArrayRef));
        arrays.extend(tf.iter_mut().map(|t| Arc::new(t.finish()) as ArrayRef));
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

/// A run of `match_pairs` rows, made batch by batch as the stream is read.
#[derive(Debug)]
struct PairsPartition {
    table: Arc<PairsTable>,
    rows: std::ops::Range<usize>,
}

impl PartitionStream for PairsPartition {
    fn schema(&self) -> &SchemaRef {
        &self.table.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let table = self.table.clone();
        let end = self.rows.end;
        let batches = self.rows.clone().step_by(PAIRS_BATCH).map(move |start| {
            table
                .batch(start..(start + PAIRS_BATCH).min(end))
                .map_err(|e| DataFusionError::External(Box::new(e)))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.table.schema.clone(),
            futures::stream::iter(batches),
        ))
    }
}

/// The pairs kept on a cluster, scored there by the final model as `match_pairs` is written.
#[derive(Debug)]
struct KeptPartition {
    table: Arc<PairsTable>,
}

impl PartitionStream for KeptPartition {
    fn schema(&self) -> &SchemaRef {
        &self.table.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let table = self.table.clone();
        let external = |e: Error| DataFusionError::External(Box::new(e));
        let scored = futures::stream::once(async move {
            let (ctx, model) = table.scan.as_ref().expect("a scan");
            let kept = table.compared.kept.as_ref().expect("kept pairs");
            let stream = kept
                .scored(ctx, &table.config, model, None)
                .await
                .map_err(external)?;
            let rows = table.clone();
            Ok::<_, DataFusionError>(
                stream.map(move |batch| batch.and_then(|b| rows.kept_batch(&b).map_err(external))),
            )
        })
        .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(
            self.table.schema.clone(),
            scored,
        ))
    }
}

/// Rows per batch of `match_pairs`.
const PAIRS_BATCH: usize = 64 * 1024;

fn model_table(
    config: &IdentityConfig,
    model: &Model,
    run_id: &str,
    trained_by: &str,
    records: usize,
) -> Result<Table> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("comparison", DataType::Utf8, false),
        Field::new("level_index", DataType::Int32, false),
        Field::new("level", DataType::Utf8, false),
        Field::new("m_probability", DataType::Float64, false),
        Field::new("u_probability", DataType::Float64, false),
        Field::new("match_weight", DataType::Float64, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("trained_run_id", DataType::Utf8, false),
        Field::new("trained_records", DataType::Int64, false),
        Field::new("model_signature", DataType::Utf8, false),
    ]));
    let (mut comparison, mut index, mut level, mut m, mut u, mut w) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    comparison.push("prior".to_string());
    index.push(-1);
    level.push(if trained_by == run_id {
        format!(
            "two random records match (EM: {} iterations{})",
            model.iterations,
            if model.converged {
                ", converged"
            } else {
                ", not converged"
            }
        )
    } else {
        format!("two random records match (model trained in run {trained_by})")
    });
    m.push(model.lambda);
    u.push(1.0 - model.lambda);
    w.push(model.prior_weight());
    for (c, comp) in config.comparisons.iter().enumerate() {
        for l in 0..=comp.levels.len() {
            comparison.push(comp.name.clone());
            index.push(l as i32);
            level.push(
                comp.levels
                    .get(l)
                    .map_or("else".to_string(), |x| x.name.clone()),
            );
            m.push(model.m[c][l]);
            u.push(model.u[c][l]);
            w.push(model.level_weight(c, l as i8, None));
        }
    }
    let rows = comparison.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(comparison)),
            Arc::new(Int32Array::from(index)),
            Arc::new(StringArray::from(level)),
            Arc::new(Float64Array::from(m)),
            Arc::new(Float64Array::from(u)),
            Arc::new(Float64Array::from(w)),
            run_column(run_id, rows),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                trained_by, rows,
            ))),
            Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(
                records as i64,
                rows,
            ))),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                config.model_signature(),
                rows,
            ))),
        ],
    )?;
    Ok((schema, vec![batch]))
}

fn history_table(events: &[ids::IdEvent], run_id: &str, now: i64) -> Result<Table> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new(
            "changed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("event", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("previous_customer_id", DataType::Utf8, true),
        Field::new("records", DataType::Int64, false),
    ]));
    let n = events.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            run_column(run_id, n),
            time_column(now, n),
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.event),
            )),
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.customer_id.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                events.iter().map(|e| e.previous_customer_id.as_deref()),
            )),
            Arc::new(Int64Array::from_iter_values(
                events.iter().map(|e| e.records as i64),
            )),
        ],
    )?;
    Ok((schema, vec![batch]))
}

/// A guard that acted: a value set aside, a link refused, a block skipped, an unknown override.
struct GuardRow {
    guard: String,
    subject: String,
    value: Option<String>,
    records: i64,
    record_key_a: Option<String>,
    record_key_b: Option<String>,
}

fn guard_table(rows: &[GuardRow], run_id: &str) -> Result<Table> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("guard", DataType::Utf8, false),
        Field::new("subject", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
        Field::new("records", DataType::Int64, false),
        Field::new("record_key_a", DataType::Utf8, true),
        Field::new("record_key_b", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                run_id,
                rows.len(),
            ))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.guard.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.subject.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.value.as_deref()),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.records))),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.record_key_a.as_deref()),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.record_key_b.as_deref()),
            )),
        ],
    )?;
    Ok((schema, vec![batch]))
}

/// Run statistics in long form: metric, dimension, value (summed per key).
#[derive(Default)]
struct Stats {
    rows: BTreeMap<(String, String), f64>,
    order: Vec<(String, String)>,
}

impl Stats {
    fn push(&mut self, metric: &str, dimension: &str, value: f64) {
        let key = (metric.to_string(), dimension.to_string());
        if !self.rows.contains_key(&key) {
            self.order.push(key.clone());
        }
        *self.rows.entry(key).or_default() += value;
    }

    fn table(&self, run_id: &str, now: i64) -> Result<Table> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new(
                "run_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("metric", DataType::Utf8, false),
            Field::new("dimension", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
        ]));
        let n = self.order.len();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                run_column(run_id, n),
                time_column(now, n),
                Arc::new(StringArray::from_iter_values(
                    self.order.iter().map(|k| k.0.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    self.order.iter().map(|k| k.1.as_str()),
                )),
                Arc::new(Float64Array::from_iter_values(
                    self.order.iter().map(|k| self.rows[k]),
                )),
            ],
        )?;
        Ok((schema, vec![batch]))
    }
}

/// Reads the previous run's state from its tables (absent tables: a first run).
pub async fn previous_state(
    ctx: &SessionContext,
    record_customer: Option<Arc<dyn TableProvider>>,
    history: Option<Arc<dyn TableProvider>>,
    match_model: Option<Arc<dyn TableProvider>>,
    term_frequencies: Option<Arc<dyn TableProvider>>,
) -> Result<PreviousState> {
    let mut state = PreviousState::default();
    if let Some(table) = match_model {
        state.model = stored_model(ctx, table).await?;
    }
    if let Some(table) = term_frequencies
        && state.model.is_some()
    {
        let df = ctx
            .read_table(table)?
            .select_columns(&["comparison", "value", "frequency"])?;
        for b in df.collect().await? {
            let (c, v) = (strs(&b, "comparison")?, strs(&b, "value")?);
            let f = column(&b, "frequency", &DataType::Float64)?;
            let f = f.as_any().downcast_ref::<Float64Array>().expect("f64");
            for r in 0..b.num_rows() {
                if v.is_valid(r) && f.is_valid(r) {
                    state.term_frequencies.push((
                        c.value(r).to_string(),
                        v.value(r).to_string(),
                        f.value(r),
                    ));
                }
            }
        }
    }
    state.id_tables = PreviousIdTables {
        ctx: Some(ctx.clone()),
        record_customer,
        history,
    };
    Ok(state)
}

/// The model a `match_model` table holds; `None` when it predates the columns a reuse needs.
async fn stored_model(
    ctx: &SessionContext,
    table: Arc<dyn TableProvider>,
) -> Result<Option<StoredModel>> {
    let needed = [
        "comparison",
        "level_index",
        "level",
        "m_probability",
        "u_probability",
        "trained_run_id",
        "trained_records",
        "model_signature",
        "run_id",
    ];
    if needed
        .iter()
        .any(|c| table.schema().field_with_name(c).is_err())
    {
        return Ok(None);
    }
    let df = ctx.read_table(table)?.select_columns(&needed)?;
    let mut stored: Option<StoredModel> = None;
    for b in df.collect().await? {
        let (comparison, level) = (strs(&b, "comparison")?, strs(&b, "level")?);
        let index = column(&b, "level_index", &DataType::Int32)?;
        let index = index.as_any().downcast_ref::<Int32Array>().expect("int32");
        let m = column(&b, "m_probability", &DataType::Float64)?;
        let m = m.as_any().downcast_ref::<Float64Array>().expect("f64");
        let u = column(&b, "u_probability", &DataType::Float64)?;
        let u = u.as_any().downcast_ref::<Float64Array>().expect("f64");
        let (run, signature) = (strs(&b, "trained_run_id")?, strs(&b, "model_signature")?);
        let published_by = strs(&b, "run_id")?;
        let records = i64s(&b, "trained_records")?;
        for r in 0..b.num_rows() {
            let entry = stored.get_or_insert_with(|| StoredModel {
                signature: signature.value(r).to_string(),
                records: records.value(r).max(0) as u64,
                run_id: run.value(r).to_string(),
                published_by: published_by.value(r).to_string(),
                rows: Vec::new(),
            });
            entry.rows.push((
                comparison.value(r).to_string(),
                index.value(r),
                level.value(r).to_string(),
                m.value(r),
                u.value(r),
            ));
        }
    }
    Ok(stored)
}

/// A column holding `run_id` on each of `n` rows.
fn run_column(run_id: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        run_id, n,
    )))
}

/// A UTC timestamp column holding `micros` on each of `n` rows.
fn time_column(micros: i64, n: usize) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(micros, n))
            .with_timezone("UTC"),
    )
}
