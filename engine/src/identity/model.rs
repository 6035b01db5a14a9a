//! Fellegi–Sunter: u from random pairs, m by expectation–maximisation over the compared pairs'
//! comparison vectors (u held fixed; one session per blocking rule, leaving out the comparisons
//! that read the rule's columns); weights and probabilities per pair.
//!
//! EM alone can settle on a latent class that is not "the same person" (pairs that are near
//! but not equal, say), and then exact agreement weighs less than a typo. So the estimate is
//! constrained to what levels mean: within a comparison a stricter level never weighs less
//! than a looser one after it (an order-restricted estimate: the pool-adjacent-violators
//! projection of m/u, weighted by u, after every M-step; with m and u each summing to one, the
//! first level then weighs ≥ 0 and `else` ≤ 0). EM runs from several starts (what the
//! deterministic links say, a neutral start, and the pairs agreeing on most comparisons) and
//! keeps the one with the best likelihood. What went wrong is said in [`Model::warnings`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The smallest probability a level keeps (no level is impossible).
const FLOOR: f64 = 1e-6;

/// Pseudo-pairs added to every level in each EM M-step (a symmetric Dirichlet prior), so a
/// level that few matched pairs show keeps a small but real m instead of collapsing to the
/// floor: a typo on top of a nickname is rare among matches, not impossible, and a weight of
/// -20 for it would veto an exact email and phone.
const M_PSEUDO_PAIRS: f64 = 1.0;

/// Share of the neutral start mixed into the start from the deterministic links: the rules
/// link only pairs whose names agree, so alone they would start EM at m(names differ) ≈ 0, a
/// fixed point EM never leaves.
const NEUTRAL_START: f64 = 0.2;

/// A level weighing at least this many bits is strong evidence of a match.
const STRONG_LEVEL_BITS: f64 = 3.0;

/// EM stops when no probability moves by more than this in an iteration.
pub const TOLERANCE: f64 = 1e-7;

/// A trained model: per comparison, per level, m and u.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Probability that two random records are a match (the prior).
    pub lambda: f64,
    /// `m[c][level]`: P(level | match), levels then `else`.
    pub m: Vec<Vec<f64>>,
    /// `u[c][level]`: P(level | non-match).
    pub u: Vec<Vec<f64>>,
    /// EM iterations run.
    pub iterations: usize,
    /// Whether EM converged before the iteration bound.
    pub converged: bool,
    /// Per comparison, the levels whose order constraint binds: the estimate had a stricter
    /// level weigh less than a looser one, and the two were pooled (one weight).
    #[serde(default)]
    pub pooled: Vec<Vec<usize>>,
    /// The matches EM expects among the compared pairs (each session's share of matches times
    /// its pairs, plus the labelled matches): with all pairs, the prior's first estimate.
    #[serde(default)]
    pub matched_pairs: f64,
}

/// Projects m onto the order the levels state: m/u non-increasing from the first level to
/// `else` (pool-adjacent-violators, weighted by u; the MLE under that order). Returns the
/// levels pooled with the one before them.
pub fn monotone(m: &mut [f64], u: &[f64]) -> Vec<usize> {
    // Blocks of adjacent levels: (first level, sum m, sum u).
    let mut blocks: Vec<(usize, f64, f64)> = Vec::with_capacity(m.len());
    for l in 0..m.len() {
        blocks.push((l, m[l], u[l]));
        while blocks.len() > 1 {
            let (_, m1, u1) = blocks[blocks.len() - 1];
            let (_, m0, u0) = blocks[blocks.len() - 2];
            // Pool while the later block's ratio exceeds the earlier one's (by more than
            // rounding).
            if m1 * u0 > m0 * u1 * (1.0 + 1e-9) {
                blocks.pop();
                let last = blocks.last_mut().expect("two blocks");
                last.1 += m1;
                last.2 += u1;
            } else {
                break;
            }
        }
    }
    let mut pooled = Vec::new();
    for (b, &(start, bm, bu)) in blocks.iter().enumerate() {
        let end = blocks.get(b + 1).map_or(m.len(), |n| n.0);
        for l in start..end {
            if end - start > 1 {
                m[l] = (bm * u[l] / bu).max(FLOOR);
                if l > start {
                    pooled.push(l);
                }
            }
        }
    }
    pooled
}

