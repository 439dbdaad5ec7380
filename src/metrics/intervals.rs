//! Confidence intervals: the Wilson score interval for proportions, the distribution-free
//! order-statistic interval for a median, and a seeded, stratified percentile bootstrap for
//! everything else.

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Two-sided 95 % standard-normal quantile, Φ⁻¹(0.975).
pub const Z_95: f64 = 1.959963984540054;

/// The median of `values` and its distribution-free 95 % confidence interval: the order
/// statistics x₍ⱼ₎ and x₍ₙ₋ⱼ₊₁₎ (sorted, 1-based), with j the largest rank such that
/// P(Binomial(n, ½) < j) ≤ 2.5 %, so the interval covers the population median with at least
/// 95 % probability whatever the distribution (Conover, *Practical Nonparametric Statistics*,
/// 3rd ed., §3.2). Non-finite values are left out.
///
/// Edge cases: no value gives `None`; fewer than 6 values give the median with no interval,
/// since even the sample's extremes cover the median with less than 95 % (1 − 2·½ⁿ).
pub fn median_with_ci(values: &[f64]) -> Option<(f64, Option<(f64, f64)>)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    // P(B <= i) for B ~ Binomial(n, 1/2), term by term in log space (2^-n underflows beyond
    // about 1000 cases, the terms that matter here do not).
    let mut log_term = -(n as f64) * std::f64::consts::LN_2;
    let mut below = 0.0; // P(B < j) for the current j
    let mut j = 0;
    while j < n {
        let next = below + log_term.exp(); // P(B < j + 1)
        if next > 0.025 {
            break;
        }
        below = next;
        j += 1;
        log_term += ((n - j + 1) as f64 / j as f64).ln();
    }
    let interval = (j >= 1).then(|| (sorted[j - 1], sorted[n - j]));
    Some((median, interval))
}

/// Wilson score interval for a binomial proportion `successes / trials` at
/// 95 % confidence (`z = 1.959963984540054`).
///
/// With `p = successes / trials`, `n = trials`:
///
/// ```text
/// centre    = (p + z²/(2n)) / (1 + z²/n)
/// half-width = z · sqrt(p(1 - p)/n + z²/(4n²)) / (1 + z²/n)
/// interval  = (centre - half-width, centre + half-width)
/// ```
///
/// Unlike the Wald interval it stays inside `[0, 1]` and is not degenerate
/// at `p = 0` or `p = 1` (e.g. `0/10 → (0, 0.2775)`); the bounds are clamped
/// to `[0, 1]` against rounding. Used for sensitivity (successes = TP,
/// trials = TP + FN) and specificity (TN, TN + FP).
///
/// Agrees with `scipy.stats.binomtest(successes, trials)
/// .proportion_ci(method="wilson")` and
/// `statsmodels.stats.proportion.proportion_confint(method="wilson")`.
///
/// Returns `None` if `trials == 0` or `successes > trials`.
pub fn wilson(successes: u64, trials: u64) -> Option<(f64, f64)> {
    wilson_z(successes, trials, Z_95)
}

