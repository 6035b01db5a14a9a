//! Intermediate tables written where a cluster can read them.
//!
//! On one machine, identity resolution holds its intermediate tables (the numbered records'
//! matching keys, guard values, term frequencies) in memory and joins them there. A Ballista
//! executor cannot read the coordinator's memory, so on a cluster those tables are written as
//! Parquet files under the warehouse's `_tessera/scratch/` folder (`[engine] cluster` sets it,
//! see [`crate::cluster::OnCluster`]) and read from there: the blocking joins and comparison
//! vectors then run on the executors like any other query. Each resolution writes into its
//! own folder and removes it when it ends, failed or not; a folder left by a killed process is
//! removed by a later resolution once it is a day old.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use url::Url;

use crate::error::{Error, Result};

/// A folder of intermediate tables, removed by [`Scratch::remove`].
#[derive(Debug, Clone)]
pub struct Scratch {
    folder: Url,
}

/// How old a scratch folder left by a killed process must be before it is removed: older than
/// any resolution still running.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Scratch {
    /// A new folder under `root` named `name` (unique to the caller), after removing the
    /// folders under `root` that processes killed long ago left there.
    pub async fn create(ctx: &SessionContext, root: &Url, name: &str) -> Result<Scratch> {
        let root = with_slash(root);
        let (store, prefix) = store_of(ctx, &root)?;
        let now = chrono::Utc::now();
        let stale: Vec<Path> = store
            .list(Some(&prefix))
            .try_filter(|meta| {
                let age = now.signed_duration_since(meta.last_modified);
                std::future::ready(age.num_seconds() > ABANDONED_AFTER.as_secs() as i64)
            })
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| scratch_error(&root, e))?;
        if !stale.is_empty() {
            tracing::info!(
                files = stale.len(),
                "removing intermediate files a killed run left in {root}"
            );
            delete(store.as_ref(), stale, &root).await?;
        }
        let folder = root
            .join(&format!("{name}/"))
            .map_err(|e| Error::Cluster(format!("scratch folder {root}{name}: {e}")))?;
        Ok(Scratch { folder })
    }

    /// Writes `batches` as table `name` (in about `files` Parquet files, so that the cluster
    /// reads it in parallel) and returns it as a table the cluster can scan.
    pub async fn table(
        &self,
        ctx: &SessionContext,
        name: &str,
        batches: &[RecordBatch],
        schema: SchemaRef,
        files: usize,
    ) -> Result<Arc<dyn TableProvider>> {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let per_file = rows.div_ceil(files.max(1)).max(1);
        // The batches sliced into `files` groups of about `per_file` rows.
        let mut groups: Vec<Vec<RecordBatch>> = vec![Vec::new()];
        let mut filled = 0;
        for batch in batches {
            let mut offset = 0;
            while offset < batch.num_rows() {
                if filled == per_file {
                    groups.push(Vec::new());
                    filled = 0;
                }
                let take = (per_file - filled).min(batch.num_rows() - offset);
                groups
                    .last_mut()
                    .expect("one group")
                    .push(batch.slice(offset, take));
                offset += take;
                filled += take;
            }
        }
        let streams = groups
            .into_iter()
            .map(|group| {
                Box::pin(RecordBatchStreamAdapter::new(
                    schema.clone(),
                    futures::stream::iter(group.into_iter().map(Ok)),
                )) as SendableRecordBatchStream
            })
            .collect();
        let folder = self.write(ctx, name, streams).await?.0;
        let config = ListingTableConfig::new(ListingTableUrl::parse(folder.as_str())?)
            .with_listing_options(parquet_listing())
            .with_schema(plain_schema(&schema));
        Ok(Arc::new(ListingTable::try_new(config)?))
    }

    /// Writes each stream into its own Parquet file of table `name`, all at once, and returns
    /// the table (its schema merged from the files' own, as their batches carry it) with the
    /// rows and bytes written.
    pub async fn table_of_streams(
        &self,
        ctx: &SessionContext,
        name: &str,
        streams: Vec<SendableRecordBatchStream>,
    ) -> Result<(Arc<dyn TableProvider>, usize, u64)> {
        let (folder, rows) = self.write(ctx, name, streams).await?;
        let (store, prefix) = store_of(ctx, &folder)?;
        let bytes = store
            .list(Some(&prefix))
            .try_fold(0u64, |n, meta| std::future::ready(Ok(n + meta.size)))
            .await
            .map_err(|e| scratch_error(&folder, e))?;
        let config = ListingTableConfig::new(ListingTableUrl::parse(folder.as_str())?)
            .with_listing_options(parquet_listing())
            .infer_schema(&ctx.state())
            .await?;
        Ok((Arc::new(ListingTable::try_new(config)?), rows, bytes))
    }

    /// Writes each stream into its own Parquet file of table `name` and returns the table
    /// read with `schema` (the files' own schemas may differ from it in nullability: what a
    /// plan says of its output is not what its batches say, and an empty file says the plan's).
    pub async fn table_of_streams_as(
        &self,
        ctx: &SessionContext,
        name: &str,
        streams: Vec<SendableRecordBatchStream>,
        schema: SchemaRef,
    ) -> Result<Arc<dyn TableProvider>> {
        let folder = self.write(ctx, name, streams).await?.0;
        let config = ListingTableConfig::new(ListingTableUrl::parse(folder.as_str())?)
            .with_listing_options(parquet_listing())
            .with_schema(plain_schema(&schema));
        Ok(Arc::new(ListingTable::try_new(config)?))
    }

    /// Writes each stream, with plain strings, into its own Parquet file of table `name`
    /// (an empty stream still makes a file, so that the table can be listed); returns the
    /// table's folder and the rows written.
    async fn write(
        &self,
        ctx: &SessionContext,
        name: &str,
        streams: Vec<SendableRecordBatchStream>,
    ) -> Result<(Url, usize)> {
        self.write_from(ctx, name, 0, streams).await
    }

    /// Writes each stream into its own Parquet file of table `name`, the files numbered from
    /// `first` (a table written in several calls, read with [`Scratch::read`]); returns the
    /// rows written.
    pub async fn append(
        &self,
        ctx: &SessionContext,
        name: &str,
        first: usize,
        streams: Vec<SendableRecordBatchStream>,
    ) -> Result<usize> {
        Ok(self.write_from(ctx, name, first, streams).await?.1)
    }

    /// Writes `batch` as file `part` of table `name`: a table written a part at a time, each
    /// part dropped once written; [`Scratch::read`] reads the parts written.
    pub async fn write_part(
        &self,
        ctx: &SessionContext,
        name: &str,
        part: usize,
        batch: RecordBatch,
    ) -> Result<()> {
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            batch.schema(),
            futures::stream::iter([Ok(batch)]),
        )) as SendableRecordBatchStream;
        self.write_from(ctx, name, part, vec![stream]).await?;
        Ok(())
    }

    /// Table `name` as written by [`Scratch::write_part`], read with `schema`.
    pub fn read(&self, name: &str, schema: &SchemaRef) -> Result<Arc<dyn TableProvider>> {
        let folder = self
            .folder
            .join(&format!("{name}/"))
            .map_err(|e| Error::Cluster(format!("scratch table {name}: {e}")))?;
        let config = ListingTableConfig::new(ListingTableUrl::parse(folder.as_str())?)
            .with_listing_options(parquet_listing())
            .with_schema(plain_schema(schema));
        Ok(Arc::new(ListingTable::try_new(config)?))
    }

    /// [`Scratch::write`], the files numbered from `first`.
    async fn write_from(
        &self,
        ctx: &SessionContext,
        name: &str,
        first: usize,
        streams: Vec<SendableRecordBatchStream>,
    ) -> Result<(Url, usize)> {
        let folder = self
            .folder
            .join(&format!("{name}/"))
            .map_err(|e| Error::Cluster(format!("scratch table {name}: {e}")))?;
        let (store, prefix) = store_of(ctx, &folder)?;
        let mut writes = Vec::with_capacity(streams.len());
        for (i, mut stream) in streams.into_iter().enumerate() {
            let path = prefix
                .clone()
                .join(format!("part-{:05}.parquet", first + i));
            let sink = BufWriter::new(store.clone(), path);
            writes.push(tokio::spawn(async move {
                let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
                let mut sink = Some(sink);
                let mut rows = 0;
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    let batch = plain(&batch, &plain_schema(&batch.schema()))?;
                    rows += batch.num_rows();
                    let w = match writer.as_mut() {
                        Some(w) => w,
                        None => writer.insert(AsyncArrowWriter::try_new(
                            sink.take().expect("opened once"),
                            batch.schema(),
                            None,
                        )?),
                    };
                    w.write(&batch).await?;
                }
                let writer = match writer {
                    Some(w) => w,
                    None => AsyncArrowWriter::try_new(
                        sink.take().expect("opened once"),
                        plain_schema(&stream.schema()),
                        None,
                    )?,
                };
                writer.close().await?;
                Ok::<usize, Error>(rows)
            }));
        }
        let mut rows = 0;
        for write in writes {
            rows += write.await.map_err(|e| scratch_error(&folder, e))??;
        }
        Ok((folder, rows))
    }

    /// A folder inside this one, for tables removed together (see [`Scratch::remove`]).
    pub fn within(&self, name: &str) -> Result<Scratch> {
        let folder = self
            .folder
            .join(&format!("{name}/"))
            .map_err(|e| Error::Cluster(format!("scratch folder {name}: {e}")))?;
        Ok(Scratch { folder })
    }

    /// Removes the folder and everything in it.
    pub async fn remove(&self, ctx: &SessionContext) -> Result<()> {
        let (store, prefix) = store_of(ctx, &self.folder)?;
        let files: Vec<Path> = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| scratch_error(&self.folder, e))?;
        delete(store.as_ref(), files, &self.folder).await
    }
}

