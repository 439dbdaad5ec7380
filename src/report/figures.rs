//! Which charts a round gets, built from the results model: per task what its kind calls for,
//! then the ranking analysis. `report.html` inlines them and `--plots DIR` writes them as
//! files; both take them from here, so the two always agree.

use std::collections::BTreeMap;

use super::plots::{box_stats, category_axis_height, legend_width, Chart, Figure, Series};
use super::thin::{self, thousands};
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
                    points: drop_intermediate(line),
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
                note: None,
            }
        })
        .collect()
}

/// A ROC curve without its intermediate points, like scikit-learn's `drop_intermediate`: a
/// point on the straight line between its neighbours (a run of cases of one class, or of tied
/// scores) adds nothing to the curve drawn, but a point per case to the report. A point within
/// 1e-12 of that line counts as on it (the rates are ratios of counts).
fn drop_intermediate(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let mut kept: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for p in points {
        if kept.last() == Some(&p) {
            continue;
        }
        if let [.., a, b] = kept[..] {
            let (u, v) = ((b.0 - a.0, b.1 - a.1), (p.0 - b.0, p.1 - b.1));
            if (u.0 * v.1 - u.1 * v.0).abs() <= 1e-12 && u.0 * v.0 + u.1 * v.1 > 0.0 {
                kept.pop();
            }
        }
        kept.push(p);
    }
    kept
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
            let lower_is_better = metric.starts_with("hd95");
            let better = if lower_is_better { "lower" } else { "higher" };
            let (boxes, note) = thin_dots(&mut groups, lower_is_better);
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
                    boxes,
                },
                note,
            })
        })
        .collect()
}

/// Each group's box from all of its values, and for a group of more than [`thin::MAX_DOTS`]
/// the dots thinned to every value beyond the whiskers, the [`thin::WORST`] worst and an even
/// sample of the rest. Returns the boxes, and the note when a group was thinned.
fn thin_dots(
    groups: &mut [Series],
    lower_is_better: bool,
) -> (Vec<Option<[f64; 5]>>, Option<String>) {
    let (mut all, mut drawn, mut thinned) = (0, 0, false);
    let mut boxes = Vec::new();
    for g in groups.iter_mut() {
        let values: Vec<f64> = g.points.iter().map(|p| p.1).collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let stats = box_stats(&sorted);
        boxes.push(stats);
        all += values.len();
        if let Some([low, .., high]) = stats.filter(|_| values.len() > thin::MAX_DOTS) {
            let mut keep: Vec<bool> = values.iter().map(|&v| v < low || v > high).collect();
            let badness: Vec<f64> = values
                .iter()
                .map(|&v| if lower_is_better { v } else { -v })
                .collect();
            thin::mark_worst(&badness, thin::WORST, &mut keep);
            g.points = thin::thin(&values, &keep, thin::MAX_DOTS)
                .into_iter()
                .map(|i| g.points[i])
                .collect();
            thinned = true;
        }
        drawn += g.points.len();
    }
    let note = thinned.then(|| {
        format!(
            "Thinned: {} of the {} per-case values drawn. A submission with more than {} cases shows every case beyond its whiskers, its {} worst and an even sample of the rest; boxes and whiskers are drawn from every case. All values are in scores.csv.",
            thousands(drawn),
            thousands(all),
            thin::MAX_DOTS,
            thin::WORST
        )
    });
    (boxes, note)
}

/// One coordinate of a (truth, predicted) pair as a chart draws it.
type Coordinate = fn(&(f64, f64)) -> f64;

