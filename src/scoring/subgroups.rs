//! Every aggregate per subgroup level (docs/metrics.md, "Subgroups"). A level's values come
//! from the very scorers of the whole round, run on the level's cases alone, so a level's AUC
//! is the AUC, with the same interval method, that the round would give on those cases.

use std::collections::BTreeMap;

use super::{tasks, Predictions, Truth};
use crate::challenge::metadata::CaseMetadata;
use crate::challenge::{Challenge, PhasePaths, Task, TaskSpec};
use crate::metrics::{heterogeneity, intervals};
use crate::results::ranking_inputs::PrimaryValues;
use crate::results::subgroups::{SubgroupAggregate, SubgroupSummary};
use crate::results::{Aggregate, CaseRecord, CaseScore, RoundScores};

/// The cases of each level of `column`, in round order. Cases without metadata fall in none.
fn levels_of<'a>(
    truth: &'a Truth,
    metadata: &CaseMetadata,
    column: &str,
) -> BTreeMap<String, Vec<&'a String>> {
    let mut levels: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for case_id in &truth.cases {
        if let Some(level) = metadata.level(case_id, column) {
            levels.entry(level.to_string()).or_default().push(case_id);
        }
    }
    levels
}

/// One submission's aggregates on every level of every declared subgroup. `case_scores` are
/// the submission's per-case values: a segmentation task's level means are taken from them
/// rather than by comparing every mask again for each subgroup. (The submission's alone: the
/// round's would make the cost grow with the square of the submissions.)
#[allow(clippy::too_many_arguments)]
pub(super) fn level_aggregates(
    challenge: &Challenge,
    phase: &PhasePaths,
    truth: &Truth,
    predictions: &Predictions,
    submission: &str,
    runs: Option<&BTreeMap<String, CaseRecord>>,
    metadata: &CaseMetadata,
    case_scores: &[CaseScore],
) -> Vec<SubgroupAggregate> {
    let mut rows = Vec::new();
    for column in &challenge.analysis.subgroups {
        for (level, cases) in levels_of(truth, metadata, column) {
            let mut level_truth = truth.clone();
            level_truth.cases = cases.into_iter().cloned().collect();
            // The level's findings and per-case values repeat the round's; only its
            // aggregates are new.
            let (mut level_case_scores, mut aggregates, mut curves, mut confusion) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut values, mut problems, mut truth_findings, mut ranking) =
                (Vec::new(), Vec::new(), Vec::new(), BTreeMap::new());
            let mut context = tasks::Context {
                challenge,
                phase,
                truth: &level_truth,
                predictions,
                submission,
                runs,
                case_scores: &mut level_case_scores,
                aggregates: &mut aggregates,
                curves: &mut curves,
                confusion: &mut confusion,
                values: &mut values,
                problems: &mut problems,
                truth_findings: &mut truth_findings,
                ranking: &mut ranking,
            };
            for task in &challenge.tasks {
                if matches!(task.spec, TaskSpec::Segmentation { .. }) {
                    continue;
                }
                context.score_task(task);
            }
            for task in &challenge.tasks {
                if let TaskSpec::Segmentation { labels, .. } = &task.spec {
                    aggregates.extend(segmentation_means(
                        challenge,
                        task,
                        labels.len(),
                        submission,
                        &level_truth.cases,
                        case_scores,
                    ));
                }
            }
            for aggregate in aggregates {
                let Some(task) = challenge.tasks.iter().find(|t| t.name == aggregate.task) else {
                    continue;
                };
                let class_support = class_support(task, &level_truth);
                let withheld = withheld(challenge, task, aggregate.n, &class_support);
                let shown = withheld.is_none();
                rows.push(SubgroupAggregate {
                    submission: submission.to_string(),
                    task: aggregate.task,
                    metric: aggregate.metric,
                    subgroup: column.clone(),
                    level: level.clone(),
                    value: aggregate.value.filter(|_| shown),
                    ci_lower: aggregate.ci_lower.filter(|_| shown),
                    ci_upper: aggregate.ci_upper.filter(|_| shown),
                    n: aggregate.n,
                    class_support,
                    withheld,
                });
            }
        }
    }
    rows
}

