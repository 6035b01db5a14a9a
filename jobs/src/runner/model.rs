//! `@materialized: model`: fits a model on the job's rows — a logistic regression (see
//! `tessera_engine::model`) or the BG/NBD + Gamma–Gamma lifetime-value models
//! (`tessera_engine::clv`) — and appends the model version to the job's table and its
//! evaluation to `<name>_metrics`.

use std::sync::Arc;

use crate::bail;
use crate::errors::{Context, Result};
use chrono::Utc;
use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::MemTable;
use datafusion::prelude::DataFrame;
use tessera_engine::WriteMode;
use tessera_engine::model::{TrainingSet, is_holdout, train_logistic};

use super::{JobResult, JobStatus, PlannedJob, Runner, commit_metadata, table_reference};
use crate::job::{Job, ModelAlgorithm};

/// L2 penalty of the logistic regression (on standardised features).
const ALPHA: f64 = 1.0;

fn numeric(dt: &DataType) -> bool {
    dt.is_numeric() || matches!(dt, DataType::Boolean)
}

impl Runner<'_> {
    pub(super) async fn execute_model(
        &self,
        job: &Job,
        planned: &PlannedJob,
        df: DataFrame,
        result: &mut JobResult,
    ) -> Result<JobStatus> {
        let ctx = self.ws.engine.ctx();
        // The version: one more than the stored table's latest.
        let stored = self.existing_table(&job.name).await?;
        let version = match &stored {
            Some(provider) => {
                let name = format!("__model_{}", job.name.replace('.', "_"));
                let _ = ctx.deregister_table(name.as_str());
                ctx.register_table(name.as_str(), provider.clone())?;
                let out = ctx
                    .sql(&format!(
                        "select coalesce(max(model_version), 0) + 1 as v from {name}"
                    ))
                    .await?
                    .collect()
                    .await;
                let _ = ctx.deregister_table(name.as_str());
                let out = out?;
                cast(out[0].column(0), &DataType::Int64)?
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map_or(1, |a| a.value(0))
            }
            None => 1,
        };
        let stamp = Stamp {
            version,
            run_id: self.run_id(),
            now: Utc::now().timestamp_micros(),
        };
        let (model_batch, metrics) = match job.config.algorithm {
            ModelAlgorithm::LogisticRegression => logistic(job, df, &stamp).await?,
            ModelAlgorithm::BgNbdGammaGamma => lifetime_value(job, df, &stamp).await?,
        };
        let metrics_batch = metrics_batch(&metrics, &stamp)?;
        let meta = commit_metadata(job, planned);
        let metrics_table = format!("{}_metrics", job.name);
        // The model table keeps every version; a feature set change starts it afresh (older
        // versions stay readable by Delta time travel).
        let model_mode = match stored {
            Some(p)
                if p.schema().fields().len() == model_batch.schema().fields().len()
                    && p.schema()
                        .fields()
                        .iter()
                        .zip(model_batch.schema().fields())
                        .all(|(a, b)| a.name() == b.name()) =>
            {
                WriteMode::Append
            }
            Some(_) => WriteMode::Overwrite,
            None => WriteMode::Append,
        };
        let mut last = 0;
        for (name, batch, mode) in [
            (metrics_table.clone(), metrics_batch, WriteMode::Append),
            (job.name.clone(), model_batch, model_mode),
        ] {
            let df = ctx.read_table(Arc::new(MemTable::try_new(
                batch.schema(),
                vec![vec![batch]],
            )?))?;
            let mut write = self
                .ws
                .engine
                .write_delta(df, self.output_url(&name)?)
                .with_mode(mode);
            for (k, v) in &meta {
                write = write.with_commit_metadata(k.clone(), v.clone());
            }
            last = write
                .await
                .with_context(|| format!("writing {name}"))?
                .version;
            let _ = ctx.deregister_table(table_reference(&name));
        }
        result.rows = Some(1);
        result.output_version = Some(last);
        tracing::info!(
            job = %job.name,
            version,
            algorithm = job.config.algorithm.name(),
            "model trained"
        );
        self.states
            .lock()
            .expect("poisoned")
            .insert(job.name.clone(), self.written_state(last));
        Ok(JobStatus::Success)
    }
}