async fn delete(store: &dyn ObjectStore, files: Vec<Path>, folder: &Url) -> Result<()> {
    let locations = futures::stream::iter(files.into_iter().map(Ok)).boxed();
    store
        .delete_stream(locations)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| scratch_error(folder, e))?;
    Ok(())
}

/// `schema` with plain strings and binaries for views. A view column shares the buffers it
/// was sliced from, and Arrow IPC (Ballista's shuffle files and results) writes a view
/// column's buffers whole with every batch: 3.4M orders read as views took 4.9 GB of results
/// (26 MB per 8,192-row batch for one column) instead of ~70 MB. Parquet files keep the Arrow
/// type they were written with, so a cluster's tables say which type to read.
pub(crate) fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8)),
            DataType::BinaryView => Arc::new(f.as_ref().clone().with_data_type(DataType::Binary)),
            _ => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with `schema`'s types (see [`plain_schema`]).
fn plain(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn parquet_listing() -> ListingOptions {
    ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet")
}

fn with_slash(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    url
}

fn store_of(ctx: &SessionContext, folder: &Url) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let store =
        ctx.runtime_env()
            .object_store(datafusion::datasource::listing::ListingTableUrl::parse(
                folder.as_str(),
            )?)?;
    let prefix = Path::from_url_path(folder.path())
        .map_err(|e| Error::Cluster(format!("scratch folder {folder}: {e}")))?;
    Ok((store, prefix))
}

