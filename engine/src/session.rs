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

use crate::error::Result;
use crate::storage::Storage;

/// How an [`Engine`] is sized. Defaults suit a laptop: all cores, no memory limit.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Bytes the engine may hold for joins, sorts and aggregations before spilling to disk.
    /// `None` means no limit.
    pub memory_limit: Option<usize>,
    /// Where spill files go; the system temp folder when `None`.
    pub spill_dir: Option<PathBuf>,
    /// Parallelism of plans; the number of cores when `None`.
    pub target_partitions: Option<usize>,
    /// Rows per Arrow batch; DataFusion's default (8192) when `None`.
    pub batch_size: Option<usize>,
}

/// A DataFusion session with Tessera's functions, object stores and resource limits.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    storage: Arc<Storage>,
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
        let storage = Arc::new(self.storage.unwrap_or_default());
        let mut runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(StorageRegistry(storage.clone())));
        if let Some(limit) = self.options.memory_limit {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
            release_freed_memory();
        }
        if let Some(dir) = &self.options.spill_dir {
            std::fs::create_dir_all(dir).map_err(|source| crate::Error::Io {
                path: dir.clone(),
                source,
            })?;
            runtime = runtime.with_disk_manager_builder(
                DiskManagerBuilder::default()
                    .with_mode(DiskManagerMode::Directories(vec![dir.clone()])),
            );
        }
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
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            // Delta writes plan custom nodes (metrics, validation) that need delta-rs' planner;
            // it hands every other node to DataFusion's default planner.
            .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        tessera_udfs::register_all(&mut ctx)?;
        Ok(Engine { ctx, storage })
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

/// Lets DataFusion find stores for any URL a query names (`select * from 's3://b/x.parquet'`).
#[derive(Debug)]
struct StorageRegistry(Arc<Storage>);

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
