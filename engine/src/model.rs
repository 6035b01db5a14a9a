//! Models trained in the engine: logistic regression (the `linfa-logistic` crate) on numeric
//! features a SQL query defines, with a deterministic held-out split and its evaluation (AUC,
//! log loss, Brier score, calibration by decile) against a trivial baseline (the training base
//! rate for everyone).

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

use crate::error::{Error, Result};

/// A fitted logistic regression over standardised features:
/// `p = sigmoid(intercept + Σ coefficient_i · (x_i − mean_i) / scale_i)`, a missing value
/// counting as the mean.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    /// Feature names, in order.
    pub features: Vec<String>,
    /// Training means (missing values are imputed with them).
    pub means: Vec<f64>,
    /// Training standard deviations (1 for a constant feature).
    pub scales: Vec<f64>,
    /// Coefficients on the standardised features.
    pub coefficients: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
}

impl Logistic {
    /// The probability of the positive label for one row of features.
    pub fn predict(&self, row: &[Option<f64>]) -> f64 {
        let mut z = self.intercept;
        for (i, x) in row.iter().enumerate() {
            let v = x.unwrap_or(self.means[i]);
            z += self.coefficients[i] * (v - self.means[i]) / self.scales[i];
        }
        1.0 / (1.0 + (-z).exp())
    }
}

/// How the model does on the held-out rows, beside the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Rows trained on and held out.
    pub train_rows: usize,
    /// Rows held out.
    pub holdout_rows: usize,
    /// Share of positives in the training rows (the baseline's prediction).
    pub base_rate: f64,
    /// Area under the ROC curve on the held-out rows.
    pub auc: f64,
    /// The baseline's AUC (a constant score: 0.5).
    pub baseline_auc: f64,
    /// Mean log loss on the held-out rows.
    pub log_loss: f64,
    /// The baseline's log loss.
    pub baseline_log_loss: f64,
    /// Brier score (mean squared error of the probability).
    pub brier: f64,
    /// The baseline's Brier score.
    pub baseline_brier: f64,
    /// Calibration by decile of predicted probability: (decile, rows, mean predicted,
    /// observed rate).
    pub calibration: Vec<(usize, usize, f64, f64)>,
}

/// Rows of features (None = missing) with a label and whether they are held out.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    /// Feature names.
    pub features: Vec<String>,
    /// One entry per row.
    pub rows: Vec<Vec<Option<f64>>>,
    /// The label per row.
    pub labels: Vec<bool>,
    /// Whether each row is held out for evaluation.
    pub holdout: Vec<bool>,
}

/// Area under the ROC curve (Mann–Whitney, ties counted half).
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut positives) = (0.0, 0usize);
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let mid_rank = (i + j + 1) as f64 / 2.0; // ranks i+1..=j
        for p in &pairs[i..j] {
            if p.1 {
                rank_sum += mid_rank;
                positives += 1;
            }
        }
        i = j;
    }
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return 0.5;
    }
    (rank_sum - (positives * (positives + 1)) as f64 / 2.0) / (positives * negatives) as f64
}

fn log_loss(p: f64, y: bool) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    if y { -p.ln() } else { -(1.0 - p).ln() }
}