/// [`wilson`] with an explicit normal quantile `z` (e.g. `2.5758293035489`
/// for 99 %).
///
/// Returns `None` if `trials == 0`, `successes > trials`, or `z` is negative
/// or not finite.
pub fn wilson_z(successes: u64, trials: u64, z: f64) -> Option<(f64, f64)> {
    if trials == 0 || successes > trials || !z.is_finite() || z < 0.0 {
        return None;
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Settings of [`bootstrap_ci`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BootstrapSpec {
    /// Number of bootstrap resamples (e.g. 2000).
    pub resamples: usize,
    /// Seed of the random generator; same seed, same interval.
    pub seed: u64,
    /// Two-sided confidence level, strictly between 0 and 1 (e.g. 0.95).
    pub confidence: f64,
}

/// Stratified percentile bootstrap confidence interval of a statistic
/// computed over cases.
///
/// # Resampling scheme
///
/// Cases are `0..strata.len()`; `strata[i]` is case `i`'s stratum (e.g. its
/// truth class, so that every resample keeps the class balance of the test
/// set and a class-dependent metric such as the AUC stays defined). Each of
/// the `spec.resamples` resamples draws, within every stratum, as many cases
/// uniformly *with replacement* as that stratum holds; the resample is the
/// list of drawn case indices, grouped by stratum in increasing stratum
/// order. `statistic` is evaluated on it and returns `None` (or a non-finite
/// value) when undefined on that resample; such resamples are skipped.
///
/// The interval is the `(1 - confidence)/2` and `(1 + confidence)/2`
/// quantiles of the defined resample values, with linear interpolation
/// between order statistics (`numpy.quantile`'s default `"linear"` method,
/// Hyndman–Fan type 7).
///
/// # Determinism
///
/// Resample `r` draws from `ChaCha8Rng::seed_from_u64(spec.seed)` switched to
/// stream `r` (`set_stream(r)`), so each resample's draws depend only on
/// `(seed, r)`. Resamples run in parallel with rayon and the values are
/// gathered in resample order, so the interval is identical for any thread
/// count (given a deterministic `statistic` and the same versions of `rand`
/// and `rand_chacha`).
///
/// # Returns `None` when
///
/// * there are no cases or `spec.resamples == 0`;
/// * `spec.confidence` is not strictly between 0 and 1 (or is NaN);
/// * more than half of the resamples are undefined.
///
/// Cost: `resamples` evaluations of `statistic` on `strata.len()` indices.
pub fn bootstrap_ci<F>(strata: &[usize], spec: &BootstrapSpec, statistic: F) -> Option<(f64, f64)>
where
    F: Fn(&[usize]) -> Option<f64> + Sync,
{
    resample_values(strata, spec, || (), |_, resample| statistic(resample))
        .and_then(|values| percentile_interval(values, spec))
}

/// [`bootstrap_ci`] with the resample given to `statistic` as draw counts: `counts[i]` is how
/// often case `i` was drawn (the metrics of [`super::weighted`] take them in O(n), without a
/// copy or a sort). The draws are exactly those of [`bootstrap_ci`] with the same `spec`, so
/// the interval is that of the same statistic computed on the drawn indices.
pub fn bootstrap_ci_counts<F>(
    strata: &[usize],
    spec: &BootstrapSpec,
    statistic: F,
) -> Option<(f64, f64)>
where
    F: Fn(&[u32]) -> Option<f64> + Sync,
{
    let n_cases = strata.len();
    resample_values(
        strata,
        spec,
        || vec![0u32; n_cases],
        |counts, resample| {
            counts.fill(0);
            for &case in resample {
                counts[case] += 1;
            }
            statistic(counts)
        },
    )
    .and_then(|values| percentile_interval(values, spec))
}

/// Draws every resample, in parallel, each from its own stream, and evaluates it with
/// `evaluate` and a per-thread scratch state made by `scratch`. None when the spec or the
/// cases rule out an interval.
fn resample_values<S, F>(
    strata: &[usize],
    spec: &BootstrapSpec,
    scratch: impl Fn() -> S + Sync + Send,
    evaluate: F,
) -> Option<Vec<Option<f64>>>
where
    S: Send,
    F: Fn(&mut S, &[usize]) -> Option<f64> + Sync,
{
    if strata.is_empty() || spec.resamples == 0 || !(spec.confidence > 0.0 && spec.confidence < 1.0)
    {
        return None;
    }
    let mut by_stratum: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (case, &stratum) in strata.iter().enumerate() {
        by_stratum.entry(stratum).or_default().push(case);
    }
    let groups: Vec<Vec<usize>> = by_stratum.into_values().collect();
    let n_cases = strata.len();
    Some(
        (0..spec.resamples)
            .into_par_iter()
            .map_init(
                || (Vec::with_capacity(n_cases), scratch()),
                |(resample, state): &mut (Vec<usize>, S), r| {
                    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
                    rng.set_stream(r as u64);
                    resample.clear();
                    for group in &groups {
                        for _ in 0..group.len() {
                            resample.push(group[rng.random_range(0..group.len())]);
                        }
                    }
                    evaluate(state, resample).filter(|v| v.is_finite())
                },
            )
            .collect(),
    )
}

/// The percentile interval of the defined resample values; None when more than half are
/// undefined.
fn percentile_interval(values: Vec<Option<f64>>, spec: &BootstrapSpec) -> Option<(f64, f64)> {
    let mut defined: Vec<f64> = values.into_iter().flatten().collect();
    let undefined = spec.resamples - defined.len();
    if undefined * 2 > spec.resamples {
        return None;
    }
    defined.sort_unstable_by(f64::total_cmp);
    let alpha = (1.0 - spec.confidence) / 2.0;
    Some((
        quantile_sorted(&defined, alpha)?,
        quantile_sorted(&defined, 1.0 - alpha)?,
    ))
}

/// Quantile `q` in `[0, 1]` of ascending, finite `sorted` values, linear
/// interpolation between order statistics (numpy's default). `None` if
/// `sorted` is empty or `q` is outside `[0, 1]`.
fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let h = q * (sorted.len() - 1) as f64;
    let lo = (h.floor() as usize).min(sorted.len() - 1);
    let hi = (lo + 1).min(sorted.len() - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn close(a: (f64, f64), b: (f64, f64), tol: f64) -> bool {
        (a.0 - b.0).abs() < tol && (a.1 - b.1).abs() < tol
    }

    #[test]
    fn wilson_known_values() {
        // 8/10: p = 0.8, n = 10, z² = 3.841459
        //   denominator = 1 + 3.841459/10             = 1.3841459
        //   centre      = (0.8 + 3.841459/20) / 1.3841459 = 0.9920729 / 1.3841459 = 0.716737
        //   half        = 1.959964 * sqrt(0.8*0.2/10 + 3.841459/400) / 1.3841459
        //               = 1.959964 * sqrt(0.0256036) / 1.3841459   = 0.226575
        //   -> (0.490162, 0.943312)
        // scipy.stats.binomtest(8, 10).proportion_ci(method="wilson")
        //   = (0.4901624715366418, 0.9433178485456248) (scipy 1.17.1).
        let ci = wilson(8, 10).unwrap();
        assert!(close(ci, (0.4901624715366418, 0.9433178485456248), 1e-12));
        assert!(close(ci, (0.4902, 0.9433), 5e-5));
        // Same source for the following.
        let refs = [
            ((0, 10), (0.0, 0.27753279986288926)),
            ((10, 10), (0.7224672001371109, 1.0)),
            ((1, 1), (0.20654931437723745, 1.0)),
            ((0, 1), (0.0, 0.7934506856227626)),
            ((45, 50), (0.7863976856252034, 0.9565242350681095)),
        ];
        for ((k, n), expected) in refs {
            let ci = wilson(k, n).unwrap();
            assert!(close(ci, expected, 1e-12), "{k}/{n}: {ci:?}");
            assert!(0.0 <= ci.0 && ci.0 <= ci.1 && ci.1 <= 1.0);
        }
    }

    #[test]
    fn wilson_undefined_and_z() {
        assert_eq!(wilson(0, 0), None);
        assert_eq!(wilson(3, 2), None);
        assert_eq!(wilson_z(1, 2, f64::NAN), None);
        assert_eq!(wilson_z(1, 2, -1.0), None);
        // z = 0 collapses to the point estimate.
        assert_eq!(wilson_z(1, 4, 0.0), Some((0.25, 0.25)));
        // Huge counts do not overflow or panic.
        let ci = wilson(u64::MAX / 2, u64::MAX).unwrap();
        assert!((ci.0 - 0.5).abs() < 1e-9 && (ci.1 - 0.5).abs() < 1e-9);
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        // numpy.quantile([1, 2, 3, 4], [0.25, 0.975]) = [1.75, 3.925]:
        // h = 0.25 * 3 = 0.75 -> 1 + 0.75 * (2 - 1) = 1.75
        // h = 0.975 * 3 = 2.925 -> 3 + 0.925 * (4 - 3) = 3.925
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.25), Some(1.75));
        assert!((quantile_sorted(&v, 0.975).unwrap() - 3.925).abs() < 1e-12);
        assert_eq!(quantile_sorted(&v, 0.0), Some(1.0));
        assert_eq!(quantile_sorted(&v, 1.0), Some(4.0));
        assert_eq!(quantile_sorted(&[7.0], 0.3), Some(7.0));
        assert_eq!(quantile_sorted(&[], 0.5), None);
        assert_eq!(quantile_sorted(&v, 1.5), None);
    }

    fn mean_of(values: &[f64]) -> impl Fn(&[usize]) -> Option<f64> + Sync + '_ {
        move |idx: &[usize]| {
            (!idx.is_empty())
                .then(|| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64)
        }
    }

    fn spec(seed: u64) -> BootstrapSpec {
        BootstrapSpec {
            resamples: 1000,
            seed,
            confidence: 0.95,
        }
    }

    #[test]
    fn bootstrap_mean_interval_contains_estimate() {
        // Values 0..100, one stratum: mean 49.5, sd 28.87, standard error
        // 28.87 / sqrt(100) = 2.887, so a 95 % interval is about
        // 49.5 ± 1.96 * 2.887 = (43.8, 55.2), width about 11.3.
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        let strata = vec![0; values.len()];
        let (lo, hi) = bootstrap_ci(&strata, &spec(7), mean_of(&values)).unwrap();
        assert!(lo < 49.5 && 49.5 < hi, "({lo}, {hi})");
        assert!((8.0..14.0).contains(&(hi - lo)), "width {}", hi - lo);
        assert!((40.0..47.0).contains(&lo) && (52.0..59.0).contains(&hi));
    }

    #[test]
    fn bootstrap_is_deterministic_across_thread_counts() {
        let values: Vec<f64> = (0..60).map(|i| ((i * 37) % 11) as f64).collect();
        let strata: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let run = |threads: usize, seed: u64| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| bootstrap_ci(&strata, &spec(seed), mean_of(&values)))
                .unwrap()
        };
        let reference = run(1, 42);
        for threads in [1, 2, 3, 8] {
            assert_eq!(run(threads, 42), reference, "{threads} threads");
        }
        // Also on the global pool.
        assert_eq!(
            bootstrap_ci(&strata, &spec(42), mean_of(&values)),
            Some(reference)
        );
        // A different seed gives a different interval.
        assert_ne!(run(2, 43), reference);
    }

    #[test]
    fn counted_resamples_draw_the_same_cases_as_listed_ones() {
        let values: Vec<f64> = (0..50).map(|i| ((i * 13) % 7) as f64).collect();
        let strata: Vec<usize> = (0..50).map(|i| i % 2).collect();
        let listed = bootstrap_ci(&strata, &spec(5), |idx| {
            let mut sorted: Vec<f64> = idx.iter().map(|&i| values[i]).collect();
            sorted.sort_by(f64::total_cmp);
            Some(sorted[sorted.len() / 3] + sorted.len() as f64)
        });
        let counted = bootstrap_ci_counts(&strata, &spec(5), |counts| {
            let sorted: Vec<f64> = crate::metrics::weighted::expand(counts)
                .into_iter()
                .map(|i| values[i])
                .collect::<Vec<_>>();
            let mut sorted = sorted;
            sorted.sort_by(f64::total_cmp);
            Some(sorted[sorted.len() / 3] + sorted.len() as f64)
        });
        assert!(listed.is_some());
        assert_eq!(listed, counted);
    }

    #[test]
    fn bootstrap_respects_strata() {
        // Strata sizes: 10 -> 3 cases, 1 -> 2 cases, 5 -> 4 cases, 8 -> 1 case.
        let strata = [10, 10, 1, 5, 10, 5, 5, 1, 5, 8];
        let violations = AtomicUsize::new(0);
        let calls = AtomicUsize::new(0);
        let statistic = |idx: &[usize]| {
            calls.fetch_add(1, Ordering::Relaxed);
            let mut per_stratum = BTreeMap::new();
            for &i in idx {
                *per_stratum.entry(strata[i]).or_insert(0) += 1;
            }
            let expected = BTreeMap::from([(1, 2), (5, 4), (8, 1), (10, 3)]);
            // Same multiset of stratum sizes; the single-case stratum always
            // contributes its case; resample grouped by increasing stratum.
            let grouped = idx.windows(2).all(|w| strata[w[0]] <= strata[w[1]]);
            if per_stratum != expected || !idx.contains(&9) || !grouped {
                violations.fetch_add(1, Ordering::Relaxed);
            }
            Some(idx.iter().sum::<usize>() as f64)
        };
        let ci = bootstrap_ci(&strata, &spec(1), statistic);
        assert!(ci.is_some());
        assert_eq!(calls.load(Ordering::Relaxed), 1000);
        assert_eq!(violations.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn bootstrap_draws_with_replacement() {
        // One stratum of 5 distinct cases: the chance that a resample has no
        // repeated case is 5!/5^5 = 3.84 %, so most resamples repeat one.
        let strata = [0; 5];
        let repeats = AtomicUsize::new(0);
        bootstrap_ci(&strata, &spec(3), |idx| {
            let mut sorted = idx.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() < idx.len() {
                repeats.fetch_add(1, Ordering::Relaxed);
            }
            Some(0.0)
        })
        .unwrap();
        let r = repeats.load(Ordering::Relaxed);
        assert!((900..1000).contains(&r), "{r}");
    }

    #[test]
    fn bootstrap_undefined_resamples() {
        // Two cases in one stratum, 4 equally likely resamples:
        // [0,0], [0,1], [1,0], [1,1].
        let strata = [0, 0];
        // Undefined only for [0,0] (about 1/4 of resamples): still defined.
        let quarter = |idx: &[usize]| (idx != [0, 0]).then_some(1.0);
        assert_eq!(bootstrap_ci(&strata, &spec(5), quarter), Some((1.0, 1.0)));
        // Undefined unless [1,1] (about 3/4 of resamples): more than half -> None.
        let three_quarters = |idx: &[usize]| (idx == [1, 1]).then_some(1.0);
        assert_eq!(bootstrap_ci(&strata, &spec(5), three_quarters), None);
        // NaN and infinities count as undefined.
        assert_eq!(bootstrap_ci(&strata, &spec(5), |_| Some(f64::NAN)), None);
        assert_eq!(
            bootstrap_ci(&strata, &spec(5), |_| Some(f64::INFINITY)),
            None
        );
        // Always undefined.
        assert_eq!(bootstrap_ci(&strata, &spec(5), |_| None), None);
    }

    #[test]
    fn bootstrap_invalid_spec() {
        let values = [1.0, 2.0];
        let bad = |resamples, confidence| BootstrapSpec {
            resamples,
            seed: 0,
            confidence,
        };
        assert_eq!(bootstrap_ci(&[], &spec(0), mean_of(&values)), None);
        for s in [
            bad(0, 0.95),
            bad(10, 0.0),
            bad(10, 1.0),
            bad(10, f64::NAN),
            bad(10, -0.5),
        ] {
            assert_eq!(bootstrap_ci(&[0, 0], &s, mean_of(&values)), None);
        }
        // A single resample is enough for a (degenerate) interval.
        let ci = bootstrap_ci(&[0, 0], &bad(1, 0.95), mean_of(&values)).unwrap();
        assert_eq!(ci.0, ci.1);
    }

    #[test]
    fn the_median_interval_uses_the_binomial_order_statistics() {
        // n = 10: P(B <= 1) = 11/1024 = 1.1 % <= 2.5 %, P(B <= 2) = 5.5 % > 2.5 %: j = 2.
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(median_with_ci(&values), Some((5.5, Some((2.0, 9.0)))));
        // n = 6: P(B < 1) = 1/64 = 1.6 %: the extremes; n = 5: 3.1 %, no interval.
        let six = [6.0, 1.0, 5.0, 2.0, 4.0, 3.0];
        assert_eq!(median_with_ci(&six), Some((3.5, Some((1.0, 6.0)))));
        assert_eq!(median_with_ci(&six[..5]), Some((4.0, None)));
        assert_eq!(median_with_ci(&[f64::NAN]), None);
        assert_eq!(median_with_ci(&[]), None);
        // n = 100: j = 40 (P(B <= 39) = 1.76 %, P(B <= 40) = 2.84 %), as tables give.
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median_with_ci(&hundred), Some((50.5, Some((40.0, 61.0)))));
        // Thousands of cases: no underflow, and the interval narrows around the median.
        let many: Vec<f64> = (1..=5000).map(f64::from).collect();
        let (_, Some((low, high))) = median_with_ci(&many).unwrap() else {
            panic!("no interval")
        };
        assert!(low > 2400.0 && high < 2600.0 && low < 2500.0 && high > 2501.0);
    }
}
