//! Which charts a round gets, built from the results model: per task what its kind calls for,
//! then the ranking analysis. `report.html` inlines them and `--plots DIR` writes them as
//! files; both take them from here, so the two always agree.

use std::collections::BTreeMap;

use super::plots::{category_axis_height, legend_width, Chart, Figure, Series};
use crate::ranking::analysis::{RankingAnalysis, RankingMethod, CONSENSUS};
use crate::results::{CurvePoint, RoundScores};

/// Per-case metrics shown as dot-and-box plots, when a segmentation task computes them.
const DISTRIBUTION_METRICS: [&str; 3] = ["dice", "nsd", "hd95"];

/// A file-name-safe form of a name: lowercase ASCII letters, digits and single dashes.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// Each submission's colour: its position in the round, so it is the same in every chart.
fn color_of(scores: &RoundScores, submission: &str) -> usize {
    scores
        .submissions
        .iter()
        .position(|s| s.name == submission)
        .unwrap_or(0)
}

/// The tasks of the round, in the order scoring met them.
pub fn tasks(scores: &RoundScores) -> Vec<String> {
    let mut tasks: Vec<String> = Vec::new();
    for a in &scores.aggregates {
        if !tasks.contains(&a.task) {
            tasks.push(a.task.clone());
        }
    }
    tasks
}

/// What the charts may show: on a hidden phase's team view, nothing drawn case by case, since
/// next to a team's own predictions it would give the hidden truth away. That includes ROC
/// curves: each step of a curve, read in the order of the team's own scores, is one case's
/// hidden label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    PerCase,
    AggregatesOnly,
}

/// The charts of one task.
pub fn task_figures(scores: &RoundScores, task: &str, detail: Detail) -> Vec<Figure> {
    if detail == Detail::AggregatesOnly {
        return Vec::new();
    }
    let mut figures = roc_figures(scores, task);
    figures.extend(distribution_figures(scores, task));
    figures.extend(agreement_figures(scores, task));
    figures
}

/// ROC curves per positive class (one for a binary task, one-vs-rest per class for a
/// multiclass one), with the operating point where the task has a threshold.
fn roc_figures(scores: &RoundScores, task: &str) -> Vec<Figure> {
    let mut by_class: BTreeMap<&str, BTreeMap<&str, Vec<&CurvePoint>>> = BTreeMap::new();
    for p in scores.curves.iter().filter(|p| p.task == task) {
        by_class
            .entry(&p.class)
            .or_default()
            .entry(&p.submission)
            .or_default()
            .push(p);
    }
    // A binary task's matrix holds the positive class and `not <class>`.
    let binary = |class: &str| {
        let negative = format!("not {class}");
        scores
            .confusion
            .iter()
            .any(|c| c.task == task && c.truth == negative)
    };
    by_class
        .into_iter()
        .map(|(class, by_submission)| {
            let mut curves = Vec::new();
            let mut operating_points = Vec::new();
            for (submission, points) in by_submission {
                let color = color_of(scores, submission);
                let mut line: Vec<(f64, f64)> = points.iter().map(|p| (p.fpr, p.tpr)).collect();
                line.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                curves.push(Series {
                    name: submission.to_string(),
                    color,
                    points: line,
                });
                if let Some(point) = operating_point(scores, task, submission, class) {
                    operating_points.push(Series {
                        name: submission.to_string(),
                        color,
                        points: vec![point],
                    });
                }
            }
            let names: Vec<String> = curves.iter().map(|c| c.name.clone()).collect();
            let (title, caption) = if binary(class) {
                (
                    format!("{task}: ROC ({class} positive)"),
                    "ROC curve of each submission; a disc marks its sensitivity and specificity at the challenge's declared threshold.".to_string(),
                )
            } else {
                (
                    format!("{task}: ROC, {class} vs rest"),
                    format!("One-vs-rest ROC curves for class {class}: its probability against every other class."),
                )
            };
            Figure {
                stem: format!("{}-roc-{}", slug(task), slug(class)),
                caption,
                width: 480 + legend_width(&names),
                height: 420,
                chart: Chart::Roc {
                    title,
                    curves,
                    operating_points,
                },
            }
        })
        .collect()
}

/// (1 − specificity, sensitivity) at the declared threshold, from a binary task's confusion
/// matrix, whose labels are the positive class and `not <positive class>`.
fn operating_point(
    scores: &RoundScores,
    task: &str,
    submission: &str,
    class: &str,
) -> Option<(f64, f64)> {
    let negative = format!("not {class}");
    let cells: Vec<_> = scores
        .confusion
        .iter()
        .filter(|c| c.task == task && c.submission == submission)
        .collect();
    let count = |truth: &str, predicted: &str| {
        cells
            .iter()
            .find(|c| c.truth == truth && c.predicted == predicted)
            .map(|c| c.count as f64)
    };
    let tp = count(class, class)?;
    let fn_ = count(class, &negative)?;
    let fp = count(&negative, class)?;
    let tn = count(&negative, &negative)?;
    (tp + fn_ > 0.0 && fp + tn > 0.0).then(|| (fp / (fp + tn), tp / (tp + fn_)))
}

