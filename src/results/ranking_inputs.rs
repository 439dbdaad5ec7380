//! What the ranking analysis needs from scoring: for every submission and task, the task's
//! primary metric on any subset of the cases (a bootstrap resample, with repeats).
//!
//! Scoring builds these while it scores, from the very values it aggregated (missing policy
//! applied), so the analysis ranks exactly what the leaderboard shows.

use std::fmt;
use std::sync::Arc;

/// A task's primary metric for one submission.
#[derive(Clone)]
pub enum PrimaryValues {
    /// A metric with a value per case (Dice, absolute error, …), aggregated over cases. Indexed
    /// by the round's case order; None where the case has no value (excluded by the missing
    /// policy, or undefined).
    PerCase(Vec<Option<f64>>),
    /// A metric defined only over a set of cases (AUC, kappa, …).
    WholeSet(Arc<dyn SetStatistic>),
}

impl fmt::Debug for PrimaryValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrimaryValues::PerCase(v) => write!(f, "PerCase({} cases)", v.len()),
            PrimaryValues::WholeSet(_) => write!(f, "WholeSet"),
        }
    }
}

/// A whole-set metric computable on any multiset of cases.
pub trait SetStatistic: Send + Sync {
    /// The metric on the cases `idx` (indices into the round's case order, repeats allowed).
    /// Cases without a prediction are skipped.
    fn on(&self, idx: &[usize]) -> Option<f64>;
    /// For a binary AUC: the per-case scores and truths (round case order; None where the
    /// case has no prediction), for paired DeLong tests.
    fn binary_scores(&self) -> Option<(&[Option<f64>], &[bool])> {
        None
    }
}

/// A whole-set statistic over the cases a scorer kept, found through `local`: round case
/// index → position in the scorer's vectors. The statistic takes the resample as draw counts
/// of those positions (the form of [`crate::metrics::weighted`]).
pub struct LocalStatistic<F> {
    local: Vec<Option<usize>>,
    kept: usize,
    statistic: F,
}

impl<F> LocalStatistic<F>
where
    F: Fn(&[u32]) -> Option<f64> + Send + Sync,
{
    /// `kept[k]` is the round case index of the scorer's k-th value; `n_cases` the round's.
    pub fn new(kept: &[usize], n_cases: usize, statistic: F) -> LocalStatistic<F> {
        let mut local = vec![None; n_cases];
        for (k, &i) in kept.iter().enumerate() {
            local[i] = Some(k);
        }
        LocalStatistic {
            local,
            kept: kept.len(),
            statistic,
        }
    }
}

impl<F> SetStatistic for LocalStatistic<F>
where
    F: Fn(&[u32]) -> Option<f64> + Send + Sync,
{
    fn on(&self, idx: &[usize]) -> Option<f64> {
        let mut counts = vec![0u32; self.kept];
        for &i in idx {
            if let Some(k) = self.local[i] {
                counts[k] += 1;
            }
        }
        (self.statistic)(&counts)
    }
}

/// The AUC of a binary task on any multiset of cases in O(n): the cases are sorted by score
/// once, and a resample only counts how often each case was drawn.
pub struct BinaryAuc {
    /// Round case order.
    scores: Vec<Option<f64>>,
    truth: Vec<bool>,
    /// Cases with a score, by increasing score.
    order: Vec<usize>,
}

impl BinaryAuc {
    pub fn new(scores: Vec<Option<f64>>, truth: Vec<bool>) -> BinaryAuc {
        let mut order: Vec<usize> = (0..scores.len()).filter(|&i| scores[i].is_some()).collect();
        order.sort_by(|&a, &b| scores[a].unwrap().total_cmp(&scores[b].unwrap()));
        BinaryAuc {
            scores,
            truth,
            order,
        }
    }
}

impl SetStatistic for BinaryAuc {
    fn on(&self, idx: &[usize]) -> Option<f64> {
        let mut drawn = vec![0u32; self.scores.len()];
        for &i in idx {
            drawn[i] += 1;
        }
        // Mann–Whitney: each (positive, negative) pair counts 1 when the positive scores
        // higher, 1/2 on a tie.
        let (mut wins, mut negatives_below, mut positives, mut negatives) = (0.0, 0.0, 0.0, 0.0);
        let mut k = 0;
        while k < self.order.len() {
            let score = self.scores[self.order[k]];
            let (mut pos, mut neg) = (0.0, 0.0);
            while k < self.order.len() && self.scores[self.order[k]] == score {
                let i = self.order[k];
                let weight = f64::from(drawn[i]);
                if self.truth[i] {
                    pos += weight;
                } else {
                    neg += weight;
                }
                k += 1;
            }
            wins += pos * (negatives_below + neg / 2.0);
            negatives_below += neg;
            positives += pos;
            negatives += neg;
        }
        (positives > 0.0 && negatives > 0.0).then(|| wins / (positives * negatives))
    }

    fn binary_scores(&self) -> Option<(&[Option<f64>], &[bool])> {
        Some((&self.scores, &self.truth))
    }
}

/// Every submission's primary values of every task, as scoring left them.
#[derive(Clone, Debug, Default)]
pub struct RankingInputs {
    /// The round's cases, in the order every index refers to.
    pub cases: Vec<String>,
    /// (submission, task) → values.
    pub values: std::collections::BTreeMap<(String, String), PrimaryValues>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::classification::roc_auc;

    #[test]
    fn the_resampled_auc_equals_the_auc_of_the_resampled_cases() {
        let scores = vec![Some(0.9), Some(0.4), None, Some(0.4), Some(0.1), Some(0.7)];
        let truth = vec![true, true, false, false, false, true];
        let auc = BinaryAuc::new(scores.clone(), truth.clone());
        for idx in [
            vec![0, 1, 2, 3, 4, 5],
            vec![0, 0, 1, 3, 3, 4],
            vec![5, 1, 1, 4, 3, 2],
        ] {
            let kept: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| scores[i].is_some())
                .collect();
            let t: Vec<bool> = kept.iter().map(|&i| truth[i]).collect();
            let s: Vec<f64> = kept.iter().map(|&i| scores[i].unwrap()).collect();
            let expected = roc_auc(&t, &s).unwrap();
            assert!((auc.on(&idx).unwrap() - expected).abs() < 1e-12, "{idx:?}");
        }
        assert_eq!(auc.on(&[0, 1]), None, "one class only");
    }

    #[test]
    fn a_local_statistic_skips_cases_the_scorer_did_not_keep() {
        // The scorer kept round cases 0, 2 and 3 with values 1, 2, 3.
        let values = [1.0, 2.0, 3.0];
        let sum = LocalStatistic::new(&[0, 2, 3], 4, move |counts: &[u32]| {
            Some(
                counts
                    .iter()
                    .zip(values)
                    .map(|(&c, v)| f64::from(c) * v)
                    .sum(),
            )
        });
        assert_eq!(sum.on(&[0, 1, 2, 3]), Some(6.0));
        assert_eq!(sum.on(&[3, 3, 1]), Some(6.0));
    }
}
