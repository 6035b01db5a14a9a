//! `@materialized: model`: trains a logistic regression on the job's rows (see
//! `tessera_engine::model`) and appends the model version to the job's table and its held-out
//! evaluation to `<name>_metrics`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
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

use super::{
    JobResult, JobStatus, PlannedJob, Runner, commit_metadata, table_reference, table_url,
};
use crate::job::Job;

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
        let run_id = self.run_id();
        let now = Utc::now().timestamp_micros();
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));

        // The model: one row, wide.
        let mut fields = vec![
            Field::new("model_version", DataType::Int64, false),
            Field::new("trained_at", ts(), false),
            Field::new("run_id", DataType::Utf8, false),
            Field::new("label", DataType::Utf8, false),
            Field::new("train_rows", DataType::Int64, false),
            Field::new("holdout_auc", DataType::Float64, false),
            Field::new("intercept", DataType::Float64, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![version])),
            Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
            Arc::new(StringArray::from(vec![run_id.clone()])),
            Arc::new(StringArray::from(vec![label.clone()])),
            Arc::new(Int64Array::from(vec![eval.train_rows as i64])),
            Arc::new(Float64Array::from(vec![eval.auc])),
            Arc::new(Float64Array::from(vec![model.intercept])),
        ];
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
        let mut metric = Vec::new();
        let mut decile: Vec<Option<i64>> = Vec::new();
        let mut value = Vec::new();
        let mut push = |m: &str, d: Option<i64>, v: f64| {
            metric.push(m.to_string());
            decile.push(d);
            value.push(v);
        };
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
        for (d, rows, predicted, observed) in &eval.calibration {
            push("calibration_rows", Some(*d as i64), *rows as f64);
            push("calibration_predicted", Some(*d as i64), *predicted);
            push("calibration_observed", Some(*d as i64), *observed);
        }
        let n = metric.len();
        let metrics_batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("model_version", DataType::Int64, false),
                Field::new("evaluated_at", ts(), false),
                Field::new("run_id", DataType::Utf8, false),
                Field::new("metric", DataType::Utf8, false),
                Field::new("decile", DataType::Int64, true),
                Field::new("value", DataType::Float64, false),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![version; n])),
                Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
                Arc::new(StringArray::from(vec![run_id.clone(); n])),
                Arc::new(StringArray::from(metric)),
                Arc::new(Int64Array::from(decile)),
                Arc::new(Float64Array::from(value)),
            ],
        )?;

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
                .write_delta(df, table_url(&self.ws.project.warehouse, &name)?)
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
            auc = eval.auc,
            baseline_auc = eval.baseline_auc,
            "model trained"
        );
        self.states
            .lock()
            .expect("poisoned")
            .insert(job.name.clone(), format!("delta v{last}"));
        Ok(JobStatus::Success)
    }
}
