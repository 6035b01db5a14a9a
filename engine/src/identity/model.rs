//! Fellegi–Sunter: u from random pairs, m by expectation–maximisation over the compared pairs'
//! comparison vectors (u held fixed; one session per blocking rule, leaving out the comparisons
//! that read the rule's columns), starting from what the deterministic rules say; the prior
//! from the deterministic links; weights and probabilities per pair.

use std::collections::HashMap;

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

/// Comparison vectors with their counts (`-1` is the null level: no evidence).
pub type Patterns = HashMap<Vec<i8>, (u64, u64)>;

/// One EM training session: the pairs of one blocking rule, with the comparisons that read the
/// rule's columns left out (inside a block they agree by construction, which says nothing).
#[derive(Debug, Default)]
pub struct Session {
    /// Vector → (pairs, pairs the deterministic rules link); left-out comparisons are -1.
    pub patterns: Patterns,
    /// Which comparisons this session trains.
    pub trains: Vec<bool>,
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

/// Estimates m by EM (u held fixed), one session per blocking rule. A comparison's m pools the
/// expected level counts of the sessions that train it (the deterministic start where none
/// does): each session weighs by the matched pairs it saw, so a rule proposing four pairs does
/// not count as much as one proposing thousands. (An unweighted mean of per-session m let a
/// tiny session, whose m is mostly the pseudo-pairs, raise m(emails differ) fivefold.) The
/// prior is not learnt here: it comes from the deterministic rules (see [`prior`]).
/// Deterministic: the same pairs give the same model.
pub fn train(
    sessions: &[Session],
    levels: &[usize],
    u: Vec<Vec<f64>>,
    lambda: f64,
    max_iterations: usize,
) -> Model {
    let start = m_from_deterministic(sessions, levels);
    // Expected level counts among matches, summed over the sessions that train each comparison.
    let mut pooled: Vec<Vec<f64>> = levels.iter().map(|&k| vec![0.0; k + 1]).collect();
    let mut trained = vec![0usize; levels.len()];
    let (mut iterations, mut converged) = (0, true);
    for session in sessions {
        let total: f64 = session.patterns.values().map(|(n, _)| *n as f64).sum();
        if total == 0.0 || !session.trains.iter().any(|&t| t) {
            continue;
        }
        let det: f64 = session.patterns.values().map(|(_, d)| *d as f64).sum();
        let mut m = start.clone();
        let mut share = (det / total).clamp(0.05, 0.95);
        let entries: Vec<(&Vec<i8>, f64)> = session
            .patterns
            .iter()
            .map(|(v, (n, _))| (v, *n as f64))
            .collect();
        let mut done = false;
        let mut k = 0;
        let mut counts: Vec<Vec<f64>> = Vec::new();
        while k < max_iterations {
            k += 1;
            let mut new_m: Vec<Vec<f64>> = levels.iter().map(|&k| vec![0.0; k + 1]).collect();
            let mut matched = 0.0;
            for (vector, n) in &entries {
                let p = posterior(share, &m, &u, vector);
                matched += n * p;
                for (c, &g) in vector.iter().enumerate() {
                    if g >= 0 {
                        new_m[c][g as usize] += n * p;
                    }
                }
            }
            let new_share = (matched / total).clamp(FLOOR, 1.0 - FLOOR);
            let mut change = (new_share - share).abs();
            counts.clone_from(&new_m);
            for (c, row) in new_m.iter_mut().enumerate() {
                let total: f64 = row.iter().sum();
                if !session.trains[c] || total <= 0.0 {
                    *row = m[c].clone();
                    continue;
                }
                let total = total + M_PSEUDO_PAIRS * row.len() as f64;
                for (l, v) in row.iter_mut().enumerate() {
                    *v = ((*v + M_PSEUDO_PAIRS) / total).max(FLOOR);
                    change = change.max((*v - m[c][l]).abs());
                }
            }
            m = new_m;
            share = new_share;
            if change < 1e-7 {
                done = true;
                break;
            }
        }
        iterations = iterations.max(k);
        converged &= done;
        for c in 0..levels.len() {
            if session.trains[c] && counts[c].iter().sum::<f64>() > 0.0 {
                trained[c] += 1;
                for (l, v) in counts[c].iter().enumerate() {
                    pooled[c][l] += v;
                }
            }
        }
    }
    let m = (0..levels.len())
        .map(|c| {
            if trained[c] == 0 {
                return start[c].clone();
            }
            let row = &pooled[c];
            let total = row.iter().sum::<f64>() + M_PSEUDO_PAIRS * row.len() as f64;
            row.iter()
                .map(|v| ((v + M_PSEUDO_PAIRS) / total).max(FLOOR))
                .collect()
        })
        .collect();
    Model {
        lambda,
        m,
        u,
        iterations,
        converged,
    }
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
        let w = self.prior_weight()
            + vector
                .iter()
                .enumerate()
                .map(|(c, &g)| self.level_weight(c, g, tfs[c]))
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
            trains: vec![true, false],
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
    }
}