/// Weighted level counts per comparison (see `Sample::u_counts`): the u estimate.
pub fn u_from_counts(counts: &[Vec<f64>]) -> Vec<Vec<f64>> {
    counts
        .iter()
        .map(|c| {
            let total: f64 = c.iter().map(|&v| v + 1.0).sum();
            c.iter().map(|&v| ((v + 1.0) / total).max(FLOOR)).collect()
        })
        .collect()
}

/// Frequencies with add-one smoothing, so no level has probability 0.
fn smooth(counts: &[u64]) -> Vec<f64> {
    let total: f64 = counts.iter().map(|&c| c as f64 + 1.0).sum();
    counts
        .iter()
        .map(|&c| ((c as f64 + 1.0) / total).max(FLOOR))
        .collect()
}

/// Comparison vectors with their counts (`-1` is the null level: no evidence), in vector
/// order: sums over them are the same to the last bit on every run.
pub type Patterns = BTreeMap<Vec<i8>, (u64, u64)>;

/// The compared pairs a blocking rule proposed first (no earlier rule did), for EM.
///
/// The posterior of a pair (the E-step) reads only the comparisons that do not read the rule's
/// columns (`trains`): inside a block those agree by construction, and their random-pair u
/// would make every blocked non-match look like a match. The expected level counts (the
/// M-step) take every comparison of every pair, each pair once: pooled over the rules, they
/// are the levels of all the matches the blocking finds, not of the matches one rule finds.
/// (Per-rule m, as Splink estimates it, is the levels of matches *given the rule's columns
/// agree*: when a duplicate differs from its original in one field, inside the names block
/// that field is the birth date, and "one part of the birth date differs" came out as the
/// typical match.)
#[derive(Debug, Default)]
pub struct Session {
    /// Full comparison vector → (pairs, pairs the deterministic rules link).
    pub patterns: Patterns,
    /// Which comparisons the posterior reads.
    pub trains: Vec<bool>,
}

/// The probabilities of a vector's levels under m and under u, reading the comparisons `read`.
fn likelihoods(m: &[Vec<f64>], u: &[Vec<f64>], vector: &[i8], read: &[bool]) -> (f64, f64) {
    let (mut pm, mut pu) = (1.0f64, 1.0f64);
    for (c, &g) in vector.iter().enumerate() {
        if g >= 0 && read[c] {
            pm *= m[c][g as usize];
            pu *= u[c][g as usize];
        }
    }
    (pm, pu)
}

/// The neutral m start of a comparison with `levels` levels before `else`: most matches agree
/// exactly, the rest spread over the other levels.
fn neutral_m(levels: usize) -> Vec<f64> {
    let k = levels + 1;
    (0..k)
        .map(|l| {
            if l == 0 {
                0.7
            } else {
                0.3 / (k - 1).max(1) as f64
            }
        })
        .collect()
}

/// The EM start per comparison: the m probabilities the deterministic links suggest, mixed
/// with the neutral start (see [`NEUTRAL_START`]).
pub fn m_from_deterministic(sessions: &[Session], levels: &[usize]) -> Vec<Vec<f64>> {
    (0..levels.len())
        .map(|c| {
            let mut counts = vec![0u64; levels[c] + 1];
            for s in sessions {
                for (vector, (_, d)) in &s.patterns {
                    if vector[c] >= 0 {
                        counts[vector[c] as usize] += d;
                    }
                }
            }
            let neutral = neutral_m(levels[c]);
            if counts.iter().sum::<u64>() == 0 {
                neutral
            } else {
                smooth(&counts)
                    .iter()
                    .zip(&neutral)
                    .map(|(d, n)| (1.0 - NEUTRAL_START) * d + NEUTRAL_START * n)
                    .collect()
            }
        })
        .collect()
}

