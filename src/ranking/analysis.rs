//! The ranking analysis of a round, after challengeR: the ranking under each method, the
//! stability of the declared ranking under a bootstrap over cases, and the pairwise
//! significance of every task. Definitions and edge cases are in docs/ranking.md.
//!
//! Everything works on the primary metric of each task as scoring left it
//! ([`RankingInputs`]), so missing predictions count as the challenge's missing policy says.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::competition_ranks;
use super::inputs::{PrimaryValues, RankingInputs};
use super::significance::{holm, kendall_tau_b, wilcoxon_greater_with_correction};
pub use crate::challenge::RankingMethod;
use crate::challenge::{Challenge, RankingSettings};
use crate::metrics::roc;

/// The name of the consensus over tasks in the analysis' tables.
pub const CONSENSUS: &str = "consensus";

/// One task as the analysis sees it: every submission's primary values, in round order.
struct TaskView<'a> {
    name: String,
    metric: String,
    higher_is_better: bool,
    weight: f64,
    values: Vec<Option<&'a PrimaryValues>>,
    /// For per-case metrics, each case's competition rank of every submission
    /// (`case_ranks[case][submission]`): they do not depend on the resample.
    case_ranks: Option<Vec<Vec<f64>>>,
    /// For whole-set metrics without a paired test of their own, each submission's value on
    /// each resample of the rank-stability bootstrap (`replicates[submission][resample]`),
    /// for the paired bootstrap test.
    replicates: Option<Vec<Vec<Option<f64>>>>,
}

