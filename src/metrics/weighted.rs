//! Metrics of a multiset of cases given as draw counts: `counts[i]` is how often case `i` was
//! drawn, as a bootstrap resample draws them. The cases are sorted (or paired up) once, so a
//! resample costs O(n) instead of a copy and a sort.
//!
//! Each metric here equals its plain counterpart ([`roc::roc_curve`], [`roc::average_precision`],
//! [`classification::roc_auc`], [`classification::macro_auc_ovr`],
//! [`ordinal::weighted_kappa`], [`ordinal::accuracy`], [`classification::balanced_accuracy`])
//! on the multiset written out case by case: the same counts in the same order of operations,
//! so the same value to the last bit (tested on random multisets with ties). A bootstrap
//! interval is therefore the same whichever way it is computed.
//!
//! [`roc::roc_curve`]: super::roc::roc_curve
//! [`roc::average_precision`]: super::roc::average_precision
//! [`classification::roc_auc`]: super::classification::roc_auc
//! [`classification::macro_auc_ovr`]: super::classification::macro_auc_ovr
//! [`classification::balanced_accuracy`]: super::classification::balanced_accuracy
//! [`ordinal::weighted_kappa`]: super::ordinal::weighted_kappa
//! [`ordinal::accuracy`]: super::ordinal::accuracy

use super::ordinal::KappaWeights;
use super::roc::RocPoint;

/// The case indices of a multiset, each repeated as often as it was drawn, in increasing
/// order: for the statistics that have no counted form.
pub fn expand(counts: &[u32]) -> Vec<usize> {
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    let mut idx = Vec::with_capacity(total);
    for (i, &c) in counts.iter().enumerate() {
        idx.extend(std::iter::repeat_n(i, c as usize));
    }
    idx
}

/// The draw counts of a list of case indices (repeats allowed) among `n` cases.
pub fn counts_of(idx: &[usize], n: usize) -> Vec<u32> {
    let mut counts = vec![0u32; n];
    for &i in idx {
        counts[i] += 1;
    }
    counts
}

/// A binary score's cases sorted once by score, highest first, with the runs of tied scores.
#[derive(Clone, Debug)]
pub struct SortedScores {
    truth: Vec<bool>,
    scores: Vec<f64>,
    /// Case indices by decreasing score.
    order: Vec<usize>,
    /// Start of each run of equal scores in `order`, then `order.len()`.
    runs: Vec<usize>,
}

/// The weighted positives and negatives of one run of tied scores.
struct Run {
    threshold: f64,
    positives: u64,
    negatives: u64,
}