fn scratch_error(folder: &Url, e: impl std::fmt::Display) -> Error {
    Error::Cluster(format!(
        "intermediate tables for the cluster in {folder}: {e}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringViewArray};
    use datafusion::arrow::datatypes::Field;

    fn file_url(path: &std::path::Path) -> Url {
        Url::from_directory_path(path).unwrap()
    }

    #[tokio::test]
    async fn tables_are_written_read_and_removed_and_old_leftovers_swept() {
        let dir = tempfile::tempdir().unwrap();
        let root = file_url(dir.path());
        // A folder a killed process left two days ago, and one a running resolution writes.
        let (old, recent) = (dir.path().join("old"), dir.path().join("recent"));
        for (folder, age) in [(&old, 2 * 24 * 3600), (&recent, 60)] {
            std::fs::create_dir_all(folder).unwrap();
            let file = folder.join("part-00000.parquet");
            std::fs::write(&file, b"x").unwrap();
            let when = std::time::SystemTime::now() - Duration::from_secs(age);
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        let ctx = SessionContext::new();
        let scratch = Scratch::create(&ctx, &root, "mine").await.unwrap();
        assert!(!old.join("part-00000.parquet").exists(), "swept");
        assert!(recent.join("part-00000.parquet").exists(), "still in use");

        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8View, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..10)),
                Arc::new(StringViewArray::from_iter(
                    (0..10).map(|i| (i % 3 != 0).then(|| format!("name {i}"))),
                )),
            ],
        )
        .unwrap();
        let table = scratch
            .table(&ctx, "t", &[batch.clone(), batch], schema, 3)
            .await
            .unwrap();
        // Views are written as plain strings (see `plain_schema`).
        assert_eq!(table.schema().field(1).data_type(), &DataType::Utf8);
        ctx.register_table("t", table).unwrap();
        let rows = ctx
            .sql("select count(*) as n, count(name) as named from t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let n = rows[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let named = rows[0]
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!((n.value(0), named.value(0)), (20, 12));
        let files = std::fs::read_dir(dir.path().join("mine/t"))
            .unwrap()
            .count();
        assert_eq!(files, 3, "split into the files asked for");

        scratch.remove(&ctx).await.unwrap();
        let left: Vec<_> = walk(&dir.path().join("mine"));
        assert!(left.is_empty(), "{left:?}");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
        found
    }
}
