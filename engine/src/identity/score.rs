//! Scoring compared pairs where they are: the identity engine's own SQL function, and the
//! order-independent sums over the scored pairs.
//!
//! On a cluster the compared pairs stay in the resolution's scratch folder: each model pass
//! scores them on the executors with [`IdentityScore`] (the same Rust code that scores them on
//! one machine, so a pair gets the same weight to the bit wherever it is scored), and only
//! the accepted and contradicted links, and sums grouped by weight, come back.
//!
//! The sums a pass reads (the expected matches across components, the agreeing pairs of the
//! counted levels) are taken per distinct weight in ascending order ([`WeightSums`]): the
//! same pairs give the same bits whatever order they arrive in, from a partitioned query or
//! from memory.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Float64Array, Float64Builder, Int8Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::model::Model;

/// `tessera_identity_score(model, gamma_1, tf_1, …, gamma_k, tf_k)`: a compared pair's match
/// weight under `model` (as [`encode`] writes it) from its comparison levels
/// (NULL: no evidence) and the term frequencies of its agreeing values (NULL: not weighed).
/// Internal to identity resolution: registered in its sessions and on every cluster process.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IdentityScore {
    signature: Signature,
}

/// The function's name.
pub const SCORE_FUNCTION: &str = "tessera_identity_score";

impl Default for IdentityScore {
    fn default() -> Self {
        IdentityScore {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// The identity engine's SQL functions, for the sessions that run its queries (the cluster's
/// scheduler and executors among them).
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::from(IdentityScore::default()))]
}

fn score_err(message: String) -> DataFusionError {
    DataFusionError::Execution(format!("{SCORE_FUNCTION}: {message}"))
}

