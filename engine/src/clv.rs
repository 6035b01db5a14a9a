//! Predicted customer lifetime value: maximum-likelihood fits of the BG/NBD purchase model and
//! the Gamma–Gamma spend model (Fader, Hardie & Lee 2005) to customer summaries a SQL query
//! defines, and their evaluation on a calibration/holdout split against a naive baseline.
//!
//! Assumptions (stated with the model, as users should read them): while active, a customer
//! buys at a constant rate (Poisson), rates vary across customers as a Gamma distribution; after
//! each purchase a customer drops out for good with a probability that varies across customers
//! as a Beta distribution; spend per transaction varies around each customer's own mean
//! (Gamma–Gamma) and is independent of purchase frequency (the metrics report the correlation to
//! check it). Purchases are counted per day: several orders on one day count once.
//!
//! The likelihoods are maximised over the logarithms of the parameters (so they stay positive)
//! by Nelder–Mead (the `argmin` crate), restarted from the optimum until it stops improving.

use argmin::core::{CostFunction, Executor, State};
use argmin::solver::neldermead::NelderMead;
use std::collections::HashMap;
use tessera_udfs::clv::{BgNbd, GammaGamma};

use crate::error::{Error, Result};

/// One customer's purchase summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Repeat purchases (purchase days after the first).
    pub frequency: f64,
    /// Time from the first to the last purchase.
    pub recency: f64,
    /// Time from the first purchase to the end of the observation.
    pub t: f64,
    /// Average value of the repeat purchases (`None` without repeat purchases).
    pub monetary_value: Option<f64>,
}

/// The fitted models and how they were fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The purchase model.
    pub bg_nbd: BgNbd,
    /// Its maximised log-likelihood.
    pub bg_nbd_log_likelihood: f64,
    /// Customers it was fitted on.
    pub customers: usize,
    /// The spend model (`None` when fewer than 2 customers with positive repeat spend).
    pub gamma_gamma: Option<GammaGamma>,
    /// Its maximised log-likelihood.
    pub gamma_gamma_log_likelihood: Option<f64>,
    /// Customers with repeat purchases it was fitted on.
    pub repeat_customers: usize,
    /// Pearson correlation of frequency and monetary value among repeat customers (the
    /// Gamma–Gamma model assumes it is near 0).
    pub frequency_monetary_correlation: Option<f64>,
}

/// Customers with the same (frequency, recency, t), counted once with a weight.
struct Grouped {
    /// (frequency, recency, t, weight), sorted by frequency.
    rows: Vec<(f64, f64, f64, f64)>,
    /// The distinct frequencies and, per row, the index of its frequency.
    frequencies: Vec<f64>,
    frequency_of: Vec<usize>,
    /// The distinct values of recency and t, and per row the index of its recency and t:
    /// ln(alpha + time) is computed once per distinct time, not per row.
    times: Vec<f64>,
    time_of: Vec<(usize, usize)>,
    /// Customers (the sum of the weights).
    customers: f64,
}

fn group(summaries: &[Summary]) -> Grouped {
    let mut weights: HashMap<(u64, u64, u64), f64> = HashMap::new();
    for s in summaries {
        *weights
            .entry((s.frequency.to_bits(), s.recency.to_bits(), s.t.to_bits()))
            .or_default() += 1.0;
    }
    let mut rows: Vec<(f64, f64, f64, f64)> = weights
        .into_iter()
        .map(|((x, tx, t), w)| (f64::from_bits(x), f64::from_bits(tx), f64::from_bits(t), w))
        .collect();
    rows.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.total_cmp(&b.2))
    });
    let mut frequencies: Vec<f64> = Vec::new();
    let mut frequency_of = Vec::with_capacity(rows.len());
    for r in &rows {
        if frequencies.last() != Some(&r.0) {
            frequencies.push(r.0);
        }
        frequency_of.push(frequencies.len() - 1);
    }
    let mut times: Vec<f64> = rows.iter().flat_map(|r| [r.1, r.2]).collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let index = |v: f64| times.partition_point(|t| *t < v);
    let time_of = rows.iter().map(|r| (index(r.1), index(r.2))).collect();
    let customers = rows.iter().map(|r| r.3).sum();
    Grouped {
        rows,
        frequencies,
        frequency_of,
        times,
        time_of,
        customers,
    }
}

fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// What a cost function returns outside the parameters' domain (finite: Nelder–Mead compares).
const OUTSIDE: f64 = 1e300;

/// The BG/NBD negative log-likelihood (equation 6 of the paper) over log-parameters.
#[derive(Clone)]
struct BgNbdCost<'a>(&'a Grouped);

impl BgNbdCost<'_> {
    fn log_likelihood(&self, m: &BgNbd) -> f64 {
        let BgNbd { r, alpha, a, b } = *m;
        let g = self.0;
        let common = ln_gamma(a + b) - ln_gamma(b) - ln_gamma(r) + r * alpha.ln();
        // Per distinct frequency: the Gamma-function terms and ln(a / (b + x − 1)).
        let per_x: Vec<(f64, f64)> = g
            .frequencies
            .iter()
            .map(|&x| {
                let gammas = ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x);
                let odds = if x > 0.0 {
                    a.ln() - (b + x - 1.0).ln()
                } else {
                    f64::NEG_INFINITY
                };
                (gammas, odds)
            })
            .collect();
        let ln_times: Vec<f64> = g.times.iter().map(|t| (alpha + t).ln()).collect();
        let mut total = 0.0;
        for (row, &(x, _, _, w)) in g.rows.iter().enumerate() {
            let (gammas, odds) = per_x[g.frequency_of[row]];
            let (tx_i, t_i) = g.time_of[row];
            let a3 = -(r + x) * ln_times[t_i];
            // ln(e^a3 + e^a4) with a4 − a3 = odds + (r + x)(ln(α+T) − ln(α+t_x)), stably.
            let ll = if x > 0.0 {
                let d = odds + (r + x) * (ln_times[t_i] - ln_times[tx_i]);
                if d > 0.0 {
                    a3 + d + (-d).exp().ln_1p()
                } else {
                    a3 + d.exp().ln_1p()
                }
            } else {
                a3
            };
            total += w * (common + gammas + ll);
        }
        total
    }
}

fn params_of(p: &[f64]) -> BgNbd {
    BgNbd {
        r: p[0].exp(),
        alpha: p[1].exp(),
        a: p[2].exp(),
        b: p[3].exp(),
    }
}

impl CostFunction for BgNbdCost<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        // Per customer, so the convergence tolerance means the same at any data size.
        let ll = self.log_likelihood(&params_of(p)) / self.0.customers;
        Ok(if ll.is_finite() { -ll } else { OUTSIDE })
    }
}

/// Repeat customers' (frequency, average repeat spend) for the Gamma–Gamma likelihood.
struct GammaGammaData {
    /// (frequency, ln frequency, spend, ln spend), sorted by frequency.
    rows: Vec<(f64, f64, f64, f64)>,
    frequencies: Vec<f64>,
    frequency_of: Vec<usize>,
}

impl GammaGammaData {
    fn new(mut pairs: Vec<(f64, f64)>) -> Self {
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut frequencies: Vec<f64> = Vec::new();
        let mut frequency_of = Vec::with_capacity(pairs.len());
        for p in &pairs {
            if frequencies.last() != Some(&p.0) {
                frequencies.push(p.0);
            }
            frequency_of.push(frequencies.len() - 1);
        }
        let rows = pairs
            .into_iter()
            .map(|(x, m)| (x, x.ln(), m, m.ln()))
            .collect();
        Self {
            rows,
            frequencies,
            frequency_of,
        }
    }

    fn log_likelihood(&self, g: &GammaGamma) -> f64 {
        let GammaGamma { p, q, v } = *g;
        let per_x: Vec<f64> = self
            .frequencies
            .iter()
            .map(|&x| ln_gamma(p * x + q) - ln_gamma(p * x))
            .collect();
        let common = -ln_gamma(q) + q * v.ln();
        let mut total = 0.0;
        for (row, &(x, ln_x, m, ln_m)) in self.rows.iter().enumerate() {
            total += per_x[self.frequency_of[row]] + common + (p * x - 1.0) * ln_m + p * x * ln_x
                - (p * x + q) * (v + x * m).ln();
        }
        total
    }
}

/// The Gamma–Gamma negative log-likelihood over log-parameters.
#[derive(Clone)]
struct GammaGammaCost<'a>(&'a GammaGammaData);