impl TaskView<'_> {
    /// Each submission's value of the task's metric on the cases `idx` under `method`'s
    /// aggregation; for rank-then-mean, the mean rank (lower is better). `idx` is the
    /// stability bootstrap's resample `resample`, when given: a whole-set value is then taken
    /// from the replicates already computed on it rather than computed again.
    fn aggregates(
        &self,
        method: RankingMethod,
        idx: &[usize],
        resample: Option<usize>,
    ) -> (Vec<Option<f64>>, bool) {
        if method == RankingMethod::RankThenMean {
            if let Some(case_ranks) = &self.case_ranks {
                let means = (0..self.values.len())
                    .map(|s| {
                        let sum: f64 = idx.iter().map(|&c| case_ranks[c][s]).sum();
                        (!idx.is_empty()).then(|| sum / idx.len() as f64)
                    })
                    .collect();
                return (means, false);
            }
        }
        let median = method == RankingMethod::MedianThenRank;
        let replicated = |s: usize| Some(self.replicates.as_ref()?[s][resample?]);
        let values = self
            .values
            .iter()
            .enumerate()
            .map(|(s, v)| match (*v)? {
                PrimaryValues::PerCase(per_case) => {
                    let mut present: Vec<f64> = idx.iter().filter_map(|&c| per_case[c]).collect();
                    if median {
                        median_of(&mut present)
                    } else {
                        (!present.is_empty())
                            .then(|| present.iter().sum::<f64>() / present.len() as f64)
                    }
                }
                PrimaryValues::WholeSet(statistic) => match replicated(s) {
                    Some(value) => value,
                    None => statistic.on(idx),
                },
            })
            .map(|v| v.filter(|x| x.is_finite()))
            .collect();
        (values, self.higher_is_better)
    }

    /// Competition ranks of the submissions on the cases `idx` under `method`.
    fn ranks(
        &self,
        method: RankingMethod,
        idx: &[usize],
        settings: &RankingSettings,
        full: bool,
        resample: Option<usize>,
    ) -> Vec<usize> {
        if method == RankingMethod::TestThenRank {
            let tests = self.pairwise_tests(idx, settings, full);
            let wins: Vec<Option<f64>> = (0..self.values.len())
                .map(|s| {
                    Some(
                        tests
                            .iter()
                            .filter(|t| t.winner == s && t.significant)
                            .count() as f64,
                    )
                })
                .collect();
            return competition_ranks(&wins, true);
        }
        let (values, higher_is_better) = self.aggregates(method, idx, resample);
        competition_ranks(&values, higher_is_better)
    }

    /// One-sided tests of "a is better than b" for every ordered pair, Holm-corrected over
    /// all of them. Whole-set metrics other than a binary AUC are compared by the paired
    /// bootstrap on all cases (`full`) only; inside the rank-stability bootstrap their pairs
    /// are left out, since that would nest one bootstrap in another.
    fn pairwise_tests(
        &self,
        idx: &[usize],
        settings: &RankingSettings,
        full: bool,
    ) -> Vec<PairTest> {
        let k = self.values.len();
        let pairs: Vec<(usize, usize)> = (0..k)
            .flat_map(|a| (0..k).filter(move |&b| b != a).map(move |b| (a, b)))
            .collect();
        let correction = settings.wilcoxon_continuity_correction;
        // k(k − 1) independent tests (870 for 30 submissions): on every core, in pair order.
        let mut tests: Vec<PairTest> = pairs
            .into_par_iter()
            .filter_map(|(a, b)| {
                let (test, statistic, p) = self.paired_test(a, b, idx, full, correction)?;
                Some(PairTest {
                    winner: a,
                    loser: b,
                    test,
                    statistic,
                    p,
                    p_holm: p,
                    significant: false,
                })
            })
            .collect();
        let adjusted = holm(&tests.iter().map(|t| t.p).collect::<Vec<_>>());
        for (t, p) in tests.iter_mut().zip(adjusted) {
            t.p_holm = p;
            t.significant = settings.significant_if.is_significant(p, settings.alpha);
        }
        tests
    }

    fn paired_test(
        &self,
        a: usize,
        b: usize,
        idx: &[usize],
        full: bool,
        continuity_correction: bool,
    ) -> Option<(&'static str, f64, f64)> {
        match (self.values[a]?, self.values[b]?) {
            (PrimaryValues::PerCase(va), PrimaryValues::PerCase(vb)) => {
                // Pairs where both have a value; the sign makes "greater" mean "better".
                let sign = if self.higher_is_better { 1.0 } else { -1.0 };
                let (x, y): (Vec<f64>, Vec<f64>) = idx
                    .iter()
                    .filter_map(|&c| Some((va[c]? * sign, vb[c]? * sign)))
                    .unzip();
                let (w, p) = wilcoxon_greater_with_correction(&x, &y, continuity_correction)?;
                Some(("wilcoxon", w, p))
            }
            (PrimaryValues::WholeSet(sa), PrimaryValues::WholeSet(sb))
                if sa.binary_scores().is_none() || sb.binary_scores().is_none() =>
            {
                // The paired bootstrap: how often, over the resamples of all cases, a is not
                // better than b; p = (1 + that count) / (1 + resamples).
                let replicates = self.replicates.as_ref().filter(|_| full)?;
                let sign = if self.higher_is_better { 1.0 } else { -1.0 };
                let observed = (sa.on(idx)? - sb.on(idx)?) * sign;
                let diffs: Vec<f64> = replicates[a]
                    .iter()
                    .zip(&replicates[b])
                    .filter_map(|(x, y)| Some((x.as_ref()? - y.as_ref()?) * sign))
                    .collect();
                if diffs.is_empty() {
                    return None;
                }
                let not_better = diffs.iter().filter(|d| **d <= 0.0).count();
                Some((
                    "bootstrap",
                    observed,
                    (1 + not_better) as f64 / (1 + diffs.len()) as f64,
                ))
            }
            (PrimaryValues::WholeSet(sa), PrimaryValues::WholeSet(sb)) => {
                let ((scores_a, truth), (scores_b, _)) = (sa.binary_scores()?, sb.binary_scores()?);
                let (mut t, mut x, mut y) = (Vec::new(), Vec::new(), Vec::new());
                for &c in idx {
                    if let (Some(p), Some(q)) = (scores_a[c], scores_b[c]) {
                        t.push(truth[c]);
                        x.push(p);
                        y.push(q);
                    }
                }
                let paired = roc::delong_paired(&t, &x, &y)?;
                let z = if self.higher_is_better {
                    paired.z
                } else {
                    -paired.z
                };
                Some(("delong", z, roc::normal_upper_tail(z)))
            }
            _ => None,
        }
    }
}

fn median_of(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// One ordered pair of a task's significance matrix.
#[derive(Clone, Debug)]
struct PairTest {
    winner: usize,
    loser: usize,
    test: &'static str,
    statistic: f64,
    p: f64,
    p_holm: f64,
    significant: bool,
}

/// A row of `ranking/significance.csv`: is `submission` better than `opponent` on `task`?
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Significance {
    pub task: String,
    /// The task's primary metric, on which the pair is compared.
    pub metric: String,
    pub submission: String,
    pub opponent: String,
    /// `wilcoxon` (statistic W+), `delong` (statistic z), or `bootstrap` for other
    /// whole-set metrics (statistic: the observed difference, oriented so positive is
    /// better).
    pub test: String,
    #[serde(deserialize_with = "crate::results::non_finite::nan")]
    pub statistic: f64,
    /// One-sided p-value of "submission is better than opponent".
    #[serde(deserialize_with = "crate::results::non_finite::nan")]
    pub p_value: f64,
    /// Holm-adjusted over every ordered pair of the task.
    #[serde(deserialize_with = "crate::results::non_finite::nan")]
    pub p_holm: f64,
    pub significant: bool,
}

/// A row of `ranking/methods.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodRank {
    pub method: String,
    /// A task name, or `consensus`.
    pub scope: String,
    pub submission: String,
    pub rank: usize,
}

