//! Hand-checked examples of every method: ties, missing values, one submission, identical
//! submissions; and the bootstrap's reproducibility.

use std::sync::Arc;

use super::*;
use crate::challenge::Challenge;
use crate::ranking::inputs::BinaryAuc;

/// A challenge with one per-case task (`q`, absolute error: lower is better) and one
/// whole-set task (`d`, AUC), plus `extra` lines (a [ranking] table).
fn challenge(extra: &str) -> (tempfile::TempDir, Challenge) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("challenge.toml"),
        format!(
            r#"name = "t"
{extra}
[[phases]]
name = "test"

[[tasks]]
name = "q"
kind = "regression"
prediction = "x"
truth = "x"
value_range = [0.0, 100.0]
metrics = ["mae"]
primary = "mae"

[[tasks]]
name = "d"
kind = "binary-classification"
prediction = "p"
truth = "y"
positive_class = "1"
metrics = ["auc"]
primary = "auc"
"#
        ),
    )
    .unwrap();
    let c = Challenge::load(dir.path()).unwrap();
    (dir, c)
}

/// Inputs for submissions named a, b, c, …: per-case errors of `q`, and AUC scores of `d`
/// against `truth`.
fn inputs(
    q: &[Vec<Option<f64>>],
    d: &[Vec<Option<f64>>],
    truth: &[bool],
) -> (RankingInputs, Vec<String>) {
    let names: Vec<String> = (0..q.len())
        .map(|i| ((b'a' + i as u8) as char).to_string())
        .collect();
    let mut inputs = RankingInputs {
        cases: (0..truth.len()).map(|i| format!("c{i}")).collect(),
        ..Default::default()
    };
    for (i, name) in names.iter().enumerate() {
        inputs.values.insert(
            (name.clone(), "q".into()),
            PrimaryValues::PerCase(q[i].clone()),
        );
        let auc = BinaryAuc::new(d[i].clone(), truth.to_vec());
        inputs.values.insert(
            (name.clone(), "d".into()),
            PrimaryValues::WholeSet(Arc::new(auc)),
        );
    }
    (inputs, names)
}

fn ranks(a: &RankingAnalysis, method: RankingMethod, scope: &str) -> Vec<usize> {
    a.submissions
        .iter()
        .map(|s| a.rank(method, scope, s).unwrap())
        .collect()
}

const TRUTH: [bool; 4] = [true, false, true, false];

#[test]
fn ties_share_the_minimum_rank_under_every_method() {
    let (_dir, c) = challenge("[ranking]\nbootstrap_resamples = 0\n");
    let some = |v: &[f64]| v.iter().map(|x| Some(*x)).collect::<Vec<_>>();
    // Mean errors 1, 1, 3; medians 1, 1, 3. On cases 1 and 3 b is best, on 2 and 4 a is, so
    // their mean case ranks are both 1.5.
    let q = [
        some(&[1.0, 1.0, 1.0, 1.0]),
        some(&[0.0, 2.0, 0.0, 2.0]),
        some(&[3.0; 4]),
    ];
    // AUCs 1, 1, 0.5.
    let d = [
        some(&[0.9, 0.1, 0.8, 0.2]),
        some(&[0.7, 0.3, 0.6, 0.4]),
        some(&[0.5; 4]),
    ];
    let (inputs, names) = inputs(&q, &d, &TRUTH);
    let a = analyze(&c, &inputs, &names, None);
    assert_eq!(a.method, Some(RankingMethod::MeanThenRank), "the default");
    assert_eq!(ranks(&a, RankingMethod::MeanThenRank, "q"), vec![1, 1, 3]);
    assert_eq!(ranks(&a, RankingMethod::MedianThenRank, "q"), vec![1, 1, 3]);
    assert_eq!(ranks(&a, RankingMethod::RankThenMean, "q"), vec![1, 1, 3]);
    // Whole-set metrics rank on their aggregate under every method but test-then-rank.
    assert_eq!(ranks(&a, RankingMethod::RankThenMean, "d"), vec![1, 1, 3]);
    assert_eq!(
        ranks(&a, RankingMethod::MeanThenRank, CONSENSUS),
        vec![1, 1, 3]
    );
    // Four cases cannot make any one-sided Wilcoxon test significant after Holm (the
    // smallest p is 1/16): nobody wins, everybody shares rank 1.
    assert_eq!(ranks(&a, RankingMethod::TestThenRank, "q"), vec![1, 1, 1]);
    let a_vs_c = a
        .significance
        .iter()
        .find(|s| s.task == "q" && s.submission == "a" && s.opponent == "c")
        .unwrap();
    assert_eq!(
        (a_vs_c.test.as_str(), a_vs_c.statistic, a_vs_c.p_value),
        ("wilcoxon", 10.0, 1.0 / 16.0)
    );
    assert!(!a_vs_c.significant);
    assert!(a
        .significance
        .iter()
        .any(|s| s.task == "d" && s.test == "delong"));
}

