//! Clustering past `[identity] max_union_find_links`: the connected components of the links
//! computed in SQL, on the cluster when there is one, by alternating large-star and
//! small-star rounds (Kiveris et al., "Connected Components in MapReduce and Beyond", 2014;
//! GraphFrames' algorithm), then the guarded union-find only where a guard can act.
//!
//! The links are written as a table of compact rows (two record numbers, the link's kind and
//! strength: 18 bytes) and never held by the coordinator as a list. What the coordinator
//! holds: a component per record (from the final stars), and for the components where a
//! guard could refuse a link (larger than `max_cluster_size`, two values of a unique
//! identifier, a never-match or contradicted pair inside — see
//! [`cluster::guarded_components`]) the union-find over their links, streamed in the order
//! the local clustering applies them. Every other component is a customer as it is, and each
//! of its records was first linked by the strongest link touching it (computed in SQL too).
//! The result is the local clustering's, to the last record: components never meet, so
//! applying each one's links in the global order gives the same customers, refusals and
//! first links.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::{
    Array, ArrayBuilder, Float64Array, Float64Builder, RecordBatch, UInt16Array, UInt16Builder,
    UInt32Array, UInt32Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use url::Url;

use super::cluster::{self, Clusterer, Clusters, Contradicted, Link, Uniques};
use super::{identity_err, sql};
use crate::error::Result;
use crate::scratch::Scratch;

/// Rounds of large-star and small-star before giving up (a path of 2^k records takes about
/// k; the paper's bound is O(log² n)).
const MAX_ROUNDS: usize = 64;

/// Rows per batch of the links table.
const BATCH: usize = 65_536;

/// Links as compact rows, built one at a time; their memory is reserved in the session's pool.
pub(super) struct LinkRows {
    batches: Vec<RecordBatch>,
    a: UInt32Builder,
    b: UInt32Builder,
    kind: UInt16Builder,
    strength: Float64Builder,
    rows: usize,
    reservation: MemoryReservation,
}

/// Bytes one link takes in the union-find: the link, and its copy while sorted.
pub(super) const UNION_FIND_LINK_BYTES: usize = 2 * size_of::<Link>();

/// Whether `links` links fit the union-find under the session's memory limit: at most half of
/// what the pool has left (the rest is for the pass's other structures and the queries).
pub(super) fn union_find_fits(pool: &dyn MemoryPool, links: usize) -> bool {
    match pool.memory_limit() {
        MemoryLimit::Finite(limit) => {
            links.saturating_mul(UNION_FIND_LINK_BYTES) <= limit.saturating_sub(pool.reserved()) / 2
        }
        MemoryLimit::Infinite | MemoryLimit::Unknown => true,
    }
}

impl LinkRows {
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::UInt32, false),
            Field::new("b", DataType::UInt32, false),
            Field::new("kind", DataType::UInt16, false),
            Field::new("strength", DataType::Float64, false),
        ]))
    }

    /// No links yet, reserving their memory in `pool`.
    pub(super) fn new(pool: &Arc<dyn MemoryPool>) -> LinkRows {
        LinkRows {
            batches: Vec::new(),
            a: UInt32Builder::with_capacity(BATCH),
            b: UInt32Builder::with_capacity(BATCH),
            kind: UInt16Builder::with_capacity(BATCH),
            strength: Float64Builder::with_capacity(BATCH),
            rows: 0,
            reservation: MemoryConsumer::new("IdentityLinks").register(pool),
        }
    }

    /// Adds a link; fails when the memory limit cannot hold another batch of them.
    pub(super) fn push(&mut self, link: &Link) -> Result<()> {
        self.a.append_value(link.a);
        self.b.append_value(link.b);
        self.kind.append_value(link.kind);
        self.strength.append_value(link.strength);
        self.rows += 1;
        if self.a.len() == BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.a.is_empty() {
            return Ok(());
        }
        let batch = RecordBatch::try_new(
            Self::schema(),
            vec![
                Arc::new(self.a.finish()),
                Arc::new(self.b.finish()),
                Arc::new(self.kind.finish()),
                Arc::new(self.strength.finish()),
            ],
        )
        .expect("the links' columns match their schema");
        self.reservation
            .try_grow(batch.get_array_memory_size())
            .map_err(|e| {
                identity_err(format!(
                    "holding {} links for the connected components: {e}; raise \
                     `[engine] memory_limit`",
                    self.rows
                ))
            })?;
        self.batches.push(batch);
        Ok(())
    }

    /// Links added.
    pub(super) fn len(&self) -> usize {
        self.rows
    }
}

