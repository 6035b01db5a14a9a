//! The engine session: one place that builds a DataFusion [`SessionContext`] the Tessera way.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;
use url::Url;

use crate::cluster::ClusterCounters;
use crate::error::Result;
use crate::storage::Storage;

/// How an [`Engine`] is sized. Defaults suit a laptop: all cores, no memory limit.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// The process's memory budget: joins, sorts and aggregations spill to disk, and identity
    /// resolution holds its own structures, within [`pool_size`] of it (the rest is for what
    /// the process holds outside DataFusion's memory pool). `None` means no limit.
    pub memory_limit: Option<usize>,
    /// Where spill files go; `tessera-spill` in the system temp folder when `None`. Each
    /// process spills into its own folder there, removed when it ends, and removed by the
    /// next engine that starts when the process was killed (the folder is locked while its
    /// process lives): spilled identity records do not outlive their run.
    pub spill_dir: Option<PathBuf>,
    /// Parallelism of plans; the number of cores when `None`.
    pub target_partitions: Option<usize>,
    /// Rows per Arrow batch; DataFusion's default (8192) when `None`.
    pub batch_size: Option<usize>,
    /// The Ballista scheduler queries run on (`[engine] cluster`); this process alone when
    /// `None`. See [`crate::cluster`].
    pub cluster: Option<crate::cluster::ClusterAddress>,
    /// How long a part of a query shipped to the cluster may take; no limit when `None`. A part
    /// that takes longer fails its job (its table stays at its last version) instead of
    /// holding the run: Ballista 55 can leave a job waiting for ever after losing an executor.
    pub cluster_timeout: Option<std::time::Duration>,
    /// On a cluster, a folder every process of it can read and write, where intermediate
    /// tables the executors must read are written (identity's matching keys); they stay in
    /// this process's memory, and the queries over them run here, when `None`. See
    /// [`crate::scratch`].
    pub cluster_scratch: Option<url::Url>,
}

/// A DataFusion session with Tessera's functions, object stores and resource limits.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    storage: Arc<Storage>,
    _spill: Arc<SpillDir>,
    rejects: Arc<crate::lenient_csv::RejectLog>,
    cluster: Option<(crate::cluster::ClusterAddress, Arc<ClusterCounters>)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("session_id", &self.ctx.session_id())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`]; see [`Engine::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct EngineBuilder {
    options: EngineOptions,
    storage: Option<Storage>,
}

impl EngineBuilder {
    /// Sets the sizing options.
    pub fn with_options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the storage (object store options and credentials).
    pub fn with_storage(mut self, storage: Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Builds the session.
    pub fn build(self) -> Result<Engine> {
        crate::delta::register_log_stores();
        let storage = Arc::new(self.storage.unwrap_or_default());
        let mut runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(StorageRegistry(storage.clone())));
        if let Some(limit) = self.options.memory_limit {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(pool_size(limit))));
            release_freed_memory();
        }
        let root = self
            .options
            .spill_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("tessera-spill"));
        let spill = Arc::new(SpillDir::create(&root).map_err(|source| crate::Error::Io {
            path: root.clone(),
            source,
        })?);
        runtime = runtime.with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![spill.path.clone()])),
        );
        let runtime = runtime.build_arc()?;

        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(true)
            // delta-rs works around a panic of hash-join IN-list pushdown on dictionary keys
            // (partition columns) by turning it off; so do we, for the same plans.
            .set_usize("datafusion.optimizer.hash_join_inlist_pushdown_max_size", 0)
            .set_usize(
                "datafusion.optimizer.hash_join_inlist_pushdown_max_distinct_values",
                0,
            );
        if let Some(n) = self.options.target_partitions {
            config = config.with_target_partitions(n.max(1));
        }
        if let Some(n) = self.options.batch_size {
            config = config.with_batch_size(n.max(1));
        }
        let mut state = SessionStateBuilder::new();
        let cluster = match &self.options.cluster {
            // Delta writes plan custom nodes (metrics, validation) that need delta-rs' planner;
            // it hands every other node to DataFusion's default planner.
            None => {
                state = state
                    .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new());
                None
            }
            // On a cluster, the planner ships what the cluster can run and plans the rest
            // (Delta writes included) here.
            Some(address) => {
                use ballista_core::extension::SessionConfigExt;
                // Ballista 55's adaptive planner (on by default) loses results: a count(*)
                // over a cross join with an `order by … limit 1` side came back with no row
                // at all, not even 0 (the demo's churn and CLV scores were written empty, the
                // run green). Its static planner returns what a local run does. Off until
                // fixed upstream; tests/cluster.rs compares every table with a local run.
                config = config
                    .upgrade_for_ballista()
                    .set_bool("ballista.planner.adaptive.enabled", false)
                    // Strings are plain on a cluster, not views (Arrow IPC writes a view
                    // column's shared buffers whole with every batch). This covers Parquet
                    // files without an Arrow schema; sources, Delta snapshots and shipped
                    // results are made plain where they are planned (`scratch::plain_schema`,
                    // `cluster::plain_output`), as a file's own Arrow schema wins over it.
                    .set_bool(
                        "datafusion.execution.parquet.schema_force_view_types",
                        false,
                    )
                    .with_extension(Arc::new(crate::cluster::OnCluster {
                        address: address.clone(),
                        timeout: self.options.cluster_timeout,
                        scratch: self.options.cluster_scratch.clone(),
                    }));
                let counters = Arc::new(ClusterCounters::default());
                state = state
                    .with_query_planner(Arc::new(crate::cluster::ClusterPlanner::new(
                        address,
                        counters.clone(),
                        self.options.cluster_timeout,
                    )))
                    .with_optimizer_rules(
                        ballista_core::optimizer::ballista_default_optimizer_rules(),
                    );
                Some((address.clone(), counters))
            }
        };
        let state = state
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        tessera_udfs::register_all(&mut ctx)?;
        Ok(Engine {
            ctx,
            storage,
            _spill: spill,
            rejects: Arc::default(),
            cluster,
        })
    }
}

