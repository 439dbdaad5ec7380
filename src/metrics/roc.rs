//! ROC analysis of a binary score: DeLong's variance of the AUC (and the paired test between
//! two scores), the empirical ROC curve, operating points, and average precision.
//!
//! All functions take `truth` (`true` = positive case) and `scores` (higher = more likely
//! positive) of equal length, never panic, and return `None` when the quantity is undefined:
//! a class absent, lengths that differ, or a NaN score.

use super::intervals::Z_95;

/// The AUC with its DeLong standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeLong {
    pub auc: f64,
    /// Var(AUC) = S10 / m + S01 / n (DeLong, DeLong & Clarke-Pearson 1988).
    pub variance: f64,
}

impl DeLong {
    /// The 95 % Wald interval AUC ± 1.96·√Var, clipped to [0, 1] (as pROC reports it).
    /// With zero variance (for example a perfect separation) the interval is the point.
    pub fn ci95(&self) -> (f64, f64) {
        let half = Z_95 * self.variance.max(0.0).sqrt();
        ((self.auc - half).max(0.0), (self.auc + half).min(1.0))
    }
}

/// Structural components of the AUC, computed with midranks in O(n log n) (Sun & Xu 2014,
/// "Fast implementation of DeLong's algorithm"): for positive i, V10ᵢ = (R(xᵢ) − Rₓ(xᵢ)) / n,
/// and for negative j, V01ⱼ = 1 − (R(yⱼ) − R_y(yⱼ)) / m, where R is the midrank among all scores,
/// Rₓ among positives, R_y among negatives, m positives and n negatives.
fn components(truth: &[bool], scores: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    if truth.len() != scores.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let positives: Vec<f64> = truth
        .iter()
        .zip(scores)
        .filter(|(t, _)| **t)
        .map(|(_, s)| *s)
        .collect();
    let negatives: Vec<f64> = truth
        .iter()
        .zip(scores)
        .filter(|(t, _)| !**t)
        .map(|(_, s)| *s)
        .collect();
    let (m, n) = (positives.len(), negatives.len());
    if m == 0 || n == 0 {
        return None;
    }
    let pooled: Vec<f64> = positives.iter().chain(&negatives).copied().collect();
    let r_all = midranks(&pooled);
    let r_pos = midranks(&positives);
    let r_neg = midranks(&negatives);
    let v10 = (0..m).map(|i| (r_all[i] - r_pos[i]) / n as f64).collect();
    let v01 = (0..n)
        .map(|j| 1.0 - (r_all[m + j] - r_neg[j]) / m as f64)
        .collect();
    Some((v10, v01))
}

/// 1-based ranks where tied values share the mean of their ranks.
fn midranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_unstable_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample covariance (denominator len − 1); 0 for a single value.
fn covariance(a: &[f64], b: &[f64]) -> f64 {
    if a.len() < 2 {
        return 0.0;
    }
    let (ma, mb) = (mean(a), mean(b));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (a.len() - 1) as f64
}

/// AUC and its DeLong variance. The AUC equals [`super::classification::roc_auc`] (ties count
/// one half). With a single positive or a single negative case the corresponding sample variance
/// is taken as 0.
pub fn delong(truth: &[bool], scores: &[f64]) -> Option<DeLong> {
    let (v10, v01) = components(truth, scores)?;
    let (m, n) = (v10.len() as f64, v01.len() as f64);
    Some(DeLong {
        auc: mean(&v10),
        variance: covariance(&v10, &v10) / m + covariance(&v01, &v01) / n,
    })
}

/// DeLong's paired test of two scores of the same cases.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairedDeLong {
    pub auc_a: f64,
    pub auc_b: f64,
    /// z = (AUC_a − AUC_b) / √Var(AUC_a − AUC_b); 0 when the variance is 0 and the AUCs are equal.
    pub z: f64,
    /// Two-sided p-value of H0: AUC_a = AUC_b.
    pub p_two_sided: f64,
}

/// Compares two scores on the same cases with DeLong's covariance of correlated AUCs.
pub fn delong_paired(truth: &[bool], a: &[f64], b: &[f64]) -> Option<PairedDeLong> {
    let (a10, a01) = components(truth, a)?;
    let (b10, b01) = components(truth, b)?;
    let (m, n) = (a10.len() as f64, a01.len() as f64);
    let var_a = covariance(&a10, &a10) / m + covariance(&a01, &a01) / n;
    let var_b = covariance(&b10, &b10) / m + covariance(&b01, &b01) / n;
    let cov = covariance(&a10, &b10) / m + covariance(&a01, &b01) / n;
    let (auc_a, auc_b) = (mean(&a10), mean(&b10));
    let var = var_a + var_b - 2.0 * cov;
    let diff = auc_a - auc_b;
    let z = if var > 1e-300 {
        diff / var.sqrt()
    } else if diff == 0.0 {
        0.0
    } else {
        diff.signum() * f64::INFINITY
    };
    Some(PairedDeLong {
        auc_a,
        auc_b,
        z,
        p_two_sided: 2.0 * normal_upper_tail(z.abs()),
    })
}

