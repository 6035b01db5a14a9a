//! The identity records on local disk while they are resolved: an identity job reads its records
//! several times (guards, numbering, its data tests, the output write), so they are computed
//! once, streamed to an Arrow IPC file in the engine's spill directory, and read back from
//! there. Held in memory instead, 1M records took ~210 MB of the pool for the whole job, which
//! `[engine] memory_limit` could not give to the joins.

use std::io::BufWriter;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryViewArray, RecordBatch, StringViewArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::execution::{SpillFile, SpillWriter};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;

use crate::error::{Error, Result};

/// Records computed once and kept in a temporary Arrow file (removed when dropped).
pub struct SpilledRecords {
    /// Reads the file: every scan streams it from disk.
    pub provider: Arc<dyn TableProvider>,
    /// Rows written.
    pub rows: usize,
    /// Bytes on disk.
    pub bytes: u64,
    // Keeps the file until the records are no longer needed.
    _file: Arc<dyn SpillFile>,
}

impl std::fmt::Debug for SpilledRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpilledRecords")
            .field("rows", &self.rows)
            .field("bytes", &self.bytes)
            .field("path", &self._file.path())
            .finish()
    }
}

/// Runs `df` and writes its rows to a temporary Arrow IPC file under the session's spill
/// directory (counted against its disk limit), one batch at a time.
pub async fn spill_records(
    ctx: &SessionContext,
    df: DataFrame,
    what: &str,
) -> Result<SpilledRecords> {
    let failed = |e: &dyn std::fmt::Display| Error::Identity(format!("{what}: {e}"));
    let planned: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let file = ctx
        .runtime_env()
        .disk_manager
        .create_tmp_file(what)
        .map_err(|e| failed(&e))?;
    let path = file
        .path()
        .ok_or_else(|| failed(&"the spill directory has no local files"))?
        .to_path_buf();
    let mut stream = df.execute_stream().await?;
    let mut writer: Option<FileWriter<BufWriter<Box<dyn SpillWriter>>>> = None;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = compact_views(&batch?)?;
        if writer.is_none() {
            let out = BufWriter::with_capacity(1 << 20, file.open_writer()?);
            writer = Some(FileWriter::try_new(out, &batch.schema()).map_err(|e| failed(&e))?);
        }
        rows += batch.num_rows();
        writer
            .as_mut()
            .expect("opened")
            .write(&batch)
            .map_err(|e| failed(&e))?;
    }
    let mut writer = match writer {
        Some(w) => w,
        None => FileWriter::try_new(BufWriter::new(file.open_writer()?), &planned)
            .map_err(|e| failed(&e))?,
    };
    writer.finish().map_err(|e| failed(&e))?;
    drop(writer);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let read = ArrowReadOptions {
        file_extension: "",
        ..Default::default()
    };
    let location = path
        .to_str()
        .ok_or_else(|| failed(&format!("spill path {} is not UTF-8", path.display())))?;
    let provider = ctx
        .read_arrow(location, read)
        .await
        .map_err(|e| failed(&e))?
        .into_view();
    Ok(SpilledRecords {
        provider,
        rows,
        bytes,
        _file: file,
    })
}

/// View arrays with only the bytes their rows use: a view column can point into large shared
/// buffers (a decoded Parquet page), which the IPC writer would write whole for every batch.
fn compact_views(batch: &RecordBatch) -> Result<RecordBatch> {
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