/// The model version, when and by which run it was trained.
struct Stamp {
    version: i64,
    run_id: String,
    now: i64,
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The first columns of every model table.
fn stamp_columns(stamp: &Stamp, algorithm: ModelAlgorithm) -> (Vec<Field>, Vec<ArrayRef>) {
    (
        vec![
            Field::new("model_version", DataType::Int64, false),
            Field::new("trained_at", timestamp_type(), false),
            Field::new("run_id", DataType::Utf8, false),
            Field::new("algorithm", DataType::Utf8, false),
        ],
        vec![
            Arc::new(Int64Array::from(vec![stamp.version])),
            Arc::new(TimestampMicrosecondArray::from(vec![stamp.now]).with_timezone("UTC")),
            Arc::new(StringArray::from(vec![stamp.run_id.clone()])),
            Arc::new(StringArray::from(vec![algorithm.name()])),
        ],
    )
}

/// One row of `<model>_metrics`: (metric, decile, value).
type Metric = (String, Option<i64>, f64);

/// Calibration by decile — (decile, rows, mean predicted, mean observed) — as metric rows.
fn push_calibration(metrics: &mut Vec<Metric>, calibration: &[(usize, usize, f64, f64)]) {
    for &(d, rows, predicted, observed) in calibration {
        let d = Some(d as i64);
        metrics.push(("calibration_rows".into(), d, rows as f64));
        metrics.push(("calibration_predicted".into(), d, predicted));
        metrics.push(("calibration_observed".into(), d, observed));
    }
}

fn metrics_batch(metrics: &[Metric], stamp: &Stamp) -> Result<RecordBatch> {
    let n = metrics.len();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("model_version", DataType::Int64, false),
            Field::new("evaluated_at", timestamp_type(), false),
            Field::new("run_id", DataType::Utf8, false),
            Field::new("metric", DataType::Utf8, false),
            Field::new("decile", DataType::Int64, true),
            Field::new("value", DataType::Float64, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![stamp.version; n])),
            Arc::new(TimestampMicrosecondArray::from(vec![stamp.now; n]).with_timezone("UTC")),
            Arc::new(StringArray::from(vec![stamp.run_id.clone(); n])),
            Arc::new(StringArray::from_iter_values(
                metrics.iter().map(|m| m.0.as_str()),
            )),
            Arc::new(Int64Array::from_iter(metrics.iter().map(|m| m.1))),
            Arc::new(Float64Array::from_iter_values(metrics.iter().map(|m| m.2))),
        ],
    )?)
}

