//! Paired tests between two submissions on the same cases, the Holm correction, and Kendall's
//! τ between rankings.
//!
//! The Wilcoxon signed-rank test follows scipy.stats.wilcoxon (1.17) with `zero_method =
//! "wilcox"`, `correction = False` and `method = "auto"`, so that its p-values can be checked
//! against scipy (tests/fixtures/ranking/):
//!
//! - zero differences are dropped, tied |differences| get their average rank;
//! - more than 50 pairs (zeros included): the normal approximation, with the tie correction of
//!   the variance and no continuity correction;
//! - otherwise, without ties or zeros: the exact null distribution of W+;
//! - otherwise, 13 pairs or fewer: every one of the 2^n sign flips (scipy's permutation test,
//!   which enumerates them all at that size);
//! - otherwise: the normal approximation.
//!
//! [`wilcoxon_greater_with_correction`] adds scipy's `correction = True`: the normal
//! approximation (and only it, as in scipy) moves W+ half a unit towards the mean. R's
//! `wilcox.test`, which challengeR calls, applies that continuity correction by default.

use crate::metrics::roc::normal_upper_tail;

/// One-sided Wilcoxon signed-rank test of "a is greater than b" on paired values. Returns the
/// statistic W+ (the rank sum of the positive differences) and the p-value; None when every
/// difference is zero or there is no pair.
pub fn wilcoxon_greater(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    wilcoxon_greater_with_correction(a, b, false)
}

/// [`wilcoxon_greater`], with scipy's continuity correction of the normal approximation when
/// `continuity_correction` is set (`[ranking] wilcoxon_continuity_correction`).
pub fn wilcoxon_greater_with_correction(
    a: &[f64],
    b: &[f64],
    continuity_correction: bool,
) -> Option<(f64, f64)> {
    let all: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n_total = all.len();
    let d: Vec<f64> = all.iter().copied().filter(|v| *v != 0.0).collect();
    let n = d.len();
    if n == 0 {
        return None;
    }
    let abs: Vec<f64> = d.iter().map(|v| v.abs()).collect();
    let (ranks, tie_sizes) = average_ranks(&abs);
    let w_plus: f64 = d
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum();
    let has_ties = tie_sizes.iter().any(|&t| t > 1);
    let zeros = n_total - n;
    let normal = || normal_p(w_plus, n, &tie_sizes, continuity_correction);
    let p = if n_total > 50 {
        normal()
    } else if !has_ties && zeros == 0 {
        exact_p(w_plus, n)
    } else if n_total <= 13 {
        sign_flip_p(w_plus, &d, &ranks)
    } else {
        normal()
    };
    Some((w_plus, p))
}

/// Ranks 1..=n of `values` with ties given their average rank, and the size of every tie
/// group.
fn average_ranks(values: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut groups = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let average = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = average;
        }
        groups.push(end - start);
        start = end;
    }
    (ranks, groups)
}

fn normal_p(w_plus: f64, n: usize, tie_sizes: &[usize], continuity_correction: bool) -> f64 {
    let n = n as f64;
    let mean = n * (n + 1.0) / 4.0;
    let ties: f64 = tie_sizes
        .iter()
        .map(|&t| {
            let t = t as f64;
            t * t * t - t
        })
        .sum();
    let variance = n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - ties / 48.0;
    if variance <= 0.0 {
        return 1.0;
    }
    // scipy's correction for alternative "greater": the upper tail of W+ - 1/2.
    let correction = if continuity_correction { 0.5 } else { 0.0 };
    normal_upper_tail((w_plus - mean - correction) / variance.sqrt())
}