/// P(Z > z) for a standard normal Z, via the complementary error function of `libm` (a port
/// of musl's, accurate to a few ulp).
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// One point of the empirical ROC curve: calling every score `>= threshold` positive gives
/// these rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RocPoint {
    pub threshold: f64,
    pub fpr: f64,
    pub tpr: f64,
}

/// The empirical ROC curve, one point per distinct score from the highest down, preceded by
/// the point (fpr 0, tpr 0) at threshold +∞, as scikit-learn's `roc_curve` with
/// `drop_intermediate=False`.
pub fn roc_curve(truth: &[bool], scores: &[f64]) -> Option<Vec<RocPoint>> {
    let (m, n, order) = sorted_desc(truth, scores)?;
    let mut points = vec![RocPoint {
        threshold: f64::INFINITY,
        fpr: 0.0,
        tpr: 0.0,
    }];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let threshold = scores[order[i]];
        while i < order.len() && scores[order[i]] == threshold {
            if truth[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push(RocPoint {
            threshold,
            fpr: fp as f64 / n as f64,
            tpr: tp as f64 / m as f64,
        });
    }
    Some(points)
}

/// Indices sorted by score, highest first, with the class counts; None when undefined.
fn sorted_desc(truth: &[bool], scores: &[f64]) -> Option<(usize, usize, Vec<usize>)> {
    if truth.len() != scores.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let m = truth.iter().filter(|&&t| t).count();
    let n = truth.len() - m;
    if m == 0 || n == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    Some((m, n, order))
}

/// The highest sensitivity among the operating points (thresholds at observed scores) whose
/// specificity is at least `target_specificity`. Defined whenever both classes are present:
/// the threshold +∞ (nothing called positive) always has specificity 1, giving sensitivity 0.
pub fn sensitivity_at_specificity(
    truth: &[bool],
    scores: &[f64],
    target_specificity: f64,
) -> Option<f64> {
    sensitivity_at_specificity_on(&roc_curve(truth, scores)?, target_specificity)
}

/// [`sensitivity_at_specificity`] read off a curve made by [`roc_curve`] (or its counted form,
/// [`super::weighted::SortedScores::roc_curve`]).
pub fn sensitivity_at_specificity_on(curve: &[RocPoint], target_specificity: f64) -> Option<f64> {
    curve
        .iter()
        .filter(|p| 1.0 - p.fpr >= target_specificity - 1e-12)
        .map(|p| p.tpr)
        .reduce(f64::max)
}

/// The threshold maximising Youden's J = sensitivity + specificity − 1 over the observed
/// scores, and J there. Among equal J the highest threshold (the most specific) wins.
pub fn youden_threshold(truth: &[bool], scores: &[f64]) -> Option<(f64, f64)> {
    youden_threshold_on(&roc_curve(truth, scores)?)
}

/// [`youden_threshold`] read off a curve made by [`roc_curve`] (or its counted form).
pub fn youden_threshold_on(curve: &[RocPoint]) -> Option<(f64, f64)> {
    let mut best: Option<(f64, f64)> = None;
    for p in curve.iter().skip(1) {
        let j = p.tpr - p.fpr;
        if best.is_none_or(|(_, bj)| j > bj + 1e-15) {
            best = Some((p.threshold, j));
        }
    }
    best
}

/// Average precision as scikit-learn's `average_precision_score`: AP = Σₖ (Rₖ − Rₖ₋₁)·Pₖ over
/// the distinct thresholds from the highest down, with Pₖ and Rₖ the precision and recall when
/// scores `>= thresholdₖ` are called positive. Undefined without a positive case; unlike the
/// AUC it is defined without a negative case (it is then 1).
pub fn average_precision(truth: &[bool], scores: &[f64]) -> Option<f64> {
    if truth.len() != scores.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let m = truth.iter().filter(|&&t| t).count();
    if m == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut called, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let threshold = scores[order[i]];
        while i < order.len() && scores[order[i]] == threshold {
            tp += usize::from(truth[order[i]]);
            called += 1;
            i += 1;
        }
        let recall = tp as f64 / m as f64;
        ap += (recall - last_recall) * (tp as f64 / called as f64);
        last_recall = recall;
    }
    Some(ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [bool; 8] = [true, true, false, true, false, false, true, false];
    const S: [f64; 8] = [0.9, 0.4, 0.4, 0.7, 0.1, 0.65, 0.3, 0.8];

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn delong_matches_the_hand_computed_components() {
        // Positives 0.9, 0.4, 0.7, 0.3; negatives 0.4, 0.1, 0.65, 0.8.
        // V10 (share of negatives below each positive, ties ½): 0.9 → 4/4, 0.4 → 1.5/4,
        // 0.7 → 3/4, 0.3 → 1/4; mean = 9.5/16 = 0.59375 (the AUC).
        // V01 (share of positives above each negative): 0.4 → 2.5/4, 0.1 → 1, 0.65 → 2/4,
        // 0.8 → 1/4.
        // S10 = var([1, .375, .75, .25], ddof 1) = .35546875 / 3; S01 = var([.625, 1, .5, .25]) = .29296875 / 3
        // Var = S10/4 + S01/4 = 0.054036458333… (numpy gives 0.05403645833333333)
        let d = delong(&T, &S).unwrap();
        assert!(close(d.auc, 0.59375, 1e-15));
        assert!(
            close(d.variance, 0.054_036_458_333_333_33, 1e-15),
            "{}",
            d.variance
        );
        let (lo, hi) = d.ci95();
        let half = 1.959963984540054 * 0.054_036_458_333_333_33f64.sqrt();
        assert!(
            close(lo, (0.59375 - half).max(0.0), 1e-12)
                && close(hi, (0.59375 + half).min(1.0), 1e-12)
        );
        assert_eq!(
            d.auc,
            crate::metrics::classification::roc_auc(&T, &S).unwrap()
        );
    }

    #[test]
    fn delong_edge_cases() {
        assert_eq!(delong(&[true, true], &[0.1, 0.2]), None);
        assert_eq!(delong(&[true, false], &[0.1, f64::NAN]), None);
        let perfect = delong(&[true, true, false, false], &[0.9, 0.8, 0.2, 0.1]).unwrap();
        assert_eq!((perfect.auc, perfect.variance), (1.0, 0.0));
        assert_eq!(perfect.ci95(), (1.0, 1.0));
    }

    #[test]
    fn paired_delong_is_zero_for_identical_scores_and_signed_otherwise() {
        let same = delong_paired(&T, &S, &S).unwrap();
        assert_eq!((same.z, same.p_two_sided), (0.0, 1.0));
        let better: Vec<f64> = T
            .iter()
            .zip(&S)
            .map(|(t, s)| if *t { s + 0.5 } else { *s })
            .collect();
        let test = delong_paired(&T, &better, &S).unwrap();
        assert!(test.auc_a > test.auc_b && test.z > 0.0 && test.p_two_sided < 1.0);
    }

    #[test]
    fn normal_tail_matches_known_quantiles() {
        assert_eq!(normal_upper_tail(0.0), 0.5);
        assert!(close(normal_upper_tail(1.959963984540054), 0.025, 1e-15));
        assert!(close(
            normal_upper_tail(-1.0),
            0.841_344_746_068_542_9,
            1e-15
        ));
        assert_eq!(normal_upper_tail(f64::INFINITY), 0.0);
    }

    #[test]
    fn roc_curve_and_operating_points() {
        // Sorted: .9+ .8- .7+ .65- .4+ .4- .3+ .1- (m = n = 4).
        let c = roc_curve(&T, &S).unwrap();
        let rates: Vec<(f64, f64)> = c.iter().map(|p| (p.fpr, p.tpr)).collect();
        assert_eq!(
            rates,
            [
                (0.0, 0.0),
                (0.0, 0.25),
                (0.25, 0.25),
                (0.25, 0.5),
                (0.5, 0.5),
                (0.75, 0.75),
                (0.75, 1.0),
                (1.0, 1.0)
            ]
        );
        assert_eq!(c[5].threshold, 0.4);
        // Specificity ≥ 0.75 allows fpr ≤ 0.25: best tpr 0.5.
        assert_eq!(sensitivity_at_specificity(&T, &S, 0.75), Some(0.5));
        assert_eq!(sensitivity_at_specificity(&T, &S, 1.0), Some(0.25));
        // J: .25 at 0.9, .25 at 0.7, .25 at 0.3 → the highest threshold, 0.9.
        assert_eq!(youden_threshold(&T, &S), Some((0.9, 0.25)));
        assert_eq!(roc_curve(&[false, false], &[0.1, 0.2]), None);
    }

    #[test]
    fn average_precision_matches_scikit_learn() {
        // sklearn.metrics.average_precision_score(T, S) = 0.6845238095238095:
        // thresholds .9 (P 1, R .25), .8 (P .5, R .25), .7 (P 2/3, R .5), .65 (P .5, R .5),
        // .4 (P 3/6, R .75; the tie counted once), .3 (P 4/7, R 1), .1 (P .5, R 1)
        // AP = .25·1 + .25·2/3 + .25·.5 + .25·4/7.
        let ap = average_precision(&T, &S).unwrap();
        let by_hand = 0.25 * 1.0 + 0.25 * (2.0 / 3.0) + 0.25 * 0.5 + 0.25 * (4.0 / 7.0);
        assert!(close(ap, by_hand, 1e-15), "{ap} vs {by_hand}");
        assert!(close(ap, 0.684_523_809_523_809_5, 1e-15));
        assert_eq!(average_precision(&[true, true], &[0.2, 0.1]), Some(1.0));
        assert_eq!(average_precision(&[false, false], &[0.2, 0.1]), None);
    }
}