impl SortedScores {
    /// None when the lengths differ or a score is NaN (where the plain metrics are undefined).
    pub fn new(truth: &[bool], scores: &[f64]) -> Option<SortedScores> {
        if truth.len() != scores.len() || scores.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut runs = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            // `==`, not total order: -0.0 and 0.0 are one threshold, as in the plain metrics.
            if k == 0 || scores[order[k - 1]] != scores[i] {
                runs.push(k);
            }
        }
        runs.push(order.len());
        Some(SortedScores {
            truth: truth.to_vec(),
            scores: scores.to_vec(),
            order,
            runs,
        })
    }

    pub fn len(&self) -> usize {
        self.truth.len()
    }

    pub fn is_empty(&self) -> bool {
        self.truth.is_empty()
    }

    /// The drawn runs, highest score first (runs whose cases were not drawn are left out).
    fn drawn_runs<'a>(&'a self, counts: &'a [u32]) -> impl Iterator<Item = Run> + 'a {
        self.runs.windows(2).filter_map(move |w| {
            let (mut positives, mut negatives) = (0u64, 0u64);
            let mut first_drawn = None;
            for &i in &self.order[w[0]..w[1]] {
                let c = u64::from(counts[i]);
                if c > 0 && first_drawn.is_none() {
                    first_drawn = Some(i);
                }
                if self.truth[i] {
                    positives += c;
                } else {
                    negatives += c;
                }
            }
            // The run's first drawn score: 0.0 and -0.0 tie, and the plain curve shows the
            // first of the written-out multiset.
            first_drawn.map(|i| Run {
                threshold: self.scores[i],
                positives,
                negatives,
            })
        })
    }

    fn totals(&self, counts: &[u32]) -> (u64, u64) {
        let (mut m, mut n) = (0u64, 0u64);
        for (&t, &c) in self.truth.iter().zip(counts) {
            if t {
                m += u64::from(c);
            } else {
                n += u64::from(c);
            }
        }
        (m, n)
    }

    /// [`super::roc::roc_curve`] of the multiset: None unless both classes were drawn.
    pub fn roc_curve(&self, counts: &[u32]) -> Option<Vec<RocPoint>> {
        let (m, n) = self.totals(counts);
        if m == 0 || n == 0 {
            return None;
        }
        let mut points = vec![RocPoint {
            threshold: f64::INFINITY,
            fpr: 0.0,
            tpr: 0.0,
        }];
        let (mut tp, mut fp) = (0u64, 0u64);
        for run in self.drawn_runs(counts) {
            tp += run.positives;
            fp += run.negatives;
            points.push(RocPoint {
                threshold: run.threshold,
                fpr: fp as f64 / n as f64,
                tpr: tp as f64 / m as f64,
            });
        }
        Some(points)
    }

    /// [`super::classification::roc_auc`] of the multiset (the Mann–Whitney count, exact in
    /// integers): None unless both classes were drawn.
    pub fn auc(&self, counts: &[u32]) -> Option<f64> {
        let (m, n) = self.totals(counts);
        if m == 0 || n == 0 {
            return None;
        }
        // From the highest score down, each positive beats the negatives not yet seen.
        let (mut twice_u, mut negatives_above) = (0u128, 0u128);
        for run in self.drawn_runs(counts) {
            let below = u128::from(n) - negatives_above - u128::from(run.negatives);
            twice_u += u128::from(run.positives) * (2 * below + u128::from(run.negatives));
            negatives_above += u128::from(run.negatives);
        }
        Some(twice_u as f64 / (2 * u128::from(m) * u128::from(n)) as f64)
    }

    /// [`super::roc::average_precision`] of the multiset: None unless a positive was drawn.
    pub fn average_precision(&self, counts: &[u32]) -> Option<f64> {
        let (m, _) = self.totals(counts);
        if m == 0 {
            return None;
        }
        let (mut tp, mut called, mut ap, mut last_recall) = (0u64, 0u64, 0.0, 0.0);
        for run in self.drawn_runs(counts) {
            tp += run.positives;
            called += run.positives + run.negatives;
            let recall = tp as f64 / m as f64;
            ap += (recall - last_recall) * (tp as f64 / called as f64);
            last_recall = recall;
        }
        Some(ap)
    }
}

/// One-vs-rest AUCs of a multiclass task, each class's scores sorted once.
#[derive(Clone, Debug)]
pub struct OneVsRest {
    truth: Vec<usize>,
    per_class: Vec<SortedScores>,
}

