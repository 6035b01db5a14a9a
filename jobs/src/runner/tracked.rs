//! `@materialized: tracked`: a table kept equal to its query row by row, with every change
//! recorded (`<name>_changes`) and every row version kept (`<name>_history`).
//!
//! The diff between the stored table and the new result is computed in SQL on the unique key:
//! `add` (a key not stored yet), `remove` (a stored key the query no longer returns, with its
//! last values) and `update` (a key whose other values changed). The stored table is then
//! brought to the new result by one Delta merge (inserts, updates of changed rows only,
//! deletes) with the change data feed on, so a reverse-ETL tool can read the differences
//! either from `<name>_changes` or from Delta's own feed.
//!
//! The three tables are written in three commits (changes, history, table). Before the first,
//! an intent object (`_tessera/tracked/<name>.json`: the run id and the history's version) is
//! written; after the last it is removed. A run that finds one left behind by a run killed in
//! between first undoes that run's partial publish — its change rows are deleted and the
//! history is read at the version it started from — so the changes are not recorded twice.

use std::sync::Arc;

use crate::bail;
use crate::errors::{Context, Result};
use chrono::Utc;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::prelude::DataFrame;
use tessera_engine::WriteMode;

use super::{JobResult, JobStatus, PlannedJob, Runner, commit_metadata, table_reference};
use crate::job::{Job, quote_ident};

/// The commit metadata naming the run that wrote a tracked job's tables.
const RUN_ID_KEY: &str = "tessera.run_id";

/// The SQL type of the `changed_at`, `valid_from` and `valid_to` columns.
const TS_TYPE: &str = "Timestamp(Microsecond, Some(\"UTC\"))";