/// A row of `ranking/rank_intervals.csv`: how a submission's rank varies over the bootstrap.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RankInterval {
    pub scope: String,
    pub submission: String,
    /// The rank on all cases.
    pub rank: usize,
    pub median_rank: f64,
    /// The 2.5th and 97.5th percentiles of the bootstrap ranks (nearest rank).
    pub rank_lower: usize,
    pub rank_upper: usize,
    /// Share of resamples in which the submission ranked first.
    pub first: f64,
}

/// A row of `ranking/bootstrap_ranks.csv`: in how many resamples a submission got a rank
/// (the blob plot's data).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RankCount {
    pub scope: String,
    pub submission: String,
    pub rank: usize,
    pub resamples: usize,
}

/// A row of `ranking/kendall_tau.csv`: agreement of one bootstrap ranking with the full one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KendallTau {
    pub scope: String,
    pub resample: usize,
    /// None when a ranking puts everyone level.
    pub tau: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RankingAnalysis {
    pub method: Option<RankingMethod>,
    pub resamples: usize,
    pub seed: u64,
    pub alpha: f64,
    pub submissions: Vec<String>,
    /// Task names, in declaration order.
    pub tasks: Vec<String>,
    pub methods: Vec<MethodRank>,
    pub intervals: Vec<RankInterval>,
    pub rank_counts: Vec<RankCount>,
    pub kendall: Vec<KendallTau>,
    pub significance: Vec<Significance>,
    /// The declared method's ranks, per task and consensus, of the teams and the baselines
    /// together, on all cases: where each baseline places among the teams, and whether a team
    /// beats it. Empty when the round has no baseline beside its teams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement: Vec<MethodRank>,
}

/// Where no team beats the best baseline: overall, and on which tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaselineVerdict {
    /// The baseline that places best overall.
    pub best_baseline: String,
    /// No team places strictly above the best baseline overall.
    pub unbeaten_overall: bool,
    /// The tasks on which no team places strictly above the best baseline of that task.
    pub unbeaten_tasks: Vec<String>,
    pub task_count: usize,
}

impl RankingAnalysis {
    /// The consensus rank of `submission` under `method`.
    pub fn rank(&self, method: RankingMethod, scope: &str, submission: &str) -> Option<usize> {
        self.methods
            .iter()
            .find(|m| m.method == method.name() && m.scope == scope && m.submission == submission)
            .map(|m| m.rank)
    }

    /// The place of `submission` among teams and baselines together in `scope`.
    pub fn place(&self, scope: &str, submission: &str) -> Option<usize> {
        self.placement
            .iter()
            .find(|m| m.scope == scope && m.submission == submission)
            .map(|m| m.rank)
    }

    /// Where no team beats the best baseline; None when a team beats it overall and on
    /// every task, or when the round has no baseline beside its teams.
    pub fn baseline_verdict(&self) -> Option<BaselineVerdict> {
        let is_team = |name: &str| self.submissions.iter().any(|s| s == name);
        let unbeaten = |scope: &str| -> Option<(String, bool)> {
            let in_scope = || self.placement.iter().filter(move |m| m.scope == scope);
            let best = in_scope()
                .filter(|m| !is_team(&m.submission))
                .min_by(|a, b| a.rank.cmp(&b.rank).then(a.submission.cmp(&b.submission)))?;
            let beaten = in_scope().any(|m| is_team(&m.submission) && m.rank < best.rank);
            Some((best.submission.clone(), !beaten))
        };
        let (best_baseline, unbeaten_overall) = unbeaten(CONSENSUS)?;
        let unbeaten_tasks: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| unbeaten(t).is_some_and(|(_, u)| u))
            .cloned()
            .collect();
        (unbeaten_overall || !unbeaten_tasks.is_empty()).then_some(BaselineVerdict {
            best_baseline,
            unbeaten_overall,
            unbeaten_tasks,
            task_count: self.tasks.len(),
        })
    }

    /// The median Kendall τ of a scope over the resamples.
    pub fn median_tau(&self, scope: &str) -> Option<f64> {
        let mut taus: Vec<f64> = self
            .kendall
            .iter()
            .filter(|k| k.scope == scope)
            .filter_map(|k| k.tau)
            .collect();
        median_of(&mut taus)
    }
}

