//! Classification metrics: ROC AUC, sensitivity/specificity at a threshold,
//! one-vs-rest macro AUC, balanced accuracy and the confusion matrix.
//!
//! All functions are total: they never panic and report undefined values as
//! `None`.

use rayon::slice::ParallelSliceMut;

/// Above this many scores, [`roc_auc`] sorts in parallel with rayon.
const PARALLEL_SORT_MIN: usize = 1 << 16;

/// Area under the ROC curve of a binary classifier.
///
/// Computed as the Mann–Whitney U statistic divided by `n_pos * n_neg`, i.e.
/// the probability that a randomly chosen positive case gets a higher score
/// than a randomly chosen negative case, where a tie counts one half
/// (equivalently: tie-averaged ranks). This equals the trapezoidal area under
/// the empirical ROC curve and agrees with
/// `sklearn.metrics.roc_auc_score(truth, scores)`.
///
/// Only the order of the scores matters; they need not be probabilities.
/// `-0.0` and `0.0` are equal (tied); infinities are ordinary values.
///
/// Runs in O(n log n) time and O(n) extra memory (the scores are copied once
/// into sortable integer keys, positives and negatives apart). Large inputs
/// are sorted in parallel; the result does not depend on the thread count.
///
/// # Parameters
///
/// * `truth`: `true` for a positive case.
/// * `scores`: one score per case, higher meaning "more likely positive".
///
/// # Returns
///
/// The AUC in `[0, 1]` (1 = perfect ranking, 0 = perfectly inverted,
/// 0.5 = all scores equal), or `None` when:
///
/// * either class is absent from `truth` (includes the empty input);
/// * `truth` and `scores` have different lengths;
/// * any score is NaN.
pub fn roc_auc(truth: &[bool], scores: &[f64]) -> Option<f64> {
    if truth.len() != scores.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let n_pos = truth.iter().filter(|&&t| t).count();
    let n_neg = truth.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut pos: Vec<u64> = Vec::with_capacity(n_pos);
    let mut neg: Vec<u64> = Vec::with_capacity(n_neg);
    for (&t, &s) in truth.iter().zip(scores) {
        if t {
            pos.push(sort_key(s));
        } else {
            neg.push(sort_key(s));
        }
    }
    if truth.len() >= PARALLEL_SORT_MIN {
        rayon::join(|| pos.par_sort_unstable(), || neg.par_sort_unstable());
    } else {
        pos.sort_unstable();
        neg.sort_unstable();
    }

    // 2U = sum over positives of (2 * #negatives below + #negatives tied);
    // kept as an exact integer, divided once at the end.
    let mut twice_u: u128 = 0;
    let mut below = 0usize; // negatives strictly below the current key
    let mut up_to = 0usize; // negatives at or below the current key
    let mut i = 0usize;
    while i < pos.len() {
        let key = pos[i];
        let mut j = i;
        while j < pos.len() && pos[j] == key {
            j += 1;
        }
        while below < neg.len() && neg[below] < key {
            below += 1;
        }
        up_to = up_to.max(below);
        while up_to < neg.len() && neg[up_to] == key {
            up_to += 1;
        }
        let group = (j - i) as u128;
        twice_u += group * (2 * below as u128 + (up_to - below) as u128);
        i = j;
    }
    let denominator = 2 * n_pos as u128 * n_neg as u128;
    Some(twice_u as f64 / denominator as f64)
}

