//! The identity records while they are resolved: an identity job reads its records several
//! times (guards, numbering, its data tests, the output write), so they are computed once.
//! Without a memory limit they stay in memory (fastest). Under `[engine] memory_limit` they
//! are streamed to Arrow IPC files in the engine's spill directory and read back from there:
//! held in memory, 1M records took ~210 MB of the pool for the whole job, which the joins
//! then lacked.

use std::io::BufWriter;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryViewArray, RecordBatch, StringViewArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, SpillFile, SpillWriter};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;

use crate::error::{Error, Result};

/// Records computed once, in memory or in temporary Arrow files (removed when dropped).
pub struct HeldRecords {
    /// Reads them (from disk when spilled: every scan streams the files).
    pub provider: Arc<dyn TableProvider>,
    /// Rows written.
    pub rows: usize,
    /// Bytes they take (on disk when spilled).
    pub bytes: u64,
    /// Whether they are on disk.
    pub spilled: bool,
    // Keep the files until the records are no longer needed.
    _files: Vec<Arc<dyn SpillFile>>,
    _scratch: Option<ScratchGuard>,
}

impl std::fmt::Debug for HeldRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldRecords")
            .field("rows", &self.rows)
            .field("bytes", &self.bytes)
            .field("spilled", &self.spilled)
            .field("files", &self._files.len())
            .finish()
    }
}

/// Runs `df` once and holds its rows: in memory, or with `spill` in temporary Arrow files.
pub async fn hold_records(
    ctx: &SessionContext,
    df: DataFrame,
    what: &str,
    spill: bool,
) -> Result<HeldRecords> {
    if let Some(root) = crate::cluster::OnCluster::of(ctx).and_then(|c| c.scratch.clone()) {
        return scratch_records(ctx, df, &root).await;
    }
    if spill {
        return spill_records(ctx, df, what).await;
    }
    let planned: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let partitions = df.collect_partitioned().await?;
    // The batches' own schema (nullability can differ from the plan's).
    let schema = partitions
        .iter()
        .flatten()
        .next()
        .map_or(planned, |b| b.schema());
    let (mut rows, mut bytes) = (0, 0);
    for p in &partitions {
        rows += p.iter().map(|b| b.num_rows()).sum::<usize>();
        bytes += super::batches_size(p) as u64;
    }
    Ok(HeldRecords {
        provider: Arc::new(MemTable::try_new(schema, partitions)?),
        rows,
        bytes,
        spilled: false,
        _files: Vec::new(),
        _scratch: None,
    })
}

/// On a cluster: the records written as Parquet to the warehouse's scratch folder, where the
/// executors read them (a file in this process's spill folder is not theirs to read).
async fn scratch_records(
    ctx: &SessionContext,
    df: DataFrame,
    root: &url::Url,
) -> Result<HeldRecords> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name = format!("records-{}-{nanos:x}", std::process::id());
    let scratch = crate::scratch::Scratch::create(ctx, root, &name).await?;
    let streams = df.execute_stream_partitioned().await?;
    let written = scratch.table_of_streams(ctx, "records", streams).await;
    let (provider, rows, bytes) = match written {
        Ok(written) => written,
        Err(e) => {
            let _ = scratch.remove(ctx).await;
            return Err(e);
        }
    };
    Ok(HeldRecords {
        provider,
        rows,
        bytes,
        spilled: true,
        _files: Vec::new(),
        _scratch: Some(ScratchGuard {
            scratch,
            ctx: ctx.clone(),
        }),
    })
}

/// Removes the records' scratch folder when they are no longer needed (in the background:
/// the process goes on writing the identity tables).
struct ScratchGuard {
    scratch: crate::scratch::Scratch,
    ctx: SessionContext,
}

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        let (scratch, ctx) = (self.scratch.clone(), self.ctx.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = scratch.remove(&ctx).await {
                    tracing::warn!("could not remove the identity records' scratch files: {e}");
                }
            });
        }
    }
}

/// Runs `df` and writes its rows to temporary Arrow IPC files under the session's spill
/// directory (counted against its disk limit), one file per partition of the plan written
/// concurrently, a batch at a time; reading them back scans the files in parallel too.
async fn spill_records(ctx: &SessionContext, df: DataFrame, what: &str) -> Result<HeldRecords> {
    let failed = |e: &dyn std::fmt::Display| Error::Identity(format!("{what}: {e}"));
    let planned: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let streams = df.execute_stream_partitioned().await?;
    let mut files = Vec::with_capacity(streams.len());
    let mut writes = Vec::with_capacity(streams.len());
    for stream in streams {
        let file = ctx
            .runtime_env()
            .disk_manager
            .create_tmp_file(what)
            .map_err(|e| failed(&e))?;
        let writer = file.open_writer()?;
        let schema = planned.clone();
        writes.push(tokio::spawn(write_partition(stream, writer, schema)));
        files.push(file);
    }
    let mut rows = 0;
    for write in writes {
        rows += write
            .await
            .map_err(|e| failed(&e))?
            .map_err(|e| failed(&e))?;
    }
    let mut paths = Vec::with_capacity(files.len());
    let mut bytes = 0;
    for file in &files {
        let path = file
            .path()
            .ok_or_else(|| failed(&"the spill directory has no local files"))?;
        bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        paths.push(
            path.to_str()
                .ok_or_else(|| failed(&format!("spill path {} is not UTF-8", path.display())))?
                .to_string(),
        );
    }
    let read = ArrowReadOptions {
        file_extension: "",
        ..Default::default()
    };
    let provider = ctx
        .read_arrow(paths, read)
        .await
        .map_err(|e| failed(&e))?
        .into_view();
    Ok(HeldRecords {
        provider,
        rows,
        bytes,
        spilled: true,
        _files: files,
        _scratch: None,
    })
}

/// Writes one partition's stream to its file (an empty file still holds the schema).
async fn write_partition(
    mut stream: SendableRecordBatchStream,
    writer: Box<dyn SpillWriter>,
    planned: SchemaRef,
) -> std::result::Result<usize, DataFusionError> {
    let mut out: Option<FileWriter<BufWriter<Box<dyn SpillWriter>>>> = None;
    let mut writer = Some(writer);
    let mut rows = 0;
    let open = |writer: &mut Option<Box<dyn SpillWriter>>, schema: &SchemaRef| {
        let w = writer.take().expect("opened once");
        FileWriter::try_new(BufWriter::with_capacity(1 << 20, w), schema)
    };
    while let Some(batch) = stream.next().await {
        let batch = compact_views(&batch?)?;
        if out.is_none() {
            out = Some(open(&mut writer, &batch.schema())?);
        }
        rows += batch.num_rows();
        out.as_mut().expect("opened").write(&batch)?;
    }
    let mut out = match out {
        Some(out) => out,
        None => open(&mut writer, &planned)?,
    };
    out.finish()?;
    Ok(rows)
}

/// View arrays with only the bytes their rows use: a view column can point into large shared
/// buffers (a decoded Parquet page), which the IPC writer would write whole for every batch.
fn compact_views(batch: &RecordBatch) -> std::result::Result<RecordBatch, DataFusionError> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => Arc::new(
                c.as_any()
                    .downcast_ref::<StringViewArray>()
                    .expect("view")
                    .gc(),
            ) as ArrayRef,
            DataType::BinaryView => Arc::new(
                c.as_any()
                    .downcast_ref::<BinaryViewArray>()
                    .expect("view")
                    .gc(),
            ) as ArrayRef,
            _ => c.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}