impl CostFunction for GammaGammaCost<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        let g = GammaGamma {
            p: p[0].exp(),
            q: p[1].exp(),
            v: p[2].exp(),
        };
        let ll = self.0.log_likelihood(&g) / self.0.rows.len() as f64;
        Ok(if ll.is_finite() { -ll } else { OUTSIDE })
    }
}

/// Minimises `cost` from `start` by Nelder–Mead, restarting from the best point with a fresh
/// simplex until a restart improves by less than 1e-9 (relative).
fn minimise<C>(cost: C, start: Vec<f64>, what: &str) -> Result<(Vec<f64>, f64)>
where
    C: CostFunction<Param = Vec<f64>, Output = f64> + Clone,
{
    let fail = |e: argmin::core::Error| Error::InvalidModel {
        message: format!("fitting the {what} model failed: {e}"),
    };
    let mut best = start;
    let mut best_cost = cost.cost(&best).map_err(fail)?;
    for _ in 0..8 {
        let mut simplex = vec![best.clone()];
        for i in 0..best.len() {
            let mut p = best.clone();
            p[i] += 0.5;
            simplex.push(p);
        }
        // Costs are per-customer log-likelihoods (order 1–10): 1e-10 is converged.
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(1e-10)
            .map_err(fail)?;
        let result = Executor::new(cost.clone(), solver)
            .configure(|s| s.max_iters(4000))
            .run()
            .map_err(fail)?;
        let state = result.state();
        let (Some(p), c) = (state.get_best_param(), state.get_best_cost()) else {
            break;
        };
        let improved = best_cost - c;
        if c < best_cost {
            best = p.clone();
            best_cost = c;
        }
        if improved <= 1e-9 * best_cost.abs().max(1.0) {
            break;
        }
    }
    if best_cost >= OUTSIDE {
        return Err(Error::InvalidModel {
            message: format!("the {what} model found no parameters with a finite likelihood"),
        });
    }
    Ok((best, best_cost))
}

/// Fits both models to the customers' summaries.
pub fn fit(summaries: &[Summary]) -> Result<Fit> {
    let invalid = |message: String| Error::InvalidModel { message };
    for (i, s) in summaries.iter().enumerate() {
        if !(s.frequency.is_finite()
            && s.recency.is_finite()
            && s.t.is_finite()
            && s.frequency >= 0.0
            && s.recency >= 0.0
            && s.t >= s.recency)
        {
            return Err(invalid(format!(
                "row {}: frequency {}, recency {}, t {} is not a purchase history (need frequency ≥ 0 and 0 ≤ recency ≤ t)",
                i + 1,
                s.frequency,
                s.recency,
                s.t
            )));
        }
    }
    let repeaters = summaries.iter().filter(|s| s.frequency > 0.0).count();
    if summaries.len() < 10 || repeaters == 0 {
        return Err(invalid(format!(
            "{} customers, {repeaters} with repeat purchases: too few to fit a purchase model",
            summaries.len()
        )));
    }
    let grouped = group(summaries);
    // Start: r 1, alpha the mean observation time, a 1.5, b 3 (a > 1 keeps the start away from
    // the pole of the expectation; the likelihood itself has none).
    let mean_t = summaries.iter().map(|s| s.t).sum::<f64>() / summaries.len() as f64;
    let start = vec![0.0, mean_t.max(1.0).ln(), 1.5f64.ln(), 3.0f64.ln()];
    let started = std::time::Instant::now();
    let (p, cost) = minimise(BgNbdCost(&grouped), start, "BG/NBD purchase")?;
    let bg_nbd = params_of(&p);
    let cost = cost * grouped.customers;
    tracing::info!(
        customers = summaries.len(),
        distinct_histories = grouped.rows.len(),
        seconds = started.elapsed().as_secs_f64(),
        "BG/NBD fitted"
    );

    let spend: Vec<(f64, f64)> = summaries
        .iter()
        .filter(|s| s.frequency > 0.0)
        .filter_map(|s| s.monetary_value.map(|m| (s.frequency, m)))
        .filter(|(_, m)| m.is_finite() && *m > 0.0)
        .collect();
    let correlation = pearson(&spend);
    let (gamma_gamma, gg_ll) = if spend.len() >= 2 {
        let mean_m = spend.iter().map(|s| s.1).sum::<f64>() / spend.len() as f64;
        // Start: p 1, q 2, v the mean spend (so the implied mean p·v/(q−1) matches it).
        let start = vec![0.0, 2.0f64.ln(), mean_m.ln()];
        let data = GammaGammaData::new(spend.clone());
        let (g, c) = minimise(GammaGammaCost(&data), start, "Gamma–Gamma spend")?;
        let c = c * spend.len() as f64;
        (
            Some(GammaGamma {
                p: g[0].exp(),
                q: g[1].exp(),
                v: g[2].exp(),
            }),
            Some(-c),
        )
    } else {
        (None, None)
    };
    Ok(Fit {
        bg_nbd,
        bg_nbd_log_likelihood: -cost,
        customers: summaries.len(),
        gamma_gamma,
        gamma_gamma_log_likelihood: gg_ll,
        repeat_customers: spend.len(),
        frequency_monetary_correlation: correlation,
    })
}