/// A segmentation task's aggregates on `cases`, as its scorer forms them: each per-case metric
/// is the mean over cases, with the same bootstrap; with several labels, per label
/// (`dice_1`, …) and of the per-case mean over labels (`dice`).
fn segmentation_means(
    challenge: &Challenge,
    task: &Task,
    labels: usize,
    submission: &str,
    cases: &[String],
    case_scores: &[CaseScore],
) -> Vec<Aggregate> {
    let on_level: std::collections::BTreeSet<&String> = cases.iter().collect();
    // metric → case → value, for this submission and task, on the level's cases.
    let mut per_case: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    for c in case_scores {
        if c.submission == submission && c.task == task.name && on_level.contains(&c.case_id) {
            if let Some(v) = c.value {
                per_case
                    .entry(c.metric.as_str())
                    .or_default()
                    .insert(c.case_id.as_str(), v);
            }
        }
    }
    let spec = (challenge.scoring.bootstrap_resamples > 0).then_some(intervals::BootstrapSpec {
        resamples: challenge.scoring.bootstrap_resamples,
        seed: challenge.scoring.seed,
        confidence: 0.95,
    });
    let aggregate = |metric: String, values: Vec<f64>| {
        let mean = |idx: &[usize]| {
            (!idx.is_empty())
                .then(|| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64)
        };
        let all: Vec<usize> = (0..values.len()).collect();
        let value = mean(&all);
        let ci = value
            .zip(spec.as_ref())
            .and_then(|(_, spec)| intervals::bootstrap_ci(&vec![0; values.len()], spec, mean));
        Aggregate {
            submission: submission.to_string(),
            task: task.name.clone(),
            metric,
            value,
            ci_lower: ci.map(|c| c.0),
            ci_upper: ci.map(|c| c.1),
            n: values.len(),
            ci_method: if ci.is_some() { "bootstrap" } else { "" }.to_string(),
            note: crate::results::precision_note(
                values.len(),
                value,
                ci,
                challenge.scoring.min_cases,
            ),
        }
    };
    let in_case_order = |of_metric: &BTreeMap<&str, f64>| -> Vec<f64> {
        cases
            .iter()
            .filter_map(|c| of_metric.get(c.as_str()).copied())
            .collect()
    };
    let mut out = Vec::new();
    for metric in task.metrics.iter().filter(|m| m.is_per_case()) {
        let name = metric.name();
        if labels <= 1 {
            let values = per_case.get(name).map(in_case_order).unwrap_or_default();
            out.push(aggregate(name.to_string(), values));
            continue;
        }
        let per_label: Vec<(&str, &BTreeMap<&str, f64>)> = per_case
            .iter()
            .filter(|(m, _)| {
                m.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|label| label.parse::<u8>().is_ok())
            })
            .map(|(m, v)| (*m, v))
            .collect();
        for (label_metric, values) in &per_label {
            out.push(aggregate(label_metric.to_string(), in_case_order(values)));
        }
        // A case enters the task's value with every label's value, as the scorer keeps it.
        let means: Vec<f64> = cases
            .iter()
            .filter_map(|c| {
                let values: Option<Vec<f64>> = per_label
                    .iter()
                    .map(|(_, v)| v.get(c.as_str()).copied())
                    .collect();
                values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
            })
            .collect();
        out.push(aggregate(name.to_string(), means));
    }
    out
}