impl Engine {
    /// A builder for an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// An engine with default options and no storage credentials beyond the environment's.
    pub fn new() -> Result<Self> {
        Self::builder().build()
    }

    /// The DataFusion session, for running SQL or building DataFrames.
    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    /// The rows CSV sources read row by row left out, by source (see [`crate::lenient_csv`]).
    pub fn reject_log(&self) -> &Arc<crate::lenient_csv::RejectLog> {
        &self.rejects
    }

    /// The cluster this engine ships queries to, with what it shipped so far; `None` on one
    /// machine.
    pub fn cluster(&self) -> Option<(&crate::cluster::ClusterAddress, &ClusterCounters)> {
        self.cluster.as_ref().map(|(a, c)| (a, c.as_ref()))
    }

    /// The engine's storage.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// The object store holding `url`, built on first use.
    pub fn store_for(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.storage.store_for(url)
    }

    /// Deletes every object under the folder `url` (scratch areas); returns how many.
    pub async fn remove_all(&self, url: &Url) -> Result<usize> {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let store = self.store_for(url)?;
        let prefix = crate::storage::object_path(url);
        let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
        for meta in &objects {
            store.delete(&meta.location).await?;
        }
        if url.scheme() == "file"
            && let Ok(path) = url.to_file_path()
        {
            // Local folders stay behind once empty; remove them too.
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(objects.len())
    }
}

/// A process's own spill folder, `tessera-<pid>-<n>` under the spill root, holding a lock file
/// locked for as long as the process lives. Removed when the engine is dropped; a folder whose
/// lock is free (its process was killed) is removed by the next engine created on that root.
#[derive(Debug)]
struct SpillDir {
    path: PathBuf,
    _lock: std::fs::File,
}

impl SpillDir {
    fn create(root: &std::path::Path) -> std::io::Result<SpillDir> {
        std::fs::create_dir_all(root)?;
        Self::sweep(root);
        let unique = format!(
            "{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        // Locked before it takes the name the sweep looks at (a rename is atomic): a sweeping
        // process never sees a live folder unlocked.
        let staging = root.join(format!(".creating-{unique}"));
        std::fs::create_dir_all(&staging)?;
        let lock = std::fs::File::create(staging.join(".lock"))?;
        lock.lock()?;
        let path = root.join(format!("tessera-{unique}"));
        std::fs::rename(&staging, &path)?;
        Ok(SpillDir { path, _lock: lock })
    }

    /// Removes the folders of processes that are gone.
    fn sweep(root: &std::path::Path) {
        let Ok(entries) = std::fs::read_dir(root) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".creating-")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default().as_secs() > 600)
            {
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            if !name.starts_with("tessera-") || !path.is_dir() {
                continue;
            }
            let Ok(lock) = std::fs::File::open(path.join(".lock")) else {
                continue;
            };
            if lock.try_lock().is_ok() {
                tracing::info!(
                    "removing {}: spill files of a process that ended without cleaning up",
                    path.display()
                );
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Lets DataFusion find stores for any URL a query names (`select * from 's3://b/x.parquet'`).
#[derive(Debug)]
pub(crate) struct StorageRegistry(pub(crate) Arc<Storage>);

impl ObjectStoreRegistry for StorageRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.0.register(url, store)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.0
            .store_for(url)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

/// Under a memory limit, freed memory goes back to the system. glibc keeps it for reuse: large
/// buffers under its dynamic mmap threshold stay in the heap, which is trimmed only from its
/// top, and Arrow buffers are large and freed in any order; at 1M identity records the process
/// held ~1 GB of freed pages above what the pool had reserved, so `[engine] memory_limit`
/// could not bound the process. A fixed 1 MiB mmap threshold returns large buffers when freed
/// and two arenas bound per-thread fragmentation (peak RSS 2.9 → 2.3 GB at 1M records, before
/// the identity engine's own savings). It costs time (the kernel zeroes every fresh page: ~15%
/// at 100k records), so it is only set with a limit. `MALLOC_*` environment settings win.
#[allow(unsafe_code)]
fn release_freed_memory() {
    LIMITED.store(true, std::sync::atomic::Ordering::Relaxed);
    start_trimmer();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str, option: libc::c_int, value: libc::c_int| {
            if std::env::var_os(name).is_none() {
                // SAFETY: mallopt only changes allocator tuning and is thread-safe in glibc.
                unsafe { libc::mallopt(option, value) };
            }
        };
        set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 1 << 20);
        set("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 1 << 20);
        set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2);
    }
}

/// What a process holds outside DataFusion's memory pool, at least: its code and libraries,
/// each thread's stack and tables (a copy of libphonenumber's metadata per thread), the Arrow
/// batches in flight between operators, which no operator reserves.
const OUTSIDE_POOL_MIN: usize = 256 << 20;

/// The memory pool's size under `[engine] memory_limit = limit`: the pool is what operators
/// and the identity engine reserve (and spill past), but the process also holds memory no one
/// reserves. Measured at 9.9M identity records under 8 GiB with the pool granted the whole
/// limit (and freed pages returned, see [`start_trimmer`]): resident memory stood 110–250 MB
/// above what the pool had granted, with the pool full while blocking. A sixteenth of the
/// limit, and at least [`OUTSIDE_POOL_MIN`], is left for it; the pool gets the rest (and at
/// least half the limit).
pub fn pool_size(limit: usize) -> usize {
    let outside = (limit / 16).max(OUTSIDE_POOL_MIN);
    limit.saturating_sub(outside).max(limit / 2)
}

/// How often, under a memory limit, the allocator's free pages go back to the system.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Under a memory limit, a thread of its own hands the allocator's free pages back to the
/// system every [`TRIM_EVERY`]: inside a long stage (a blocking join at 10M records runs for
/// minutes) glibc's arenas keep what is freed in their middle, and the process grew to 2–3
/// GB above what it had allocated (measured at 9.9M identity records: resident 8.9 GB for 6.0
/// GB allocated while numbering the records, 7.1 GB for 5.1 GB while blocking). Trimming at
/// stage boundaries alone gave back 1.5 GB at one of them, too late for the peak inside.
fn start_trimmer() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("tessera-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_EVERY);
                    return_freed_memory();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("could not start the thread that returns freed memory: {e}");
        }
    });
}