fn pearson(pairs: &[(f64, f64)]) -> Option<f64> {
    let n = pairs.len() as f64;
    if pairs.len() < 3 {
        return None;
    }
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// One calibration-period customer with what it did in the holdout period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holdout {
    /// The history up to the end of the calibration period.
    pub summary: Summary,
    /// Length of the holdout period.
    pub days: f64,
    /// Purchases (days with a purchase) in the holdout period.
    pub purchases: f64,
    /// Revenue in the holdout period.
    pub revenue: f64,
}

/// How the model, fitted on the calibration period, predicts the holdout period, beside the
/// naive baseline "each customer keeps buying at their historical repeat rate
/// (frequency / t) and spending their historical average".
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The fit on the calibration period.
    pub fit: Fit,
    /// Customers evaluated.
    pub customers: usize,
    /// Total purchases in the holdout period: actual, predicted, baseline.
    pub actual_purchases: f64,
    /// Predicted total purchases.
    pub predicted_purchases: f64,
    /// The baseline's total purchases.
    pub baseline_purchases: f64,
    /// Mean absolute error of purchases per customer, model and baseline.
    pub purchases_mae: f64,
    /// The baseline's.
    pub baseline_purchases_mae: f64,
    /// Root mean squared error of purchases per customer, model and baseline.
    pub purchases_rmse: f64,
    /// The baseline's.
    pub baseline_purchases_rmse: f64,
    /// Total revenue in the holdout period: actual and predicted.
    pub actual_revenue: f64,
    /// Predicted total revenue.
    pub predicted_revenue: f64,
    /// Mean absolute error of revenue per customer, model and baseline.
    pub revenue_mae: f64,
    /// The baseline's.
    pub baseline_revenue_mae: f64,
    /// By decile of predicted purchases: (decile, customers, mean predicted, mean actual).
    pub calibration: Vec<(usize, usize, f64, f64)>,
}

