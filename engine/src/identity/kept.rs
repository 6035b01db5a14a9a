//! The compared pairs kept on a cluster.
//!
//! On one machine the compared pairs are held in memory (two record numbers, a level per
//! comparison and the frequencies of agreeing values: 27 bytes with seven comparisons). On a
//! cluster they would all come back to the coordinator — at 100M pairs, gigabytes it must hold
//! for the whole resolution. Instead each blocking rule's pairs, with their comparison levels
//! and term frequencies, are written as they stream out of the comparison query into a table
//! of the resolution's scratch folder, and every later step reads them there with SQL the
//! executors run:
//!
//! - EM's sessions: the pattern counts per blocking rule (`group by` rule and levels), exact
//!   integers;
//! - the sampled pairs that blocking also proposed (a join with the million-pair sample);
//! - each model pass: the pairs scored by [`super::score::IdentityScore`] (the same code as
//!   on one machine, so the same bits), only the accepted and contradicted links returned;
//!   the sums across components grouped by weight ([`super::score::WeightSums`]);
//! - `unify.match_pairs`, streamed from the table scored by the final model while it is
//!   written (the folder stays until then: [`super::Resolution::scratch`]).
//!
//! The coordinator holds a few numbers per record, the links, and the groups; the decisions
//! are those of a run on one machine (`tests/cluster.rs` compares every table).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int8Array, Int64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;

use super::config::IdentityConfig;
use super::model::{self, Model};
use super::score::{SCORE_FUNCTION, WeightSums};
use super::{CountedLevel, identity_err, register};
use crate::error::Result;
use crate::scratch::Scratch;
use crate::sql::ident;

/// The kept pairs' table, as registered in the resolution's session.
pub(super) const PAIRS: &str = "__id_pairs";

/// The compared pairs, in a table of the resolution's scratch folder.
pub(super) struct KeptPairs {
    pub(super) rows: usize,
    folder: Scratch,
    /// Files written so far (each rule's streams numbered after the last's).
    files: usize,
    /// Tables of components written so far (each pass writes its own).
    passes: std::sync::atomic::AtomicUsize,
}

/// A kept pair's comparison levels and frequencies, by comparison (as the scorer reads them).
pub(super) type Vector = (Vec<i8>, Vec<Option<f64>>);

fn gamma(c: &super::config::Comparison) -> String {
    ident(&format!("gamma_{}", c.name))
}

fn tf(c: &super::config::Comparison) -> String {
    ident(&format!("tf_{}", c.name))
}

impl KeptPairs {
    /// An empty table in `scratch`.
    pub(super) fn new(scratch: &Scratch) -> Result<KeptPairs> {
        Ok(KeptPairs {
            rows: 0,
            folder: scratch.within("pairs")?,
            files: 0,
            passes: Default::default(),
        })
    }

    /// The table's columns: the rule, the two records, a level per comparison and a
    /// frequency per weighed comparison.
    pub(super) fn schema(config: &IdentityConfig, tf_index: &[Option<usize>]) -> SchemaRef {
        let mut fields = vec![
            Field::new("rule", DataType::Int64, true),
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ];
        fields.extend(vector_fields(config, tf_index));
        Arc::new(Schema::new(fields))
    }

    /// Writes the pairs `query` gives for blocking rule `rule` (as they stream: none is
    /// held), and registers the table with them; returns how many there were.
    pub(super) async fn write_rule(
        &mut self,
        ctx: &SessionContext,
        config: &IdentityConfig,
        tf_index: &[Option<usize>],
        rule: usize,
        query: &str,
    ) -> Result<usize> {
        let name = &config.blocking[rule].name;
        let mut columns = vec![
            format!("cast({rule} as bigint) as rule"),
            "cast(a as bigint) as a".to_string(),
            "cast(b as bigint) as b".to_string(),
        ];
        for c in &config.comparisons {
            columns.push(format!("cast({g} as tinyint) as {g}", g = gamma(c)));
        }
        for (c, k) in config.comparisons.iter().zip(tf_index) {
            if k.is_some() {
                columns.push(format!("cast({t} as double) as {t}", t = tf(c)));
            }
        }
        let query = format!("select {} from ({query}) q", columns.join(", "));
        let streams: Vec<SendableRecordBatchStream> = ctx
            .sql(&query)
            .await
            .map_err(|e| identity_err(format!("blocking rule `{name}`: {e}")))?
            .execute_stream_partitioned()
            .await
            .map_err(|e| identity_err(format!("blocking rule `{name}`: {e}")))?;
        let files = streams.len();
        let rows = self
            .folder
            .append(ctx, "t", self.files, streams)
            .await
            .map_err(|e| identity_err(format!("blocking rule `{name}`: {e}")))?;
        self.files += files;
        self.rows += rows;
        let schema = Self::schema(config, tf_index);
        ctx.deregister_table(PAIRS)?;
        ctx.register_table(PAIRS, self.folder.read("t", &schema)?)?;
        Ok(rows)
    }

