//! Customer lifetime value: predictions of the BG/NBD purchase model (Fader, Hardie & Lee,
//! "Counting your customers the easy way", 2005) and the Gamma–Gamma spend model (Fader, Hardie
//! & Lee, "RFM and CLV", 2005) from fitted parameters — the scoring half of
//! `@materialized: model` with `@algorithm: bg_nbd_gamma_gamma` (the engine fits them).
//!
//! Inputs are the usual customer summary: `frequency` = repeat purchases (purchase days after
//! the first), `recency` = time from the first to the last purchase, `t` = time from the first
//! purchase to the end of the observation, all in the same unit as the fitted parameters (days in
//! Tessera's jobs).

use std::sync::Arc;

use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Signature, Volatility};
use datafusion_macros::user_doc;

/// BG/NBD parameters: purchase rates ~ Gamma(r, alpha), drop-out probability after each
/// purchase ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Scale of the purchase-rate distribution (in the time unit).
    pub alpha: f64,
    /// Beta parameter a of the drop-out probability.
    pub a: f64,
    /// Beta parameter b of the drop-out probability.
    pub b: f64,
}

/// Gamma–Gamma parameters: a customer's spend per transaction ~ Gamma(p, ν) with
/// ν ~ Gamma(q, v).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    /// Shape of the per-transaction spend.
    pub p: f64,
    /// Shape of the spend-scale distribution.
    pub q: f64,
    /// Scale of the spend-scale distribution.
    pub v: f64,
}

/// A customer summary is usable when its numbers are finite, non-negative and consistent
/// (recency ≤ t, and recency 0 when there is no repeat purchase is not required: some sources
/// count same-day purchases).
fn valid_summary(frequency: f64, recency: f64, t: f64) -> bool {
    frequency.is_finite()
        && recency.is_finite()
        && t.is_finite()
        && frequency >= 0.0
        && recency >= 0.0
        && t >= recency
}

impl BgNbd {
    fn valid(&self) -> bool {
        [self.r, self.alpha, self.a, self.b]
            .iter()
            .all(|x| x.is_finite() && *x > 0.0)
    }

    /// ln of the odds term a/(b+x−1) · ((α+T)/(α+t_x))^(r+x) that separates P(alive) from 1.
    fn log_dropout_odds(&self, frequency: f64, recency: f64, t: f64) -> Option<f64> {
        (frequency > 0.0).then(|| {
            self.a.ln() - (self.b + frequency - 1.0).ln()
                + (self.r + frequency) * ((self.alpha + t).ln() - (self.alpha + recency).ln())
        })
    }

    /// The probability that a customer with this history is still active at `t`. `None` for
    /// invalid parameters or history.
    pub fn p_alive(&self, frequency: f64, recency: f64, t: f64) -> Option<f64> {
        if !self.valid() || !valid_summary(frequency, recency, t) {
            return None;
        }
        Some(match self.log_dropout_odds(frequency, recency, t) {
            None => 1.0,
            Some(l) => 1.0 / (1.0 + l.exp()),
        })
    }

    /// The expected number of purchases in the next `horizon` time units for a customer with
    /// this history (equation 10 of the BG/NBD paper, with the hypergeometric function
    /// evaluated after Euler's transformation so large frequencies neither overflow nor need
    /// thousands of terms). `None` for invalid input or `a` = 1 (the formula's pole).
    pub fn expected_purchases(
        &self,
        frequency: f64,
        recency: f64,
        t: f64,
        horizon: f64,
    ) -> Option<f64> {
        if !self.valid()
            || !valid_summary(frequency, recency, t)
            || !horizon.is_finite()
            || horizon < 0.0
            || (self.a - 1.0).abs() < 1e-9
        {
            return None;
        }
        if horizon == 0.0 {
            return Some(0.0);
        }
        let (r, alpha, a, b, x) = (self.r, self.alpha, self.a, self.b, frequency);
        let z = horizon / (alpha + t + horizon);
        // 1 − ((α+T)/(α+T+h))^(r+x) · 2F1(r+x, b+x; a+b+x−1; z)
        //   = 1 − (1−z)^(a−1) · 2F1(a+b−1−r, a−1; a+b+x−1; z)        (Euler)
        let f = hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)?;
        let bracket = 1.0 - (1.0 - z).powf(a - 1.0) * f;
        let numerator = (a + b + x - 1.0) / (a - 1.0) * bracket;
        let denominator = 1.0
            + self
                .log_dropout_odds(x, recency, t)
                .map_or(0.0, |l| l.exp());
        let out = numerator / denominator;
        out.is_finite().then_some(out.max(0.0))
    }
}