/// Trains on the rows not held out (L2 penalty `alpha`), evaluates on the held-out ones.
pub fn train_logistic(set: &TrainingSet, alpha: f64) -> Result<(Logistic, Evaluation)> {
    let invalid = |message: String| Error::InvalidModel { message };
    let k = set.features.len();
    if k == 0 {
        return Err(invalid(
            "no numeric feature columns besides the key and the label".into(),
        ));
    }
    let train: Vec<usize> = (0..set.rows.len()).filter(|&i| !set.holdout[i]).collect();
    let held: Vec<usize> = (0..set.rows.len()).filter(|&i| set.holdout[i]).collect();
    let positives = train.iter().filter(|&&i| set.labels[i]).count();
    if positives == 0 || positives == train.len() {
        return Err(invalid(format!(
            "the label has one value only in the {} training rows ({positives} positive): nothing to learn",
            train.len()
        )));
    }
    if held.is_empty() {
        return Err(invalid(
            "no rows held out for evaluation (too few rows)".into(),
        ));
    }
    // Standardise on the training rows; missing values take the mean.
    let mut means = vec![0.0; k];
    let mut scales = vec![1.0; k];
    for f in 0..k {
        let values: Vec<f64> = train
            .iter()
            .filter_map(|&i| set.rows[i][f])
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            continue;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        means[f] = mean;
        scales[f] = if var > 0.0 { var.sqrt() } else { 1.0 };
    }
    let standard = |i: usize, f: usize| {
        let v = set.rows[i][f].filter(|v| v.is_finite()).unwrap_or(means[f]);
        (v - means[f]) / scales[f]
    };
    let x = Array2::from_shape_fn((train.len(), k), |(r, f)| standard(train[r], f));
    let y: Array1<bool> = train.iter().map(|&i| set.labels[i]).collect();
    let fitted = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(200)
        .fit(&Dataset::new(x, y))
        .map_err(|e| invalid(format!("logistic regression did not fit: {e}")))?;
    // linfa's probability is of its positive class, which is the more frequent label (not
    // necessarily `true`): turn the model around when it is `false`.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let model = Logistic {
        features: set.features.clone(),
        means,
        scales,
        coefficients: fitted.params().iter().map(|c| sign * c).collect(),
        intercept: sign * fitted.intercept(),
    };

    let base_rate = positives as f64 / train.len() as f64;
    let scores: Vec<f64> = held.iter().map(|&i| model.predict(&set.rows[i])).collect();
    let labels: Vec<bool> = held.iter().map(|&i| set.labels[i]).collect();
    let n = held.len() as f64;
    let mean = |f: &dyn Fn(f64, bool) -> f64, s: &[f64]| {
        s.iter().zip(&labels).map(|(&p, &y)| f(p, y)).sum::<f64>() / n
    };
    let brier = |p: f64, y: bool| (p - if y { 1.0 } else { 0.0 }).powi(2);
    let constant = vec![base_rate; held.len()];
    let mut order: Vec<usize> = (0..held.len()).collect();
    // Ties are ordered by label, so the bins do not depend on the order the rows were read in.
    order.sort_by(|&a, &b| {
        scores[a]
            .total_cmp(&scores[b])
            .then(labels[a].cmp(&labels[b]))
    });
    let calibration = (0..10)
        .filter_map(|d| {
            let from = d * order.len() / 10;
            let to = (d + 1) * order.len() / 10;
            let bin = &order[from..to];
            (!bin.is_empty()).then(|| {
                let m = bin.len() as f64;
                (
                    d + 1,
                    bin.len(),
                    bin.iter().map(|&i| scores[i]).sum::<f64>() / m,
                    bin.iter().filter(|&&i| labels[i]).count() as f64 / m,
                )
            })
        })
        .collect();
    let evaluation = Evaluation {
        train_rows: train.len(),
        holdout_rows: held.len(),
        base_rate,
        auc: auc(&scores, &labels),
        baseline_auc: 0.5,
        log_loss: mean(&log_loss, &scores),
        baseline_log_loss: mean(&log_loss, &constant),
        brier: mean(&brier, &scores),
        baseline_brier: mean(&brier, &constant),
        calibration,
    };
    Ok((model, evaluation))
}

/// Whether a row is held out: a stable hash of its key, about one row in five.
pub fn is_holdout(key: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes())[0] < 52
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_reference_values() {
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5);
        assert_eq!(auc(&[0.9, 0.1], &[true, false]), 1.0);
    }

    #[test]
    fn learns_a_real_signal_and_beats_the_baseline() {
        // y = 1 when x1 + noise > 0; x2 is noise.
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for _ in 0..2000 {
            let (x1, x2, noise) = (next() * 10.0, next() * 10.0, next() * 3.0);
            rows.push(vec![Some(x1), if x2 > 4.0 { None } else { Some(x2) }]);
            // A minority positive class (about 30%), as churn is.
            labels.push(x1 + noise > 2.0);
        }
        let holdout = (0..rows.len())
            .map(|i| is_holdout(&format!("k{i}")))
            .collect();
        let set = TrainingSet {
            features: vec!["x1".into(), "x2".into()],
            rows,
            labels,
            holdout,
        };
        let (model, eval) = train_logistic(&set, 0.1).unwrap();
        assert!(eval.auc > 0.9, "{eval:?}");
        assert!(eval.log_loss < eval.baseline_log_loss, "{eval:?}");
        assert!(model.coefficients[0] > 1.0, "{model:?}");
        assert!(
            model.coefficients[1].abs() < model.coefficients[0] / 5.0,
            "{model:?}"
        );
        assert!(
            eval.holdout_rows > 250 && eval.holdout_rows < 550,
            "{eval:?}"
        );
    }

    #[test]
    fn a_constant_label_is_a_clear_error() {
        let set = TrainingSet {
            features: vec!["x".into()],
            rows: vec![vec![Some(1.0)]; 10],
            labels: vec![false; 10],
            holdout: (0..10).map(|i| i == 0).collect(),
        };
        let err = train_logistic(&set, 1.0).unwrap_err().to_string();
        assert!(err.contains("one value only"), "{err}");
    }
}