/// Logistic regression of `@label` on the other numeric columns: the model row and its
/// held-out evaluation.
async fn logistic(job: &Job, df: DataFrame, stamp: &Stamp) -> Result<(RecordBatch, Vec<Metric>)> {
    let label = job.config.label.clone().expect("checked when parsed");
    let keys = &job.config.unique_key;
    let schema = df.schema().as_arrow().clone();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    for c in keys.iter().chain([&label]) {
        if !names.contains(c) {
            bail!(
                "column `{c}` is not in the query's result (columns: {})",
                names.join(", ")
            );
        }
    }
    let mut features = Vec::new();
    for f in schema.fields() {
        if keys.contains(f.name()) || f.name() == &label {
            continue;
        }
        if !numeric(f.data_type()) {
            bail!(
                "feature column `{}` is {}: model features must be numeric or boolean (cast it, or leave it out of the query)",
                f.name(),
                f.data_type()
            );
        }
        features.push(f.name().clone());
    }
    let batches = df.collect().await.context("computing the training rows")?;
    let mut set = TrainingSet {
        features: features.clone(),
        rows: Vec::new(),
        labels: Vec::new(),
        holdout: Vec::new(),
    };
    let mut unlabelled = 0usize;
    for batch in &batches {
        let column = |name: &str| -> Result<ArrayRef> {
            let array = batch.column(schema.index_of(name)?);
            Ok(cast(array, &DataType::Float64)?)
        };
        let labels = column(&label)?;
        let labels = labels
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("cast");
        let key_arrays: Vec<ArrayRef> = keys
            .iter()
            .map(|k| Ok(cast(batch.column(schema.index_of(k)?), &DataType::Utf8)?))
            .collect::<Result<_>>()?;
        let feature_arrays: Vec<ArrayRef> =
            features.iter().map(|f| column(f)).collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            if labels.is_null(row) {
                unlabelled += 1;
                continue;
            }
            let y = labels.value(row);
            if y != 0.0 && y != 1.0 {
                bail!("label `{label}` must be true/false or 0/1; row {row} has {y}");
            }
            let key = key_arrays
                .iter()
                .map(|a| {
                    let s = a.as_any().downcast_ref::<StringArray>().expect("cast");
                    if s.is_null(row) {
                        String::new()
                    } else {
                        s.value(row).to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\u{1f}");
            set.holdout.push(is_holdout(&key));
            set.labels.push(y == 1.0);
            set.rows.push(
                feature_arrays
                    .iter()
                    .map(|a| {
                        let a = a.as_any().downcast_ref::<Float64Array>().expect("cast");
                        (!a.is_null(row)).then(|| a.value(row))
                    })
                    .collect(),
            );
        }
    }
    let (model, eval) = train_logistic(&set, ALPHA)?;
    tracing::info!(job = %job.name, auc = eval.auc, baseline_auc = eval.baseline_auc, "logistic regression trained");

    // The model: one row, wide.
    let (mut fields, mut columns) = stamp_columns(stamp, ModelAlgorithm::LogisticRegression);
    fields.extend([
        Field::new("label", DataType::Utf8, false),
        Field::new("train_rows", DataType::Int64, false),
        Field::new("holdout_auc", DataType::Float64, false),
        Field::new("intercept", DataType::Float64, false),
    ]);
    columns.extend([
        Arc::new(StringArray::from(vec![label.clone()])) as ArrayRef,
        Arc::new(Int64Array::from(vec![eval.train_rows as i64])),
        Arc::new(Float64Array::from(vec![eval.auc])),
        Arc::new(Float64Array::from(vec![model.intercept])),
    ]);
    for (i, f) in model.features.iter().enumerate() {
        for (prefix, value) in [
            ("coef", model.coefficients[i]),
            ("mean", model.means[i]),
            ("scale", model.scales[i]),
        ] {
            fields.push(Field::new(
                format!("{prefix}_{f}"),
                DataType::Float64,
                false,
            ));
            columns.push(Arc::new(Float64Array::from(vec![value])));
        }
    }
    let model_batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;

    // The evaluation: long form.
    let mut metrics: Vec<Metric> = Vec::new();
    let mut push = |m: &str, d: Option<i64>, v: f64| metrics.push((m.to_string(), d, v));
    push("train_rows", None, eval.train_rows as f64);
    push("holdout_rows", None, eval.holdout_rows as f64);
    push("unlabelled_rows", None, unlabelled as f64);
    push("base_rate", None, eval.base_rate);
    push("auc", None, eval.auc);
    push("baseline_auc", None, eval.baseline_auc);
    push("log_loss", None, eval.log_loss);
    push("baseline_log_loss", None, eval.baseline_log_loss);
    push("brier", None, eval.brier);
    push("baseline_brier", None, eval.baseline_brier);
    push_calibration(&mut metrics, &eval.calibration);
    Ok((model_batch, metrics))
}

/// The columns a `bg_nbd_gamma_gamma` job reads.
const CLV_COLUMNS: [&str; 4] = ["frequency", "recency", "t", "monetary_value"];
const CLV_HOLDOUT: [&str; 3] = ["holdout_purchases", "holdout_revenue", "holdout_days"];

/// BG/NBD + Gamma–Gamma (see `tessera_engine::clv`): fitted on the rows without holdout
/// columns (everyone's full history), evaluated by a second fit on the rows with them (history
/// up to a cut-off, and what happened after it).
async fn lifetime_value(
    job: &Job,
    df: DataFrame,
    stamp: &Stamp,
) -> Result<(RecordBatch, Vec<Metric>)> {
    let (training, calibration) = clv_summaries(df).await?;
    if training.is_empty() {
        bail!(
            "no rows to fit on: rows with a NULL `holdout_days` (full histories) are the training rows, the others only evaluate"
        );
    }
    let fit = tessera_engine::clv::fit(&training).context("fitting on the full histories")?;
    let evaluation = if calibration.is_empty() {
        None
    } else {
        Some(
            tessera_engine::clv::evaluate(&calibration)
                .context("fitting on the calibration histories")?,
        )
    };
    clv_outputs(job, stamp, &fit, evaluation.as_ref(), &calibration)
}

/// The customer summaries a `bg_nbd_gamma_gamma` job's query returns: those without holdout
/// columns train, those with them (history up to a cut-off, and what happened after it)
/// evaluate. Errors name the missing column or the row with a NULL.
async fn clv_summaries(
    df: DataFrame,
) -> Result<(
    Vec<tessera_engine::clv::Summary>,
    Vec<tessera_engine::clv::Holdout>,
)> {
    let schema = df.schema().as_arrow().clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for c in CLV_COLUMNS {
        if !names.contains(&c) {
            bail!(
                "a bg_nbd_gamma_gamma model reads `frequency` (repeat purchase days), `recency` (first to last purchase), `t` (first purchase to the end of the observation) and `monetary_value` (average repeat purchase); `{c}` is not in the query's result (columns: {})",
                names.join(", ")
            );
        }
    }
    let holdout = CLV_HOLDOUT.iter().filter(|c| names.contains(c)).count();
    if holdout != 0 && holdout != CLV_HOLDOUT.len() {
        bail!(
            "evaluation needs all of {} (or none of them)",
            CLV_HOLDOUT.join(", ")
        );
    }
    let batches = df
        .collect()
        .await
        .context("computing the customer summaries")?;
    let mut training = Vec::new();
    let mut calibration = Vec::new();
    let mut row_number = 0usize;
    for batch in &batches {
        let read = |name: &str| -> Result<Float64Array> {
            let array = batch.column(schema.index_of(name)?);
            let array = cast(array, &DataType::Float64)
                .with_context(|| format!("column `{name}` must be numeric"))?;
            Ok(array
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast")
                .clone())
        };
        let [x, tx, t, m] = CLV_COLUMNS.map(read);
        let (x, tx, t, m) = (x?, tx?, t?, m?);
        let eval = if holdout > 0 {
            let [p, r, d] = CLV_HOLDOUT.map(read);
            Some((p?, r?, d?))
        } else {
            None
        };
        for i in 0..batch.num_rows() {
            row_number += 1;
            for (name, a) in [("frequency", &x), ("recency", &tx), ("t", &t)] {
                if a.is_null(i) {
                    bail!(
                        "row {row_number}: `{name}` is NULL (every customer summary needs frequency, recency and t)"
                    );
                }
            }
            let summary = tessera_engine::clv::Summary {
                frequency: x.value(i),
                recency: tx.value(i),
                t: t.value(i),
                monetary_value: (!m.is_null(i)).then(|| m.value(i)),
            };
            match &eval {
                Some((p, r, d)) if !d.is_null(i) => {
                    calibration.push(tessera_engine::clv::Holdout {
                        summary,
                        days: d.value(i),
                        purchases: if p.is_null(i) { 0.0 } else { p.value(i) },
                        revenue: if r.is_null(i) { 0.0 } else { r.value(i) },
                    })
                }
                _ => training.push(summary),
            }
        }
    }
    Ok((training, calibration))
}

/// The fitted lifetime-value model as its one-row table, and its metrics (with the
/// evaluation's, when there are holdout rows).
fn clv_outputs(
    job: &Job,
    stamp: &Stamp,
    fit: &tessera_engine::clv::Fit,
    evaluation: Option<&tessera_engine::clv::Evaluation>,
    calibration: &[tessera_engine::clv::Holdout],
) -> Result<(RecordBatch, Vec<Metric>)> {
    let (mut fields, mut columns) = stamp_columns(stamp, ModelAlgorithm::BgNbdGammaGamma);
    let float = |name: &str, nullable: bool| Field::new(name, DataType::Float64, nullable);
    fields.extend([
        Field::new("customers", DataType::Int64, false),
        Field::new("repeat_customers", DataType::Int64, false),
        float("r", false),
        float("alpha", false),
        float("a", false),
        float("b", false),
        float("p", true),
        float("q", true),
        float("v", true),
        float("bg_nbd_log_likelihood", false),
        float("gamma_gamma_log_likelihood", true),
    ]);
    let gg = fit.gamma_gamma;
    let one = |v: Option<f64>| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
    columns.extend([
        Arc::new(Int64Array::from(vec![fit.customers as i64])) as ArrayRef,
        Arc::new(Int64Array::from(vec![fit.repeat_customers as i64])),
        one(Some(fit.bg_nbd.r)),
        one(Some(fit.bg_nbd.alpha)),
        one(Some(fit.bg_nbd.a)),
        one(Some(fit.bg_nbd.b)),
        one(gg.map(|g| g.p)),
        one(gg.map(|g| g.q)),
        one(gg.map(|g| g.v)),
        one(Some(fit.bg_nbd_log_likelihood)),
        one(fit.gamma_gamma_log_likelihood),
    ]);
    let model_batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;

    let mut metrics: Vec<Metric> = Vec::new();
    let mut push = |m: &str, d: Option<i64>, v: f64| metrics.push((m.to_string(), d, v));
    push("customers", None, fit.customers as f64);
    push("repeat_customers", None, fit.repeat_customers as f64);
    if let Some(c) = fit.frequency_monetary_correlation {
        push("frequency_monetary_correlation", None, c);
    }
    if let Some(e) = evaluation {
        push("holdout_customers", None, e.customers as f64);
        push(
            "holdout_days",
            None,
            calibration.iter().map(|c| c.days).sum::<f64>() / calibration.len() as f64,
        );
        push("actual_purchases", None, e.actual_purchases);
        push("predicted_purchases", None, e.predicted_purchases);
        push("baseline_purchases", None, e.baseline_purchases);
        push("purchases_mae", None, e.purchases_mae);
        push("baseline_purchases_mae", None, e.baseline_purchases_mae);
        push("purchases_rmse", None, e.purchases_rmse);
        push("baseline_purchases_rmse", None, e.baseline_purchases_rmse);
        push("actual_revenue", None, e.actual_revenue);
        push("predicted_revenue", None, e.predicted_revenue);
        push("revenue_mae", None, e.revenue_mae);
        push("baseline_revenue_mae", None, e.baseline_revenue_mae);
    }
    if let Some(e) = evaluation {
        push_calibration(&mut metrics, &e.calibration);
    }
    tracing::info!(
        job = %job.name,
        r = fit.bg_nbd.r,
        alpha = fit.bg_nbd.alpha,
        a = fit.bg_nbd.a,
        b = fit.bg_nbd.b,
        "lifetime value model fitted"
    );
    Ok((model_batch, metrics))
}
