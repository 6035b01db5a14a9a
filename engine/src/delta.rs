//! Delta Lake tables: opening (with time travel), reading through DataFusion, and writing query
//! results atomically.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::prelude::DataFrame;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::StreamExt;
use url::Url;

use crate::error::{Error, Result};
use crate::session::Engine;
use crate::storage::Storage;

/// Which version of a Delta table to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TableVersion {
    /// The latest committed version.
    #[default]
    Latest,
    /// A given version number.
    Version(u64),
    /// The latest version committed at or before a timestamp.
    Timestamp(DateTime<Utc>),
}

/// How a write treats the table's existing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Replace all rows (and the schema) in one commit.
    #[default]
    Overwrite,
    /// Add rows; the schema must match the table's.
    Append,
    /// Upsert on the keys given with [`DeltaWrite::with_merge_keys`]: rows whose keys exist
    /// are updated, others inserted (a new table is simply created).
    Merge,
    /// Make the table equal to the rows given, matched on the merge keys, in one merge: new
    /// keys inserted, rows whose values changed updated, keys no longer there deleted (a new
    /// table is simply created). With the change data feed on, readers see exactly those
    /// inserts, updates and deletes.
    Sync,
}

/// The result of a committed write.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The table version the write created.
    pub version: u64,
    /// Rows written, when delta-rs reported them.
    pub rows: Option<u64>,
}

/// delta-rs finds a table's log store by URL scheme. Tessera hands it the object store to use
/// (built by [`Storage`] with `object_store`'s own S3, GCS and Azure clients), so the default
/// log store serves every scheme: commits are conditional puts (`PutMode::Create`, S3's
/// `If-None-Match`), safe for concurrent writers — what delta-rs' `s3`, `gcs` and `azure`
/// features register too, without the AWS SDK chain they compile.
pub(crate) fn register_log_stores() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[derive(Debug)]
        struct ObjectStoreLogStores;
        impl deltalake::logstore::LogStoreFactory for ObjectStoreLogStores {
            fn with_options(
                &self,
                prefixed_store: deltalake::logstore::ObjectStoreRef,
                root_store: deltalake::logstore::ObjectStoreRef,
                location: &Url,
                options: &deltalake::logstore::StorageConfig,
            ) -> deltalake::DeltaResult<deltalake::logstore::LogStoreRef> {
                Ok(deltalake::logstore::default_logstore(
                    prefixed_store,
                    root_store,
                    location,
                    options,
                ))
            }
        }
        let factory = std::sync::Arc::new(ObjectStoreLogStores);
        for scheme in ["s3", "s3a", "gs", "az", "abfs", "abfss", "azure"] {
            let url = Url::parse(&format!("{scheme}://")).expect("a scheme URL");
            deltalake::logstore::logstore_factories().insert(url, factory.clone());
        }
    });
}