/// The clustering of `n` records by `links`, as [`cluster::cluster`] makes it, with the
/// components computed in SQL; also returns the rounds of large-star and small-star taken.
pub(super) async fn cluster_in_sql(
    ctx: &SessionContext,
    n: usize,
    mut links: LinkRows,
    unique: Uniques,
    never: &[(u32, u32)],
    contradicted: Contradicted<'_>,
    max_size: usize,
) -> Result<(Clusters, usize)> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let name = format!("components-{}", RUNS.fetch_add(1, Ordering::Relaxed));
    // On a cluster the tables go to the resolution's scratch folder, where the executors read
    // them; on one machine to a folder in the engine's spill directory.
    let (scratch, _local) = match ctx.state().config().get_extension::<Scratch>() {
        Some(scratch) => (scratch.within(&name)?, None),
        None => {
            let probe = ctx
                .runtime_env()
                .disk_manager
                .create_tmp_file("connected components")?;
            let parent = probe
                .path()
                .and_then(std::path::Path::parent)
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(std::env::temp_dir);
            let dir = LocalDir(parent.join(format!("tessera-{name}-{}", std::process::id())));
            std::fs::create_dir_all(&dir.0).map_err(|e| {
                identity_err(format!(
                    "connected components: creating {}: {e}",
                    dir.0.display()
                ))
            })?;
            let url = Url::from_directory_path(&dir.0).map_err(|()| {
                identity_err(format!(
                    "connected components: {} is not a folder URL",
                    dir.0.display()
                ))
            })?;
            (Scratch::create(ctx, &url, &name).await?, Some(dir))
        }
    };
    links.flush()?;
    let resolved = Components {
        ctx,
        scratch: &scratch,
    }
    .cluster(n, links, unique, never, contradicted, max_size)
    .await;
    if let Err(e) = scratch.remove(ctx).await {
        tracing::warn!("could not remove the connected components' tables: {e}");
    }
    resolved
}

/// A local folder removed when dropped.
struct LocalDir(std::path::PathBuf);

impl Drop for LocalDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Components<'a> {
    ctx: &'a SessionContext,
    scratch: &'a Scratch,
}