    /// EM's sessions over the kept pairs: per blocking rule, the pairs of each comparison
    /// vector and those of them inside one deterministic component, leaving out pairs of
    /// two labelled records (as [`super::em_sessions`] counts them in memory).
    pub(super) async fn sessions(
        &self,
        ctx: &SessionContext,
        config: &IdentityConfig,
        mut sessions: Vec<model::Session>,
        deterministic: &[u32],
        labels: &[Option<u32>],
    ) -> Result<Vec<model::Session>> {
        let n = deterministic.len();
        let labelled = (0..n).map(|r| Some(labels.get(r).copied().flatten().is_some()));
        register_columns(
            ctx,
            "__id_record_groups",
            vec![
                ("rid", Arc::new(Int64Array::from_iter_values(0..n as i64))),
                ("det", ints(deterministic.iter().copied())),
                ("labelled", Arc::new(BooleanArray::from_iter(labelled))),
            ],
        )
        .await?;
        let levels: Vec<String> = config
            .comparisons
            .iter()
            .enumerate()
            .map(|(k, c)| format!("coalesce(p.{}, -1) as g{k}", gamma(c)))
            .collect();
        let groups: Vec<String> = (1..=config.comparisons.len() + 1)
            .map(|k| k.to_string())
            .collect();
        let query = format!(
            "select p.rule, {levels}, count(*) as n, \
             sum(case when x.det = y.det then 1 else 0 end) as linked \
             from {PAIRS} p join __id_record_groups x on p.a = x.rid \
             join __id_record_groups y on p.b = y.rid \
             where not (x.labelled and y.labelled) group by {groups}",
            levels = levels.join(", "),
            groups = groups.join(", ")
        );
        let batches = super::collect(ctx, &query, "counting the compared pairs' patterns").await?;
        for b in &batches {
            let rule = super::i64s(b, "rule")?;
            let (count, linked) = (super::i64s(b, "n")?, super::i64s(b, "linked")?);
            let g: Vec<Int8Array> = (0..config.comparisons.len())
                .map(|k| int8s(b, &format!("g{k}")))
                .collect::<Result<_>>()?;
            for r in 0..b.num_rows() {
                let vector: Vec<i8> = g.iter().map(|g| g.value(r)).collect();
                let entry = sessions[rule.value(r) as usize]
                    .patterns
                    .entry(vector)
                    .or_default();
                entry.0 += count.value(r) as u64;
                entry.1 += linked.value(r) as u64;
            }
        }
        drop_table(ctx, "__id_record_groups").await?;
        Ok(sessions)
    }

    /// The comparison vectors of the sampled pairs (`a < b`) that blocking proposed, by
    /// sample index.
    pub(super) async fn sampled(
        &self,
        ctx: &SessionContext,
        config: &IdentityConfig,
        tf_index: &[Option<usize>],
        sample: &[(u32, u32)],
    ) -> Result<HashMap<usize, Vector>> {
        register_columns(
            ctx,
            "__id_sampled",
            vec![
                (
                    "i",
                    Arc::new(Int64Array::from_iter_values(0..sample.len() as i64)),
                ),
                ("a", ints(sample.iter().map(|p| p.0))),
                ("b", ints(sample.iter().map(|p| p.1))),
            ],
        )
        .await?;
        let query = format!(
            "select s.i, {} from __id_sampled s join {PAIRS} p \
             on s.a = least(p.a, p.b) and s.b = greatest(p.a, p.b)",
            vector_columns(config, tf_index)
        );
        let batches = super::collect(ctx, &query, "finding the sampled pairs compared").await?;
        drop_table(ctx, "__id_sampled").await?;
        let mut out = HashMap::new();
        for b in &batches {
            let i = super::i64s(b, "i")?;
            let vectors = Vectors::of(b, config)?;
            for r in 0..b.num_rows() {
                out.insert(i.value(r) as usize, vectors.get(r));
            }
        }
        Ok(out)
    }