impl GammaGamma {
    /// The expected spend per transaction of a customer with `frequency` repeat purchases of
    /// average value `monetary_value` (the population mean p·v/(q−1) when `frequency` is 0).
    /// `None` for invalid input or q ≤ 1 (no finite mean).
    pub fn expected_average_value(&self, frequency: f64, monetary_value: f64) -> Option<f64> {
        let (p, q, v) = (self.p, self.q, self.v);
        if ![p, q, v].iter().all(|x| x.is_finite() && *x > 0.0)
            || q <= 1.0
            || !frequency.is_finite()
            || frequency < 0.0
        {
            return None;
        }
        let m = if frequency > 0.0 {
            if !monetary_value.is_finite() || monetary_value < 0.0 {
                return None;
            }
            monetary_value
        } else {
            0.0
        };
        let out = p * (v + frequency * m) / (p * frequency + q - 1.0);
        out.is_finite().then_some(out)
    }
}

/// Gauss's hypergeometric function 2F1(a, b; c; z) for 0 ≤ z < 1 by its power series (`None`
/// when it does not converge in 100 000 terms or overflows).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if !((0.0..1.0).contains(&z) && a.is_finite() && b.is_finite() && c.is_finite()) {
        return None;
    }
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    for n in 0..100_000u32 {
        let n = f64::from(n);
        let denominator = (c + n) * (n + 1.0);
        if denominator == 0.0 {
            return None;
        }
        term *= (a + n) * (b + n) / denominator * z;
        sum += term;
        if !sum.is_finite() {
            return None;
        }
        if term.abs() <= 1e-15 * sum.abs() {
            return Some(sum);
        }
    }
    None
}

/// Each argument as a Float64 array of `n` rows.
fn float_arrays(args: &[ColumnarValue], n: usize) -> Result<Vec<Float64Array>> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            let array = a.to_array(n)?;
            let array = cast(&array, &DataType::Float64).map_err(|e| {
                DataFusionError::Execution(format!(
                    "argument {}: cannot read {} as a number: {e}",
                    i + 1,
                    array.data_type()
                ))
            })?;
            Ok(array
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast to Float64")
                .clone())
        })
        .collect()
}

/// `f` over the arguments as numbers, row by row: NULL where an argument is NULL or `f` gives
/// `None`; one value when every argument is a constant.
fn eval_numbers(
    args: &[ColumnarValue],
    rows: usize,
    f: impl Fn(&[f64]) -> Option<f64>,
) -> Result<ColumnarValue> {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let n = if all_scalar { 1 } else { rows };
    let arrays = float_arrays(args, n)?;
    let mut row = vec![0.0; arrays.len()];
    let out: Float64Array = (0..n)
        .map(|i| {
            for (slot, a) in row.iter_mut().zip(&arrays) {
                if a.is_null(i) {
                    return None;
                }
                *slot = a.value(i);
            }
            f(&row)
        })
        .collect();
    Ok(if all_scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(Arc::new(out))
    })
}

fn numbers(n: usize) -> Signature {
    Signature::uniform(n, vec![DataType::Float64], Volatility::Immutable)
}