/// A classification task's cases per truth class on the level; empty for other kinds.
fn class_support(task: &Task, truth: &Truth) -> Vec<(String, usize)> {
    let count = |column: &str, class: &dyn Fn(&str) -> bool| {
        truth
            .cases
            .iter()
            .filter(|c| truth.value(c, column).is_some_and(class))
            .count()
    };
    match &task.spec {
        TaskSpec::Binary {
            truth: column,
            positive_class,
            ..
        } => vec![
            (
                positive_class.clone(),
                count(column, &|v| v == positive_class),
            ),
            (
                format!("not {positive_class}"),
                count(column, &|v| v != positive_class),
            ),
        ],
        TaskSpec::Multiclass {
            truth: column,
            classes,
            ..
        } => classes
            .iter()
            .map(|class| (class.clone(), count(column, &|v| v == class)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The honesty rules: why a level's value is not shown, if it is not. A class absent from a
/// multiclass level leaves the macro average to the classes present (the note says which);
/// a class present with fewer than `min_class_support` cases withholds the value, since one or
/// two cases of a rare class would decide it.
fn withheld(
    challenge: &Challenge,
    task: &Task,
    n: usize,
    class_support: &[(String, usize)],
) -> Option<String> {
    let analysis = &challenge.analysis;
    if n < analysis.min_cases {
        return Some(format!(
            "too few cases: n = {n} < min_cases = {}",
            analysis.min_cases
        ));
    }
    let binary = matches!(task.spec, TaskSpec::Binary { .. });
    let short: Vec<String> = class_support
        .iter()
        .filter(|(_, support)| *support < analysis.min_class_support && (binary || *support > 0))
        .map(|(class, support)| format!("{class} has {support}"))
        .collect();
    (!short.is_empty()).then(|| {
        format!(
            "too few cases: {} < min_class_support = {}",
            short.join(", "),
            analysis.min_class_support
        )
    })
}

/// Per submission, task and subgroup: the worst and best eligible level of the primary metric,
/// the spread between them with a bootstrap interval, and a heterogeneity test.
pub(super) fn summaries(
    challenge: &Challenge,
    round: &RoundScores,
    truth: &Truth,
    metadata: &CaseMetadata,
) -> Vec<SubgroupSummary> {
    let index: BTreeMap<&String, usize> = round
        .ranking
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| (c, i))
        .collect();
    let mut out = Vec::new();
    for column in &challenge.analysis.subgroups {
        let levels = levels_of(truth, metadata, column);
        for submission in &round.submissions {
            for task in &challenge.tasks {
                let metric = task.primary.name();
                let rows: Vec<&SubgroupAggregate> = round
                    .subgroups
                    .iter()
                    .filter(|a| {
                        a.submission == submission.name
                            && a.task == task.name
                            && a.metric == metric
                            && &a.subgroup == column
                    })
                    .collect();
                let eligible: Vec<(&SubgroupAggregate, f64)> = rows
                    .iter()
                    .filter_map(|a| Some((*a, a.value.filter(|v| v.is_finite())?)))
                    .collect();
                let better = |a: f64, b: f64| {
                    if task.primary.higher_is_better() {
                        a > b
                    } else {
                        a < b
                    }
                };
                let mut worst: Option<(&SubgroupAggregate, f64)> = None;
                let mut best: Option<(&SubgroupAggregate, f64)> = None;
                for &(a, v) in &eligible {
                    if worst.is_none_or(|(_, w)| better(w, v)) {
                        worst = Some((a, v));
                    }
                    if best.is_none_or(|(_, b)| better(v, b)) {
                        best = Some((a, v));
                    }
                }
                let key = (submission.name.clone(), task.name.clone());
                let primary = round.ranking.values.get(&key);
                // Round case indices of each eligible level.
                let groups: Vec<Vec<usize>> = eligible
                    .iter()
                    .map(|(a, _)| {
                        levels
                            .get(&a.level)
                            .map(|cases| {
                                cases.iter().filter_map(|c| index.get(c).copied()).collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect();
                let spread_ci = match (primary, eligible.len() >= 2) {
                    (Some(primary), true) => spread_interval(challenge, primary, &groups),
                    _ => None,
                };
                let test = match primary {
                    Some(PrimaryValues::PerCase(per_case)) => {
                        let values: Vec<Vec<f64>> = groups
                            .iter()
                            .map(|g| g.iter().filter_map(|&i| per_case[i]).collect())
                            .collect();
                        heterogeneity::kruskal_wallis(&values).map(|t| ("kruskal-wallis", t))
                    }
                    Some(PrimaryValues::WholeSet(_)) => {
                        // The standard error implied by each level's 95% interval.
                        let estimates: Option<Vec<(f64, f64)>> = eligible
                            .iter()
                            .map(|(a, v)| {
                                let width = a.ci_upper? - a.ci_lower?;
                                Some((*v, width / (2.0 * crate::metrics::intervals::Z_95)))
                            })
                            .collect();
                        estimates
                            .and_then(|e| heterogeneity::cochran_q(&e))
                            .map(|t| ("cochran-q", t))
                    }
                    None => None,
                };
                out.push(SubgroupSummary {
                    submission: submission.name.clone(),
                    task: task.name.clone(),
                    metric: metric.to_string(),
                    subgroup: column.clone(),
                    eligible_levels: eligible.len(),
                    levels: rows.len(),
                    worst_level: worst.map(|(a, _)| a.level.clone()),
                    worst_value: worst.map(|(_, v)| v),
                    best_level: best.map(|(a, _)| a.level.clone()),
                    best_value: best.map(|(_, v)| v),
                    // One level differs from no other.
                    spread: worst
                        .zip(best)
                        .filter(|_| eligible.len() >= 2)
                        .map(|((_, w), (_, b))| (b - w).abs()),
                    spread_ci_lower: spread_ci.map(|c| c.0),
                    spread_ci_upper: spread_ci.map(|c| c.1),
                    test: test.map(|t| t.0.to_string()).unwrap_or_default(),
                    statistic: test.map(|t| t.1.statistic),
                    df: test.map(|t| t.1.df),
                    p_value: test.map(|t| t.1.p_value),
                });
            }
        }
    }
    out
}

/// Percentile bootstrap of max − min of the primary metric over the levels `groups`, each
/// resampled within itself (the levels are the strata), with the round's settings.
fn spread_interval(
    challenge: &Challenge,
    primary: &PrimaryValues,
    groups: &[Vec<usize>],
) -> Option<(f64, f64)> {
    let resamples = challenge.scoring.bootstrap_resamples;
    if resamples == 0 {
        return None;
    }
    let spec = intervals::BootstrapSpec {
        resamples,
        seed: challenge.scoring.seed,
        confidence: 0.95,
    };
    let (strata, cases): (Vec<usize>, Vec<usize>) = groups
        .iter()
        .enumerate()
        .flat_map(|(level, g)| g.iter().map(move |&i| (level, i)))
        .unzip();
    let on = |idx: &[usize]| -> Option<f64> {
        match primary {
            PrimaryValues::PerCase(per_case) => {
                let present: Vec<f64> = idx.iter().filter_map(|&i| per_case[i]).collect();
                (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
            }
            PrimaryValues::WholeSet(statistic) => statistic.on(idx),
        }
    };
    intervals::bootstrap_ci(&strata, &spec, |positions| {
        let mut by_level: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
        for &p in positions {
            by_level[strata[p]].push(cases[p]);
        }
        let values: Option<Vec<f64>> = by_level.iter().map(|idx| on(idx)).collect();
        let values = values?;
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        Some(max - min)
    })
}