    /// The kept pairs scored by `model`: `rule, a, b`, the levels and frequencies, and `w`,
    /// the match weight, for the rows `filter` keeps (SQL over `w`).
    pub(super) async fn scored(
        &self,
        ctx: &SessionContext,
        config: &IdentityConfig,
        model: &Model,
        filter: Option<&str>,
    ) -> Result<SendableRecordBatchStream> {
        let query = format!(
            "select * from (select *, {} as w from {PAIRS}) s{}",
            score_sql(config, model),
            filter.map(|f| format!(" where {f}")).unwrap_or_default()
        );
        ctx.sql(&query)
            .await
            .map_err(|e| identity_err(format!("scoring the compared pairs: {e}")))?
            .execute_stream()
            .await
            .map_err(|e| identity_err(format!("scoring the compared pairs: {e}")))
    }

    /// The sums over the kept pairs across the components (see [`super::Across`]), grouped by
    /// weight on the cluster: the matches expected, and per counted level the agreeing
    /// pairs' chance of being non-matches. No model: no scores yet (a probability of 0).
    pub(super) async fn across(
        &self,
        ctx: &SessionContext,
        config: &IdentityConfig,
        component: &[u32],
        model: Option<&Model>,
        counted: &[CountedLevel],
    ) -> Result<super::Across> {
        // A table of its own per pass, removed after: a file written again under the same
        // name could be read with what was cached of the previous one.
        let pass = self
            .passes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let components = format!("__id_component_{pass}");
        let rids = Arc::new(Int64Array::from_iter_values(0..component.len() as i64));
        register_columns(
            ctx,
            &components,
            vec![("rid", rids), ("c", ints(component.iter().copied()))],
        )
        .await?;
        let w = match model {
            Some(model) => score_sql(config, model),
            None => "cast(null as double)".to_string(),
        };
        let agreeing: Vec<String> = counted
            .iter()
            .enumerate()
            .map(|(k, level)| {
                format!(
                    "sum(case when p.{} = 0 then 1 else 0 end) as n{k}",
                    gamma(&config.comparisons[level.comparison])
                )
            })
            .collect();
        let query = format!(
            "select w, count(*) as n{comma}{agreeing} \
             from (select *, {w} as w from {PAIRS}) p \
             join {components} x on p.a = x.rid join {components} y on p.b = y.rid \
             where x.c <> y.c group by w",
            comma = if agreeing.is_empty() { "" } else { ", " },
            agreeing = agreeing.join(", ")
        );
        let batches = super::collect(ctx, &query, "summing the pairs across customers").await?;
        drop_table(ctx, &components).await?;
        let mut sums = WeightSums::new(1 + counted.len());
        let mut n = vec![0u64; 1 + counted.len()];
        for b in &batches {
            let w = super::column(b, "w", &DataType::Float64)?;
            let w = w.as_any().downcast_ref::<Float64Array>().expect("f64");
            let mut counts = vec![super::i64s(b, "n")?];
            for k in 0..counted.len() {
                counts.push(super::i64s(b, &format!("n{k}"))?);
            }
            for r in 0..b.num_rows() {
                for (slot, c) in n.iter_mut().zip(&counts) {
                    *slot = c.value(r) as u64;
                }
                let weight = if w.is_null(r) {
                    f64::NEG_INFINITY
                } else {
                    w.value(r)
                };
                sums.add(weight, &n);
            }
        }
        Ok(super::Across::from_sums(&sums, counted.len()))
    }
}

/// Registers an intermediate table of the given non-NULL columns (see [`register`]).
async fn register_columns(
    ctx: &SessionContext,
    name: &str,
    columns: Vec<(&str, ArrayRef)>,
) -> Result<()> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    register(ctx, name, vec![batch], schema).await
}