/// The EM start of the pairs agreeing on most of what they are compared on: in a block, pairs
/// agreeing exactly on more than half of the non-NULL comparisons are mostly matches, whatever
/// the rules found.
fn m_from_agreement(sessions: &[Session], levels: &[usize]) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<u64>> = levels.iter().map(|&k| vec![0u64; k + 1]).collect();
    for s in sessions {
        for (vector, (n, _)) in &s.patterns {
            let known = vector.iter().filter(|&&g| g >= 0).count();
            let exact = vector.iter().filter(|&&g| g == 0).count();
            if known >= 2 && exact * 2 > known {
                for (c, &g) in vector.iter().enumerate() {
                    if g >= 0 {
                        counts[c][g as usize] += n;
                    }
                }
            }
        }
    }
    counts
        .iter()
        .zip(levels)
        .map(|(row, &k)| {
            let neutral = neutral_m(k);
            if row.iter().sum::<u64>() == 0 {
                return neutral;
            }
            smooth(row)
                .iter()
                .zip(&neutral)
                .map(|(d, n)| (1.0 - NEUTRAL_START) * d + NEUTRAL_START * n)
                .collect()
        })
        .collect()
}

/// A session ready for EM: its vectors in order with their pair counts, and its total.
type Prepared<'a> = (&'a Session, Vec<(&'a Vec<i8>, f64)>, f64);

/// EM from one start: m, each session's share of matches, the iterations, whether it
/// converged, and the log-likelihood reached.
struct Fit {
    m: Vec<Vec<f64>>,
    /// Per comparison, the levels the last M-step's projection pooled (the constraint binds).
    pooled: Vec<Vec<usize>>,
    trained: Vec<bool>,
    iterations: usize,
    converged: bool,
    log_likelihood: f64,
    /// Σ share × pairs over the sessions.
    matched: f64,
}

fn fit(
    sessions: &[Prepared<'_>],
    labelled: &[(&Vec<i8>, f64)],
    (start, shares): (&[Vec<f64>], &[f64]),
    u: &[Vec<f64>],
    levels: &[usize],
    max_iterations: usize,
) -> Fit {
    let mut m = start.to_vec();
    for (c, row) in m.iter_mut().enumerate() {
        monotone(row, &u[c]);
    }
    let mut shares = shares.to_vec();
    let mut trained = vec![false; levels.len()];
    let mut pooled = vec![Vec::new(); levels.len()];
    let (mut iterations, mut converged) = (0, false);
    while iterations < max_iterations {
        iterations += 1;
        let mut counts: Vec<Vec<f64>> = levels.iter().map(|&k| vec![0.0; k + 1]).collect();
        for (vector, n) in labelled {
            for (c, &g) in vector.iter().enumerate() {
                if g >= 0 {
                    counts[c][g as usize] += n;
                }
            }
        }
        let mut change = 0.0f64;
        for (k, (session, entries, total)) in sessions.iter().enumerate() {
            let mut matched = 0.0;
            for (vector, n) in entries {
                let (pm, pu) = likelihoods(&m, u, vector, &session.trains);
                let share = shares[k];
                let p = share * pm / (share * pm + (1.0 - share) * pu).max(f64::MIN_POSITIVE);
                matched += n * p;
                for (c, &g) in vector.iter().enumerate() {
                    if g >= 0 {
                        counts[c][g as usize] += n * p;
                    }
                }
            }
            let share = (matched / total).clamp(FLOOR, 1.0 - FLOOR);
            change = change.max((share - shares[k]).abs());
            shares[k] = share;
        }
        for (c, row) in counts.iter_mut().enumerate() {
            let total: f64 = row.iter().sum();
            if total <= 0.0 {
                *row = m[c].clone();
                continue;
            }
            trained[c] = true;
            let total = total + M_PSEUDO_PAIRS * row.len() as f64;
            for v in row.iter_mut() {
                *v = ((*v + M_PSEUDO_PAIRS) / total).max(FLOOR);
            }
            pooled[c] = monotone(row, &u[c]);
            for (l, v) in row.iter().enumerate() {
                change = change.max((v - m[c][l]).abs());
            }
        }
        m = counts;
        if change < TOLERANCE {
            converged = true;
            break;
        }
    }
    let log_likelihood = sessions
        .iter()
        .zip(&shares)
        .map(|((session, entries, _), share)| {
            entries
                .iter()
                .map(|(vector, n)| {
                    let (pm, pu) = likelihoods(&m, u, vector, &session.trains);
                    n * (share * pm + (1.0 - share) * pu)
                        .max(f64::MIN_POSITIVE)
                        .ln()
                })
                .sum::<f64>()
        })
        .sum();
    let matched = sessions
        .iter()
        .zip(&shares)
        .map(|((_, _, total), share)| share * total)
        .sum();
    Fit {
        matched,
        m,
        pooled,
        trained,
        iterations,
        converged,
        log_likelihood,
    }
}

/// Estimates m by EM (u held fixed) over every compared pair at once, each in the session of
/// the blocking rule that proposed it first (see [`Session`]), from several starts (the
/// deterministic links', a neutral one, the pairs agreeing on most comparisons), keeping the
/// start reaching the best likelihood under the level-order constraint (see [`monotone`]).
/// Each session has its own share of matches; m is shared. The prior is not learnt here (see
/// [`prior`] and [`Model::matched_pairs`]). Deterministic: the same pairs give the same model.
pub fn train(
    sessions: &[Session],
    levels: &[usize],
    u: Vec<Vec<f64>>,
    lambda: f64,
    max_iterations: usize,
) -> Model {
    train_with_labels(
        sessions,
        &Patterns::new(),
        levels,
        u,
        lambda,
        max_iterations,
    )
}

/// [`train`], with labelled matches (comparison vector → pairs): they count in every M-step as
/// the matches they are (posterior 1), beside the expected counts of the unlabelled pairs.
pub fn train_with_labels(
    sessions: &[Session],
    labelled: &Patterns,
    levels: &[usize],
    u: Vec<Vec<f64>>,
    lambda: f64,
    max_iterations: usize,
) -> Model {
    let start = m_from_deterministic(sessions, levels);
    // In vector order, so the sums (and the model) do not depend on the map's order.
    let prepared: Vec<Prepared<'_>> = sessions
        .iter()
        .filter_map(|session| {
            let total: f64 = session.patterns.values().map(|(n, _)| *n as f64).sum();
            if total == 0.0 {
                return None;
            }
            let mut entries: Vec<(&Vec<i8>, f64)> = session
                .patterns
                .iter()
                .map(|(v, (n, _))| (v, *n as f64))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Some((session, entries, total))
        })
        .collect();
    // The deterministic start begins each session at the share of pairs the rules linked; the
    // others at even odds (when the rules link few pairs, a share anchored on them is a fixed
    // point EM keeps).
    let det_shares: Vec<f64> = prepared
        .iter()
        .map(|(s, _, total)| {
            let det: f64 = s.patterns.values().map(|(_, d)| *d as f64).sum();
            (det / total).clamp(0.05, 0.95)
        })
        .collect();
    let even = vec![0.5; prepared.len()];
    let starts = [
        (start.clone(), det_shares),
        (
            levels.iter().map(|&k| neutral_m(k)).collect::<Vec<_>>(),
            even.clone(),
        ),
        (m_from_agreement(sessions, levels), even),
    ];
    let mut labelled: Vec<(&Vec<i8>, f64)> =
        labelled.iter().map(|(v, (n, _))| (v, *n as f64)).collect();
    labelled.sort_by(|a, b| a.0.cmp(b.0));
    let best = starts
        .iter()
        .map(|(m, shares)| {
            fit(
                &prepared,
                &labelled,
                (m, shares),
                &u,
                levels,
                max_iterations,
            )
        })
        .reduce(|best, f| {
            if f.log_likelihood > best.log_likelihood + 1e-9 {
                f
            } else {
                best
            }
        })
        .expect("three starts");
    let mut pooled_levels = vec![Vec::new(); levels.len()];
    let m = best
        .m
        .into_iter()
        .enumerate()
        .map(|(c, row)| {
            let mut row = if best.trained[c] {
                row
            } else {
                start[c].clone()
            };
            let mut pooled = monotone(&mut row, &u[c]);
            if best.trained[c] {
                pooled.extend(&best.pooled[c]);
            }
            pooled.sort_unstable();
            pooled.dedup();
            pooled_levels[c] = pooled;
            row
        })
        .collect();
    Model {
        lambda,
        m,
        u,
        iterations: best.iterations,
        converged: best.converged || prepared.is_empty(),
        pooled: pooled_levels,
        matched_pairs: best.matched + labelled.iter().map(|(_, n)| n).sum::<f64>(),
    }
}

/// What is wrong with a trained model, in words a user can act on: EM that did not converge,
/// a level-order constraint that binds (unless the pooled levels are both strong evidence), a
/// comparison that no longer tells matches apart, an
/// exact agreement that is barely evidence, a prior far from what the rules suggest.
pub fn diagnose(
    model: &Model,
    comparisons: &[super::config::Comparison],
    rules_prior: f64,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if !model.converged {
        warnings.push(format!(
            "the match model did not converge in {} EM iterations (tolerance {TOLERANCE:e}): \
             raise `em_max_iterations`, or check that the blocking rules propose matches",
            model.iterations
        ));
    }
    for (c, comparison) in comparisons.iter().enumerate() {
        let names: Vec<&str> = comparison
            .levels
            .iter()
            .map(|l| l.name.as_str())
            .chain(["else"])
            .collect();
        for &l in model.pooled.get(c).into_iter().flatten() {
            // Two levels that both say "match" strongly (≥ STRONG bits once pooled): which of
            // them is the stronger changes no decision, so the binding order is not a warning
            // (`tessera explain --model` shows the shared weight). Pooling that brings a level
            // down to weak evidence is: the model disagrees with what the levels mean.
            if model.level_weight(c, l as i8, None) >= STRONG_LEVEL_BITS {
                continue;
            }
            warnings.push(format!(
                "comparison `{}`: level `{}` weighed more than the stricter `{}` before it, so \
                 the two get one weight (the data say the looser level is the rarer among \
                 non-matches: a frequent value? `term_frequency = true` weighs rare values \
                 more; else check the levels' order and SQL)",
                comparison.name,
                names[l],
                names[l - 1]
            ));
        }
        let weights: Vec<f64> = (0..model.m[c].len())
            .map(|l| model.level_weight(c, l as i8, None))
            .collect();
        if weights.iter().all(|w| w.abs() < 1.0) {
            warnings.push(format!(
                "comparison `{}`: every level weighs between -1 and 1, so it barely tells \
                 matches from non-matches (is its column filled? are its levels' SQL right?)",
                comparison.name
            ));
        } else if weights[0] < 1.0 {
            warnings.push(format!(
                "comparison `{}`: agreeing on `{}` weighs {:.2}, barely evidence of a match",
                comparison.name, names[0], weights[0]
            ));
        }
    }
    if rules_prior > 0.0 {
        let ratio = model.lambda / rules_prior;
        if !(1e-2..=1e2).contains(&ratio) {
            warnings.push(format!(
                "the prior ({:.3e}) is {} times what the deterministic rules suggest ({:.3e}): \
                 check `deterministic_recall`, the rules and the threshold",
                model.lambda,
                if ratio > 1.0 {
                    format!("{ratio:.0}")
                } else {
                    format!("1/{:.0}", 1.0 / ratio)
                },
                rules_prior
            ));
        }
    }
    warnings
}

/// The probability that two random records match, from the pairs the deterministic rules
/// link: linked pairs / assumed recall of the rules / all pairs.
pub fn prior(linked_pairs: u64, records: u64, recall: f64) -> f64 {
    let all = (records as f64) * (records as f64 - 1.0) / 2.0;
    if all <= 0.0 {
        return 0.5;
    }
    (linked_pairs as f64 / recall.clamp(0.01, 1.0) / all).clamp(FLOOR, 0.5)
}

/// P(match | vector).
pub fn posterior(lambda: f64, m: &[Vec<f64>], u: &[Vec<f64>], vector: &[i8]) -> f64 {
    let mut log_ratio = (lambda / (1.0 - lambda)).ln();
    for (c, &g) in vector.iter().enumerate() {
        if g >= 0 {
            log_ratio += (m[c][g as usize] / u[c][g as usize]).ln();
        }
    }
    1.0 / (1.0 + (-log_ratio).exp())
}

impl Model {
    /// The prior's weight, log2(λ / (1 − λ)).
    pub fn prior_weight(&self) -> f64 {
        (self.lambda / (1.0 - self.lambda)).log2()
    }

    /// A level's weight, log2(m / u); with a term frequency for exact agreement (level 0),
    /// the value's own frequency replaces u (a rare value weighs more).
    pub fn level_weight(&self, comparison: usize, level: i8, tf: Option<f64>) -> f64 {
        if level < 0 {
            return 0.0;
        }
        let l = level as usize;
        let u = match tf {
            Some(f) if l == 0 && f.is_finite() && f > 0.0 => f.max(FLOOR),
            _ => self.u[comparison][l],
        };
        (self.m[comparison][l] / u).log2()
    }

    /// The match weight of a pair and its probability.
    pub fn score(&self, vector: &[i8], tfs: &[Option<f64>]) -> (f64, f64) {
        self.weights().score(vector, tfs)
    }

    /// The model's weights computed once, to score many pairs (see [`Weights::score`]).
    pub fn weights(&self) -> Weights<'_> {
        Weights {
            model: self,
            prior: self.prior_weight(),
            levels: self
                .m
                .iter()
                .enumerate()
                .map(|(c, row)| {
                    (0..row.len())
                        .map(|l| self.level_weight(c, l as i8, None))
                        .collect()
                })
                .collect(),
        }
    }
}

/// A model's prior and level weights, computed once: scoring a pair then takes one lookup per
/// comparison (and a logarithm only for a value's own term frequency), to the same bits as
/// [`Model::level_weight`] summed in comparison order.
#[derive(Debug)]
pub struct Weights<'a> {
    model: &'a Model,
    prior: f64,
    /// `log2(m / u)` per comparison and level.
    levels: Vec<Vec<f64>>,
}