impl Components<'_> {
    async fn cluster(
        &self,
        n: usize,
        links: LinkRows,
        unique: Uniques,
        never: &[(u32, u32)],
        contradicted: Contradicted<'_>,
        max_size: usize,
    ) -> Result<(Clusters, usize)> {
        let files = self.ctx.copied_config().target_partitions().max(1);
        let table = self
            .scratch
            .table(self.ctx, "links", &links.batches, LinkRows::schema(), files)
            .await?;
        drop(links);
        self.register(sql::CC_LINKS, table)?;
        let (component, rounds) = self.components(n).await?;
        let risky =
            cluster::guarded_components(&component, &unique, never, contradicted.pairs, max_size);

        // The guarded union-find over the links of the components a guard may act in, in the
        // local clustering's order.
        let mut clusterer = Clusterer::new(n, unique, never, contradicted, max_size);
        let in_risky: Vec<u32> = (0..n as u32)
            .filter(|&r| risky[component[r as usize] as usize])
            .collect();
        tracing::debug!(
            rounds,
            records_guarded = in_risky.len(),
            "identity: connected components settled; union-find over the guarded ones"
        );
        if !in_risky.is_empty() {
            let batch = RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("r", DataType::UInt32, false)])),
                vec![Arc::new(UInt32Array::from(in_risky))],
            )?;
            let schema = batch.schema();
            let table = self
                .scratch
                .table(self.ctx, "guarded", &[batch], schema, files)
                .await?;
            self.register(sql::CC_GUARDED, table)?;
            let what = "ordering the guarded components' links";
            let df = self.sql(sql::GUARDED_LINKS, what).await?;
            let failed =
                |e: datafusion::error::DataFusionError| identity_err(format!("{what}: {e}"));
            let mut stream = df.execute_stream().await.map_err(failed)?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(failed)?;
                let (a, b) = (u32s(&batch, "a")?, u32s(&batch, "b")?);
                let kind = cast(column(&batch, "kind")?, &DataType::UInt16)?;
                let kind = kind.as_any().downcast_ref::<UInt16Array>().expect("u16");
                let strength = cast(column(&batch, "strength")?, &DataType::Float64)?;
                let strength = strength
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("f64");
                for i in 0..batch.num_rows() {
                    clusterer.apply(Link {
                        a: a.value(i),
                        b: b.value(i),
                        kind: kind.value(i),
                        strength: strength.value(i),
                    });
                }
            }
        }
        let mut clusters = clusterer.finish();

        // Everywhere else: the component as it is, each record first linked by the strongest
        // link touching it.
        let firsts = self
            .collect(sql::FIRST_LINKS, "finding each record's first link")
            .await?;
        for batch in &firsts {
            let r = u32s(batch, "r")?;
            let kind = cast(column(batch, "kind")?, &DataType::UInt16)?;
            let kind = kind.as_any().downcast_ref::<UInt16Array>().expect("u16");
            for i in 0..batch.num_rows() {
                let record = r.value(i) as usize;
                if !risky[component[record] as usize] {
                    clusters.linked_by[record] = Some(kind.value(i));
                }
            }
        }
        for (r, &c) in component.iter().enumerate() {
            if !risky[c as usize] {
                clusters.component[r] = c;
            }
        }
        for table in [sql::CC_LINKS, sql::CC_EDGES, sql::CC_GUARDED] {
            self.ctx.deregister_table(table)?;
        }
        Ok((clusters, rounds))
    }

    /// The smallest record of each record's component, and the rounds taken.
    async fn components(&self, n: usize) -> Result<(Vec<u32>, usize)> {
        // Undirected edges as (larger, smaller), once each.
        let mut edges = self
            .write("edges-0", sql::EDGES, "the links' edges")
            .await?;
        let mut rounds = 0;
        loop {
            crate::failpoint::check("identity:connected-components").map_err(identity_err)?;
            self.register(sql::CC_EDGES, edges.1.clone())?;
            if self.is_stars().await? {
                break;
            }
            if rounds == MAX_ROUNDS {
                return Err(identity_err(format!(
                    "connected components: not settled after {MAX_ROUNDS} rounds of \
                     large-star and small-star"
                )));
            }
            rounds += 1;
            // Large-star: every neighbour larger than a record links to the smallest record
            // of its neighbourhood.
            let large = self
                .write(
                    &format!("edges-{rounds}-large"),
                    sql::LARGE_STAR,
                    "connected components (large-star)",
                )
                .await?;
            edges.0.remove(self.ctx).await?;
            self.register(sql::CC_EDGES, large.1.clone())?;
            // Small-star: a record and its smaller neighbours link to the smallest of them.
            let small = self
                .write(
                    &format!("edges-{rounds}-small"),
                    sql::SMALL_STAR,
                    "connected components (small-star)",
                )
                .await?;
            large.0.remove(self.ctx).await?;
            edges = small;
        }
        let stars = self
            .collect(
                &format!("select a, b from {}", sql::CC_EDGES),
                "reading the components",
            )
            .await?;
        edges.0.remove(self.ctx).await?;
        let mut component: Vec<u32> = (0..n as u32).collect();
        for batch in &stars {
            let (a, b) = (u32s(batch, "a")?, u32s(batch, "b")?);
            for i in 0..batch.num_rows() {
                component[a.value(i) as usize] = b.value(i);
            }
        }
        Ok((component, rounds))
    }

    /// Whether the edges are stars around their smallest record: no edge's smaller record is
    /// another edge's larger one, and no record has two smaller neighbours.
    async fn is_stars(&self) -> Result<bool> {
        let chained = self
            .count(sql::CHAINED, "connected components (chains)")
            .await?;
        if chained > 0 {
            return Ok(false);
        }
        let forked = self
            .count(sql::FORKED, "connected components (forks)")
            .await?;
        Ok(forked == 0)
    }

    async fn count(&self, sql: &str, what: &str) -> Result<u64> {
        let batches = self.collect(sql, what).await?;
        let value = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| b.column_by_name("n"))
            .and_then(|c| cast(c, &DataType::UInt64).ok())
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                    .map(|c| c.value(0))
            });
        value.ok_or_else(|| identity_err(format!("{what}: the count returned no row")))
    }

    /// Writes the query's rows as a table of its own folder; returns the folder and table.
    async fn write(
        &self,
        name: &str,
        sql: &str,
        what: &str,
    ) -> Result<(Scratch, Arc<dyn datafusion::catalog::TableProvider>)> {
        let df = self.sql(sql, what).await?;
        let streams = df
            .execute_stream_partitioned()
            .await
            .map_err(|e| identity_err(format!("{what}: {e}")))?;
        let folder = self.scratch.within(name)?;
        // Edges as nullable record numbers, whatever each query's plan says of them: a plan
        // over a table whose files disagree on nullability fails DataFusion's check.
        let edges = Arc::new(Schema::new(vec![
            Field::new("a", DataType::UInt32, true),
            Field::new("b", DataType::UInt32, true),
        ]));
        let table = folder
            .table_of_streams_as(self.ctx, "t", streams, edges)
            .await
            .map_err(|e| identity_err(format!("{what}: {e}")))?;
        Ok((folder, table))
    }

    async fn sql(&self, sql: &str, what: &str) -> Result<datafusion::dataframe::DataFrame> {
        self.ctx
            .sql(sql)
            .await
            .map_err(|e| identity_err(format!("{what}: {e}")))
    }

    async fn collect(&self, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
        self.sql(sql, what)
            .await?
            .collect()
            .await
            .map_err(|e| identity_err(format!("{what}: {e}")))
    }

    fn register(
        &self,
        name: &str,
        table: Arc<dyn datafusion::catalog::TableProvider>,
    ) -> Result<()> {
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, table)?;
        Ok(())
    }
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b Arc<dyn Array>> {
    batch
        .column_by_name(name)
        .ok_or_else(|| identity_err(format!("connected components: no column {name}")))
}