/// Dot-and-box plots of the per-case Dice, NSD and HD95 of each submission.
fn distribution_figures(scores: &RoundScores, task: &str) -> Vec<Figure> {
    let mut metrics: Vec<&str> = Vec::new();
    for c in scores.case_scores.iter().filter(|c| c.task == task) {
        let base = c.metric.split('_').next().unwrap_or(&c.metric);
        if DISTRIBUTION_METRICS.contains(&base) && !metrics.contains(&c.metric.as_str()) {
            metrics.push(&c.metric);
        }
    }
    metrics
        .into_iter()
        .filter_map(|metric| {
            let mut groups: Vec<Series> = scores
                .submissions
                .iter()
                .enumerate()
                .map(|(i, s)| Series {
                    name: s.name.clone(),
                    color: i,
                    points: Vec::new(),
                })
                .collect();
            for c in scores
                .case_scores
                .iter()
                .filter(|c| c.task == task && c.metric == metric)
            {
                if let Some(v) = c.value.filter(|v| v.is_finite()) {
                    if let Some(g) = groups.iter_mut().find(|g| g.name == c.submission) {
                        g.points.push((0.0, v));
                    }
                }
            }
            groups.retain(|g| !g.points.is_empty());
            let k = groups.len() as u32;
            let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
            if groups.is_empty() {
                return None;
            }
            let better = if metric.starts_with("hd95") {
                "lower"
            } else {
                "higher"
            };
            Some(Figure {
                stem: format!("{}-{}", slug(task), slug(metric)),
                caption: format!(
                    "Per-case {metric} of each submission ({better} is better): one dot per case, the box spans the quartiles with the median, whiskers reach the farthest case within 1.5 IQR. A missing or invalid mask enters with the value it was scored with (the worst one under the `worst` policy)."
                ),
                width: (180 + 110 * k).clamp(360, 1000),
                height: 340 + category_axis_height(&names),
                chart: Chart::DotBox {
                    title: format!("{task}: {metric} per case"),
                    metric: metric.to_string(),
                    groups,
                },
            })
        })
        .collect()
}

/// For a regression task: predicted against true for every submission, and a Bland–Altman
/// plot per submission.
fn agreement_figures(scores: &RoundScores, task: &str) -> Vec<Figure> {
    let mut by_submission: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for v in scores.values.iter().filter(|v| v.task == task) {
        by_submission
            .entry(&v.submission)
            .or_default()
            .push((v.truth, v.predicted));
    }
    if by_submission.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = by_submission.keys().map(|s| s.to_string()).collect();
    let mut figures = vec![Figure {
        stem: format!("{}-scatter", slug(task)),
        caption: "Predicted against true value for every case; the grey line is perfect agreement."
            .into(),
        width: 480 + legend_width(&names),
        height: 440,
        chart: Chart::Scatter {
            title: format!("{task}: predicted vs true"),
            x_label: "true".into(),
            y_label: "predicted".into(),
            series: by_submission
                .iter()
                .map(|(s, pairs)| Series {
                    name: s.to_string(),
                    color: color_of(scores, s),
                    points: pairs.clone(),
                })
                .collect(),
        },
    }];
    for (submission, pairs) in &by_submission {
        let (truth, predicted): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
        let Some(ba) = crate::metrics::agreement::bland_altman(&predicted, &truth) else {
            continue;
        };
        figures.push(Figure {
            stem: format!("{}-bland-altman-{}", slug(task), slug(submission)),
            caption: format!(
                "Bland–Altman plot of {submission}: difference against mean of prediction and truth, with the bias (solid) and the 95 % limits of agreement, bias ± 1.96 SD (dashed)."
            ),
            width: 480,
            height: 380,
            chart: Chart::BlandAltman {
                title: format!("{task}: Bland-Altman, {submission}"),
                points: Series {
                    name: submission.to_string(),
                    color: color_of(scores, submission),
                    points: pairs.iter().map(|&(t, p)| ((t + p) / 2.0, p - t)).collect(),
                },
                bias: ba.bias,
                limits: (ba.loa_lower, ba.loa_upper),
            },
        });
    }
    figures
}