/// Fits on the calibration histories and scores the holdout period.
pub fn evaluate(rows: &[Holdout]) -> Result<Evaluation> {
    let summaries: Vec<Summary> = rows.iter().map(|r| r.summary).collect();
    let fit = fit(&summaries)?;
    let mut predicted = Vec::with_capacity(rows.len());
    let (mut p_abs, mut b_abs, mut p_sq, mut b_sq) = (0.0, 0.0, 0.0, 0.0);
    let (mut rev_abs, mut base_rev_abs) = (0.0, 0.0);
    let (mut actual, mut total_pred, mut total_base, mut actual_rev, mut pred_rev) =
        (0.0, 0.0, 0.0, 0.0, 0.0);
    for r in rows {
        let s = r.summary;
        let e = fit
            .bg_nbd
            .expected_purchases(s.frequency, s.recency, s.t, r.days)
            .unwrap_or(0.0);
        let value = fit
            .gamma_gamma
            .and_then(|g| g.expected_average_value(s.frequency, s.monetary_value.unwrap_or(0.0)))
            .unwrap_or(0.0);
        let base = if s.t > 0.0 {
            s.frequency / s.t * r.days
        } else {
            0.0
        };
        let base_value = s.monetary_value.unwrap_or(0.0);
        p_abs += (e - r.purchases).abs();
        b_abs += (base - r.purchases).abs();
        p_sq += (e - r.purchases).powi(2);
        b_sq += (base - r.purchases).powi(2);
        rev_abs += (e * value - r.revenue).abs();
        base_rev_abs += (base * base_value - r.revenue).abs();
        actual += r.purchases;
        total_pred += e;
        total_base += base;
        actual_rev += r.revenue;
        pred_rev += e * value;
        predicted.push(e);
    }
    let n = rows.len() as f64;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    // Ties (customers with the same history get the same prediction) are ordered by what
    // they bought, so the bins do not depend on the order the rows were read in.
    order.sort_by(|&a, &b| {
        predicted[a]
            .total_cmp(&predicted[b])
            .then(rows[a].purchases.total_cmp(&rows[b].purchases))
    });
    let calibration = (0..10)
        .filter_map(|d| {
            let bin = &order[d * order.len() / 10..(d + 1) * order.len() / 10];
            (!bin.is_empty()).then(|| {
                let m = bin.len() as f64;
                (
                    d + 1,
                    bin.len(),
                    bin.iter().map(|&i| predicted[i]).sum::<f64>() / m,
                    bin.iter().map(|&i| rows[i].purchases).sum::<f64>() / m,
                )
            })
        })
        .collect();
    Ok(Evaluation {
        fit,
        customers: rows.len(),
        actual_purchases: actual,
        predicted_purchases: total_pred,
        baseline_purchases: total_base,
        purchases_mae: p_abs / n,
        baseline_purchases_mae: b_abs / n,
        purchases_rmse: (p_sq / n).sqrt(),
        baseline_purchases_rmse: (b_sq / n).sqrt(),
        actual_revenue: actual_rev,
        predicted_revenue: pred_rev,
        revenue_mae: rev_abs / n,
        baseline_revenue_mae: base_rev_abs / n,
        calibration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn gamma(rng: &mut ChaCha8Rng, shape: f64, scale: f64) -> f64 {
        // Marsaglia–Tsang (shape < 1 boosted by U^(1/shape)).
        if shape < 1.0 {
            let u: f64 = rng.random();
            return gamma(rng, shape + 1.0, scale) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let (u1, u2): (f64, f64) = (rng.random(), rng.random());
            let x = (-2.0 * u1.max(1e-300).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u: f64 = rng.random();
            if u.max(1e-300).ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v * scale;
            }
        }
    }

    fn beta(rng: &mut ChaCha8Rng, a: f64, b: f64) -> f64 {
        let x = gamma(rng, a, 1.0);
        let y = gamma(rng, b, 1.0);
        x / (x + y)
    }

    /// Customers drawn from the BG/NBD process itself (and Gamma–Gamma spend), with the
    /// paper's CDNOW parameters, observed for 27 to 39 weeks: what the fit must recover.
    fn simulate(n: usize, seed: u64) -> Vec<(Summary, f64, f64)> {
        let truth = BgNbd {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        let (p, q, v) = (6.25, 3.74, 15.44);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let lambda = gamma(&mut rng, truth.r, 1.0 / truth.alpha);
                let dropout = beta(&mut rng, truth.a, truth.b);
                let nu = gamma(&mut rng, q, 1.0 / v);
                let t_obs = 27.0 + rng.random::<f64>() * 12.0;
                let horizon = 39.0;
                // Purchases over calibration + holdout, stopping at drop-out.
                let (mut time, mut last, mut x, mut future, mut future_spend) =
                    (0.0, 0.0, 0.0, 0.0, 0.0);
                let mut spend_sum = 0.0;
                loop {
                    let u: f64 = rng.random();
                    time += -u.max(1e-300).ln() / lambda;
                    if time > t_obs + horizon {
                        break;
                    }
                    let amount = gamma(&mut rng, p, 1.0 / nu);
                    if time <= t_obs {
                        x += 1.0;
                        last = time;
                        spend_sum += amount;
                    } else {
                        future += 1.0;
                        future_spend += amount;
                    }
                    if rng.random::<f64>() < dropout {
                        break;
                    }
                }
                let summary = Summary {
                    frequency: x,
                    recency: last,
                    t: t_obs,
                    monetary_value: (x > 0.0).then(|| spend_sum / x),
                };
                (summary, future, future_spend)
            })
            .collect()
    }

    #[test]
    fn recovers_the_parameters_it_was_simulated_with() {
        let data = simulate(30_000, 3);
        let summaries: Vec<Summary> = data.iter().map(|d| d.0).collect();
        let f = fit(&summaries).unwrap();
        let m = f.bg_nbd;
        let close = |got: f64, want: f64, tol: f64| (got / want - 1.0).abs() < tol;
        assert!(close(m.r, 0.243, 0.15), "{f:?}");
        assert!(close(m.alpha, 4.414, 0.2), "{f:?}");
        assert!(close(m.a, 0.793, 0.3), "{f:?}");
        assert!(close(m.b, 2.426, 0.35), "{f:?}");
        let g = f.gamma_gamma.unwrap();
        let mean = g.p * g.v / (g.q - 1.0);
        assert!(close(mean, 6.25 * 15.44 / 2.74, 0.1), "{f:?}");
        let corr = f.frequency_monetary_correlation.unwrap();
        assert!(corr.abs() < 0.1, "{corr}");
        // The fit is a maximum: nudging any parameter lowers the likelihood.
        let grouped = group(&summaries);
        let best = BgNbdCost(&grouped).log_likelihood(&m);
        assert!((best - f.bg_nbd_log_likelihood).abs() < 1e-6 * best.abs());
        for nudged in [
            BgNbd { r: m.r * 1.05, ..m },
            BgNbd {
                alpha: m.alpha * 0.95,
                ..m
            },
            BgNbd { a: m.a * 1.05, ..m },
            BgNbd { b: m.b * 0.95, ..m },
        ] {
            assert!(BgNbdCost(&grouped).log_likelihood(&nudged) < best);
        }
    }

    /// Simulated customers with what they did in a 39-day holdout period.
    fn holdouts(n: usize, seed: u64) -> Vec<Holdout> {
        simulate(n, seed)
            .into_iter()
            .map(|(summary, purchases, revenue)| Holdout {
                summary,
                days: 39.0,
                purchases,
                revenue,
            })
            .collect()
    }

    #[test]
    fn predicts_the_holdout_better_than_the_naive_rate() {
        let rows = holdouts(20_000, 5);
        let e = evaluate(&rows).unwrap();
        assert!(e.purchases_mae < e.baseline_purchases_mae, "{e:?}");
        assert!(e.revenue_mae < e.baseline_revenue_mae, "{e:?}");
        // The total is right to within 10%, and the top decile buys the most.
        assert!(
            (e.predicted_purchases / e.actual_purchases - 1.0).abs() < 0.1,
            "{e:?}"
        );
        let top = e.calibration.last().unwrap();
        assert!(top.3 > e.calibration[0].3 && top.3 > 1.0, "{e:?}");
    }

    #[test]
    fn calibration_bins_do_not_depend_on_the_order_of_the_rows() {
        // Customers with the same history get the same prediction; a group of them larger
        // than a decile straddles bins. Queries return rows in any order (on a cluster as on
        // one machine): the bins must not depend on it.
        let mut rows = holdouts(2_000, 7);
        let twin = rows[0];
        rows.extend((0..1_000).map(|i| Holdout {
            purchases: f64::from(i % 7),
            ..twin
        }));
        let calibration = |rows: &[Holdout]| {
            evaluate(rows)
                .unwrap()
                .calibration
                .iter()
                .map(|&(d, n, p, a)| (d, n, (p * 1e9).round(), (a * 1e9).round()))
                .collect::<Vec<_>>()
        };
        let forward = calibration(&rows);
        rows.reverse();
        assert_eq!(calibration(&rows), forward);
    }

    #[test]
    fn bad_histories_are_clear_errors() {
        let bad = Summary {
            frequency: 2.0,
            recency: 50.0,
            t: 40.0,
            monetary_value: Some(1.0),
        };
        let err = fit(&[bad; 20]).unwrap_err().to_string();
        assert!(err.contains("row 1") && err.contains("recency 50"), "{err}");
        let one_timers = Summary {
            frequency: 0.0,
            recency: 0.0,
            t: 40.0,
            monetary_value: None,
        };
        let err = fit(&[one_timers; 20]).unwrap_err().to_string();
        assert!(err.contains("0 with repeat purchases"), "{err}");
    }
}