/// P(W+ >= w) under H0 without ties: W+ is the sum of a random subset of 1..=n.
fn exact_p(w_plus: f64, n: usize) -> f64 {
    let max = n * (n + 1) / 2;
    // ways[s] = number of subsets of {1..k} summing to s, built up k by k (f64: 2^50 is exact).
    let mut ways = vec![0.0f64; max + 1];
    ways[0] = 1.0;
    for k in 1..=n {
        for s in (k..=max).rev() {
            ways[s] += ways[s - k];
        }
    }
    let w = w_plus.floor() as usize;
    let upper: f64 = ways[w.min(max + 1)..].iter().sum();
    upper / 2f64.powi(n as i32)
}

/// P(W+ >= observed) over every assignment of signs to the non-zero differences.
fn sign_flip_p(w_plus: f64, d: &[f64], ranks: &[f64]) -> f64 {
    let n = d.len();
    // A relative tolerance, as scipy's permutation test, so that equal sums of average ranks
    // computed in another order still count as equal.
    let threshold = w_plus - w_plus.abs() * 1e-14 - 1e-12;
    let mut at_least = 0u64;
    for signs in 0u64..(1u64 << n) {
        let sum: f64 = (0..n)
            .filter(|i| signs >> i & 1 == 1)
            .map(|i| ranks[i])
            .sum();
        if sum >= threshold {
            at_least += 1;
        }
    }
    at_least as f64 / (1u64 << n) as f64
}

/// Holm's step-down adjustment of `p` (family-wise error), in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (k, &i) in order.iter().enumerate() {
        running = running.max(((m - k) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Kendall's τ-b between two rankings of the same items (ties allowed). None when either
/// ranking puts every item level.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let (mut concordant, mut discordant, mut ties_x, mut ties_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let dx = (x[i] - x[j]).signum() as i64 * i64::from(x[i] != x[j]);
            let dy = (y[i] - y[j]).signum() as i64 * i64::from(y[i] != y[j]);
            match (dx, dy) {
                (0, 0) => {}
                (0, _) => ties_x += 1,
                (_, 0) => ties_y += 1,
                _ if dx == dy => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let n0 = (concordant + discordant + ties_x) as f64;
    let n1 = (concordant + discordant + ties_y) as f64;
    if n0 == 0.0 || n1 == 0.0 {
        return None;
    }
    Some((concordant - discordant) as f64 / (n0 * n1).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_distribution_by_hand() {
        // n = 3: subsets of {1,2,3} have sums 0,1,2,3,3,4,5,6; P(W+ >= 5) = 2/8.
        assert_eq!(exact_p(5.0, 3), 0.25);
        assert_eq!(exact_p(0.0, 3), 1.0);
        assert_eq!(exact_p(6.0, 3), 0.125);
    }

    #[test]
    fn all_positive_differences_are_as_significant_as_n_allows() {
        let a = [5.0, 6.0, 7.0, 8.0, 9.0];
        let b = [1.0, 1.5, 1.2, 1.1, 1.3];
        let (w, p) = wilcoxon_greater(&a, &b).unwrap();
        assert_eq!(w, 15.0);
        assert_eq!(p, 1.0 / 32.0);
        let (_, p_reverse) = wilcoxon_greater(&b, &a).unwrap();
        assert_eq!(p_reverse, 1.0);
        assert_eq!(wilcoxon_greater(&a, &a), None, "identical: no test");
    }

    #[test]
    fn holm_by_hand() {
        // Sorted 0.01, 0.02, 0.04 with m = 3: 0.03, max(0.03, 0.04), max(0.04, 0.04).
        let adjusted = holm(&[0.04, 0.01, 0.02]);
        let expected = [0.04, 0.03, 0.04];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-15, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
    }

    #[test]
    fn kendall_tau_by_hand() {
        assert_eq!(kendall_tau_b(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), Some(1.0));
        assert_eq!(
            kendall_tau_b(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]),
            Some(-1.0)
        );
        // One swap among three: (2 - 1) / 3.
        let tau = kendall_tau_b(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]).unwrap();
        assert!((tau - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(kendall_tau_b(&[1.0, 1.0], &[1.0, 2.0]), None);
    }
}