fn u32s(batch: &RecordBatch, name: &str) -> Result<UInt32Array> {
    let c = cast(column(batch, name)?, &DataType::UInt32)?;
    Ok(c.as_any()
        .downcast_ref::<UInt32Array>()
        .expect("u32")
        .clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn link(a: u32, b: u32, kind: u16, strength: f64) -> Link {
        Link {
            a,
            b,
            kind,
            strength,
        }
    }

    fn rows(ctx: &SessionContext, links: &[Link]) -> LinkRows {
        let mut rows = LinkRows::new(&ctx.runtime_env().memory_pool);
        for l in links {
            rows.push(l).unwrap();
        }
        rows
    }

    /// The SQL path's clusters, with the rounds taken, and the union-find's.
    async fn both(
        n: usize,
        links: &[Link],
        unique: &Uniques,
        never: &[(u32, u32)],
        contradicted: &[(u32, u32)],
        max_size: usize,
    ) -> (Clusters, usize, Clusters) {
        let ctx = SessionContext::new();
        let contradicted = Contradicted {
            pairs: contradicted,
            refuses: 1,
        };
        let (sql, rounds) = cluster_in_sql(
            &ctx,
            n,
            rows(&ctx, links),
            unique.clone(),
            never,
            contradicted,
            max_size,
        )
        .await
        .unwrap();
        let local = cluster::cluster(
            n,
            links.to_vec(),
            unique.clone(),
            never,
            contradicted,
            max_size,
        );
        (sql, rounds, local)
    }

    fn assert_same(sql: &Clusters, local: &Clusters) {
        assert_eq!(sql.component, local.component);
        assert_eq!(sql.linked_by, local.linked_by);
        let refused = |c: &Clusters| -> Vec<(u32, u32, u16, u64, cluster::Refusal)> {
            c.refused
                .iter()
                .map(|(l, r)| (l.a, l.b, l.kind, l.strength.to_bits(), *r))
                .collect()
        };
        assert_eq!(refused(sql), refused(local));
    }

    #[tokio::test]
    async fn a_long_chain_and_a_star_settle_into_their_smallest_records() {
        // A path of 300 records in shuffled order (the worst case for rounds), a star, a
        // pair, and records no link touches.
        let mut order: Vec<u32> = (0..300).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut links: Vec<Link> = order
            .windows(2)
            .map(|w| link(w[0], w[1], 1, 0.99))
            .collect();
        links.extend((401..450).map(|r| link(r, 400, 0, 1.0)));
        links.push(link(500, 499, 1, 0.97));
        let n = 510;
        let (sql, rounds, local) = both(n, &links, &Uniques::new(n, 0), &[], &[], 1_000).await;
        assert_same(&sql, &local);
        assert!(sql.component[..300].iter().all(|&c| c == 0));
        assert!(sql.component[400..450].iter().all(|&c| c == 400));
        assert_eq!((sql.component[499], sql.component[500]), (499, 499));
        assert_eq!(sql.component[505], 505);
        assert!((2..20).contains(&rounds), "{rounds} rounds");
    }

    #[tokio::test]
    async fn guards_decide_exactly_as_the_union_find_on_random_graphs() {
        use cluster::Refusal;
        // Each guard alone, then all together, over a few seeds.
        for (guard, seed) in (0..5).flat_map(|g| (0..3u64).map(move |s| (g, s))) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed * 10 + guard);
            let n = 400;
            // Mostly small clusters, some chained into large ones; repeated strengths so that
            // ties are broken by kind and records; self-links and duplicates.
            let mut links = Vec::new();
            for _ in 0..600 {
                let a = rng.random_range(0..n as u32);
                let b = if rng.random_bool(0.7) {
                    (a + rng.random_range(0..4)).min(n as u32 - 1)
                } else {
                    rng.random_range(0..n as u32)
                };
                let strength = [0.95, 0.97, 0.99, 1.0][rng.random_range(0..4)];
                links.push(link(a, b, rng.random_range(0..3), strength));
            }
            links.push(links[3]);
            let all = guard == 4;
            let mut unique = Uniques::new(n, 2);
            if guard == 0 || all {
                for r in 0..n {
                    if rng.random_bool(0.1) {
                        unique.set(r, rng.random_range(0..2), rng.random_range(0..3));
                    }
                }
            }
            let pairs = |rng: &mut rand_chacha::ChaCha8Rng, k| -> Vec<(u32, u32)> {
                (0..k)
                    .map(|_| {
                        let a = rng.random_range(0..n as u32);
                        (a, (a + rng.random_range(1..6)).min(n as u32 - 1))
                    })
                    .filter(|(a, b)| a != b)
                    .collect()
            };
            let never = if guard == 1 || all {
                pairs(&mut rng, 10)
            } else {
                Vec::new()
            };
            let contradicted = if guard == 2 || all {
                pairs(&mut rng, 20)
            } else {
                Vec::new()
            };
            let max_size = if guard == 3 || all { 8 } else { 1_000 };
            let (sql, _, local) = both(n, &links, &unique, &never, &contradicted, max_size).await;
            assert_same(&sql, &local);
            let expected = match guard {
                0 => Some(Refusal::UniqueConflict(0)),
                1 => Some(Refusal::NeverMatch),
                2 => Some(Refusal::Contradicted),
                3 => Some(Refusal::SizeCap),
                _ => None,
            };
            let reasons: Vec<Refusal> = local.refused.iter().map(|r| r.1).collect();
            match expected {
                // (Either unique identifier.)
                Some(Refusal::UniqueConflict(_)) => assert!(
                    reasons
                        .iter()
                        .any(|r| matches!(r, Refusal::UniqueConflict(_))),
                    "guard {guard} seed {seed}: {reasons:?}"
                ),
                Some(reason) => assert!(
                    reasons.contains(&reason),
                    "guard {guard} seed {seed}: {reasons:?}"
                ),
                None => assert!(reasons.len() > 3, "{reasons:?}"),
            }
        }
    }

    #[test]
    fn the_union_find_takes_at_most_half_of_what_the_memory_limit_leaves() {
        use datafusion::execution::memory_pool::{GreedyMemoryPool, UnboundedMemoryPool};
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let half = (1 << 19) / UNION_FIND_LINK_BYTES;
        assert!(union_find_fits(pool.as_ref(), half));
        assert!(!union_find_fits(pool.as_ref(), half + 1));
        // What others hold counts.
        let held = MemoryConsumer::new("other").register(&pool);
        held.grow((1 << 20) - 2 * UNION_FIND_LINK_BYTES);
        assert!(union_find_fits(pool.as_ref(), 1));
        assert!(!union_find_fits(pool.as_ref(), 2));
        let unbounded: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        assert!(union_find_fits(unbounded.as_ref(), usize::MAX / 2));
    }

    #[tokio::test]
    async fn links_past_the_memory_limit_fail_naming_the_setting() {
        use datafusion::execution::memory_pool::GreedyMemoryPool;
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(100_000));
        let mut rows = LinkRows::new(&pool);
        let err = (0..BATCH as u32)
            .map(|i| rows.push(&link(i, i + 1, 0, 1.0)))
            .find_map(|r| r.err())
            .expect("a batch of links does not fit 100 kB");
        assert!(err.to_string().contains("memory_limit"), "{err}");
    }

    #[tokio::test]
    async fn no_links_leave_every_record_alone() {
        let n = 5;
        let (sql, rounds, local) = both(n, &[], &Uniques::new(n, 0), &[], &[], 10).await;
        assert_same(&sql, &local);
        assert_eq!(rounds, 0);
        // Only self-links: no edge either.
        let (sql, _, local) =
            both(n, &[link(2, 2, 0, 1.0)], &Uniques::new(n, 0), &[], &[], 10).await;
        assert_same(&sql, &local);
    }
}