/// Which of a submission's (truth, predicted) pairs a regression chart draws, in their order:
/// all of them up to `cap`; above, every case outside the limits of agreement (when there are
/// any), the [`thin::WORST`] largest errors, the smallest and largest of `extent` (so that the
/// axes stay those of all cases) and an even sample of the rest by error.
fn thin_pairs(
    pairs: &[(f64, f64)],
    limits: Option<(f64, f64)>,
    extent: &[Coordinate],
    cap: usize,
) -> Vec<(f64, f64)> {
    if pairs.len() <= cap {
        return pairs.to_vec();
    }
    let errors: Vec<f64> = pairs.iter().map(|&(t, p)| p - t).collect();
    let mut keep: Vec<bool> = errors
        .iter()
        .map(|&e| limits.is_some_and(|(lo, hi)| e < lo || e > hi))
        .collect();
    let sizes: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    thin::mark_worst(&sizes, thin::WORST, &mut keep);
    for f in extent {
        let values: Vec<f64> = pairs.iter().map(f).collect();
        thin::mark_extremes(&values, &mut keep);
    }
    thin::thin(&errors, &keep, cap)
        .into_iter()
        .map(|i| pairs[i])
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
    // Each submission's bias and limits of agreement, from all of its cases.
    let agreement: BTreeMap<&str, crate::metrics::agreement::BlandAltman> = by_submission
        .iter()
        .filter_map(|(submission, pairs)| {
            let (truth, predicted): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
            Some((
                *submission,
                crate::metrics::agreement::bland_altman(&predicted, &truth)?,
            ))
        })
        .collect();
    let limits = |submission: &str| {
        agreement
            .get(submission)
            .map(|ba| (ba.loa_lower, ba.loa_upper))
    };
    let cap = thin::scatter_cap(by_submission.len());
    let series: Vec<Series> = by_submission
        .iter()
        .map(|(s, pairs)| Series {
            name: s.to_string(),
            color: color_of(scores, s),
            points: thin_pairs(pairs, limits(s), &[|p| p.0, |p| p.1], cap),
        })
        .collect();
    let all: usize = by_submission.values().map(Vec::len).sum();
    let drawn: usize = series.iter().map(|s| s.points.len()).sum();
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
            series,
        },
        note: (drawn < all).then(|| {
            format!(
                "Thinned: {} of the {} cases drawn. A submission with more than {cap} cases shows every case outside its limits of agreement, its {} largest errors, its extremes and an even sample of the rest. All cases are in values.csv.",
                thousands(drawn),
                thousands(all),
                thin::WORST
            )
        }),
    }];
    for (submission, pairs) in &by_submission {
        let Some(ba) = agreement.get(submission) else {
            continue;
        };
        let points: Vec<(f64, f64)> = thin_pairs(
            pairs,
            limits(submission),
            &[|&(t, p)| (t + p) / 2.0],
            thin::MAX_DOTS,
        );
        let note = (points.len() < pairs.len()).then(|| {
            format!(
                "Thinned: {} of the {} cases drawn: every case outside the limits of agreement, the {} largest errors, the extremes of the mean and an even sample of the rest. The bias and limits are from every case; all are in values.csv.",
                thousands(points.len()),
                thousands(pairs.len()),
                thin::WORST
            )
        });
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
                    points: points.iter().map(|&(t, p)| ((t + p) / 2.0, p - t)).collect(),
                },
                bias: ba.bias,
                limits: (ba.loa_lower, ba.loa_upper),
            },
            note,
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
                note: None,
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
            note: None,
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
        note: None,
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
    use super::*;

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug("Team <A>/../x"), "team-a-x");
        assert_eq!(slug("dice_1"), "dice-1");
        assert_eq!(slug("../"), "x");
    }

    /// A round of two submissions × `cases` cases: per-case Dice of a segmentation task, with
    /// every 97th case failed (Dice 0, beyond the whiskers), and a quantification task whose
    /// predictions miss by a smooth error, every 89th case by 40.
    fn round(cases: usize) -> RoundScores {
        let names = ["alpha", "beta"];
        let mut case_scores = Vec::new();
        let mut values = Vec::new();
        for (k, name) in names.iter().enumerate() {
            for i in 0..cases {
                let case = format!("case-{i:04}");
                let dice = if i % 97 == 5 {
                    0.0
                } else {
                    0.7 + 0.2 * ((i * 7 + k) % 100) as f64 / 100.0
                };
                case_scores.push(serde_json::json!({"submission": name, "task": "seg", "case_id": case, "metric": "dice", "value": dice, "status": "ok"}));
                let truth = 10.0 + (i % 50) as f64;
                let error = if i % 89 == 3 {
                    40.0
                } else {
                    ((i * 13 + k) % 21) as f64 / 10.0 - 1.0
                };
                values.push(serde_json::json!({"submission": name, "task": "vol", "case_id": case, "truth": truth, "predicted": truth + error, "status": "ok"}));
            }
        }
        let submissions: Vec<_> = names
            .iter()
            .map(|n| serde_json::json!({"name": n, "team": n, "baseline": false, "run_counts": {}}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "challenge": "c", "phase": "test", "cases": cases, "phase_cases": cases,
            "selection": "all", "bootstrap_resamples": 0, "seed": 1,
            "submissions": submissions, "case_scores": case_scores, "aggregates": [],
            "problems": [], "curves": [], "confusion": [], "values": values
        }))
        .unwrap()
    }

    fn dots(figure: &Figure) -> (&[Series], &[Option<[f64; 5]>]) {
        match &figure.chart {
            Chart::DotBox { groups, boxes, .. } => (groups, boxes),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_small_round_draws_every_case_and_says_nothing_more() {
        let scores = round(thin::MAX_DOTS);
        let seg = task_figures(&scores, "seg", Detail::PerCase);
        let (groups, _) = dots(&seg[0]);
        assert!(groups.iter().all(|g| g.points.len() == thin::MAX_DOTS));
        let vol = task_figures(&scores, "vol", Detail::PerCase);
        assert_eq!(
            vol.len(),
            3,
            "the scatter and a Bland-Altman plot per submission"
        );
        for f in seg.iter().chain(&vol) {
            assert_eq!(f.note, None, "{}", f.stem);
        }
        let Chart::Scatter { series, .. } = &vol[0].chart else {
            panic!()
        };
        assert!(series.iter().all(|s| s.points.len() == thin::MAX_DOTS));
    }

    #[test]
    fn a_large_round_keeps_every_outlier_its_worst_cases_and_the_boxes_of_all() {
        let scores = round(1000);
        let seg = task_figures(&scores, "seg", Detail::PerCase);
        let (groups, boxes) = dots(&seg[0]);
        for (g, stats) in groups.iter().zip(boxes) {
            let mut all: Vec<f64> = scores
                .case_scores
                .iter()
                .filter(|c| c.submission == g.name)
                .filter_map(|c| c.value)
                .collect();
            all.sort_by(f64::total_cmp);
            // The box is the one of all 1000 cases, not of the dots drawn.
            assert_eq!(*stats, box_stats(&all));
            let [low, .., high] = stats.unwrap();
            let drawn: Vec<f64> = g.points.iter().map(|p| p.1).collect();
            let outliers = all.iter().filter(|&&v| v < low || v > high).count();
            assert_eq!(outliers, 11, "the failed cases");
            assert_eq!(
                drawn.iter().filter(|&&v| v < low || v > high).count(),
                outliers,
                "every case beyond the whiskers is drawn"
            );
            assert!(drawn.len() <= thin::MAX_DOTS, "{}", drawn.len());
            // The sample spans the box: the drawn quartiles are close to those of all cases.
            let mut sorted = drawn.clone();
            sorted.sort_by(f64::total_cmp);
            let drawn_stats = box_stats(&sorted).unwrap();
            assert!((drawn_stats[2] - stats.unwrap()[2]).abs() < 0.01);
        }
        let note = seg[0].note.as_deref().unwrap();
        assert!(
            note.starts_with("Thinned: 400 of the 2,000 per-case values drawn.")
                && note.contains("beyond its whiskers")
                && note.contains("scores.csv"),
            "{note}"
        );

        let vol = task_figures(&scores, "vol", Detail::PerCase);
        let note = vol[0].note.as_deref().unwrap();
        assert!(note.contains("of the 2,000 cases drawn") && note.contains("values.csv"));
        for f in &vol[1..] {
            let Chart::BlandAltman { points, limits, .. } = &f.chart else {
                panic!()
            };
            let outside = |p: &&(f64, f64)| p.1 < limits.0 || p.1 > limits.1;
            // Every 89th case misses by 40, far outside the limits of agreement.
            assert_eq!(
                points.points.iter().filter(outside).count(),
                12,
                "{}",
                f.stem
            );
            assert_eq!(points.points.len(), thin::MAX_DOTS);
            let note = f.note.as_deref().unwrap();
            assert!(
                note.starts_with("Thinned: 200 of the 1,000 cases drawn"),
                "{note}"
            );
        }
    }

    #[test]
    fn a_roc_curve_keeps_its_corners_only() {
        let staircase = vec![
            (0.0, 0.0),
            (0.0, 0.25),
            (0.0, 0.5),
            (0.25, 0.5),
            (0.5, 0.5),
            (0.5, 0.5),
            (0.6, 0.6),
            (0.7, 0.7),
            (0.7, 1.0),
            (1.0, 1.0),
        ];
        assert_eq!(
            drop_intermediate(staircase),
            vec![
                (0.0, 0.0),
                (0.0, 0.5),
                (0.5, 0.5),
                (0.7, 0.7),
                (0.7, 1.0),
                (1.0, 1.0)
            ]
        );
        // Ratios of counts that are collinear only up to rounding still merge.
        let thirds = vec![(0.0, 0.0), (1.0 / 3.0, 0.1), (2.0 / 3.0, 0.2), (1.0, 0.3)];
        assert_eq!(drop_intermediate(thirds), vec![(0.0, 0.0), (1.0, 0.3)]);
    }
}