impl Weights<'_> {
    /// The match weight of a pair and its probability.
    pub fn score(&self, vector: &[i8], tfs: &[Option<f64>]) -> (f64, f64) {
        let w = self.prior
            + vector
                .iter()
                .enumerate()
                .map(|(c, &g)| match (g, tfs[c]) {
                    (g, _) if g < 0 => 0.0,
                    (0, Some(_)) => self.model.level_weight(c, 0, tfs[c]),
                    (g, _) => self.levels[c][g as usize],
                })
                .sum::<f64>();
        (w, 1.0 / (1.0 + (-w).exp2()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic population: matches agree with probability 0.9, non-matches with 0.1, on
    /// three comparisons; EM recovers m from the counts alone.
    #[test]
    fn the_prior_comes_from_deterministic_links() {
        // 1,000 records, 400 linked pairs, rules finding 80% of matches.
        let p = prior(400, 1_000, 0.8);
        assert!((p - 500.0 / 499_500.0).abs() < 1e-9);
        assert_eq!(prior(0, 1, 0.8), 0.5);
    }

    #[test]
    fn a_level_no_match_shows_keeps_a_real_m() {
        // One comparison, levels [agree, else]; every likely match agrees. m(else) must stay
        // a small real probability (pseudo-pairs), not the floor, or one typo would veto an
        // exact email and phone (a weight of -20 instead of about -10).
        let mut patterns = Patterns::new();
        patterns.insert(vec![0, 0], (2_000, 2_000));
        patterns.insert(vec![1, 1], (100_000, 0));
        let session = Session {
            patterns,
            trains: vec![true, true],
        };
        let u = vec![vec![0.01, 0.99], vec![0.001, 0.999]];
        let model = train(&[session], &[1, 1], u, 0.1, 100);
        let m_else = model.m[0][1];
        assert!(m_else > 1e-4 && m_else < 1e-2, "m(else) = {m_else}");
    }

    /// Regression: m was the unweighted mean of the sessions' m, so a blocking rule proposing
    /// four pairs (its m mostly the pseudo-pairs) counted as much as one proposing thousands.
    #[test]
    fn sessions_weigh_by_the_pairs_they_saw() {
        // Comparison 0 is trained by both sessions; agreeing on comparison 1 marks a match.
        let big = || {
            let mut patterns = Patterns::new();
            // 2,000 matches, 2% disagreeing on comparison 0; 20,000 non-matches.
            patterns.insert(vec![0, 0], (1_960, 1_960));
            patterns.insert(vec![1, 0], (40, 40));
            patterns.insert(vec![1, 1], (20_000, 0));
            Session {
                patterns,
                trains: vec![true, true],
            }
        };
        // Four pairs, one of them disagreeing: alone its m(else) is mostly the pseudo-pairs.
        let tiny = || {
            let mut patterns = Patterns::new();
            patterns.insert(vec![0, 0], (3, 3));
            patterns.insert(vec![1, 0], (1, 1));
            Session {
                patterns,
                trains: vec![true, true],
            }
        };
        let u = || vec![vec![0.01, 0.99], vec![0.001, 0.999]];
        let alone = train(&[big()], &[1, 1], u(), 0.1, 200).m[0][1];
        let tiny_alone = train(&[tiny()], &[1, 1], u(), 0.1, 200).m[0][1];
        let both = train(&[big(), tiny()], &[1, 1], u(), 0.1, 200).m[0][1];
        assert!(alone > 0.005 && alone < 0.03, "big session alone: {alone}");
        assert!(tiny_alone > 0.2, "tiny session alone: {tiny_alone}");
        // Pooled, the four pairs barely move it; the unweighted mean of the two was ~0.15.
        assert!(
            (both - alone).abs() < 0.1 * alone,
            "pooled {both}, big session alone {alone}, tiny alone {tiny_alone}"
        );
    }

    #[test]
    fn the_projection_orders_weights_and_keeps_sums() {
        // Level 1 weighs more than level 0 (ratios 2, 50, 0.5): the two are pooled.
        let u = [0.3, 0.01, 0.69];
        let mut m = [0.6, 0.5, 0.0];
        m[2] = 1.0 - m[0] - m[1] + 0.345;
        let total: f64 = m.iter().sum();
        let pooled = monotone(&mut m, &u);
        assert_eq!(pooled, vec![1]);
        assert!((m.iter().sum::<f64>() - total).abs() < 1e-12);
        let ratio = |l: usize| m[l] / u[l];
        assert!((ratio(0) - ratio(1)).abs() < 1e-9 && ratio(1) >= ratio(2));
        // Already ordered: untouched.
        let mut ok = [0.9, 0.08, 0.02];
        assert!(monotone(&mut ok, &[0.01, 0.09, 0.9]).is_empty());
        assert_eq!(ok, [0.9, 0.08, 0.02]);
        // An `else` that weighs more than a level before it is pooled with it too.
        let mut tail = [0.7, 0.1, 0.2];
        assert_eq!(monotone(&mut tail, &[0.01, 0.5, 0.49]), vec![2]);
        assert!(tail[2] / 0.49 <= 1.0 && tail[1] / 0.5 <= 1.0);
    }

    /// Issue 30: EM reached a model where a typo (first name JW ≥ 0.9) weighed more than exact
    /// agreement, and the run said nothing. Here the data themselves say so (matches are as
    /// often near as exact, and exact agreement is common among non-matches): the estimate is
    /// projected to the levels' order, and the diagnosis says so.
    #[test]
    fn inverted_weights_are_corrected_and_reported() {
        let mut session = Session {
            trains: vec![true, true],
            ..Session::default()
        };
        // Comparison 0: levels exact, near, else. Comparison 1: agree, else.
        // u: exact is common among non-matches (0.2), near rare (0.005).
        let u = vec![vec![0.2, 0.005, 0.795], vec![0.01, 0.99]];
        let (matches, non) = (20_000.0f64, 200_000.0f64);
        let pm0 = [0.5, 0.45, 0.05];
        let pm1 = [0.95, 0.05];
        for g0 in 0..3 {
            for g1 in 0..2 {
                let n = matches * pm0[g0] * pm1[g1] + non * u[0][g0] * u[1][g1];
                session
                    .patterns
                    .insert(vec![g0 as i8, g1 as i8], (n.round() as u64, 0));
            }
        }
        let model = train(&[session], &[2, 1], u, 0.1, 1_000);
        let w = |l: i8| model.level_weight(0, l, None);
        assert!(w(0) >= w(1) - 1e-9, "exact {} < near {}", w(0), w(1));
        assert_eq!(model.pooled[0], vec![1]);
        let comparisons: Vec<super::super::config::Comparison> = toml::from_str::<
            std::collections::HashMap<String, Vec<super::super::config::Comparison>>,
        >(
            r#"c = [
                { name = "first_name", levels = [{ name = "exact", when = "true" }, { name = "near", when = "true" }] },
                { name = "email", levels = [{ name = "exact", when = "true" }] },
            ]"#,
        )
        .unwrap()
        .remove("c")
        .unwrap();
        let warnings = diagnose(&model, &comparisons, 0.1);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("`first_name`") && w.contains("`near`")),
            "{warnings:?}"
        );
        // EM cut short says so.
        let mut short = model.clone();
        short.converged = false;
        assert!(diagnose(&short, &comparisons, 0.1)[0].contains("did not converge"));
        // A prior far from what the rules suggest says so.
        assert!(
            diagnose(&model, &comparisons, 1e-6)
                .iter()
                .any(|w| w.contains("prior"))
        );
    }

    /// Issue 30: labelled matches count in m as they are. One comparison alone cannot tell
    /// a few matches that agree from many that do not (EM's answer is a guess on a ridge); 500
    /// labelled matches, 80% agreeing, settle it.
    #[test]
    fn labelled_matches_settle_what_em_cannot() {
        let mut patterns = Patterns::new();
        patterns.insert(vec![0], (2_000, 0));
        patterns.insert(vec![1], (100_000, 0));
        let session = Session {
            patterns,
            trains: vec![true],
        };
        let mut labelled = Patterns::new();
        labelled.insert(vec![0], (400, 0));
        labelled.insert(vec![1], (100, 0));
        let u = vec![vec![0.01, 0.99]];
        let model = train_with_labels(&[session], &labelled, &[1], u, 0.01, 1_000);
        assert!((model.m[0][0] - 0.8).abs() < 0.1, "{:?}", model.m);
    }

    #[test]
    fn em_recovers_known_parameters() {
        let (pm, pu, lambda, n) = (0.9f64, 0.1f64, 0.2f64, 100_000.0f64);
        let mut session = Session {
            trains: vec![true; 3],
            ..Session::default()
        };
        for bits in 0..8u8 {
            let v: Vec<i8> = (0..3).map(|c| i8::from(bits >> c & 1 == 0)).collect();
            // level 0 = agree; level 1 = else.
            let p = |q: f64| {
                v.iter()
                    .map(|&g| if g == 0 { q } else { 1.0 - q })
                    .product::<f64>()
            };
            let matches = n * lambda * p(pm);
            let non = n * (1.0 - lambda) * p(pu);
            // The deterministic rules found a third of the all-agree matches.
            let det = if bits == 0 { matches / 3.0 } else { 0.0 };
            session
                .patterns
                .insert(v, ((matches + non).round() as u64, det.round() as u64));
        }
        let u = vec![vec![pu, 1.0 - pu]; 3];
        let model = train(&[session], &[1, 1, 1], u, lambda, 200);
        assert!(model.converged);
        for c in 0..3 {
            assert!((model.m[c][0] - pm).abs() < 0.01, "{:?}", model.m);
        }
        let (w, p) = model.score(&[0, 0, 0], &[None, None, None]);
        assert!(w > 5.0 && p > 0.97, "{w} {p}");
        let (_, p) = model.score(&[1, 1, 1], &[None, None, None]);
        assert!(p < 0.01);
        // A rare value weighs more than the average agreement.
        assert!(model.level_weight(0, 0, Some(0.001)) > model.level_weight(0, 0, None));
        // NULL is no evidence.
        assert_eq!(model.level_weight(0, -1, None), 0.0);
        // The weights computed once score every vector to the bit, with and without a
        // value's own frequency (unusable frequencies fall back to u).
        let weights = model.weights();
        let tfs = [None, Some(0.002), Some(f64::NAN), Some(0.0), Some(1e-12)];
        for bits in 0..27u32 {
            let v: Vec<i8> = (0..3).map(|c| (bits / 3u32.pow(c) % 3) as i8 - 1).collect();
            for tf in [[tfs[0], tfs[1], tfs[2]], [tfs[3], tfs[4], tfs[1]]] {
                let by_level = model.prior_weight()
                    + (0..3)
                        .map(|c| model.level_weight(c, v[c], tf[c]))
                        .sum::<f64>();
                let (w, p) = weights.score(&v, &tf);
                assert_eq!(w.to_bits(), by_level.to_bits(), "{v:?} {tf:?}");
                assert_eq!(p.to_bits(), (1.0 / (1.0 + (-by_level).exp2())).to_bits());
            }
        }
    }
}
