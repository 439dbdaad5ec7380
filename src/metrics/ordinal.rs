//! Ordinal metrics: Cohen's weighted kappa and plain accuracy.

use std::collections::BTreeMap;

/// Disagreement weights of [`weighted_kappa`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KappaWeights {
    /// `w_ij = |i - j| / (n - 1)`.
    Linear,
    /// `w_ij = (i - j)² / (n - 1)²`.
    Quadratic,
}

impl KappaWeights {
    /// Unnormalised weight `|i - j|` or `(i - j)²`; the `(n - 1)` or
    /// `(n - 1)²` normalisation cancels in the kappa ratio.
    pub(crate) fn raw(self, i: usize, j: usize) -> u128 {
        let d = i.abs_diff(j) as u128;
        match self {
            KappaWeights::Linear => d,
            KappaWeights::Quadratic => d * d,
        }
    }
}

/// Cohen's weighted kappa between two raters (truth and prediction) over
/// `n_levels` ordered levels.
///
/// Levels are given as positions `0..n_levels` in the declared, ordered list
/// of levels (e.g. `["mild", "moderate", "severe"]` → 0, 1, 2), so the
/// weights reflect the declared order and spacing, whichever levels actually
/// occur.
///
/// With `O` the `n × n` matrix of observed counts (`O_ij` = cases with truth
/// level `i` and predicted level `j`), `N` the number of cases, row/column
/// marginals `r_i = Σ_j O_ij` and `c_j = Σ_i O_ij`, and the chance-expected
/// counts `E_ij = r_i c_j / N`:
///
/// * `w_ij = |i - j| / (n - 1)` ([`KappaWeights::Linear`]) or
///   `w_ij = (i - j)² / (n - 1)²` ([`KappaWeights::Quadratic`]);
/// * `kappa = 1 - Σ w_ij O_ij / Σ w_ij E_ij`.
///
/// 1 is perfect agreement, 0 chance-level agreement, negative values worse
/// than chance. The sums are computed exactly in integers (the normalisation
/// of the weights cancels), and only the final ratio is rounded.
///
/// Agrees with `sklearn.metrics.cohen_kappa_score(truth, predicted,
/// weights="quadratic"|"linear", labels=range(n_levels))`. Passing `labels`
/// matters: without it sklearn numbers only the levels that occur, which
/// changes the weights when an intermediate level is absent.
///
/// # Returns `None` when
///
/// * the input is empty, or the lengths differ;
/// * any value is `>= n_levels` (out of range);
/// * `Σ w_ij E_ij = 0`: the chance disagreement is zero, e.g. both raters
///   use one single level (this includes `n_levels == 1`), where sklearn
///   returns NaN;
/// * an intermediate integer sum overflows (only for absurdly large inputs).
///
/// Memory is O(number of distinct levels that occur), whatever `n_levels`.
pub fn weighted_kappa(
    truth: &[usize],
    predicted: &[usize],
    n_levels: usize,
    weights: KappaWeights,
) -> Option<f64> {
    if truth.is_empty()
        || truth.len() != predicted.len()
        || truth.iter().chain(predicted).any(|&v| v >= n_levels)
    {
        return None;
    }
    let mut rows: BTreeMap<usize, u128> = BTreeMap::new();
    let mut cols: BTreeMap<usize, u128> = BTreeMap::new();
    let mut observed: u128 = 0; // Σ w O (unnormalised weights)
    for (&t, &p) in truth.iter().zip(predicted) {
        *rows.entry(t).or_insert(0) += 1;
        *cols.entry(p).or_insert(0) += 1;
        observed = observed.checked_add(weights.raw(t, p))?;
    }
    let mut expected: u128 = 0; // Σ w r c = N Σ w E
    for (&i, &r) in &rows {
        for (&j, &c) in &cols {
            let term = weights.raw(i, j).checked_mul(r)?.checked_mul(c)?;
            expected = expected.checked_add(term)?;
        }
    }
    if expected == 0 {
        return None;
    }
    let n = truth.len() as u128;
    // kappa = 1 - Σ w O / Σ w E = 1 - N Σ w O / Σ w r c.
    let numerator = observed.checked_mul(n)?;
    Some(1.0 - numerator as f64 / expected as f64)
}