/// Runs the analysis on a scored round. `method` overrides the challenge's declared one.
pub fn analyze(
    challenge: &Challenge,
    inputs: &RankingInputs,
    submissions: &[String],
    method: Option<RankingMethod>,
) -> RankingAnalysis {
    analyze_with(challenge, inputs, submissions, method, true)
}

/// The declared method's ranks of `submissions` on all cases, per task and consensus, without
/// the rank-stability bootstrap: for [`RankingAnalysis::placement`].
pub fn placement(
    challenge: &Challenge,
    inputs: &RankingInputs,
    submissions: &[String],
) -> Vec<MethodRank> {
    let analysis = analyze_with(challenge, inputs, submissions, None, false);
    let method = challenge.ranking.method.name();
    analysis
        .methods
        .into_iter()
        .filter(|m| m.method == method)
        .collect()
}

/// [`analyze`], with the rank-stability bootstrap only when `stability`.
fn analyze_with(
    challenge: &Challenge,
    inputs: &RankingInputs,
    submissions: &[String],
    method: Option<RankingMethod>,
    stability: bool,
) -> RankingAnalysis {
    let settings: &RankingSettings = &challenge.ranking;
    let method = method.unwrap_or(settings.method);
    let n_cases = inputs.cases.len();
    let views: Vec<TaskView> = challenge
        .tasks
        .iter()
        .map(|task| {
            let values: Vec<Option<&PrimaryValues>> = submissions
                .iter()
                .map(|s| inputs.values.get(&(s.clone(), task.name.clone())))
                .collect();
            let higher_is_better = task.primary.higher_is_better();
            let case_ranks = values
                .iter()
                .all(|v| matches!(v, Some(PrimaryValues::PerCase(_))))
                .then(|| {
                    (0..n_cases)
                        .map(|c| {
                            let on_case: Vec<Option<f64>> = values
                                .iter()
                                .map(|v| match v {
                                    Some(PrimaryValues::PerCase(p)) => {
                                        p[c].filter(|x| x.is_finite())
                                    }
                                    _ => None,
                                })
                                .collect();
                            competition_ranks(&on_case, higher_is_better)
                                .into_iter()
                                .map(|r| r as f64)
                                .collect()
                        })
                        .collect()
                });
            let needs_replicates = settings.bootstrap_resamples > 0
                && n_cases > 0
                && values.iter().any(|v| {
                    matches!(v, Some(PrimaryValues::WholeSet(s)) if s.binary_scores().is_none())
                });
            let replicates = needs_replicates.then(|| {
                let per_resample: Vec<Vec<Option<f64>>> = (0..settings.bootstrap_resamples)
                    .into_par_iter()
                    .map(|r| {
                        let idx = resample(settings.seed, r, n_cases);
                        values
                            .iter()
                            .map(|v| match v {
                                Some(PrimaryValues::WholeSet(s)) => {
                                    s.on(&idx).filter(|x| x.is_finite())
                                }
                                _ => None,
                            })
                            .collect()
                    })
                    .collect();
                (0..values.len())
                    .map(|s| per_resample.iter().map(|r| r[s]).collect())
                    .collect()
            });
            TaskView {
                name: task.name.clone(),
                metric: task.primary.name().to_string(),
                higher_is_better,
                weight: settings.weights.get(&task.name).copied().unwrap_or(1.0),
                values,
                case_ranks,
                replicates,
            }
        })
        .collect();
    let all: Vec<usize> = (0..n_cases).collect();
    let alpha = settings.alpha;
    // `resample`: which resample of the stability bootstrap `idx` is, if it is one.
    let ranking_of = |method: RankingMethod,
                      idx: &[usize],
                      resample: Option<usize>|
     -> (Vec<Vec<usize>>, Vec<usize>) {
        let full = idx.len() == n_cases && idx.iter().enumerate().all(|(i, &c)| i == c);
        let per_task: Vec<Vec<usize>> = views
            .iter()
            .map(|v| v.ranks(method, idx, settings, full, resample))
            .collect();
        (per_task.clone(), consensus(&per_task, &views))
    };

    let mut analysis = RankingAnalysis {
        method: Some(method),
        resamples: settings.bootstrap_resamples,
        seed: settings.seed,
        alpha,
        submissions: submissions.to_vec(),
        tasks: views.iter().map(|v| v.name.clone()).collect(),
        ..Default::default()
    };
    let scope_names: Vec<String> = views
        .iter()
        .map(|v| v.name.clone())
        .chain([CONSENSUS.to_string()])
        .collect();
    let mut full = (Vec::new(), Vec::new());
    for m in RankingMethod::ALL {
        let (per_task, overall) = ranking_of(m, &all, None);
        for (scope, ranks) in scope_names.iter().zip(per_task.iter().chain([&overall])) {
            for (s, rank) in submissions.iter().zip(ranks) {
                analysis.methods.push(MethodRank {
                    method: m.name().to_string(),
                    scope: scope.clone(),
                    submission: s.clone(),
                    rank: *rank,
                });
            }
        }
        if m == method {
            full = (per_task, overall);
        }
    }

    for view in &views {
        for t in view.pairwise_tests(&all, settings, true) {
            analysis.significance.push(Significance {
                task: view.name.clone(),
                metric: view.metric.clone(),
                submission: submissions[t.winner].clone(),
                opponent: submissions[t.loser].clone(),
                test: t.test.to_string(),
                statistic: t.statistic,
                p_value: t.p,
                p_holm: t.p_holm,
                significant: t.significant,
            });
        }
    }

    if stability && settings.bootstrap_resamples > 0 && n_cases > 0 && !submissions.is_empty() {
        let resamples: Vec<Vec<Vec<usize>>> = (0..settings.bootstrap_resamples)
            .into_par_iter()
            .map_init(
                || Vec::with_capacity(n_cases),
                |idx: &mut Vec<usize>, r| {
                    *idx = resample(settings.seed, r, n_cases);
                    let (mut per_task, overall) = ranking_of(method, idx, Some(r));
                    per_task.push(overall);
                    per_task
                },
            )
            .collect();
        let full_scopes: Vec<&Vec<usize>> = full.0.iter().chain([&full.1]).collect();
        for (scope_index, scope) in scope_names.iter().enumerate() {
            let reference: Vec<f64> = full_scopes[scope_index].iter().map(|&r| r as f64).collect();
            for (r, ranks) in resamples.iter().enumerate() {
                let ranks: Vec<f64> = ranks[scope_index].iter().map(|&x| x as f64).collect();
                analysis.kendall.push(KendallTau {
                    scope: scope.clone(),
                    resample: r,
                    tau: kendall_tau_b(&reference, &ranks),
                });
            }
            for (s, name) in submissions.iter().enumerate() {
                let mut drawn: Vec<usize> = resamples.iter().map(|r| r[scope_index][s]).collect();
                drawn.sort_unstable();
                let b = drawn.len();
                let nearest = |q: f64| drawn[((q * b as f64).ceil() as usize).clamp(1, b) - 1];
                let mut as_f64: Vec<f64> = drawn.iter().map(|&x| x as f64).collect();
                analysis.intervals.push(RankInterval {
                    scope: scope.clone(),
                    submission: name.clone(),
                    rank: full_scopes[scope_index][s],
                    median_rank: median_of(&mut as_f64).unwrap_or(f64::NAN),
                    rank_lower: nearest(0.025),
                    rank_upper: nearest(0.975),
                    first: drawn.iter().filter(|&&x| x == 1).count() as f64 / b as f64,
                });
                for rank in 1..=submissions.len() {
                    let count = drawn.iter().filter(|&&x| x == rank).count();
                    if count > 0 {
                        analysis.rank_counts.push(RankCount {
                            scope: scope.clone(),
                            submission: name.clone(),
                            rank,
                            resamples: count,
                        });
                    }
                }
            }
        }
    }
    analysis
}

/// Resample `r` of the cases: it depends only on (seed, r), so the analysis is the same for
/// any thread count.
fn resample(seed: u64, r: usize, n_cases: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(r as u64);
    (0..n_cases).map(|_| rng.random_range(0..n_cases)).collect()
}

/// The consensus: competition ranks of the weighted mean of the task ranks.
fn consensus(per_task: &[Vec<usize>], views: &[TaskView]) -> Vec<usize> {
    let k = per_task.first().map_or(0, Vec::len);
    let total_weight: f64 = views.iter().map(|v| v.weight).sum();
    let means: Vec<Option<f64>> = (0..k)
        .map(|s| {
            (total_weight > 0.0).then(|| {
                per_task
                    .iter()
                    .zip(views)
                    .map(|(ranks, v)| ranks[s] as f64 * v.weight)
                    .sum::<f64>()
                    / total_weight
            })
        })
        .collect();
    competition_ranks(&means, false)
}

#[cfg(test)]
mod tests;