/// The ranking analysis: blob plots (consensus, then each task), each task's significance
/// map, and the consensus rank under every method.
pub fn ranking_figures(scores: &RoundScores, analysis: &RankingAnalysis) -> Vec<Figure> {
    let mut figures = Vec::new();
    let names = &analysis.submissions;
    if names.is_empty() {
        return figures;
    }
    let k = names.len() as u32;
    let column = |name: &str| names.iter().position(|n| n == name);
    if analysis.resamples > 0 {
        for scope in std::iter::once(CONSENSUS).chain(analysis.tasks.iter().map(String::as_str)) {
            let blobs = analysis
                .rank_counts
                .iter()
                .filter(|c| c.scope == scope)
                .filter_map(|c| {
                    Some((
                        column(&c.submission)?,
                        c.rank,
                        c.resamples as f64 / analysis.resamples as f64,
                    ))
                })
                .collect();
            let full = analysis
                .intervals
                .iter()
                .filter(|i| i.scope == scope)
                .filter_map(|i| Some((column(&i.submission)?, i.rank)))
                .collect();
            figures.push(Figure {
                stem: format!("ranking-blob-{}", slug(scope)),
                caption: format!(
                    "Bootstrap ranks ({scope}): a disc's area is the share of the {} resamples over cases giving that rank; the cross is the rank on all cases.",
                    analysis.resamples
                ),
                width: (160 + 90 * k).clamp(360, 1100),
                height: (200 + 28 * k).clamp(360, 900) + category_axis_height(names) - 40,
                chart: Chart::Blob {
                    title: format!("Bootstrap ranks: {scope}"),
                    submissions: names.clone(),
                    colors: names.iter().map(|n| color_of(scores, n)).collect(),
                    blobs,
                    full,
                },
            });
        }
    }
    let declared = analysis
        .method
        .unwrap_or(RankingMethod::MeanThenRank)
        .name();
    for task in &analysis.tasks {
        let mut order: Vec<(usize, &String)> = names
            .iter()
            .map(|n| {
                let rank = analysis
                    .methods
                    .iter()
                    .find(|m| m.method == declared && &m.scope == task && &m.submission == n)
                    .map_or(usize::MAX, |m| m.rank);
                (rank, n)
            })
            .collect();
        order.sort();
        let ordered: Vec<String> = order.into_iter().map(|(_, n)| n.clone()).collect();
        let position = |name: &str| ordered.iter().position(|n| n == name);
        let wins = analysis
            .significance
            .iter()
            .filter(|t| &t.task == task && t.significant)
            .filter_map(|t| Some((position(&t.submission)?, position(&t.opponent)?)))
            .collect();
        figures.push(Figure {
            stem: format!("ranking-significance-{}", slug(task)),
            caption: format!(
                "Significance map of {task}: a blue cell means the row's submission is significantly better than the column's (one-sided paired test, Holm-corrected, α = {}). Rows in rank order.",
                analysis.alpha
            ),
            width: (240 + 60 * k).clamp(360, 900),
            height: (120 + 50 * k).clamp(260, 800) + category_axis_height(names) - 40,
            chart: Chart::SignificanceMap {
                title: format!("Significance: {task}"),
                submissions: ordered,
                wins,
            },
        });
    }
    let methods: Vec<String> = RankingMethod::ALL
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let ranks = names
        .iter()
        .map(|n| {
            let per_method = RankingMethod::ALL
                .iter()
                .map(|m| analysis.rank(*m, CONSENSUS, n))
                .collect();
            (n.clone(), color_of(scores, n), per_method)
        })
        .collect();
    figures.push(Figure {
        stem: "ranking-methods".into(),
        caption: "The consensus rank of each submission under each ranking method: crossing lines mean the winner depends on the method.".into(),
        width: 620 + legend_width(names),
        height: (160 + 40 * k).clamp(300, 700),
        chart: Chart::MethodRanks {
            title: "Consensus rank under each method".into(),
            methods,
            ranks,
        },
    });
    figures
}

/// Every chart of the round, with unique stems, as `--plots DIR` writes them.
pub fn all(scores: &RoundScores, analysis: &RankingAnalysis, detail: Detail) -> Vec<Figure> {
    let mut figures: Vec<Figure> = tasks(scores)
        .iter()
        .flat_map(|t| task_figures(scores, t, detail))
        .collect();
    figures.extend(ranking_figures(scores, analysis));
    let mut seen = std::collections::HashSet::new();
    for f in &mut figures {
        let mut stem = f.stem.clone();
        let mut n = 2;
        while !seen.insert(stem.clone()) {
            stem = format!("{}-{n}", f.stem);
            n += 1;
        }
        f.stem = stem;
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug("Team <A>/../x"), "team-a-x");
        assert_eq!(slug("dice_1"), "dice-1");
        assert_eq!(slug("../"), "x");
    }
}