/// The process's resident memory (Linux; `None` elsewhere), for the debug log of long jobs.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Whether a session of this process runs under a memory limit.
static LIMITED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Under a memory limit, hands the pages the allocator keeps free back to the system. Called
/// between the stages of a long job: a stage's Arrow buffers are freed in any order, and glibc
/// trims its heaps only from the top, so the freed middle stays resident (at 1M identity
/// records, ~320 MB after blocking, a third of a 1 GiB limit, on top of what the pool grants
/// the next stage). `malloc_trim(0)` returns every free page of every arena; it takes
/// milliseconds. Without a limit it does nothing (the pages are reused faster than fetched).
#[allow(unsafe_code)]
pub fn return_freed_memory() {
    if !LIMITED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory and is thread-safe in glibc.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool leaves the process a sixteenth of a large limit, at least 256 MiB of a small
    /// one, and never takes less than half.
    #[test]
    fn the_pool_leaves_room_for_what_no_operator_reserves() {
        const MIB: usize = 1 << 20;
        assert_eq!(pool_size(8192 * MIB), 7680 * MIB);
        assert_eq!(pool_size(1024 * MIB), 768 * MIB);
        assert_eq!(pool_size(64 * MIB), 32 * MIB);
        assert_eq!(pool_size(1), 0);
        for limit in [1, 100 * MIB, 300 * MIB, 4096 * MIB, 1 << 40] {
            let pool = pool_size(limit);
            assert!(pool <= limit && pool >= limit / 2, "{limit}: {pool}");
        }
    }

    fn spill_folders(root: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn spill_files_of_a_killed_process_are_removed_by_the_next_engine() {
        let root = tempfile::tempdir().unwrap();
        // What a killed process leaves: its folder, spill files, an unlocked lock file.
        let dead = root.path().join("tessera-4242-1");
        std::fs::create_dir_all(dead.join("datafusion-x")).unwrap();
        std::fs::write(dead.join("datafusion-x/spill.arrow"), b"person rows").unwrap();
        std::fs::write(dead.join(".lock"), b"").unwrap();
        let options = EngineOptions {
            spill_dir: Some(root.path().to_path_buf()),
            ..EngineOptions::default()
        };
        let first = Engine::builder()
            .with_options(options.clone())
            .build()
            .unwrap();
        let live = spill_folders(root.path());
        assert_eq!(live.len(), 1, "{live:?}");
        assert_ne!(live[0], "tessera-4242-1");
        // A live engine's folder is locked: another engine leaves it alone.
        let second = Engine::builder().with_options(options).build().unwrap();
        assert_eq!(spill_folders(root.path()).len(), 2);
        drop(first);
        drop(second);
        assert!(spill_folders(root.path()).is_empty());
    }
}