impl OneVsRest {
    /// None where [`super::classification::macro_auc_ovr`] is undefined whatever the cases: a
    /// truth `>= n_classes`, a row shorter than `n_classes`, a NaN score, lengths that differ.
    pub fn new(truth: &[usize], scores: &[Vec<f64>], n_classes: usize) -> Option<OneVsRest> {
        let invalid = truth.len() != scores.len()
            || truth.iter().any(|&t| t >= n_classes)
            || scores.iter().any(|row| row.len() < n_classes);
        if invalid {
            return None;
        }
        let per_class = (0..n_classes)
            .map(|c| {
                let is_c: Vec<bool> = truth.iter().map(|&t| t == c).collect();
                let column: Vec<f64> = scores.iter().map(|row| row[c]).collect();
                SortedScores::new(&is_c, &column)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(OneVsRest {
            truth: truth.to_vec(),
            per_class,
        })
    }

    /// The macro AUC of the multiset: the mean over the classes both drawn and not alone of
    /// their one-vs-rest AUCs; None when no class qualifies.
    pub fn macro_auc(&self, counts: &[u32]) -> Option<f64> {
        let mut drawn = vec![0u64; self.per_class.len()];
        for (&t, &c) in self.truth.iter().zip(counts) {
            drawn[t] += u64::from(c);
        }
        let total: u64 = drawn.iter().sum();
        let (mut sum, mut included) = (0.0, 0usize);
        for (c, sorted) in self.per_class.iter().enumerate() {
            if drawn[c] == 0 || drawn[c] == total {
                continue;
            }
            sum += sorted.auc(counts)?;
            included += 1;
        }
        (included > 0).then(|| sum / included as f64)
    }
}

/// The errors `predicted − truth` of a regression task, for its metrics on any multiset.
/// Sums run over the cases in increasing order, each added as often as it was drawn: the
/// order in which the plain metrics add the multiset written out, so the same value.
#[derive(Clone, Debug)]
pub struct Errors {
    errors: Vec<f64>,
}

impl Errors {
    /// None when the lengths differ.
    pub fn new(predicted: &[f64], truth: &[f64]) -> Option<Errors> {
        (predicted.len() == truth.len()).then(|| Errors {
            errors: predicted.iter().zip(truth).map(|(p, t)| p - t).collect(),
        })
    }

    /// Σ f(error) over the multiset, and its size.
    fn sum(&self, counts: &[u32], f: impl Fn(f64) -> f64) -> (f64, u64) {
        let (mut sum, mut n) = (0.0, 0u64);
        for (&e, &c) in self.errors.iter().zip(counts) {
            for _ in 0..c {
                sum += f(e);
            }
            n += u64::from(c);
        }
        (sum, n)
    }

    fn mean_of(&self, counts: &[u32], f: impl Fn(f64) -> f64) -> Option<f64> {
        let (sum, n) = self.sum(counts, f);
        let mean = sum / n as f64;
        (n > 0 && mean.is_finite()).then_some(mean)
    }

    /// [`super::regression::mae`] of the multiset.
    pub fn mae(&self, counts: &[u32]) -> Option<f64> {
        self.mean_of(counts, f64::abs)
    }

    /// [`super::regression::rmse`] of the multiset.
    pub fn rmse(&self, counts: &[u32]) -> Option<f64> {
        self.mean_of(counts, |d| d * d).map(f64::sqrt)
    }

    /// [`super::agreement::bland_altman`] of the multiset.
    pub fn bland_altman(&self, counts: &[u32]) -> Option<super::agreement::BlandAltman> {
        let (sum, n) = self.sum(counts, |d| d);
        if n < 2
            || self
                .errors
                .iter()
                .zip(counts)
                .any(|(e, &c)| c > 0 && !e.is_finite())
        {
            return None;
        }
        let n = n as f64;
        let bias = sum / n;
        let (squares, _) = self.sum(counts, |d| (d - bias).powi(2));
        let sd = (squares / (n - 1.0)).sqrt();
        Some(super::agreement::BlandAltman {
            bias,
            sd,
            loa_lower: bias - super::intervals::Z_95 * sd,
            loa_upper: bias + super::intervals::Z_95 * sd,
        })
    }
}

/// The (truth, prediction) pairs of a labelled task, grouped once into distinct pairs, for
/// the confusion-based metrics (kappa, accuracy, balanced accuracy) of any multiset.
#[derive(Clone, Debug)]
pub struct LabelPairs {
    /// Distinct (truth, predicted) pairs.
    pairs: Vec<(usize, usize)>,
    /// Each case's index into `pairs`.
    pair_of_case: Vec<usize>,
    /// Distinct levels occurring on either side, increasing.
    levels: Vec<usize>,
    /// Each pair's (truth, predicted) as positions in `levels`.
    pair_levels: Vec<(usize, usize)>,
}

impl LabelPairs {
    /// None when the lengths differ.
    pub fn new(truth: &[usize], predicted: &[usize]) -> Option<LabelPairs> {
        if truth.len() != predicted.len() {
            return None;
        }
        let mut index = std::collections::BTreeMap::new();
        let mut pairs = Vec::new();
        let pair_of_case = truth
            .iter()
            .zip(predicted)
            .map(|(&t, &p)| {
                *index.entry((t, p)).or_insert_with(|| {
                    pairs.push((t, p));
                    pairs.len() - 1
                })
            })
            .collect();
        let mut levels: Vec<usize> = pairs.iter().flat_map(|&(t, p)| [t, p]).collect();
        levels.sort_unstable();
        levels.dedup();
        let position = |v: usize| levels.binary_search(&v).unwrap_or(0);
        let pair_levels = pairs
            .iter()
            .map(|&(t, p)| (position(t), position(p)))
            .collect();
        Some(LabelPairs {
            pairs,
            pair_of_case,
            levels,
            pair_levels,
        })
    }

    fn pair_counts(&self, counts: &[u32]) -> Vec<u64> {
        let mut drawn = vec![0u64; self.pairs.len()];
        for (&pair, &c) in self.pair_of_case.iter().zip(counts) {
            drawn[pair] += u64::from(c);
        }
        drawn
    }

    /// [`super::ordinal::weighted_kappa`] of the multiset (exact in integers until the final
    /// ratio).
    pub fn weighted_kappa(
        &self,
        counts: &[u32],
        n_levels: usize,
        weights: KappaWeights,
    ) -> Option<f64> {
        let drawn = self.pair_counts(counts);
        let mut rows = vec![0u128; self.levels.len()];
        let mut cols = vec![0u128; self.levels.len()];
        let (mut observed, mut n) = (0u128, 0u128);
        for ((&(t, p), &(lt, lp)), &c) in self.pairs.iter().zip(&self.pair_levels).zip(&drawn) {
            if c == 0 {
                continue;
            }
            if t >= n_levels || p >= n_levels {
                return None;
            }
            let c = u128::from(c);
            rows[lt] += c;
            cols[lp] += c;
            n += c;
            observed = observed.checked_add(weights.raw(t, p).checked_mul(c)?)?;
        }
        if n == 0 {
            return None;
        }
        let mut expected: u128 = 0;
        for (&i, &r) in self.levels.iter().zip(&rows) {
            if r == 0 {
                continue;
            }
            for (&j, &c) in self.levels.iter().zip(&cols) {
                if c == 0 {
                    continue;
                }
                let term = weights.raw(i, j).checked_mul(r)?.checked_mul(c)?;
                expected = expected.checked_add(term)?;
            }
        }
        if expected == 0 {
            return None;
        }
        Some(1.0 - observed.checked_mul(n)? as f64 / expected as f64)
    }

    /// [`super::ordinal::accuracy`] of the multiset.
    pub fn accuracy(&self, counts: &[u32]) -> Option<f64> {
        let drawn = self.pair_counts(counts);
        let total: u64 = drawn.iter().sum();
        let correct: u64 = self
            .pairs
            .iter()
            .zip(&drawn)
            .filter(|((t, p), _)| t == p)
            .map(|(_, &c)| c)
            .sum();
        (total > 0).then(|| correct as f64 / total as f64)
    }

    /// [`super::classification::balanced_accuracy`] of the multiset.
    pub fn balanced_accuracy(&self, counts: &[u32], n_classes: usize) -> Option<f64> {
        let drawn = self.pair_counts(counts);
        // (cases, correct) per truth level, in increasing level order as the plain metric sums.
        let mut tallies = vec![(0u64, 0u64); self.levels.len()];
        for ((&(t, p), &(lt, _)), &c) in self.pairs.iter().zip(&self.pair_levels).zip(&drawn) {
            if c == 0 {
                continue;
            }
            if t >= n_classes {
                return None;
            }
            tallies[lt].0 += c;
            if t == p {
                tallies[lt].1 += c;
            }
        }
        let present: Vec<(u64, u64)> = tallies.into_iter().filter(|&(n, _)| n > 0).collect();
        if present.is_empty() {
            return None;
        }
        let sum: f64 = present
            .iter()
            .map(|&(count, correct)| correct as f64 / count as f64)
            .sum();
        Some(sum / present.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{classification, ordinal, roc};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random multisets (zero counts included) of `n` cases.
    fn multisets(rng: &mut ChaCha8Rng, n: usize) -> Vec<Vec<u32>> {
        (0..40)
            .map(|_| (0..n).map(|_| rng.random_range(0..4)).collect())
            .collect()
    }

    fn written_out<T: Copy>(values: &[T], counts: &[u32]) -> Vec<T> {
        expand(counts).into_iter().map(|i| values[i]).collect()
    }

    #[test]
    fn binary_metrics_of_a_multiset_equal_the_plain_ones_on_it_written_out() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [1, 2, 7, 60] {
            // Few distinct scores, so that ties are common; -0.0 and 0.0 both occur.
            let scores: Vec<f64> = (0..n)
                .map(|_| [-0.0, 0.0, 0.25, 0.5, 0.75, 1.0][rng.random_range(0..6)])
                .collect();
            let truth: Vec<bool> = (0..n).map(|_| rng.random_range(0..2) == 1).collect();
            let sorted = SortedScores::new(&truth, &scores).unwrap();
            for counts in multisets(&mut rng, n) {
                let (t, s) = (written_out(&truth, &counts), written_out(&scores, &counts));
                assert_eq!(sorted.auc(&counts), classification::roc_auc(&t, &s));
                assert_eq!(sorted.roc_curve(&counts), roc::roc_curve(&t, &s));
                assert_eq!(
                    sorted.average_precision(&counts),
                    roc::average_precision(&t, &s)
                );
            }
        }
        assert!(SortedScores::new(&[true], &[f64::NAN]).is_none());
        assert!(SortedScores::new(&[true], &[]).is_none());
    }

    #[test]
    fn the_macro_auc_of_a_multiset_equals_the_plain_one_on_it_written_out() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for n in [3, 10, 50] {
            let truth: Vec<usize> = (0..n).map(|_| rng.random_range(0..3)).collect();
            let scores: Vec<Vec<f64>> = (0..n)
                .map(|_| {
                    (0..3)
                        .map(|_| f64::from(rng.random_range(0..5u8)) / 4.0)
                        .collect()
                })
                .collect();
            let ovr = OneVsRest::new(&truth, &scores, 3).unwrap();
            for counts in multisets(&mut rng, n) {
                let t = written_out(&truth, &counts);
                let s: Vec<Vec<f64>> = expand(&counts).iter().map(|&i| scores[i].clone()).collect();
                assert_eq!(
                    ovr.macro_auc(&counts),
                    classification::macro_auc_ovr(&t, &s, 3).macro_auc
                );
            }
        }
        assert!(OneVsRest::new(&[3], &[vec![0.1, 0.2, 0.7]], 3).is_none());
    }

    #[test]
    fn confusion_metrics_of_a_multiset_equal_the_plain_ones_on_it_written_out() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in [1, 5, 80] {
            let truth: Vec<usize> = (0..n).map(|_| rng.random_range(0..5)).collect();
            let predicted: Vec<usize> = (0..n).map(|_| rng.random_range(0..6)).collect();
            let pairs = LabelPairs::new(&truth, &predicted).unwrap();
            for counts in multisets(&mut rng, n) {
                let (t, p) = (
                    written_out(&truth, &counts),
                    written_out(&predicted, &counts),
                );
                for weights in [
                    ordinal::KappaWeights::Linear,
                    ordinal::KappaWeights::Quadratic,
                ] {
                    for levels in [5, 6] {
                        assert_eq!(
                            pairs.weighted_kappa(&counts, levels, weights),
                            ordinal::weighted_kappa(&t, &p, levels, weights)
                        );
                    }
                }
                assert_eq!(pairs.accuracy(&counts), ordinal::accuracy(&t, &p));
                assert_eq!(
                    pairs.balanced_accuracy(&counts, 5),
                    classification::balanced_accuracy(&t, &p, 5)
                );
            }
        }
    }

    #[test]
    fn regression_metrics_of_a_multiset_equal_the_plain_ones_on_it_written_out() {
        use crate::metrics::{agreement, regression};
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for n in [1, 2, 9, 70] {
            let truth: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..100.0)).collect();
            let predicted: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..100.0)).collect();
            let errors = Errors::new(&predicted, &truth).unwrap();
            for counts in multisets(&mut rng, n) {
                let (p, t) = (
                    written_out(&predicted, &counts),
                    written_out(&truth, &counts),
                );
                assert_eq!(errors.mae(&counts), regression::mae(&p, &t));
                assert_eq!(errors.rmse(&counts), regression::rmse(&p, &t));
                assert_eq!(
                    errors.bland_altman(&counts),
                    agreement::bland_altman(&p, &t)
                );
            }
        }
        assert!(Errors::new(&[1.0], &[]).is_none());
    }

    #[test]
    fn counts_and_expansion_are_inverse() {
        assert_eq!(counts_of(&[2, 0, 2, 3], 5), vec![1, 0, 2, 1, 0]);
        assert_eq!(expand(&[1, 0, 2, 1, 0]), vec![0, 2, 2, 3]);
        assert!(expand(&[0, 0]).is_empty());
    }
}