/// Record numbers as an Int64 column.
fn ints(values: impl Iterator<Item = u32>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values.map(i64::from)))
}

/// Deregisters an intermediate table and removes its files from the scratch folder.
async fn drop_table(ctx: &SessionContext, name: &str) -> Result<()> {
    ctx.deregister_table(name)?;
    if let Some(scratch) = ctx.state().config().get_extension::<Scratch>() {
        scratch.within(name)?.remove(ctx).await?;
    }
    Ok(())
}

/// `tessera_identity_score(…)` over the kept table's columns.
fn score_sql(config: &IdentityConfig, model: &Model) -> String {
    let encoded = super::score::encode(model);
    let tf_index = super::steps::tf_index(config);
    let mut args = vec![format!("'{encoded}'")];
    for (c, k) in config.comparisons.iter().zip(&tf_index) {
        args.push(gamma(c));
        args.push(match k {
            Some(_) => tf(c),
            None => "cast(null as double)".to_string(),
        });
    }
    format!("{SCORE_FUNCTION}({})", args.join(", "))
}

/// A pair's columns of levels (`gamma_<comparison>`, Int8) and of frequencies of agreeing
/// values (`tf_<comparison>`, Float64, for the comparisons weighed by frequency), as the kept
/// table and `match_pairs` hold them.
pub(super) fn vector_fields(config: &IdentityConfig, tf_index: &[Option<usize>]) -> Vec<Field> {
    let levels = config
        .comparisons
        .iter()
        .map(|c| Field::new(format!("gamma_{}", c.name), DataType::Int8, true));
    let frequencies = config
        .comparisons
        .iter()
        .zip(tf_index)
        .filter(|(_, k)| k.is_some())
        .map(|(c, _)| Field::new(format!("tf_{}", c.name), DataType::Float64, true));
    levels.chain(frequencies).collect()
}

/// The levels and frequencies of the kept table, selected from alias `p`.
fn vector_columns(config: &IdentityConfig, tf_index: &[Option<usize>]) -> String {
    let mut columns: Vec<String> = config
        .comparisons
        .iter()
        .map(|c| format!("p.{}", gamma(c)))
        .collect();
    for (c, k) in config.comparisons.iter().zip(tf_index) {
        if k.is_some() {
            columns.push(format!("p.{}", tf(c)));
        }
    }
    columns.join(", ")
}

fn int8s(batch: &RecordBatch, name: &str) -> Result<Int8Array> {
    let a = super::column(batch, name, &DataType::Int8)?;
    Ok(a.as_any()
        .downcast_ref::<Int8Array>()
        .expect("int8")
        .clone())
}

/// A batch's level and frequency columns, by comparison.
pub(super) struct Vectors {
    pub(super) gammas: Vec<Int8Array>,
    /// Per comparison, its frequencies when it is weighed.
    pub(super) tfs: Vec<Option<Float64Array>>,
}

impl Vectors {
    pub(super) fn of(batch: &RecordBatch, config: &IdentityConfig) -> Result<Vectors> {
        let tf_index = super::steps::tf_index(config);
        let gammas = config
            .comparisons
            .iter()
            .map(|c| int8s(batch, &format!("gamma_{}", c.name)))
            .collect::<Result<_>>()?;
        let tfs = config
            .comparisons
            .iter()
            .zip(&tf_index)
            .map(|(c, k)| {
                k.map(|_| {
                    super::column(batch, &format!("tf_{}", c.name), &DataType::Float64).map(|a| {
                        a.as_any()
                            .downcast_ref::<Float64Array>()
                            .expect("f64")
                            .clone()
                    })
                })
                .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(Vectors { gammas, tfs })
    }

    /// Row `r`'s levels (-1: NULL) and frequencies (None: NULL or not finite).
    pub(super) fn get(&self, r: usize) -> Vector {
        (
            self.gammas
                .iter()
                .map(|g| if g.is_null(r) { -1 } else { g.value(r) })
                .collect(),
            self.tfs
                .iter()
                .map(|t| {
                    t.as_ref()
                        .filter(|t| t.is_valid(r))
                        .map(|t| t.value(r))
                        .filter(|f| f.is_finite())
                })
                .collect(),
        )
    }
}