impl Engine {
    fn delta_builder(&self, url: &Url) -> Result<DeltaTableBuilder> {
        let store = self.store_for(url)?;
        Ok(DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| Error::delta(url, e))?
            .with_storage_backend(store, Storage::root_url(url))
            .with_storage_options(self.storage().options()))
    }

    /// The delta-rs log store for the table at `url`, on the engine's object store.
    pub fn delta_log_store(&self, url: &Url) -> Result<deltalake::logstore::LogStoreRef> {
        self.delta_builder(url)?
            .build_storage()
            .map_err(|e| Error::delta(url, e))
    }

    /// Opens the Delta table at `url`, at the requested version.
    pub async fn open_delta(&self, url: &Url, version: TableVersion) -> Result<DeltaTable> {
        // Checked first: delta-rs logs an ERROR for a missing local folder, and asking is cheap.
        if !self.has_delta_log(url).await? {
            return Err(Error::NoDeltaTable {
                url: url.to_string(),
            });
        }
        let mut table = self
            .delta_builder(url)?
            .build()
            .map_err(|e| Error::delta(url, e))?;
        let loaded = match &version {
            TableVersion::Latest => table.load().await,
            TableVersion::Version(v) => table.load_version(*v).await,
            TableVersion::Timestamp(ts) => table.load_with_datetime(*ts).await,
        };
        match loaded {
            Ok(()) => Ok(table),
            Err(DeltaTableError::NotATable(_)) => Err(Error::NoDeltaTable {
                url: url.to_string(),
            }),
            // A missing folder surfaces as a kernel "invalid location" error; any failure on a
            // location without commits means there is no table, whatever the store reports.
            Err(_) if !self.has_delta_log(url).await? => Err(Error::NoDeltaTable {
                url: url.to_string(),
            }),
            Err(e) if version != TableVersion::Latest => {
                let latest = match self.delta_builder(url)?.build() {
                    Ok(mut latest) => match latest.load().await {
                        Ok(()) => latest.version(),
                        Err(_) => None,
                    },
                    Err(_) => None,
                };
                let asked = match version {
                    TableVersion::Version(v) => format!("version {v}"),
                    TableVersion::Timestamp(ts) => format!("a version at or before {ts}"),
                    TableVersion::Latest => unreachable!(),
                };
                Err(Error::DeltaVersion {
                    url: url.to_string(),
                    message: match latest {
                        Some(latest) => format!(
                            "{asked} does not exist (versions 0 to {latest} may be read, \
                             unless older ones were vacuumed): {e}"
                        ),
                        None => format!("{asked} cannot be read: {e}"),
                    },
                })
            }
            Err(e) => Err(Error::delta(url, e)),
        }
    }

    /// True when `url` holds at least one object under `_delta_log/`.
    async fn has_delta_log(&self, url: &Url) -> Result<bool> {
        let store = self.store_for(url)?;
        let log = crate::storage::object_path(url).join("_delta_log");
        let mut listing = store.list(Some(&log));
        match listing.next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(object_store::Error::NotFound { .. })) => Ok(false),
            Some(Err(e)) => Err(Error::ObjectStore(e)),
        }
    }

    /// delta-rs requires a local table folder to exist before it writes the first commit.
    fn create_local_dir(&self, url: &Url) -> Result<()> {
        if url.scheme() == "file"
            && let Ok(path) = url.to_file_path()
        {
            std::fs::create_dir_all(&path).map_err(|source| Error::Io { path, source })?;
        }
        Ok(())
    }

    /// True when a Delta table exists at `url`.
    pub async fn delta_exists(&self, url: &Url) -> Result<bool> {
        match self.open_delta(url, TableVersion::Latest).await {
            Ok(_) => Ok(true),
            Err(Error::NoDeltaTable { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A DataFusion table provider reading `table` at its loaded version.
    ///
    /// On a cluster, a table whose snapshot its Parquet files alone describe (no deletion
    /// vectors, no column mapping, no partition columns) is read as those files, which
    /// Ballista ships to executors; delta-rs' own scan cannot be (delta-rs issue #4171), so
    /// other tables are read on the coordinator (said in the log).
    pub async fn delta_provider(&self, table: &DeltaTable) -> Result<Arc<dyn TableProvider>> {
        let url = table.table_url().clone();
        if self.cluster().is_some() {
            match files_of_snapshot(table) {
                Ok(Some(provider)) => return Ok(provider),
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!("{url} is read on the coordinator, not on the cluster: {reason}")
                }
            }
        }
        table
            .table_provider()
            .await
            .map_err(|e| Error::delta(&url, e.into()))
    }

    /// Writes the result of `df` as the Delta table at `url`. Nothing is visible to readers
    /// until the single commit at the end, so a failure leaves the previous version intact.
    pub fn write_delta(&self, df: DataFrame, url: Url) -> DeltaWrite {
        DeltaWrite {
            engine: self.clone(),
            df,
            url,
            mode: WriteMode::Overwrite,
            partition_columns: Vec::new(),
            merge_keys: Vec::new(),
            metadata: serde_json::Map::new(),
            change_data_feed: false,
            add_columns: false,
        }
    }

    /// Every commit of the Delta table at `url`, newest first: (version, commit info).
    pub async fn table_history(
        &self,
        url: &Url,
    ) -> Result<Vec<(u64, deltalake::kernel::CommitInfo)>> {
        let table = self.open_delta(url, TableVersion::Latest).await?;
        let latest = table.version().unwrap_or_default();
        let mut history = table.history(None);
        let mut out = Vec::new();
        while let Some(commit) = history.next().await {
            let commit = commit.map_err(|e| Error::delta(url, e))?;
            out.push((latest.saturating_sub(out.len() as u64), commit));
        }
        Ok(out)
    }

    /// The application metadata of the table's latest commit (what
    /// [`DeltaWrite::with_commit_metadata`] recorded), or `None` when there is no table.
    pub async fn last_commit_metadata(
        &self,
        url: &Url,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        let table = match self.open_delta(url, TableVersion::Latest).await {
            Ok(table) => table,
            Err(Error::NoDeltaTable { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut history = table.history(Some(1));
        match history.next().await {
            Some(Ok(commit)) => Ok(Some(commit.info.into_iter().collect())),
            Some(Err(e)) => Err(Error::delta(url, e)),
            None => Ok(None),
        }
    }
}

impl Engine {
    /// True when one of the table's latest `depth` commits recorded `key` = `value` in its
    /// application metadata (e.g. which run wrote it).
    pub async fn recent_commit_with(
        &self,
        url: &Url,
        key: &str,
        value: &str,
        depth: usize,
    ) -> Result<bool> {
        let table = match self.open_delta(url, TableVersion::Latest).await {
            Ok(table) => table,
            Err(Error::NoDeltaTable { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut history = table.history(Some(depth));
        while let Some(commit) = history.next().await {
            let commit = commit.map_err(|e| Error::delta(url, e))?;
            if commit.info.get(key).and_then(|v| v.as_str()) == Some(value) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What [`Engine::purge_history`] removed.
#[derive(Debug, Clone, Default)]
pub struct PurgeOutcome {
    /// Data and change-data files deleted (no longer part of the latest version).
    pub files_deleted: usize,
    /// Commit and checkpoint files deleted from `_delta_log`.
    pub log_files_deleted: usize,
}

impl Engine {
    /// Deletes the rows of the Delta table at `url` for which `predicate` holds (planned in the
    /// engine's session, so Tessera's SQL functions may appear in it), in one commit that
    /// rewrites only the files holding such rows. Returns the new version and the rows deleted.
    pub async fn delete_rows(
        &self,
        url: &Url,
        predicate: datafusion::prelude::Expr,
    ) -> Result<(u64, u64)> {
        let table = self.open_delta(url, TableVersion::Latest).await?;
        let session = Arc::new(self.ctx().state());
        let (table, metrics) = table
            .delete()
            .with_predicate(predicate)
            .with_session_state(session)
            .await
            .map_err(|e| Error::Write {
                target: url.to_string(),
                source: Box::new(e),
            })?;
        Ok((
            table.version().unwrap_or_default(),
            metrics.num_deleted_rows.unwrap_or_default() as u64,
        ))
    }

    /// Physically removes every trace of the table's past versions: the data and change-data
    /// files the latest version does not use (vacuum in full mode with no retention period,
    /// overriding the table's 7-day default), then the commits before a checkpoint written at
    /// the latest version (their file statistics and operation parameters may hold values
    /// that were deleted). Time travel before the latest version is no longer possible.
    pub async fn purge_history(&self, url: &Url) -> Result<PurgeOutcome> {
        let table = self.open_delta(url, TableVersion::Latest).await?;
        let fail = |e: DeltaTableError| Error::Write {
            target: url.to_string(),
            source: Box::new(e),
        };
        let (table, metrics) = table
            .vacuum()
            .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
            .with_retention_period(chrono::Duration::zero())
            .with_enforce_retention_duration(false)
            .await
            .map_err(fail)?;
        let version = table.version().unwrap_or_default();
        deltalake::protocol::checkpoints::create_checkpoint(&table, None)
            .await
            .map_err(fail)?;
        // Every commit before the checkpoint goes, whatever its age.
        let cutoff = Utc::now().timestamp_millis() + 60_000;
        let logs = deltalake::protocol::checkpoints::cleanup_expired_logs_for(
            version,
            table.log_store().as_ref(),
            cutoff,
            None,
        )
        .await
        .map_err(fail)?;
        Ok(PurgeOutcome {
            files_deleted: metrics.files_deleted.len(),
            log_files_deleted: logs,
        })
    }
}

/// A pending write of a query result into a Delta table; `.await` it to run.
#[must_use = "a DeltaWrite does nothing until awaited"]
#[derive(Debug)]
pub struct DeltaWrite {
    engine: Engine,
    df: DataFrame,
    url: Url,
    mode: WriteMode,
    partition_columns: Vec<String>,
    merge_keys: Vec<String>,
    metadata: serde_json::Map<String, serde_json::Value>,
    change_data_feed: bool,
    add_columns: bool,
}

impl DeltaWrite {
    /// An append may add columns the table does not have yet (its earlier rows read them as
    /// NULL) and leave out columns it has (NULL in the new rows): a log whose producer gained
    /// or lost a column keeps appending. Types of existing columns must still match.
    pub fn with_new_columns(mut self, on: bool) -> Self {
        self.add_columns = on;
        self
    }

    /// Turns on Delta's change data feed (`delta.enableChangeDataFeed`) when the table is
    /// created, so later merges record row-level inserts, updates and deletes.
    pub fn with_change_data_feed(mut self, on: bool) -> Self {
        self.change_data_feed = on;
        self
    }

    /// The unique key columns a [`WriteMode::Merge`] matches rows on.
    pub fn with_merge_keys(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.merge_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Overwrite (default) or append.
    pub fn with_mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Partitions the table's files by these columns (on creation or overwrite).
    pub fn with_partition_columns(
        mut self,
        columns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.partition_columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an entry to the commit's application metadata (e.g. the run id).
    pub fn with_commit_metadata(
        mut self,
        key: impl Into<String>,
        value: serde_json::Value,
    ) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }

    async fn run(self) -> Result<WriteOutcome> {
        let url = self.url.clone();
        let write_err = |e: Box<dyn std::error::Error + Send + Sync>| Error::Write {
            target: url.to_string(),
            source: e,
        };
        let table = match self.engine.open_delta(&url, TableVersion::Latest).await {
            Ok(table) => table,
            Err(Error::NoDeltaTable { .. }) => {
                self.engine.create_local_dir(&url)?;
                self.engine
                    .delta_builder(&url)?
                    .build()
                    .map_err(|e| Error::delta(&url, e))?
            }
            Err(e) => return Err(e),
        };
        let session = Arc::new(self.engine.ctx().state());
        if matches!(self.mode, WriteMode::Merge | WriteMode::Sync) && table.version().is_some() {
            return self.merge(table, session).await;
        }
        let plan = self.df.logical_plan().clone();
        let creating = table.version().is_none();
        let mut builder = table
            .write(Vec::new())
            .with_input_plan(plan)
            .with_session_state(session)
            .with_save_mode(match self.mode {
                WriteMode::Overwrite | WriteMode::Merge | WriteMode::Sync => SaveMode::Overwrite,
                WriteMode::Append => SaveMode::Append,
            });
        if self.change_data_feed && creating {
            builder = builder.with_configuration(std::collections::HashMap::from([(
                "delta.enableChangeDataFeed".to_string(),
                Some("true".to_string()),
            )]));
        }
        if self.mode != WriteMode::Append {
            // An overwrite replaces schema and partitioning with the ones asked for (none
            // when none are given), as `CREATE OR REPLACE TABLE` would.
            builder = builder
                .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
                .with_partition_columns(self.partition_columns.clone());
        } else {
            if !self.partition_columns.is_empty() {
                builder = builder.with_partition_columns(self.partition_columns.clone());
            }
            if self.add_columns && !creating {
                builder = builder.with_schema_mode(deltalake::operations::write::SchemaMode::Merge);
            }
        }
        if !self.metadata.is_empty() {
            builder = builder.with_commit_properties(
                deltalake::kernel::transaction::CommitProperties::default()
                    .with_metadata(self.metadata),
            );
        }
        let table = builder.await.map_err(|e| write_err(Box::new(e)))?;
        let version = table.version().unwrap_or_default();
        let rows = last_commit_rows(&table).await;
        Ok(WriteOutcome { version, rows })
    }
}

impl DeltaWrite {
    async fn merge(
        self,
        table: DeltaTable,
        session: Arc<datafusion::execution::SessionState>,
    ) -> Result<WriteOutcome> {
        let url = self.url.clone();
        let write_err = |e: Box<dyn std::error::Error + Send + Sync>| Error::Write {
            target: url.to_string(),
            source: e,
        };
        if self.merge_keys.is_empty() {
            return Err(write_err("a merge needs at least one key column".into()));
        }
        let quote = crate::sql::ident;
        let predicate = self
            .merge_keys
            .iter()
            .map(|k| format!("target.{k} = source.{k}", k = quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let columns: Vec<String> = self
            .df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let sync = self.mode == WriteMode::Sync;
        // Kept for a commit of the metadata alone when the merge changes nothing (below).
        let (before, empty) = (table.version(), self.df.clone().limit(0, Some(0))?);
        let metadata = self.metadata.clone();
        // A sync updates only rows whose values changed, so the change feed holds no
        // no-op updates.
        let changed = columns
            .iter()
            .filter(|c| !self.merge_keys.contains(c))
            .map(|c| format!("(target.{c} IS DISTINCT FROM source.{c})", c = quote(c)))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut builder = table
            .merge(self.df, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_session_state(session.clone())
            .when_matched_update(|mut update| {
                if sync {
                    update = update.predicate(if changed.is_empty() {
                        "false".to_string()
                    } else {
                        changed.clone()
                    });
                }
                for c in &columns {
                    update = update.update(quote(c), format!("source.{}", quote(c)));
                }
                update
            })
            .and_then(|b| {
                b.when_not_matched_insert(|mut insert| {
                    for c in &columns {
                        insert = insert.set(quote(c), format!("source.{}", quote(c)));
                    }
                    insert
                })
            })
            .map_err(|e| write_err(Box::new(e)))?;
        if sync {
            builder = builder
                .when_not_matched_by_source_delete(|delete| delete)
                .map_err(|e| write_err(Box::new(e)))?;
        }
        if !self.metadata.is_empty() {
            builder = builder.with_commit_properties(
                deltalake::kernel::transaction::CommitProperties::default()
                    .with_metadata(self.metadata),
            );
        }
        let (mut table, metrics) = builder.await.map_err(|e| write_err(Box::new(e)))?;
        if table.version() == before && !metadata.is_empty() {
            // A merge that changes nothing makes no commit, so its metadata (a job's
            // fingerprint) would not be recorded and every later run would take the job for
            // changed, run it again and plan everything downstream of it. An empty append is
            // a commit of the metadata alone. Best effort: without it the job runs again.
            let recorded = table
                .clone()
                .write(Vec::new())
                .with_input_plan(empty.logical_plan().clone())
                .with_session_state(session)
                .with_save_mode(SaveMode::Append)
                .with_commit_properties(
                    deltalake::kernel::transaction::CommitProperties::default()
                        .with_metadata(metadata),
                )
                .await;
            match recorded {
                Ok(written) => table = written,
                Err(e) => tracing::warn!(
                    "{url}: the merge changed nothing and its metadata could not be recorded: {e}"
                ),
            }
        }
        Ok(WriteOutcome {
            version: table.version().unwrap_or_default(),
            rows: Some(
                (metrics.num_target_rows_inserted
                    + metrics.num_target_rows_updated
                    + metrics.num_target_rows_deleted) as u64,
            ),
        })
    }
}

async fn last_commit_rows(table: &DeltaTable) -> Option<u64> {
    let mut history = table.history(Some(1));
    let commit = history.next().await?.ok()?;
    let metrics = commit.info.get("operationMetrics")?;
    metrics
        .get("num_added_rows")
        .or_else(|| metrics.get("numOutputRows"))
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
}

impl IntoFuture for DeltaWrite {
    type Output = Result<WriteOutcome>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// `table`'s snapshot as a listing of its Parquet files with the table's schema, for the
/// cluster; `Ok(None)` for a table without files (read as is), `Err` with the reason when the
/// files alone do not describe the table.
fn files_of_snapshot(
    table: &DeltaTable,
) -> std::result::Result<Option<Arc<dyn TableProvider>>, String> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    let snapshot = table.snapshot().map_err(|e| e.to_string())?;
    let protocol = snapshot.protocol();
    let features: Vec<String> = protocol
        .reader_features()
        .unwrap_or_default()
        .iter()
        .map(|f| f.to_string())
        .collect();
    for feature in ["deletionVectors", "columnMapping"] {
        if features.iter().any(|f| f == feature) {
            return Err(format!("it uses the Delta feature `{feature}`"));
        }
    }
    if let Some(mode) = snapshot
        .metadata()
        .configuration()
        .get("delta.columnMapping.mode")
        && mode != "none"
    {
        return Err(format!(
            "its columns are mapped (`delta.columnMapping.mode` = {mode})"
        ));
    }
    if !snapshot.metadata().partition_columns().is_empty() {
        return Err("it is partitioned (partition values are not in its files)".into());
    }
    let files = table
        .get_file_uris()
        .map_err(|e| e.to_string())?
        .map(|uri| ListingTableUrl::parse(&uri).map_err(|e| e.to_string()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if files.is_empty() {
        return Ok(None);
    }
    let schema = crate::scratch::plain_schema(&snapshot.snapshot().arrow_schema());
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(files)
        .with_listing_options(options)
        .with_schema(schema);
    let listing = ListingTable::try_new(config).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(listing)))
}