/// Maps a non-NaN `f64` to a `u64` whose unsigned order is the numeric order
/// of the floats, with `-0.0` and `0.0` mapped to the same key.
fn sort_key(x: f64) -> u64 {
    let bits = (x + 0.0).to_bits(); // -0.0 + 0.0 == +0.0
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The four cells of a binary confusion matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinaryCounts {
    /// Positive cases called positive.
    pub tp: u64,
    /// Negative cases called positive.
    pub fp: u64,
    /// Negative cases called negative.
    pub tn: u64,
    /// Positive cases called negative.
    pub fn_: u64,
}

/// Counts true/false positives/negatives when a score `>= threshold` is a
/// positive call (a score exactly equal to the threshold is positive).
///
/// A NaN score is never `>= threshold`, so it is counted as a negative call;
/// with a NaN threshold every case is a negative call. Callers wanting to
/// reject NaN should check beforehand.
///
/// `truth` and `scores` are paired element by element; if their lengths
/// differ, the extra elements of the longer slice are ignored (the caller is
/// expected to have validated the lengths). Empty input gives all-zero counts.
///
/// Agrees with `sklearn.metrics.confusion_matrix(truth, scores >= threshold)`
/// (whose `ravel()` is `tn, fp, fn, tp`).
pub fn binary_counts(truth: &[bool], scores: &[f64], threshold: f64) -> BinaryCounts {
    let mut c = BinaryCounts::default();
    for (&t, &s) in truth.iter().zip(scores) {
        match (t, s >= threshold) {
            (true, true) => c.tp += 1,
            (true, false) => c.fn_ += 1,
            (false, true) => c.fp += 1,
            (false, false) => c.tn += 1,
        }
    }
    c
}

impl BinaryCounts {
    /// Sensitivity (recall, true-positive rate) = TP / (TP + FN).
    ///
    /// `None` when there are no positive cases (TP + FN = 0).
    pub fn sensitivity(&self) -> Option<f64> {
        ratio(self.tp, self.tp.checked_add(self.fn_)?)
    }

    /// Specificity (true-negative rate) = TN / (TN + FP).
    ///
    /// `None` when there are no negative cases (TN + FP = 0).
    pub fn specificity(&self) -> Option<f64> {
        ratio(self.tn, self.tn.checked_add(self.fp)?)
    }

    /// Number of positive cases, TP + FN (the trial count of the
    /// sensitivity, e.g. for [`crate::metrics::intervals::wilson`]).
    pub fn positives(&self) -> u64 {
        self.tp.saturating_add(self.fn_)
    }

    /// Number of negative cases, TN + FP (the trial count of the
    /// specificity).
    pub fn negatives(&self) -> u64 {
        self.tn.saturating_add(self.fp)
    }
}

/// `num / den`, `None` when `den == 0`.
fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Index of the largest value (e.g. the predicted class from per-class
/// scores).
///
/// Ties go to the lowest index. `-0.0` and `0.0` are equal; infinities are
/// ordinary values.
///
/// Returns `None` for an empty slice or if any value is NaN.
pub fn argmax(values: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            return None;
        }
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}

/// Result of [`macro_auc_ovr`].
#[derive(Clone, Debug, PartialEq)]
pub struct OneVsRestAuc {
    /// Unweighted mean of the per-class AUCs over the included classes;
    /// `None` if no class is included or any included class's AUC is
    /// undefined.
    pub macro_auc: Option<f64>,
    /// One entry per class `0..n_classes`: the one-vs-rest AUC, or `None` for
    /// an excluded class (or when the whole input is invalid).
    pub per_class: Vec<Option<f64>>,
    /// Classes left out of the mean because they have no positive case
    /// (absent from the truth) or no negative case, in increasing order.
    pub excluded_classes: Vec<usize>,
}

/// One-vs-rest ROC AUC per class, and their unweighted (macro) mean.
///
/// For each class `c` in `0..n_classes`, cases with `truth[i] == c` are
/// positive, all others negative, and the score is `scores[i][c]`; the AUC is
/// [`roc_auc`] on that split. A class with no positive case (absent from the
/// truth) or no negative case has an undefined AUC: it is *excluded*, listed
/// in `excluded_classes`, and its `per_class` entry is `None`.
/// `macro_auc` is the unweighted mean over the included classes.
///
/// Unlike `sklearn.metrics.roc_auc_score(multi_class="ovr",
/// average="macro")`, which raises when a class is absent and requires the
/// rows to sum to one, this excludes absent classes and accepts any scores.
/// When all classes are present it agrees with the mean of
/// `roc_auc_score(truth == c, scores[:, c])` over `c`, which is what sklearn
/// computes.
///
/// # Edge cases
///
/// * Invalid input — `truth.len() != scores.len()`, a truth label
///   `>= n_classes`, or a score row shorter than `n_classes` — gives
///   `macro_auc: None`, `per_class` all `None` and no excluded class.
///   Extra score columns beyond `n_classes` are ignored.
/// * A NaN score in column `c` makes that class's AUC `None` (the class is
///   included, not excluded) and therefore `macro_auc` `None`.
/// * Empty input or a single class present: every class is excluded and
///   `macro_auc` is `None`.
pub fn macro_auc_ovr(truth: &[usize], scores: &[Vec<f64>], n_classes: usize) -> OneVsRestAuc {
    let invalid = truth.len() != scores.len()
        || truth.iter().any(|&t| t >= n_classes)
        || scores.iter().any(|row| row.len() < n_classes);
    if invalid {
        return OneVsRestAuc {
            macro_auc: None,
            per_class: vec![None; n_classes],
            excluded_classes: Vec::new(),
        };
    }
    let mut per_class = Vec::with_capacity(n_classes);
    let mut excluded_classes = Vec::new();
    let mut sum = 0.0;
    let mut included = 0usize;
    let mut all_defined = true;
    let mut is_c = Vec::with_capacity(truth.len());
    let mut column = Vec::with_capacity(truth.len());
    for c in 0..n_classes {
        let n_pos = truth.iter().filter(|&&t| t == c).count();
        if n_pos == 0 || n_pos == truth.len() {
            excluded_classes.push(c);
            per_class.push(None);
            continue;
        }
        is_c.clear();
        is_c.extend(truth.iter().map(|&t| t == c));
        column.clear();
        column.extend(scores.iter().map(|row| row[c]));
        let auc = roc_auc(&is_c, &column);
        included += 1;
        match auc {
            Some(a) => sum += a,
            None => all_defined = false,
        }
        per_class.push(auc);
    }
    let macro_auc = (included > 0 && all_defined).then(|| sum / included as f64);
    OneVsRestAuc {
        macro_auc,
        per_class,
        excluded_classes,
    }
}

/// Balanced accuracy: the mean, over the classes present in the truth, of
/// each class's recall (cases of that class predicted as that class, divided
/// by the number of cases of that class).
///
/// Classes absent from the truth are left out of the mean (their recall is
/// undefined), even if they are predicted; predictions of such classes still
/// count as errors for the true class. A predicted label `>= n_classes` is
/// simply a wrong prediction.
///
/// Agrees with `sklearn.metrics.balanced_accuracy_score(truth, predicted)`
/// (which also averages over the classes present in `y_true`).
///
/// Returns `None` if the input is empty, the lengths differ, or a truth label
/// is `>= n_classes`.
pub fn balanced_accuracy(truth: &[usize], predicted: &[usize], n_classes: usize) -> Option<f64> {
    if truth.is_empty() || truth.len() != predicted.len() || truth.iter().any(|&t| t >= n_classes) {
        return None;
    }
    // Sparse per-class tallies: never allocates in proportion to n_classes.
    let mut tallies: std::collections::BTreeMap<usize, (u64, u64)> = Default::default();
    for (&t, &p) in truth.iter().zip(predicted) {
        let entry = tallies.entry(t).or_insert((0, 0));
        entry.0 += 1;
        if p == t {
            entry.1 += 1;
        }
    }
    let sum: f64 = tallies
        .values()
        .map(|&(count, correct)| correct as f64 / count as f64)
        .sum();
    Some(sum / tallies.len() as f64)
}

/// Confusion matrix: `matrix[t][p]` is the number of cases of true class `t`
/// predicted as class `p`, for `t, p` in `0..n_classes`.
///
/// Pairs with a label `>= n_classes` (on either side) are not counted; if the
/// lengths differ, the extra elements of the longer slice are ignored. Callers
/// should validate both beforehand if they matter. Allocates `n_classes²`
/// counters.
///
/// Agrees with `sklearn.metrics.confusion_matrix(truth, predicted,
/// labels=range(n_classes))`.
pub fn confusion_matrix(truth: &[usize], predicted: &[usize], n_classes: usize) -> Vec<Vec<u64>> {
    let mut matrix = vec![vec![0u64; n_classes]; n_classes];
    for (&t, &p) in truth.iter().zip(predicted) {
        if let Some(cell) = matrix.get_mut(t).and_then(|row| row.get_mut(p)) {
            *cell += 1;
        }
    }
    matrix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// O(n_pos * n_neg) definition of the AUC, for cross-checking.
    fn naive_auc(truth: &[bool], scores: &[f64]) -> Option<f64> {
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for (i, &ti) in truth.iter().enumerate() {
            for (j, &tj) in truth.iter().enumerate() {
                if ti && !tj {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        wins += 1.0;
                    } else if scores[i] == scores[j] {
                        wins += 0.5;
                    }
                }
            }
        }
        (pairs > 0.0).then(|| wins / pairs)
    }

    #[test]
    fn auc_with_ties() {
        // Positives score {0.5, 0.8}, negatives {0.5, 0.2}. The 4 pairs:
        // 0.5 vs 0.5 tie (1/2), 0.5 > 0.2 (1), 0.8 > 0.5 (1), 0.8 > 0.2 (1)
        // -> 3.5 / 4 = 0.875.
        // sklearn.metrics.roc_auc_score([1,0,1,0], [0.5,0.5,0.8,0.2]) = 0.875.
        let auc = roc_auc(&[true, false, true, false], &[0.5, 0.5, 0.8, 0.2]);
        assert_eq!(auc, Some(0.875));
    }

    #[test]
    fn auc_perfect_inverted_and_constant() {
        let truth = [false, false, true, true];
        assert_eq!(roc_auc(&truth, &[0.1, 0.2, 0.3, 0.4]), Some(1.0));
        assert_eq!(roc_auc(&truth, &[0.4, 0.3, 0.2, 0.1]), Some(0.0));
        // All 4 pairs tied: 4 * 1/2 / 4 = 0.5.
        assert_eq!(roc_auc(&truth, &[0.7; 4]), Some(0.5));
    }

    #[test]
    fn auc_hand_computed_with_sklearn_check() {
        // truth   = [1, 1, 0, 1, 0, 0, 1, 0]
        // scores  = [0.9, 0.4, 0.4, 0.7, 0.1, 0.65, 0.3, 0.8]
        // positives {0.9, 0.4, 0.7, 0.3}, negatives {0.4, 0.1, 0.65, 0.8}
        // 0.9 beats all 4                      -> 4
        // 0.4 beats 0.1, ties 0.4              -> 1 + 0.5 = 1.5
        // 0.7 beats 0.4, 0.1, 0.65             -> 3
        // 0.3 beats 0.1                        -> 1
        // U = 9.5, AUC = 9.5 / 16 = 0.59375.
        // sklearn.metrics.roc_auc_score(truth, scores) = 0.59375 (sklearn 1.9.1).
        let truth = [true, true, false, true, false, false, true, false];
        let scores = [0.9, 0.4, 0.4, 0.7, 0.1, 0.65, 0.3, 0.8];
        assert_eq!(roc_auc(&truth, &scores), Some(0.59375));
    }

    #[test]
    fn auc_undefined_cases() {
        // One class only.
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.9]), None);
        assert_eq!(roc_auc(&[false, false], &[0.1, 0.9]), None);
        // Empty.
        assert_eq!(roc_auc(&[], &[]), None);
        // Length mismatch.
        assert_eq!(roc_auc(&[true, false], &[0.1]), None);
        // NaN score.
        assert_eq!(roc_auc(&[true, false], &[f64::NAN, 0.1]), None);
    }

    #[test]
    fn auc_signed_zero_and_infinities() {
        // -0.0 and 0.0 are tied: 1 pair, tie -> 0.5.
        assert_eq!(roc_auc(&[true, false], &[-0.0, 0.0]), Some(0.5));
        // Infinities are ordinary extreme values: positives {inf, -1},
        // negatives {-inf, 0} -> inf beats both (2), -1 beats -inf (1) -> 3/4.
        let auc = roc_auc(
            &[true, false, true, false],
            &[f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0],
        );
        assert_eq!(auc, Some(0.75));
    }

    #[test]
    fn auc_matches_naive_pairwise_on_many_ties() {
        // Deterministic pseudo-random data with heavy ties (scores on a grid
        // of 7 values), large enough to take the parallel sort path too.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for &n in &[5usize, 50, 300] {
            let truth: Vec<bool> = (0..n).map(|_| next() % 3 == 0).collect();
            let scores: Vec<f64> = (0..n).map(|_| (next() % 7) as f64 / 7.0 - 0.5).collect();
            let fast = roc_auc(&truth, &scores);
            let slow = naive_auc(&truth, &scores);
            assert_eq!(fast.is_some(), slow.is_some());
            if let (Some(f), Some(s)) = (fast, slow) {
                assert!(close(f, s), "n={n}: {f} vs {s}");
            }
        }
        // Parallel path: n above PARALLEL_SORT_MIN, compare with a counting
        // formula over the 7 score levels (exact, O(n)).
        let n = PARALLEL_SORT_MIN + 1234;
        let truth: Vec<bool> = (0..n).map(|_| next() % 2 == 0).collect();
        let levels: Vec<usize> = (0..n).map(|_| (next() % 7) as usize).collect();
        let scores: Vec<f64> = levels.iter().map(|&l| l as f64).collect();
        let mut pos = [0u64; 7];
        let mut neg = [0u64; 7];
        for (&t, &l) in truth.iter().zip(&levels) {
            if t {
                pos[l] += 1
            } else {
                neg[l] += 1
            }
        }
        let mut twice_u = 0u64;
        for l in 0..7 {
            let below: u64 = neg[..l].iter().sum();
            twice_u += pos[l] * (2 * below + neg[l]);
        }
        let (np, nn) = (pos.iter().sum::<u64>(), neg.iter().sum::<u64>());
        let expected = twice_u as f64 / (2 * np * nn) as f64;
        assert!(close(roc_auc(&truth, &scores).unwrap(), expected));
    }

    #[test]
    fn counts_threshold_is_inclusive() {
        // truth  [1,   1,   0,   0,   1,   0  ], threshold 0.5
        // scores [0.5, 0.4, 0.5, 0.2, 0.9, 0.7]
        // 0.5 >= 0.5 -> positive call: case 0 TP, case 2 FP.
        // TP = {0, 4} = 2, FN = {1} = 1, FP = {2, 5} = 2, TN = {3} = 1.
        let truth = [true, true, false, false, true, false];
        let scores = [0.5, 0.4, 0.5, 0.2, 0.9, 0.7];
        let c = binary_counts(&truth, &scores, 0.5);
        assert_eq!(
            c,
            BinaryCounts {
                tp: 2,
                fp: 2,
                tn: 1,
                fn_: 1
            }
        );
        // Sensitivity 2 / (2 + 1), specificity 1 / (1 + 2).
        // sklearn.metrics.recall_score(truth, scores >= 0.5) = 0.666...,
        // recall_score(truth, ..., pos_label=0) = 0.333...
        assert!(close(c.sensitivity().unwrap(), 2.0 / 3.0));
        assert!(close(c.specificity().unwrap(), 1.0 / 3.0));
        assert_eq!((c.positives(), c.negatives()), (3, 3));
    }

    #[test]
    fn counts_edge_cases() {
        let empty = binary_counts(&[], &[], 0.5);
        assert_eq!(empty, BinaryCounts::default());
        assert_eq!(empty.sensitivity(), None);
        assert_eq!(empty.specificity(), None);
        // Only negatives: sensitivity undefined, specificity defined.
        let c = binary_counts(&[false, false], &[0.1, 0.9], 0.5);
        assert_eq!(c.sensitivity(), None);
        assert_eq!(c.specificity(), Some(0.5));
        // NaN score is a negative call; NaN threshold makes all negative.
        let c = binary_counts(&[true, false], &[f64::NAN, 0.9], 0.5);
        assert_eq!((c.tp, c.fn_, c.fp, c.tn), (0, 1, 1, 0));
        let c = binary_counts(&[true, false], &[0.9, 0.9], f64::NAN);
        assert_eq!((c.tp, c.fn_, c.fp, c.tn), (0, 1, 0, 1));
        // Lengths differ: only the common prefix is counted.
        let c = binary_counts(&[true, true, true], &[0.9], 0.5);
        assert_eq!(c.tp + c.fn_ + c.fp + c.tn, 1);
        // Saturating totals never overflow.
        let big = BinaryCounts {
            tp: u64::MAX,
            fp: 1,
            tn: 1,
            fn_: 1,
        };
        assert_eq!(big.positives(), u64::MAX);
        assert_eq!(big.sensitivity(), None);
    }

    #[test]
    fn argmax_cases() {
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), Some(1));
        // Tie between indices 1 and 2 -> lowest.
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), Some(1));
        assert_eq!(argmax(&[-0.0, 0.0]), Some(0));
        assert_eq!(argmax(&[f64::NEG_INFINITY, f64::NEG_INFINITY]), Some(0));
        assert_eq!(argmax(&[1.0, f64::INFINITY]), Some(1));
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[0.3, f64::NAN, 0.1]), None);
    }

    #[test]
    fn macro_auc_all_classes_present() {
        // 3 classes, 6 cases.
        // truth = [0, 1, 2, 0, 1, 2]
        // scores (rows) = [.6 .3 .1], [.2 .5 .3], [.1 .2 .7],
        //                 [.3 .4 .3], [.5 .4 .1], [.3 .3 .4]
        // class 0: pos (rows 0, 3) {.6, .3}, neg {.2, .1, .5, .3}
        //   .6 beats 4 -> 4; .3 beats .2, .1, ties .3 -> 2.5; 6.5 / 8 = 0.8125
        // class 1: pos (rows 1, 4) {.5, .4}, neg {.3, .2, .4, .3}
        //   .5 beats 4 -> 4; .4 beats .3, .2, .3, ties .4 -> 3.5; 7.5 / 8 = 0.9375
        // class 2: pos (rows 2, 5) {.7, .4}, neg {.1, .3, .3, .1}
        //   both beat all 4 -> 8 / 8 = 1.0
        // macro = (0.8125 + 0.9375 + 1.0) / 3 = 2.75 / 3 = 0.91666...
        // sklearn.metrics.roc_auc_score(truth, scores, multi_class="ovr",
        //   average="macro") = 0.9166666666666666 (sklearn 1.9.1).
        let truth = [0, 1, 2, 0, 1, 2];
        let scores = vec![
            vec![0.6, 0.3, 0.1],
            vec![0.2, 0.5, 0.3],
            vec![0.1, 0.2, 0.7],
            vec![0.3, 0.4, 0.3],
            vec![0.5, 0.4, 0.1],
            vec![0.3, 0.3, 0.4],
        ];
        let r = macro_auc_ovr(&truth, &scores, 3);
        assert_eq!(r.per_class, vec![Some(0.8125), Some(0.9375), Some(1.0)]);
        assert!(r.excluded_classes.is_empty());
        assert!(close(r.macro_auc.unwrap(), 2.75 / 3.0));
    }

    #[test]
    fn macro_auc_excludes_absent_class() {
        // Class 1 never occurs in the truth: excluded.
        // truth = [0, 2, 0, 2]; column 0 = [.7, .2, .4, .5], column 2 = [.1, .6, .3, .4]
        // class 0: pos {.7, .4}, neg {.2, .5}: .7 beats 2, .4 beats .2 -> 3/4
        // class 2: pos {.6, .4}, neg {.1, .3}: both beat both -> 4/4
        // macro = (0.75 + 1.0) / 2 = 0.875.
        // Cross-check: mean of sklearn roc_auc_score(truth == c, scores[:, c])
        // for c in {0, 2} = 0.875.
        let truth = [0, 2, 0, 2];
        let scores = vec![
            vec![0.7, 0.2, 0.1],
            vec![0.2, 0.2, 0.6],
            vec![0.4, 0.3, 0.3],
            vec![0.5, 0.1, 0.4],
        ];
        let r = macro_auc_ovr(&truth, &scores, 3);
        assert_eq!(r.per_class, vec![Some(0.75), None, Some(1.0)]);
        assert_eq!(r.excluded_classes, vec![1]);
        assert_eq!(r.macro_auc, Some(0.875));
    }

    #[test]
    fn macro_auc_edge_cases() {
        // Single class present: class 0 has no negatives, 1 has no positives.
        let r = macro_auc_ovr(&[0, 0], &[vec![0.5, 0.5], vec![0.9, 0.1]], 2);
        assert_eq!(r.excluded_classes, vec![0, 1]);
        assert_eq!(r.macro_auc, None);
        // Empty.
        let r = macro_auc_ovr(&[], &[], 2);
        assert_eq!(r.excluded_classes, vec![0, 1]);
        assert_eq!(r.macro_auc, None);
        // Invalid: label out of range, short row, length mismatch.
        for r in [
            macro_auc_ovr(&[0, 2], &[vec![0.5, 0.5], vec![0.5, 0.5]], 2),
            macro_auc_ovr(&[0, 1], &[vec![0.5, 0.5], vec![0.5]], 2),
            macro_auc_ovr(&[0, 1], &[vec![0.5, 0.5]], 2),
        ] {
            assert_eq!(r.macro_auc, None);
            assert_eq!(r.per_class, vec![None, None]);
            assert!(r.excluded_classes.is_empty());
        }
        // NaN in one column: that class is undefined, so is the macro.
        let r = macro_auc_ovr(&[0, 1], &[vec![f64::NAN, 0.5], vec![0.5, 0.5]], 2);
        assert_eq!(r.per_class, vec![None, Some(0.5)]);
        assert!(r.excluded_classes.is_empty());
        assert_eq!(r.macro_auc, None);
        // Extra columns are ignored.
        let r = macro_auc_ovr(&[0, 1], &[vec![0.9, 0.1, 7.0], vec![0.2, 0.8, 7.0]], 2);
        assert_eq!(r.macro_auc, Some(1.0));
    }

    #[test]
    fn balanced_accuracy_with_absent_class() {
        // truth     = [0, 0, 1, 1, 1], predicted = [0, 1, 1, 1, 2], 3 classes.
        // class 0 recall 1/2, class 1 recall 2/3, class 2 absent from truth
        // (predicted once, which counts as an error for class 1).
        // (1/2 + 2/3) / 2 = 7/12 = 0.583333...
        // sklearn.metrics.balanced_accuracy_score(truth, predicted)
        //   = 0.5833333333333333 (sklearn 1.9.1, warns about class 2).
        let b = balanced_accuracy(&[0, 0, 1, 1, 1], &[0, 1, 1, 1, 2], 3).unwrap();
        assert!(close(b, 7.0 / 12.0));
        // All classes present, perfect.
        assert_eq!(balanced_accuracy(&[0, 1, 2], &[0, 1, 2], 3), Some(1.0));
        // Out-of-range prediction is just wrong: recalls 1, 0 -> 0.5.
        assert_eq!(balanced_accuracy(&[0, 1], &[0, 9], 2), Some(0.5));
    }

    #[test]
    fn balanced_accuracy_edge_cases() {
        assert_eq!(balanced_accuracy(&[], &[], 3), None);
        assert_eq!(balanced_accuracy(&[0, 1], &[0], 3), None);
        assert_eq!(balanced_accuracy(&[0, 3], &[0, 1], 3), None);
        assert_eq!(balanced_accuracy(&[0], &[0], usize::MAX), Some(1.0));
    }

    #[test]
    fn confusion_matrix_counts() {
        // truth [0, 0, 1, 1, 1, 2], predicted [0, 1, 1, 1, 2, 0]:
        // row 0: (0,0) x1, (0,1) x1; row 1: (1,1) x2, (1,2) x1; row 2: (2,0) x1.
        // sklearn.metrics.confusion_matrix(truth, predicted, labels=[0,1,2])
        //   = [[1,1,0],[0,2,1],[1,0,0]].
        let m = confusion_matrix(&[0, 0, 1, 1, 1, 2], &[0, 1, 1, 1, 2, 0], 3);
        assert_eq!(m, vec![vec![1, 1, 0], vec![0, 2, 1], vec![1, 0, 0]]);
        // Out-of-range pairs and the unmatched tail are ignored.
        let m = confusion_matrix(&[0, 5, 1, 1], &[7, 0, 1], 2);
        assert_eq!(m, vec![vec![0, 0], vec![0, 1]]);
        assert!(confusion_matrix(&[], &[], 0).is_empty());
    }
}