#[test]
fn missing_values_take_the_worst_rank() {
    let (_dir, c) = challenge("[ranking]\nbootstrap_resamples = 0\n");
    let q = [
        vec![Some(5.0); 4],
        vec![None; 4],
        vec![Some(1.0), None, Some(1.0), Some(1.0)],
    ];
    let d = [
        vec![Some(0.9), Some(0.1), Some(0.8), Some(0.2)],
        vec![None; 4],
        vec![Some(0.5); 4],
    ];
    let (inputs, names) = inputs(&q, &d, &TRUTH);
    let a = analyze(&c, &inputs, &names, None);
    // b has no value at all: last on both tasks and overall, never first.
    assert_eq!(ranks(&a, RankingMethod::MeanThenRank, "q"), vec![2, 3, 1]);
    assert_eq!(ranks(&a, RankingMethod::MeanThenRank, "d"), vec![1, 3, 2]);
    // Per case, a missing value ranks last: c is first on three cases and last on one.
    assert_eq!(ranks(&a, RankingMethod::RankThenMean, "q"), vec![2, 3, 1]);
    assert_eq!(
        ranks(&a, RankingMethod::MeanThenRank, CONSENSUS),
        vec![1, 3, 1]
    );
}

#[test]
fn one_submission_ranks_first_with_a_certain_interval() {
    let (_dir, c) = challenge("");
    let (inputs, names) = inputs(
        &[vec![Some(2.0); 4]],
        &[vec![Some(0.9), Some(0.1), Some(0.8), Some(0.2)]],
        &TRUTH,
    );
    let a = analyze(&c, &inputs, &names, Some(RankingMethod::RankThenMean));
    assert_eq!(
        a.method,
        Some(RankingMethod::RankThenMean),
        "the override wins"
    );
    for m in RankingMethod::ALL {
        assert_eq!(ranks(&a, m, CONSENSUS), vec![1]);
    }
    assert!(a.significance.is_empty());
    let consensus = a.intervals.iter().find(|i| i.scope == CONSENSUS).unwrap();
    assert_eq!(
        (consensus.rank_lower, consensus.rank_upper, consensus.first),
        (1, 1, 1.0)
    );
    assert_eq!(a.median_tau(CONSENSUS), None, "one item: τ undefined");
}

#[test]
fn identical_submissions_tie_everywhere_and_are_never_significant() {
    let (_dir, c) = challenge("[ranking]\nbootstrap_resamples = 200\n");
    let q = vec![Some(1.0), Some(2.0), Some(0.5), Some(4.0)];
    let d = vec![Some(0.9), Some(0.4), Some(0.6), Some(0.2)];
    let (inputs, names) = inputs(&[q.clone(), q], &[d.clone(), d], &TRUTH);
    let a = analyze(&c, &inputs, &names, None);
    for m in RankingMethod::ALL {
        for scope in ["q", "d", CONSENSUS] {
            assert_eq!(ranks(&a, m, scope), vec![1, 1], "{m:?} {scope}");
        }
    }
    // No Wilcoxon test for all-zero differences; DeLong gives p = 0.5 at z = 0.
    assert!(a.significance.iter().all(|s| !s.significant));
    assert!(a
        .intervals
        .iter()
        .all(|i| i.rank_lower == 1 && i.rank_upper == 1));
}