impl ScalarUDFImpl for IdentityScore {
    fn name(&self) -> &str {
        SCORE_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let mut args = args.args.into_iter();
        let model = match args.next() {
            Some(ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
            )) => s,
            _ => return Err(score_err("the model must be a string literal".into())),
        };
        let model = decode(&model)?;
        let rest: Vec<_> = args
            .map(|a| a.into_array(rows))
            .collect::<datafusion::error::Result<_>>()?;
        if rest.len() != 2 * model.m.len() {
            return Err(score_err(format!(
                "{} comparisons in the model, {} level and frequency arguments",
                model.m.len(),
                rest.len()
            )));
        }
        let mut gammas = Vec::with_capacity(model.m.len());
        let mut tfs = Vec::with_capacity(model.m.len());
        for pair in rest.chunks(2) {
            let g = cast(&pair[0], &DataType::Int8)?;
            let t = cast(&pair[1], &DataType::Float64)?;
            gammas.push(
                g.as_any()
                    .downcast_ref::<Int8Array>()
                    .expect("cast to Int8")
                    .clone(),
            );
            tfs.push(
                t.as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("cast to Float64")
                    .clone(),
            );
        }
        let weights = model.weights();
        let mut vector = vec![-1i8; gammas.len()];
        let mut frequencies: Vec<Option<f64>> = vec![None; gammas.len()];
        let mut out = Float64Builder::with_capacity(rows);
        for r in 0..rows {
            for (c, g) in gammas.iter().enumerate() {
                vector[c] = if g.is_null(r) { -1 } else { g.value(r) };
                frequencies[c] = Some(&tfs[c])
                    .filter(|t| t.is_valid(r))
                    .map(|t| t.value(r))
                    .filter(|f| f.is_finite());
            }
            out.append_value(weights.score(&vector, &frequencies).0);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// A model's prior, m and u as text, each number by its bits (a decimal text need not read back
/// to the same bits): `lambda;m;u`, comparisons separated by `|`, levels by `,`.
pub fn encode(model: &Model) -> String {
    let rows = |rows: &[Vec<f64>]| {
        rows.iter()
            .map(|r| {
                r.iter()
                    .map(|v| format!("{:x}", v.to_bits()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<Vec<_>>()
            .join("|")
    };
    format!(
        "{:x};{};{}",
        model.lambda.to_bits(),
        rows(&model.m),
        rows(&model.u)
    )
}

/// The model [`encode`] wrote (what scoring reads of it).
pub fn decode(text: &str) -> datafusion::error::Result<Model> {
    let bad = || score_err(format!("not a model: {:.60}", text));
    let number = |t: &str| {
        u64::from_str_radix(t, 16)
            .map(f64::from_bits)
            .map_err(|_| bad())
    };
    let rows = |t: &str| -> datafusion::error::Result<Vec<Vec<f64>>> {
        t.split('|')
            .map(|r| r.split(',').map(number).collect())
            .collect()
    };
    let mut parts = text.split(';');
    let (Some(lambda), Some(m), Some(u), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (m, u) = (rows(m)?, rows(u)?);
    if m.len() != u.len() || m.iter().zip(&u).any(|(m, u)| m.len() != u.len()) {
        return Err(bad());
    }
    Ok(Model {
        lambda: number(lambda)?,
        pooled: vec![Vec::new(); m.len()],
        m,
        u,
        iterations: 0,
        converged: true,
        matched_pairs: 0.0,
    })
}

/// The probability of a match weight (as [`super::model::Weights::score`] gives it).
pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

/// Counts of pairs per distinct weight, summed in ascending weight order: the same pairs give
/// the same sums to the bit in any order.
#[derive(Default)]
pub(super) struct WeightSums {
    /// Weight bits → a count per column.
    counts: rustc_hash::FxHashMap<u64, Vec<u64>>,
    columns: usize,
}

impl WeightSums {
    pub(super) fn new(columns: usize) -> WeightSums {
        WeightSums {
            counts: Default::default(),
            columns,
        }
    }

    /// Adds `n[k]` pairs of weight `w` to column `k`.
    pub(super) fn add(&mut self, w: f64, n: &[u64]) {
        // One NaN and one zero: -0.0 and 0.0 score alike.
        let key = if w == 0.0 { 0 } else { w.to_bits() };
        let row = self
            .counts
            .entry(key)
            .or_insert_with(|| vec![0; self.columns]);
        for (r, n) in row.iter_mut().zip(n) {
            *r += n;
        }
    }

    /// Σ count × f(weight) over column `k`, in ascending weight order.
    pub(super) fn sum(&self, k: usize, f: impl Fn(f64) -> f64) -> f64 {
        let mut rows: Vec<(f64, u64)> = self
            .counts
            .iter()
            .map(|(&bits, n)| (f64::from_bits(bits), n[k]))
            .filter(|(_, n)| *n > 0)
            .collect();
        rows.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        rows.iter().map(|&(w, n)| n as f64 * f(w)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    fn model() -> Model {
        Model {
            lambda: 0.001,
            m: vec![vec![0.9, 0.07, 0.03], vec![0.8, 0.2]],
            u: vec![vec![0.01, 0.04, 0.95], vec![0.05, 0.95]],
            iterations: 3,
            converged: true,
            pooled: vec![vec![], vec![]],
            matched_pairs: 12.5,
        }
    }

    /// The SQL function gives each vector the weight the Rust scorer gives it, to the bit:
    /// NULL levels, frequencies and NaN included.
    #[tokio::test]
    async fn the_sql_score_is_the_scorers_to_the_bit() {
        let ctx = SessionContext::new();
        for f in functions() {
            ctx.register_udf(f.as_ref().clone());
        }
        let model = model();
        let json = encode(&model);
        let rows = [
            ("0", "0.000123", "0"),
            ("0", "NULL", "1"),
            ("1", "0.5", "NULL"),
            ("2", "NULL", "1"),
            ("NULL", "NULL", "NULL"),
            ("0", "'NaN'", "0"),
            ("0", "1e-9", "0"),
        ];
        for (g0, tf0, g1) in rows {
            let sql = format!(
                "select {SCORE_FUNCTION}('{json}', cast({g0} as tinyint), cast({tf0} as double), \
                 cast({g1} as tinyint), cast(null as double)) as w"
            );
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let w = batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .value(0);
            let level = |g: &str| g.parse::<i8>().unwrap_or(-1);
            let tf = tf0
                .trim_matches('\'')
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite());
            let (want, p) = model.score(&[level(g0), level(g1)], &[tf, None]);
            assert_eq!(w.to_bits(), want.to_bits(), "{g0} {tf0} {g1}");
            assert_eq!(probability(w).to_bits(), p.to_bits());
        }
        let wrong = format!("select {SCORE_FUNCTION}('{json}', cast(0 as tinyint))");
        let e = ctx.sql(&wrong).await.unwrap().collect().await.unwrap_err();
        assert!(e.to_string().contains("2 comparisons"), "{e}");
        // Every number reads back to its bits, however it prints.
        let odd = Model {
            lambda: 0.1 + 0.2,
            m: vec![vec![1.0 / 3.0, f64::MIN_POSITIVE, 5e-324]],
            u: vec![vec![2.0f64.sqrt(), 1e300, 0.0]],
            ..model.clone()
        };
        let back = decode(&encode(&odd)).unwrap();
        assert_eq!(
            (back.lambda, &back.m, &back.u),
            (odd.lambda, &odd.m, &odd.u)
        );
        assert!(decode("1;2").is_err() && decode("zz;1;1").is_err() && decode("1;1,2;1").is_err());
    }

    /// Sums grouped by weight do not depend on the order the pairs come in.
    #[test]
    fn weight_sums_do_not_depend_on_the_order() {
        let weights: Vec<f64> = (0..5_000)
            .map(|i| ((i * 7919) % 613) as f64 / 37.0 - 8.0)
            .collect();
        let sums = |order: &mut dyn Iterator<Item = &f64>| {
            let mut s = WeightSums::new(2);
            for &w in order {
                s.add(w, &[1, u64::from(w > 0.0)]);
            }
            (s.sum(0, probability), s.sum(1, |w| 1.0 - probability(w)))
        };
        let forward = sums(&mut weights.iter());
        let backward = sums(&mut weights.iter().rev());
        assert_eq!(forward.0.to_bits(), backward.0.to_bits());
        assert_eq!(forward.1.to_bits(), backward.1.to_bits());
        let plain: f64 = weights.iter().map(|&w| probability(w)).sum();
        assert!((forward.0 - plain).abs() < 1e-9 * plain);
    }
}
