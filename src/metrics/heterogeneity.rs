//! Tests of whether a metric differs between subgroups (docs/metrics.md, "Subgroups"):
//! Cochran's Q on the levels' estimates and standard errors for a whole-set metric (AUC,
//! proportions, kappa), Kruskal–Wallis on the per-case values for a per-case metric (Dice,
//! distances, errors). Both are referred to a chi-square distribution with k − 1 degrees of
//! freedom.

/// A test's statistic, degrees of freedom and p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestResult {
    pub statistic: f64,
    pub df: usize,
    pub p_value: f64,
}

/// Cochran's Q: Σ wᵢ (θᵢ − θ̄)², wᵢ = 1/seᵢ², θ̄ the inverse-variance weighted mean. None with
/// fewer than two levels or a level whose standard error is not positive and finite.
pub fn cochran_q(estimates: &[(f64, f64)]) -> Option<TestResult> {
    if estimates.len() < 2
        || estimates
            .iter()
            .any(|&(theta, se)| !(theta.is_finite() && se.is_finite() && se > 0.0))
    {
        return None;
    }
    let weights: Vec<f64> = estimates.iter().map(|&(_, se)| 1.0 / (se * se)).collect();
    let total: f64 = weights.iter().sum();
    let pooled = estimates
        .iter()
        .zip(&weights)
        .map(|(&(theta, _), w)| w * theta)
        .sum::<f64>()
        / total;
    let q = estimates
        .iter()
        .zip(&weights)
        .map(|(&(theta, _), w)| w * (theta - pooled).powi(2))
        .sum::<f64>();
    let df = estimates.len() - 1;
    Some(TestResult {
        statistic: q,
        df,
        p_value: chi_square_sf(q, df),
    })
}

/// Kruskal–Wallis H with the correction for ties, on the values of each group. None with fewer
/// than two non-empty groups, or when every value is tied.
pub fn kruskal_wallis(groups: &[Vec<f64>]) -> Option<TestResult> {
    let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
    if groups.len() < 2 || groups.iter().any(|g| g.iter().any(|v| !v.is_finite())) {
        return None;
    }
    let mut pooled: Vec<(f64, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, values)| values.iter().map(move |&v| (v, g)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pooled.len() as f64;
    let mut rank_sums = vec![0.0; groups.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i;
        while j < pooled.len() && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        // Tied values share the mean of the ranks they span (1-based).
        let rank = (i + j + 1) as f64 / 2.0;
        for item in &pooled[i..j] {
            rank_sums[item.1] += rank;
        }
        let t = (j - i) as f64;
        ties += t * t * t - t;
        i = j;
    }
    let correction = 1.0 - ties / (n * n * n - n);
    if correction <= 0.0 {
        return None;
    }
    let h = (12.0 / (n * (n + 1.0))
        * groups
            .iter()
            .zip(&rank_sums)
            .map(|(g, r)| r * r / g.len() as f64)
            .sum::<f64>()
        - 3.0 * (n + 1.0))
        / correction;
    let df = groups.len() - 1;
    Some(TestResult {
        statistic: h,
        df,
        p_value: chi_square_sf(h, df),
    })
}

/// P(X ≥ x) for X ~ χ²(df): the regularized upper incomplete gamma Q(df/2, x/2).
pub fn chi_square_sf(x: f64, df: usize) -> f64 {
    if x <= 0.0 || df == 0 {
        return 1.0;
    }
    upper_gamma_regularized(df as f64 / 2.0, x / 2.0)
}

/// Q(a, x), by its series below a + 1 and its continued fraction above (Numerical Recipes,
/// `gammq`), to about 1e-14.
fn upper_gamma_regularized(a: f64, x: f64) -> f64 {
    let log_prefactor = -x + a * x.ln() - libm::lgamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * log_prefactor.exp()).clamp(0.0, 1.0)
    } else {
        // Lentz's method.
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (log_prefactor.exp() * h).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_tail_matches_the_textbook_critical_values() {
        // The 5% and 1% critical values of χ²(1), χ²(2), χ²(5) and χ²(10).
        for (x, df, p) in [
            (3.841_459, 1, 0.05),
            (6.634_897, 1, 0.01),
            (5.991_465, 2, 0.05),
            (11.070_50, 5, 0.05),
            (23.209_25, 10, 0.01),
        ] {
            assert!((chi_square_sf(x, df) - p).abs() < 1e-6, "{x} {df}");
        }
        // χ²(2) has the closed form exp(−x/2).
        assert!((chi_square_sf(0.7, 2) - (-0.35f64).exp()).abs() < 1e-12);
    }

    #[test]
    fn cochran_q_of_equal_estimates_is_zero_and_grows_with_their_distance() {
        let same = cochran_q(&[(0.8, 0.05), (0.8, 0.1)]).unwrap();
        assert_eq!(same.statistic, 0.0);
        assert_eq!(same.p_value, 1.0);
        // Two levels with equal errors: Q = (θ₁ − θ₂)² / (2 se²).
        let apart = cochran_q(&[(0.9, 0.05), (0.7, 0.05)]).unwrap();
        let expected = 0.2f64.powi(2) / (2.0 * 0.05f64.powi(2));
        assert!((apart.statistic - expected).abs() < 1e-9);
        assert_eq!(apart.df, 1);
        assert!(cochran_q(&[(0.9, 0.0), (0.7, 0.05)]).is_none());
        assert!(cochran_q(&[(0.9, 0.05)]).is_none());
    }

    #[test]
    fn kruskal_wallis_matches_the_rank_formula() {
        // No ties: ranks 1..6; group sums 1+2+3 = 6 and 4+5+6 = 15.
        let h = kruskal_wallis(&[vec![0.1, 0.2, 0.3], vec![0.4, 0.5, 0.6]]).unwrap();
        let expected = 12.0 / (6.0 * 7.0) * (36.0 / 3.0 + 225.0 / 3.0) - 3.0 * 7.0;
        assert!((h.statistic - expected).abs() < 1e-12);
        assert_eq!(h.df, 1);
        // Ties share their mean rank and the statistic is divided by the tie correction.
        let tied = kruskal_wallis(&[vec![1.0, 1.0], vec![1.0, 2.0]]).unwrap();
        // Ranks 1, 2, 3 tie at 2: group sums 2 + 2 = 4 and 2 + 4 = 6.
        let raw = 12.0 / 20.0 * (4.0f64.powi(2) / 2.0 + 6.0f64.powi(2) / 2.0) - 15.0;
        let correction = 1.0 - (27.0 - 3.0) / (64.0 - 4.0);
        assert!((tied.statistic - raw / correction).abs() < 1e-12);
        assert!(kruskal_wallis(&[vec![1.0, 1.0], vec![1.0]]).is_none());
        assert!(kruskal_wallis(&[vec![1.0, 2.0], vec![]]).is_none());
    }
}