#[test]
fn the_bootstrap_is_reproducible_from_its_seed() {
    let q: Vec<Vec<Option<f64>>> = (0..4)
        .map(|s| {
            (0..40)
                .map(|c| Some(((c * 7 + s * 13) % 10) as f64 + s as f64 * 0.3))
                .collect()
        })
        .collect();
    let truth: Vec<bool> = (0..40).map(|c| c % 3 == 0).collect();
    let d: Vec<Vec<Option<f64>>> = (0..4)
        .map(|s| {
            (0..40)
                .map(|c| Some(((c * 11 + s * 5) % 17) as f64 / 17.0))
                .collect()
        })
        .collect();
    let (inputs, names) = inputs(&q, &d, &truth);
    let run = |seed: u64| {
        let (_dir, c) = challenge(&format!(
            "[ranking]\nbootstrap_resamples = 300\nseed = {seed}\n"
        ));
        let a = analyze(&c, &inputs, &names, None);
        (
            a.kendall.iter().map(|k| k.tau).collect::<Vec<_>>(),
            a.intervals
                .iter()
                .map(|i| (i.rank_lower, i.rank_upper, i.first))
                .collect::<Vec<_>>(),
        )
    };
    let first = run(7);
    assert_eq!(first.0.len(), 300 * 3, "one τ per resample and scope");
    assert_eq!(first, run(7), "same seed, same analysis");
    assert_ne!(first.0, run(8).0, "another seed draws other resamples");
}

#[test]
fn weights_change_the_consensus() {
    // a wins q, b wins d; the weights decide who wins overall.
    let q = [vec![Some(1.0); 4], vec![Some(2.0); 4]];
    let d = [
        vec![Some(0.5); 4],
        vec![Some(0.9), Some(0.1), Some(0.8), Some(0.2)],
    ];
    let (inputs, names) = inputs(&q, &d, &TRUTH);
    let by = |weights: &str| {
        let (_dir, c) = challenge(&format!(
            "[ranking]\nbootstrap_resamples = 0\nweights = {{ {weights} }}\n"
        ));
        ranks(
            &analyze(&c, &inputs, &names, None),
            RankingMethod::MeanThenRank,
            CONSENSUS,
        )
    };
    assert_eq!(by(""), vec![1, 1]);
    assert_eq!(by("q = 3"), vec![1, 2]);
    assert_eq!(by("d = 3"), vec![2, 1]);
}

#[test]
fn other_whole_set_metrics_get_a_paired_bootstrap_test() {
    use crate::ranking::inputs::LocalStatistic;
    let (_dir, c) = challenge("[ranking]\nbootstrap_resamples = 500\n");
    let n = 40;
    let truth: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
    let q = vec![vec![Some(1.0); n]; 3];
    let mut inputs = inputs(&q, &vec![vec![Some(0.5); n]; 3], &truth).0;
    // A whole-set statistic without a paired test of its own (the mean of per-case "hits",
    // standing in for a kappa): a hits 90 % of cases, b 30 %, c exactly as b.
    let hits = |rate: usize| -> Vec<f64> {
        (0..n)
            .map(|i| f64::from(u8::from(i * 10 % 100 < rate * 10)))
            .collect()
    };
    for (name, rate) in [("a", 9), ("b", 3), ("c", 3)] {
        let h = hits(rate);
        let all: Vec<usize> = (0..n).collect();
        let stat = LocalStatistic::new(&all, n, move |counts: &[u32]| {
            let drawn: u32 = counts.iter().sum();
            (drawn > 0).then(|| {
                counts
                    .iter()
                    .zip(&h)
                    .map(|(&c, x)| f64::from(c) * x)
                    .sum::<f64>()
                    / f64::from(drawn)
            })
        });
        inputs.values.insert(
            (name.into(), "d".into()),
            PrimaryValues::WholeSet(Arc::new(stat)),
        );
    }
    let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let a = analyze(&c, &inputs, &names, None);
    let test = |x: &str, y: &str| {
        a.significance
            .iter()
            .find(|s| s.task == "d" && s.submission == x && s.opponent == y)
            .unwrap()
            .clone()
    };
    let a_b = test("a", "b");
    assert_eq!(a_b.test, "bootstrap");
    assert!((a_b.statistic - 0.6).abs() < 1e-12, "{a_b:?}");
    assert!(a_b.significant && a_b.p_value < 0.01, "{a_b:?}");
    // Identical b and c: every resample ties, so neither is ever better (p = 1).
    assert_eq!(test("b", "c").p_value, 1.0);
    assert_eq!(ranks(&a, RankingMethod::TestThenRank, "d"), vec![1, 2, 2]);
}