crate::string_function! {
    #[user_doc(
        doc_section(label = "Lifetime value functions"),
        description = "The probability that a customer is still active (has not silently \
        churned) under a fitted BG/NBD model, from their repeat purchases (`frequency`), the \
        time from their first to their last purchase (`recency`) and from their first purchase \
        to now (`t`), in the unit of the fitted `alpha` (days in Tessera's jobs). A customer \
        without repeat purchases counts as alive. NULL when an argument is NULL, a parameter is \
        not positive, or recency > t.",
        syntax_example = "bg_nbd_p_alive(r, alpha, a, b, frequency, recency, t)",
        sql_example = r#"```sql
> select round(bg_nbd_p_alive(0.243, 4.414, 0.793, 2.426, 2, 30.43, 38.86), 3);
0.727
```"#,
        argument(name = "r", description = "Fitted shape of the purchase rates."),
        argument(name = "alpha", description = "Fitted scale of the purchase rates."),
        argument(name = "a", description = "Fitted drop-out parameter a."),
        argument(name = "b", description = "Fitted drop-out parameter b."),
        argument(name = "frequency", description = "Repeat purchases (purchase days after the first)."),
        argument(name = "recency", description = "Time from the first to the last purchase."),
        argument(name = "t", description = "Time from the first purchase to the end of the observation.")
    )]
    pub struct BgNbdPAlive;
    name: "bg_nbd_p_alive",
    signature: numbers(7),
    returns: DataType::Float64,
    eval: |args, rows| eval_numbers(args, rows, |v| {
        BgNbd { r: v[0], alpha: v[1], a: v[2], b: v[3] }.p_alive(v[4], v[5], v[6])
    }),
}

crate::string_function! {
    #[user_doc(
        doc_section(label = "Lifetime value functions"),
        description = "The expected number of purchases in the next `horizon` time units of a \
        customer with this history under a fitted BG/NBD model (equation 10 of Fader, Hardie \
        & Lee 2005). Arguments as for `bg_nbd_p_alive`, in the unit of the fitted `alpha`. \
        NULL when an argument is NULL, a parameter is not positive, recency > t, or a = 1.",
        syntax_example = "bg_nbd_expected_purchases(r, alpha, a, b, frequency, recency, t, horizon)",
        sql_example = r#"```sql
> select round(bg_nbd_expected_purchases(0.243, 4.414, 0.793, 2.426, 2, 30.43, 38.86, 39), 3);
1.226
```"#,
        argument(name = "r", description = "Fitted shape of the purchase rates."),
        argument(name = "alpha", description = "Fitted scale of the purchase rates."),
        argument(name = "a", description = "Fitted drop-out parameter a."),
        argument(name = "b", description = "Fitted drop-out parameter b."),
        argument(name = "frequency", description = "Repeat purchases (purchase days after the first)."),
        argument(name = "recency", description = "Time from the first to the last purchase."),
        argument(name = "t", description = "Time from the first purchase to the end of the observation."),
        argument(name = "horizon", description = "How far ahead to count purchases.")
    )]
    pub struct BgNbdExpectedPurchases;
    name: "bg_nbd_expected_purchases",
    signature: numbers(8),
    returns: DataType::Float64,
    eval: |args, rows| eval_numbers(args, rows, |v| {
        BgNbd { r: v[0], alpha: v[1], a: v[2], b: v[3] }.expected_purchases(v[4], v[5], v[6], v[7])
    }),
}

crate::string_function! {
    #[user_doc(
        doc_section(label = "Lifetime value functions"),
        description = "The expected spend per future transaction of a customer under a fitted \
        Gamma–Gamma model: p·(v + frequency·monetary_value) / (p·frequency + q − 1), a weighted \
        mean of the population mean and the customer's own average of repeat purchases; the \
        population mean p·v/(q−1) for a customer without repeat purchases. NULL when an \
        argument is NULL (monetary_value may be NULL when frequency is 0), a parameter is not \
        positive, or q ≤ 1.",
        syntax_example = "gamma_gamma_average_value(p, q, v, frequency, monetary_value)",
        sql_example = r#"```sql
> select round(gamma_gamma_average_value(6.25, 3.74, 15.44, 0, 0), 2);
35.22
```"#,
        argument(name = "p", description = "Fitted shape of the per-transaction spend."),
        argument(name = "q", description = "Fitted shape of the spend scale."),
        argument(name = "v", description = "Fitted scale of the spend scale."),
        argument(name = "frequency", description = "Repeat purchases."),
        argument(name = "monetary_value", description = "Average value of the repeat purchases.")
    )]
    pub struct GammaGammaAverageValue;
    name: "gamma_gamma_average_value",
    signature: numbers(5),
    returns: DataType::Float64,
    eval: |args, rows| {
        // monetary_value may be NULL for customers without repeat purchases.
        let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if all_scalar { 1 } else { rows };
        let arrays = float_arrays(args, n)?;
        let out: Float64Array = (0..n)
            .map(|i| {
                if arrays[..4].iter().any(|a| a.is_null(i)) {
                    return None;
                }
                let m = if arrays[4].is_null(i) { f64::NAN } else { arrays[4].value(i) };
                let frequency = arrays[3].value(i);
                if arrays[4].is_null(i) && frequency > 0.0 {
                    return None;
                }
                GammaGamma { p: arrays[0].value(i), q: arrays[1].value(i), v: arrays[2].value(i) }
                    .expected_average_value(frequency, m)
            })
            .collect();
        Ok(if all_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(Arc::new(out))
        })
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CDNOW parameters of the BG/NBD paper (weeks).
    const CDNOW: BgNbd = BgNbd {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    #[test]
    fn paper_example() {
        // Fader, Hardie & Lee (2005), section 5: a customer with x = 2, t_x = 30.43, T = 38.86
        // weeks is expected to make 1.226 purchases in the next 39 weeks.
        let e = CDNOW.expected_purchases(2.0, 30.43, 38.86, 39.0).unwrap();
        assert!((e - 1.226).abs() < 5e-4, "{e}");
        // No repeat purchases: P(alive) = 1 and a small expectation.
        assert_eq!(CDNOW.p_alive(0.0, 0.0, 38.86), Some(1.0));
        let e0 = CDNOW.expected_purchases(0.0, 0.0, 38.86, 39.0).unwrap();
        assert!(e0 > 0.0 && e0 < 0.5, "{e0}");
    }

    #[test]
    fn series_matches_untransformed_form() {
        // Direct evaluation of equation 10 for a moderate frequency, where the plain series
        // converges: the Euler-transformed evaluation must agree.
        let m = BgNbd {
            r: 0.5,
            alpha: 20.0,
            a: 1.6,
            b: 3.0,
        };
        for &(x, tx, t, h) in &[
            (3.0, 40.0, 60.0, 30.0),
            (0.0, 0.0, 10.0, 100.0),
            (12.0, 300.0, 310.0, 365.0),
        ] {
            let z = h / (m.alpha + t + h);
            let f = hyp2f1(m.r + x, m.b + x, m.a + m.b + x - 1.0, z).unwrap();
            let bracket = 1.0 - ((m.alpha + t) / (m.alpha + t + h)).powf(m.r + x) * f;
            let mut direct = (m.a + m.b + x - 1.0) / (m.a - 1.0) * bracket;
            if x > 0.0 {
                direct /=
                    1.0 + m.a / (m.b + x - 1.0) * ((m.alpha + t) / (m.alpha + tx)).powf(m.r + x);
            }
            let ours = m.expected_purchases(x, tx, t, h).unwrap();
            assert!(
                (ours - direct).abs() < 1e-9 * direct.max(1.0),
                "{x}: {ours} vs {direct}"
            );
        }
    }

    #[test]
    fn large_frequency_stays_finite() {
        let e = CDNOW
            .expected_purchases(5000.0, 100.0, 100.0, 39.0)
            .unwrap();
        assert!(e.is_finite() && e > 100.0, "{e}");
        // A long-silent frequent buyer is almost surely gone.
        let gone = CDNOW.p_alive(50.0, 10.0, 100.0).unwrap();
        assert!(gone < 1e-6, "{gone}");
    }

    #[test]
    fn invalid_input_is_none() {
        assert_eq!(CDNOW.p_alive(1.0, 50.0, 40.0), None);
        assert_eq!(CDNOW.p_alive(-1.0, 0.0, 40.0), None);
        assert_eq!(CDNOW.p_alive(f64::NAN, 0.0, 40.0), None);
        let bad = BgNbd { r: -1.0, ..CDNOW };
        assert_eq!(bad.expected_purchases(1.0, 1.0, 2.0, 3.0), None);
        let pole = BgNbd { a: 1.0, ..CDNOW };
        assert_eq!(pole.expected_purchases(1.0, 1.0, 2.0, 3.0), None);
        assert_eq!(CDNOW.expected_purchases(1.0, 1.0, 2.0, 0.0), Some(0.0));
        assert_eq!(hyp2f1(1.0, 1.0, 1.0, 1.0), None);
    }

    #[test]
    fn gamma_gamma() {
        // The spend parameters of Fader, Hardie & Lee's "RFM and CLV" (CDNOW): population mean
        // p·v/(q−1) = 35.22.
        let g = GammaGamma {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        let mean = g.expected_average_value(0.0, f64::NAN).unwrap();
        assert!((mean - 35.22).abs() < 0.01, "{mean}");
        // More repeat purchases pull the expectation towards the customer's own average.
        let few = g.expected_average_value(1.0, 100.0).unwrap();
        let many = g.expected_average_value(50.0, 100.0).unwrap();
        assert!(mean < few && few < many && many < 100.0, "{few} {many}");
        assert_eq!(
            GammaGamma { q: 1.0, ..g }.expected_average_value(1.0, 1.0),
            None
        );
        assert_eq!(g.expected_average_value(2.0, -1.0), None);
    }
}