/// Accuracy: the fraction of cases where `predicted[i] == truth[i]`.
///
/// Agrees with `sklearn.metrics.accuracy_score(truth, predicted)`.
///
/// Returns `None` if the input is empty or the lengths differ.
pub fn accuracy(truth: &[usize], predicted: &[usize]) -> Option<f64> {
    if truth.is_empty() || truth.len() != predicted.len() {
        return None;
    }
    let correct = truth.iter().zip(predicted).filter(|(t, p)| t == p).count();
    Some(correct as f64 / truth.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use KappaWeights::{Linear, Quadratic};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn kappa_hand_computed_three_levels() {
        // Levels 0, 1, 2 (n = 3, n - 1 = 2).
        // truth     = [0, 0, 1, 1, 2, 2]
        // predicted = [0, 1, 1, 2, 2, 2]
        // O: (0,0)=1 (0,1)=1 (1,1)=1 (1,2)=1 (2,2)=2; N = 6
        // r = [2, 2, 2], c = [1, 2, 3], E_ij = r_i c_j / 6 = c_j / 3
        //   -> every row of E is [1/3, 2/3, 1].
        //
        // Quadratic: w01 = w12 = 1/4, w02 = 1.
        //   Σ w O = 1/4 (0,1) + 1/4 (1,2) = 1/2
        //   Σ w E = row 0: 1/4*2/3 + 1*1   = 7/6
        //           row 1: 1/4*1/3 + 1/4*1 = 1/3
        //           row 2: 1*1/3 + 1/4*2/3 = 1/2      total = 2
        //   kappa = 1 - (1/2)/2 = 0.75
        // Linear: w01 = w12 = 1/2, w02 = 1.
        //   Σ w O = 1/2 + 1/2 = 1
        //   Σ w E = row 0: 1/2*2/3 + 1*1   = 4/3
        //           row 1: 1/2*1/3 + 1/2*1 = 2/3
        //           row 2: 1*1/3 + 1/2*2/3 = 2/3      total = 8/3
        //   kappa = 1 - 1/(8/3) = 0.625
        // sklearn.metrics.cohen_kappa_score(truth, predicted, weights=...,
        //   labels=[0, 1, 2]) = 0.75 (quadratic), 0.625 (linear) (sklearn 1.9.1).
        let truth = [0, 0, 1, 1, 2, 2];
        let predicted = [0, 1, 1, 2, 2, 2];
        assert!(close(
            weighted_kappa(&truth, &predicted, 3, Quadratic).unwrap(),
            0.75
        ));
        assert!(close(
            weighted_kappa(&truth, &predicted, 3, Linear).unwrap(),
            0.625
        ));
    }

    #[test]
    fn kappa_negative_and_perfect() {
        // Complete reversal over 2 levels: truth [0, 1], predicted [1, 0].
        // O = (0,1)=1, (1,0)=1; r = c = [1, 1]; E_ij = 1/2 everywhere.
        // With 2 levels linear = quadratic: w01 = w10 = 1.
        // Σ w O = 2, Σ w E = 1/2 + 1/2 = 1 -> kappa = 1 - 2 = -1.
        // sklearn cohen_kappa_score([0,1], [1,0], weights=w) = -1.0 (both w).
        for w in [Linear, Quadratic] {
            assert_eq!(weighted_kappa(&[0, 1], &[1, 0], 2, w), Some(-1.0));
            // Perfect agreement with at least two levels: Σ w O = 0 -> 1.
            assert_eq!(weighted_kappa(&[0, 2, 1], &[0, 2, 1], 3, w), Some(1.0));
        }
    }

    #[test]
    fn kappa_sklearn_reference_values() {
        // Longer ordinal example, 5 levels (e.g. CT severity score 0..4).
        // Reference values from Python 3, scikit-learn 1.9.1:
        //   cohen_kappa_score(truth, predicted, weights="quadratic",
        //                     labels=[0,1,2,3,4])  -> 0.7804878048780488
        //   cohen_kappa_score(..., weights="linear", labels=[0,1,2,3,4])
        //                                         -> 0.6037735849056602
        let truth = [0, 1, 2, 3, 4, 2, 1, 0, 3, 4, 2, 2];
        let predicted = [0, 2, 2, 3, 3, 1, 1, 1, 4, 4, 2, 0];
        let q = weighted_kappa(&truth, &predicted, 5, Quadratic).unwrap();
        let l = weighted_kappa(&truth, &predicted, 5, Linear).unwrap();
        assert!(close(q, 0.7804878048780488), "{q}");
        assert!(close(l, 0.6037735849056602), "{l}");
    }

    #[test]
    fn kappa_uses_declared_levels_not_observed_ones() {
        // Levels 0..5 declared, only 0, 1 and 4 occur. Weights follow the
        // declared positions (gap 1->4 is 3 steps), as sklearn does with
        // labels=range(5). Hand computation (quadratic, raw weights d²):
        // truth [0, 1, 4, 4], predicted [1, 1, 4, 0]; N = 4
        // Σ d² O = (0,1): 1 + (1,1): 0 + (4,4): 0 + (4,0): 16 = 17
        // r = {0:1, 1:1, 4:2}, c = {0:1, 1:2, 4:1}
        // Σ d² r c = i=0: 1*(0*1 + 1*2 + 16*1) = 18
        //            i=1: 1*(1*1 + 0*2 +  9*1) = 10
        //            i=4: 2*(16*1 + 9*2 + 0*1) = 68   total 96
        // kappa = 1 - 4*17/96 = 1 - 68/96 = 0.2916666...
        // sklearn cohen_kappa_score(t, p, weights="quadratic", labels=range(5))
        //   = 0.29166666666666663; without labels= it numbers the observed
        //   levels 0, 1, 2 instead and gives 0.0 (sklearn 1.9.1).
        let truth = [0, 1, 4, 4];
        let predicted = [1, 1, 4, 0];
        let q = weighted_kappa(&truth, &predicted, 5, Quadratic).unwrap();
        assert!(close(q, 1.0 - 68.0 / 96.0), "{q}");
    }

    #[test]
    fn kappa_undefined_cases() {
        // Single level in both raters: Σ w E = 0 (sklearn returns NaN).
        assert_eq!(weighted_kappa(&[2, 2, 2], &[2, 2, 2], 4, Quadratic), None);
        assert_eq!(weighted_kappa(&[0, 0], &[0, 0], 1, Linear), None);
        // Empty, length mismatch, out of range, no levels.
        assert_eq!(weighted_kappa(&[], &[], 3, Quadratic), None);
        assert_eq!(weighted_kappa(&[0, 1], &[0], 3, Quadratic), None);
        assert_eq!(weighted_kappa(&[0, 3], &[0, 1], 3, Quadratic), None);
        assert_eq!(weighted_kappa(&[0], &[0], 0, Linear), None);
        // One rater constant, the other not: Σ w E > 0, defined.
        // truth [1, 1], predicted [0, 2]: Σ w O = 1 + 1 (quadratic raw) = 2,
        // r = {1:2}, c = {0:1, 2:1}: Σ w r c = 2*(1 + 1) = 4; kappa = 1 - 2*2/4 = 0.
        assert_eq!(weighted_kappa(&[1, 1], &[0, 2], 3, Quadratic), Some(0.0));
        // Huge n_levels allocates nothing proportional to it.
        let k = weighted_kappa(&[0, 1], &[0, 1], usize::MAX, Quadratic);
        assert_eq!(k, Some(1.0));
    }

    #[test]
    fn accuracy_cases() {
        // 3 of 4 equal -> 0.75; sklearn accuracy_score agrees.
        assert_eq!(accuracy(&[0, 1, 2, 2], &[0, 1, 2, 1]), Some(0.75));
        assert_eq!(accuracy(&[], &[]), None);
        assert_eq!(accuracy(&[1], &[1, 2]), None);
    }
}