impl Runner<'_> {
    pub(super) async fn execute_tracked(
        &self,
        job: &Job,
        planned: &PlannedJob,
        df: DataFrame,
        result: &mut JobResult,
    ) -> Result<JobStatus> {
        let ctx = self.ws.engine.ctx();
        let schema = Arc::new(df.schema().as_arrow().clone());
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let keys = &job.config.unique_key;
        for k in keys {
            if !columns.contains(k) {
                bail!(
                    "@unique_key column `{k}` is not in the query's result (columns: {})",
                    columns.join(", ")
                );
            }
        }
        for reserved in ["change", "changed_at", "valid_from", "valid_to", "run_id"] {
            if columns.iter().any(|c| c == reserved) {
                bail!(
                    "a tracked job's result cannot have a `{reserved}` column: Tessera adds it to the _changes and _history tables"
                );
            }
        }
        let batches = df.collect().await.context("computing the result")?;
        let fresh: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![batches])?);

        let scratch = Scratch::for_job(&job.name);
        for name in scratch.all() {
            let _ = ctx.deregister_table(name);
        }
        ctx.register_table(scratch.new.as_str(), fresh.clone())?;
        let outcome = self
            .tracked_inner(job, planned, &columns, &scratch, result)
            .await;
        for name in scratch.all() {
            let _ = ctx.deregister_table(name);
        }
        outcome
    }

    /// The new rows compared with the stored table, projected onto today's columns (a column
    /// the query gained reads as a NULL of its new type in the old rows; one it lost is
    /// dropped): the changes are held as the scratch changes table. Returns the new rows'
    /// schema, whether the stored table has today's columns, and the rows changed.
    async fn compare_stored(
        &self,
        job: &Job,
        columns: &[String],
        scratch: &Scratch,
    ) -> Result<(SchemaRef, bool, usize)> {
        let ctx = self.ws.engine.ctx();
        let new_schema = ctx.table_provider(scratch.new.as_str()).await?.schema();
        let old = self.existing_table(&job.name).await?;
        let same_schema = old.as_ref().is_some_and(|o| {
            let names: Vec<String> = o
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            names == columns
        });
        if let Some(provider) = &old {
            ctx.register_table(scratch.old.as_str(), provider.clone())?;
        }
        let stored = old.as_ref().map(|o| o.schema());
        let keys = &job.config.unique_key;
        let changes_sql = changes_sql(columns, keys, &new_schema, stored.as_deref(), scratch);
        let changes_df = ctx
            .sql(&changes_sql)
            .await
            .context("comparing with the stored table")?;
        let changes_schema = Arc::new(changes_df.schema().as_arrow().clone());
        let changes_batches = changes_df.collect().await?;
        let changed: usize = changes_batches.iter().map(|b| b.num_rows()).sum();
        ctx.register_table(
            scratch.changes.as_str(),
            Arc::new(MemTable::try_new(changes_schema, vec![changes_batches])?),
        )?;
        Ok((new_schema, same_schema, changed))
    }

    /// This run's intent, written before its first commit: the run, and the history version
    /// it starts from (`with_history`: the history exists and is published to), so that a run
    /// killed between the commits is undone by the next.
    async fn write_intent(
        &self,
        intent: &IntentLocation,
        run_id: &str,
        with_history: bool,
        history_url: &url::Url,
    ) -> Result<()> {
        let history_version = if with_history {
            Some(
                self.ws
                    .engine
                    .open_delta(history_url, tessera_engine::TableVersion::Latest)
                    .await?
                    .version()
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        intent
            .write(
                &self.ws.engine,
                &Intent {
                    run_id: run_id.to_string(),
                    history_version,
                },
            )
            .await
    }

    async fn tracked_inner(
        &self,
        job: &Job,
        planned: &PlannedJob,
        columns: &[String],
        scratch: &Scratch,
        result: &mut JobResult,
    ) -> Result<JobStatus> {
        let ctx = self.ws.engine.ctx();
        let keys = &job.config.unique_key;
        let q = |c: &str| quote_ident(c);
        let (new_name, hist_name, changes_name) = (
            scratch.new.as_str(),
            scratch.hist.as_str(),
            scratch.changes.as_str(),
        );
        // Unique, non-null keys: a key is how a row is followed across runs.
        check_unique_keys(ctx, new_name, keys).await?;

        let run_id = self.run_id();
        let now = format!(
            "arrow_cast(to_timestamp_micros({}), '{TS_TYPE}')",
            Utc::now().timestamp_micros()
        );
        let null_ts = format!("arrow_cast(null, '{TS_TYPE}')");
        let run_lit = tessera_engine::sql::literal(&run_id);
        let history_table = format!("{}_history", job.name);
        let changes_table = format!("{}_changes", job.name);

        let (new_schema, same_schema, changed) = self.compare_stored(job, columns, scratch).await?;

        let mut meta = commit_metadata(job, planned);
        meta.push((RUN_ID_KEY.to_string(), run_id.clone().into()));
        let write = |df: DataFrame, name: &str, mode: WriteMode| -> Result<_> {
            let mut w = self
                .ws
                .engine
                .write_delta(df, self.output_url(name)?)
                .with_mode(mode);
            for (k, v) in &meta {
                w = w.with_commit_metadata(k.clone(), v.clone());
            }
            Ok(w)
        };
        let c_cols = columns
            .iter()
            .map(|c| format!("c.{}", q(c)))
            .collect::<Vec<_>>()
            .join(", ");
        // A what-if (a sandbox) writes the changes of this run alone and the table whole; it
        // compares with the published table, copies nothing and keeps no history.
        let sandboxed = self.options.sandbox.is_some();
        let intent = Intent::location(self.write_root(), &job.name)?;
        let history_url = self.output_url(&history_table)?;
        // A previous run killed between these commits left its intent: its changes rows are
        // undone and this run starts from the history it started from.
        let history = self
            .undo_partial_publish(job, &intent, &history_table, &changes_table)
            .await?;
        self.write_intent(
            &intent,
            &run_id,
            history.is_some() && !sandboxed,
            &history_url,
        )
        .await?;
        if changed > 0 || history.is_none() {
            // 1. The change log (appended).
            let log = ctx
                .sql(&format!(
                    "select {run_lit} as run_id, {now} as changed_at, c.change, {c_cols} from {changes_name} c"
                ))
                .await?;
            // A column the query gained (or lost) since the log began: the log gains it too.
            write(log, &changes_table, WriteMode::Append)?
                .with_new_columns(true)
                .await
                .with_context(|| format!("writing {changes_table}"))?;
            crate::failpoint::check("tracked:after-changes")?;
        }
        // A what-if keeps no history, except a first one (nothing published yet): views
        // reading it (`segments.sizes`) need one.
        if (changed > 0 || history.is_none()) && (!sandboxed || history.is_none()) {
            // 2. The history: close the versions of changed keys, open the new ones. Columns
            // the query no longer returns stay in the history with their old values (NULL in
            // the versions opened from now on): an earlier version is never rewritten.
            if let Some(provider) = &history {
                ctx.register_table(hist_name, provider.clone())?;
            }
            let stored = history.as_ref().map(|h| h.schema());
            let sql = history_sql(
                columns,
                keys,
                &new_schema,
                stored.as_deref(),
                scratch,
                &Stamp {
                    now: &now,
                    null_ts: &null_ts,
                    run: &run_lit,
                },
            );
            // Materialise before overwriting the table it reads.
            let df = ctx.sql(&sql).await?;
            let hschema = Arc::new(df.schema().as_arrow().clone());
            let rows = df.collect().await?;
            let df = ctx.read_table(Arc::new(MemTable::try_new(hschema, vec![rows])?))?;
            write(df, &history_table, WriteMode::Overwrite)?
                .await
                .with_context(|| format!("writing {history_table}"))?;
            crate::failpoint::check("tracked:after-history")?;
        }

        // 3. The table itself, last: one merge (or a fresh table with the change feed on).
        let fresh = ctx.sql(&format!("select * from {new_name}")).await?;
        let mode = if same_schema && !sandboxed {
            WriteMode::Sync
        } else {
            WriteMode::Overwrite
        };
        let outcome = if same_schema && changed == 0 && !sandboxed {
            // Nothing changed, but the run's fingerprint must be recorded: without a commit the
            // job would look changed to every later run and re-run (with everything downstream)
            // for ever. An empty append is a commit with the metadata and no data.
            let empty = fresh.limit(0, Some(0))?;
            write(empty, &job.name, WriteMode::Append)?.await?
        } else {
            write(fresh, &job.name, mode)?
                .with_merge_keys(keys.clone())
                .with_change_data_feed(true)
                .await?
        };
        intent.remove(&self.ws.engine).await?;
        result.rows = Some(changed as u64);
        let version = outcome.version;
        result.output_version = Some(version);
        for name in job.outputs() {
            let _ = ctx.deregister_table(table_reference(&name));
        }
        self.states
            .lock()
            .expect("poisoned")
            .insert(job.name.clone(), self.written_state(version));
        Ok(JobStatus::Success)
    }

    /// The history this run starts from: the stored one, or — when a run killed between its
    /// commits left its intent — the history as that run found it, after deleting that run's
    /// rows from `<job>_changes` (its publish is undone; a run killed after the table's own
    /// commit had completed it).
    async fn undo_partial_publish(
        &self,
        job: &Job,
        intent: &IntentLocation,
        history_table: &str,
        changes_table: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let history_url = self.output_url(history_table)?;
        let table_url_ = self.output_url(&job.name)?;
        let mut history = self.existing_table(history_table).await?;
        let left = match intent.read(&self.ws.engine).await? {
            // Killed after the table's own commit: that run's publish is complete.
            Some(left)
                if self
                    .ws
                    .engine
                    .recent_commit_with(&table_url_, RUN_ID_KEY, &left.run_id, 20)
                    .await? =>
            {
                None
            }
            other => other,
        };
        if let Some(left) = left {
            tracing::warn!(
                "{}: run {} stopped while publishing; undoing its partial publish",
                job.name,
                left.run_id
            );
            let changes_url = self.output_url(changes_table)?;
            if self.existing_table(changes_table).await?.is_some() {
                self.ws
                    .engine
                    .delete_rows(
                        &changes_url,
                        datafusion::prelude::col("run_id")
                            .eq(datafusion::prelude::lit(left.run_id.clone())),
                    )
                    .await
                    .with_context(|| format!("undoing run {} in {changes_table}", left.run_id))?;
            }
            history = match left.history_version {
                None => None,
                Some(v) => {
                    let table = self
                        .ws
                        .engine
                        .open_delta(&history_url, tessera_engine::TableVersion::Version(v))
                        .await
                        .with_context(|| {
                            format!(
                                "reading {history_table} at version {v}, before run {}",
                                left.run_id
                            )
                        })?;
                    Some(self.ws.engine.delta_provider(&table).await?)
                }
            };
        }
        Ok(history)
    }
}

/// The session names a tracked job's run registers its tables under (removed after it).
struct Scratch {
    /// The new result.
    new: String,
    /// The stored table.
    old: String,
    /// The stored history.
    hist: String,
    /// This run's changes.
    changes: String,
}

impl Scratch {
    fn for_job(job: &str) -> Self {
        let tag = job.replace(['.', '-'], "_");
        Scratch {
            new: format!("__tracked_new_{tag}"),
            old: format!("__tracked_old_{tag}"),
            hist: format!("__tracked_history_{tag}"),
            changes: format!("__tracked_changes_{tag}"),
        }
    }

    fn all(&self) -> [&str; 4] {
        [&self.new, &self.old, &self.hist, &self.changes]
    }
}

/// Fails unless every row of `table` has a non-NULL, unique `keys`.
async fn check_unique_keys(
    ctx: &datafusion::prelude::SessionContext,
    table: &str,
    keys: &[String],
) -> Result<()> {
    let q = |c: &str| quote_ident(c);
    let key_list = keys.iter().map(|k| q(k)).collect::<Vec<_>>().join(", ");
    let null_keys = keys
        .iter()
        .map(|k| format!("{} is null", q(k)))
        .collect::<Vec<_>>()
        .join(" or ");
    let check = ctx
        .sql(&format!(
            "select (select count(*) from {table} where {null_keys}) as null_keys, \
             (select count(*) from (select {key_list} from {table} group by {key_list} having count(*) > 1)) as duplicate_keys"
        ))
        .await?
        .collect()
        .await?;
    let count = |i: usize| {
        check[0]
            .column(i)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .map_or(0, |a| a.value(0))
    };
    if count(0) > 0 {
        bail!(
            "{} rows have a NULL in the @unique_key ({key_list})",
            count(0)
        );
    }
    if count(1) > 0 {
        bail!(
            "{} values of the @unique_key ({key_list}) occur on more than one row",
            count(1)
        );
    }
    Ok(())
}

/// The stored columns (`old`, under `alias`) projected onto today's (`new`): a column the query
/// gained reads as a NULL of its new type, one stored as another type is cast to today's, one
/// it lost is dropped.
fn projected(alias: &str, new: &Schema, old: &Schema) -> Vec<String> {
    let q = |c: &str| quote_ident(c);
    new.fields()
        .iter()
        .map(|f| {
            let c = f.name();
            let new_type = tessera_engine::sql::literal(&f.data_type().to_string());
            match old.field_with_name(c) {
                Ok(o) if o.data_type() == f.data_type() => format!("{alias}.{}", q(c)),
                // Stored as another type (Delta reads strings as views; a column the query
                // now computes differently): the result's type, so every branch of the
                // comparison produces the same batches.
                Ok(_) => format!("arrow_cast({alias}.{c}, {new_type}) as {c}", c = q(c)),
                Err(_) => format!("arrow_cast(null, {new_type}) as {}", q(c)),
            }
        })
        .collect()
}

/// The changes from the stored rows (`stored` None: nothing stored yet) to the new ones, by
/// key: `add`, `remove` (with the stored values) and `update` (a key whose other values differ;
/// a column the stored table lacks differs when the new value is not NULL).
fn changes_sql(
    columns: &[String],
    keys: &[String],
    new_schema: &Schema,
    stored: Option<&Schema>,
    scratch: &Scratch,
) -> String {
    let q = |c: &str| quote_ident(c);
    let (new_name, old_name) = (&scratch.new, &scratch.old);
    let n_cols = columns
        .iter()
        .map(|c| format!("n.{}", q(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(stored) = stored else {
        return format!("select 'add' as change, {n_cols} from {new_name} n");
    };
    let o_cols = projected("o", new_schema, stored).join(", ");
    let differs = columns
        .iter()
        .filter(|c| !keys.contains(c))
        .map(|c| {
            if stored.field_with_name(c).is_ok() {
                format!("(n.{c} is distinct from o.{c})", c = q(c))
            } else {
                format!("(n.{} is not null)", q(c))
            }
        })
        .collect::<Vec<_>>();
    let differs = if differs.is_empty() {
        "false".to_string()
    } else {
        differs.join(" or ")
    };
    format!(
        "select 'add' as change, {n_cols} from {new_name} n \
           where not exists (select 1 from {old_name} o where {m}) \
         union all \
         select 'remove' as change, {o_cols} from {old_name} o \
           where not exists (select 1 from {new_name} n where {m}) \
         union all \
         select 'update' as change, {n_cols} from {new_name} n join {old_name} o on {m} \
           where {differs}",
        m = key_match(keys, "o", "n"),
    )
}

/// When a tracked run happens, as SQL: its timestamp, a NULL timestamp, its run id.
struct Stamp<'a> {
    now: &'a str,
    null_ts: &'a str,
    run: &'a str,
}

/// The new history: the stored versions (projected onto today's columns) with those of
/// changed keys closed, and a version opened for every added or updated row; the first history
/// (`history` None) opens one for every current row. Columns the query no longer returns stay
/// with their old values (NULL in the versions opened from now on).
fn history_sql(
    columns: &[String],
    keys: &[String],
    new_schema: &Schema,
    history: Option<&Schema>,
    scratch: &Scratch,
    stamp: &Stamp,
) -> String {
    let q = |c: &str| quote_ident(c);
    let (
        Stamp {
            now,
            null_ts,
            run: run_lit,
        },
        new_name,
        hist_name,
        changes_name,
    ) = (stamp, &scratch.new, &scratch.hist, &scratch.changes);
    let cols = |alias: &str| {
        columns
            .iter()
            .map(|c| format!("{alias}.{}", q(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (c_cols, n_cols) = (cols("c"), cols("n"));
    let dropped: Vec<(String, String)> = history
        .map(|h| {
            h.fields()
                .iter()
                .filter(|f| {
                    !columns.contains(f.name())
                        && !["valid_from", "valid_to", "run_id"].contains(&f.name().as_str())
                })
                .map(|f| {
                    let ty = tessera_engine::sql::literal(&f.data_type().to_string());
                    (
                        q(f.name()),
                        format!("arrow_cast(null, {ty}) as {}", q(f.name())),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let kept_old = dropped
        .iter()
        .map(|(c, _)| format!(", h.{c}"))
        .collect::<String>();
    let null_old = dropped
        .iter()
        .map(|(_, n)| format!(", {n}"))
        .collect::<String>();
    let opened = format!(
        "select {c_cols}{null_old}, {now} as valid_from, {null_ts} as valid_to, {run_lit} as run_id \
         from {changes_name} c where c.change in ('add', 'update')"
    );
    match history {
        // A first history (or the table was tracked only from now on): every current
        // row opens a version, not only this run's changes.
        None => format!(
            "select {n_cols}, {now} as valid_from, {null_ts} as valid_to, {run_lit} as run_id \
             from {new_name} n"
        ),
        Some(stored) => {
            let h_cols = projected("h", new_schema, stored).join(", ");
            let c_keys = keys
                .iter()
                .map(|k| format!("c.{}", q(k)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "select {h_cols}{kept_old}, h.valid_from, \
                   case when h.valid_to is null and x.__closed then {now} else h.valid_to end as valid_to, \
                   h.run_id \
                 from {hist_name} h \
                 left join (select distinct {c_keys}, true as __closed from {changes_name} c \
                   where c.change in ('remove', 'update')) x on {m} \
                 union all {opened}",
                m = key_match(keys, "x", "h"),
            )
        }
    }
}

/// `a.k1 = b.k1 and a.k2 = b.k2 …` over the unique key.
fn key_match(keys: &[String], a: &str, b: &str) -> String {
    keys.iter()
        .map(|k| format!("{a}.{k} = {b}.{k}", k = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// What a tracked job is about to publish, written before its first commit and removed after
/// its last (see the module documentation).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Intent {
    /// The run whose change rows are being written.
    run_id: String,
    /// The history's version before the run (`None`: there was none).
    history_version: Option<u64>,
}

/// Where a job's intent is kept.
struct IntentLocation {
    url: url::Url,
}

impl Intent {
    fn location(warehouse: &url::Url, job: &str) -> Result<IntentLocation> {
        Ok(IntentLocation {
            url: warehouse.join(&format!("_tessera/tracked/{job}.json"))?,
        })
    }
}

impl IntentLocation {
    async fn read(&self, engine: &tessera_engine::Engine) -> Result<Option<Intent>> {
        use object_store::ObjectStoreExt as _;
        let store = engine.store_for(&self.url)?;
        match store
            .get(&tessera_engine::storage::object_path(&self.url))
            .await
        {
            Ok(found) => {
                let bytes = found.bytes().await?;
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("{} is not a tracked job's intent", self.url)
                })?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn write(&self, engine: &tessera_engine::Engine, intent: &Intent) -> Result<()> {
        use object_store::ObjectStoreExt as _;
        let store = engine.store_for(&self.url)?;
        store
            .put(
                &tessera_engine::storage::object_path(&self.url),
                serde_json::to_vec(intent)?.into(),
            )
            .await
            .with_context(|| format!("writing {}", self.url))?;
        Ok(())
    }

    async fn remove(&self, engine: &tessera_engine::Engine) -> Result<()> {
        use object_store::ObjectStoreExt as _;
        let store = engine.store_for(&self.url)?;
        match store
            .delete(&tessera_engine::storage::object_path(&self.url))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
