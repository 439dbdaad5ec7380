//! Per-kind scoring. Each scorer resolves every case to a usable prediction or a finding,
//! applies the missing policy, writes per-case values and computes the aggregates with their
//! confidence intervals.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::{Predictions, Truth};
use crate::challenge::{Challenge, Metric, MissingPolicy, PhasePaths, Task, TaskSpec};
use crate::io::nifti::{Geometry, SparseLabels, VoxelBox};
use crate::metrics::distance::{self, BoundarySpec, OverBudget, WorkBudget};
use crate::metrics::{
    agreement, classification, intervals, ordinal, regression, roc, segmentation, weighted,
};
use crate::results::ranking_inputs::{BinaryAuc, LocalStatistic, PrimaryValues};
use crate::results::CaseRecord;
use crate::results::{
    Aggregate, CaseScore, CaseStatus, ConfusionCell, CurvePoint, PairedValue, Problem, TruthFinding,
};

pub(super) struct Context<'a> {
    pub challenge: &'a Challenge,
    pub phase: &'a PhasePaths,
    pub truth: &'a Truth,
    pub predictions: &'a Predictions,
    pub submission: &'a str,
    pub runs: Option<&'a BTreeMap<String, CaseRecord>>,
    pub case_scores: &'a mut Vec<CaseScore>,
    pub aggregates: &'a mut Vec<Aggregate>,
    pub curves: &'a mut Vec<CurvePoint>,
    pub confusion: &'a mut Vec<ConfusionCell>,
    pub values: &'a mut Vec<PairedValue>,
    pub problems: &'a mut Vec<Problem>,
    /// Findings about the truth or the images: the organizer's, kept apart from the team's.
    pub truth_findings: &'a mut Vec<TruthFinding>,
    /// Each task's primary metric as the ranking analysis needs it, by (submission, task).
    pub ranking: &'a mut BTreeMap<(String, String), PrimaryValues>,
}

/// A case whose prediction could be used, or the status and message of why not.
type Resolved<T> = Result<T, (CaseStatus, String)>;

/// One case of a segmentation task: the values per label or why there are none, with the worst
/// values of the case; or, when the truth mask or the image cannot be used, the challenge's
/// error (a truth finding, never the team's).
type MaskComparison = (
    String,
    Result<(Resolved<Vec<LabelValues>>, WorstValues), String>,
);

/// The per-case segmentation metrics of one label.
#[derive(Clone, Copy, Debug)]
struct LabelValues {
    dice: f64,
    iou: f64,
    hd95: f64,
    hd95_medpy: f64,
    hd95_deepmind: f64,
    nsd: f64,
    nsd_voxels: f64,
    assd: f64,
    assd_deepmind: f64,
    volume_error_ml: f64,
}

impl LabelValues {
    fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Dice => self.dice,
            Metric::Iou => self.iou,
            Metric::Hd95 => self.hd95,
            Metric::Hd95Medpy => self.hd95_medpy,
            Metric::Hd95Deepmind => self.hd95_deepmind,
            Metric::Nsd => self.nsd,
            Metric::NsdVoxels => self.nsd_voxels,
            Metric::Assd => self.assd,
            Metric::AssdDeepmind => self.assd_deepmind,
            _ => self.volume_error_ml,
        }
    }
}

/// What a missing or invalid mask scores: no overlap, the worst-case distance, and the largest
/// volume error possible on this grid (all foreground or none).
#[derive(Clone, Debug, Default)]
struct WorstValues {
    distance_mm: f64,
    volume_error_ml: Vec<f64>,
}

impl WorstValues {
    fn get(&self, metric: Metric, label_index: usize) -> f64 {
        match metric {
            Metric::Hd95
            | Metric::Hd95Medpy
            | Metric::Hd95Deepmind
            | Metric::Assd
            | Metric::AssdDeepmind => self.distance_mm,
            Metric::VolumeErrorMl => self.volume_error_ml[label_index],
            _ => 0.0,
        }
    }
}

fn worst_values(truth: &SparseLabels, labels: &[u8], declared_mm: Option<f64>) -> WorstValues {
    let g = truth.geometry;
    let voxel_ml = g.spacing_mm.iter().product::<f64>() / 1000.0;
    let total = g.voxels() as f64;
    let volume_error_ml = labels
        .iter()
        .map(|&label| {
            let n = truth.count(label) as f64;
            n.max(total - n) * voxel_ml
        })
        .collect();
    WorstValues {
        distance_mm: declared_mm.unwrap_or_else(|| diagonal_mm(&g)),
        volume_error_ml,
    }
}

/// The finding of a case whose mask `shown` went over podium's [`super::CaseBound`].
fn over_bound(shown: &str, label: u8, over: OverBudget, image_voxels: u64) -> String {
    let what = match over {
        OverBudget::Surface { voxels, limit } => format!(
            "label {label} has {voxels} surface voxels ({:.1} % of the image), more than the {limit} podium computes distances for",
            voxels as f64 * 100.0 / image_voxels as f64
        ),
        OverBudget::Surfels { surfels, limit } => format!(
            "label {label} has {surfels} surface elements on the voxel corners (for nsd; {:.1} % of the image), more than the {limit} podium computes distances for",
            surfels as f64 * 100.0 / image_voxels as f64
        ),
        OverBudget::Steps { limit } => format!(
            "its surface distances (hd95, nsd, assd and their other definitions) need more than the {limit} steps podium allows on this image"
        ),
    };
    format!(
        "scoring {shown} exceeded podium's per-case bound: {what}, so the case counts as an invalid mask. \
         Masks of connected regions stay far below the bound; voxels scattered over the image \
         (noise, a checkerboard) do not: write the segmentation as regions"
    )
}

/// The image diagonal, the default worst-case distance (Metrics Reloaded).
fn diagonal_mm(g: &Geometry) -> f64 {
    (0..3)
        .map(|i| (g.shape[i] as f64 * g.spacing_mm[i]).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// A segmentation task's settings, as the scorer needs them.
struct SegmentationSpec<'a> {
    prediction_dir: &'a str,
    truth_dir: &'a str,
    labels: &'a [u8],
    nsd_tolerance_mm: f64,
    worst_distance_mm: Option<f64>,
}

impl Context<'_> {
    pub fn score_task(&mut self, task: &Task) {
        match &task.spec {
            TaskSpec::Binary {
                prediction,
                truth,
                positive_class,
                target_specificity,
            } => self.binary(task, prediction, truth, positive_class, *target_specificity),
            TaskSpec::Multiclass {
                truth,
                classes,
                class_predictions,
            } => self.multiclass(task, truth, classes, class_predictions),
            TaskSpec::Segmentation {
                prediction_dir,
                truth_dir,
                labels,
                nsd_tolerance_mm,
                worst_distance_mm,
            } => self.segmentation(
                task,
                &SegmentationSpec {
                    prediction_dir,
                    truth_dir,
                    labels,
                    nsd_tolerance_mm: *nsd_tolerance_mm,
                    worst_distance_mm: *worst_distance_mm,
                },
            ),
            TaskSpec::Regression {
                prediction,
                truth,
                value_range,
            } => self.regression(task, prediction, truth, *value_range),
            TaskSpec::Ordinal {
                prediction,
                truth,
                levels,
            } => self.ordinal(task, prediction, truth, levels),
        }
    }

    fn primary(&mut self, task: &Task, values: PrimaryValues) {
        self.ranking
            .insert((self.submission.to_string(), task.name.clone()), values);
    }

    /// The primary metric as `statistic` over the scorer's kept cases (`kept[k]` = the round
    /// case index of its k-th value).
    fn primary_whole_set<F>(&mut self, task: &Task, kept: &[usize], statistic: F)
    where
        F: Fn(&[u32]) -> Option<f64> + Send + Sync + 'static,
    {
        let local = LocalStatistic::new(kept, self.truth.cases.len(), statistic);
        self.primary(task, PrimaryValues::WholeSet(std::sync::Arc::new(local)));
    }

    fn policy(&self) -> MissingPolicy {
        self.challenge.scoring.missing
    }

    fn bootstrap(&self) -> Option<intervals::BootstrapSpec> {
        let resamples = self.challenge.scoring.bootstrap_resamples;
        (resamples > 0).then_some(intervals::BootstrapSpec {
            resamples,
            seed: self.challenge.scoring.seed,
            confidence: 0.95,
        })
    }

    /// Why a case of this submission has no usable output at all, if it ran and failed.
    fn run_failure(&self, case_id: &str) -> Option<(CaseStatus, String)> {
        let record = self.runs?.get(case_id);
        match record {
            Some(r) if r.status.is_run_failure() => Some((
                r.status,
                format!("the run {}: {}", r.status.as_str(), r.team_message),
            )),
            _ => None,
        }
    }

    /// What the run's own check said about one file of the case (`file`, as the output
    /// folder names it), when it found that file absent or malformed: the merged predictions
    /// only show that the case's row or mask is not there, not why.
    fn run_finding(&self, case_id: &str, file: &str) -> Option<(CaseStatus, String)> {
        let record = self.runs?.get(case_id)?;
        if !matches!(record.status, CaseStatus::Missing | CaseStatus::Invalid) {
            return None;
        }
        let about_file: Vec<&str> = record
            .team_message
            .split("; ")
            .filter(|part| part.contains(file))
            .collect();
        (!about_file.is_empty()).then(|| (record.status, about_file.join("; ")))
    }

    fn resolve_cell<T>(
        &self,
        case_id: &str,
        column: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Resolved<T> {
        if let Some(failure) = self.run_failure(case_id) {
            return Err(failure);
        }
        match self.predictions.cell(case_id, column) {
            super::predictions::Cell::Value(v) => parse(v).map_err(|m| (CaseStatus::Invalid, m)),
            super::predictions::Cell::Missing(m) => Err(self
                .run_finding(case_id, "predictions.csv")
                .unwrap_or((CaseStatus::Missing, m))),
            super::predictions::Cell::Invalid(m) => Err((CaseStatus::Invalid, m)),
        }
    }

    fn problem(&mut self, task: &Task, case_id: &str, text: String) {
        self.problems.push(Problem {
            submission: self.submission.to_string(),
            case_id: case_id.to_string(),
            task: task.name.clone(),
            problem: text,
        });
    }

    /// Records the finding of a case that could not be used, and returns the value it enters
    /// the aggregates with (the worst one), or None when the policy excludes it.
    fn record_finding(&mut self, task: &Task, case_id: &str, finding: &(CaseStatus, String)) {
        // Failed runs are reported once per case, not once per task.
        if !finding.0.is_run_failure() {
            self.problem(task, case_id, finding.1.clone());
        }
    }

    fn fallback<P>(
        &mut self,
        task: &Task,
        case_id: &str,
        finding: &(CaseStatus, String),
        worst: P,
    ) -> Option<P> {
        self.record_finding(task, case_id, finding);
        match self.policy() {
            MissingPolicy::Worst => Some(worst),
            MissingPolicy::Exclude => None,
        }
    }

    fn truth_problem(&mut self, task: &Task, case_id: &str, column: &str, found: Option<&str>) {
        let text = match found {
            None => format!("the truth has no {column} for this case; the case is left out of the task (run `podium validate`)"),
            Some(v) => format!("the truth's {column} = {v:?} is not a value the task declares; the case is left out (run `podium validate`)"),
        };
        self.truth_finding(task, case_id, text);
    }

    /// Each submission meets the same truth, so a finding about it is recorded once.
    fn truth_finding(&mut self, task: &Task, case_id: &str, finding: String) {
        let finding = TruthFinding {
            case_id: case_id.to_string(),
            task: task.name.clone(),
            finding,
        };
        if !self.truth_findings.contains(&finding) {
            self.truth_findings.push(finding);
        }
    }

    fn case_score(
        &mut self,
        task: &Task,
        case_id: &str,
        metric: &str,
        value: Option<f64>,
        status: CaseStatus,
    ) {
        self.case_scores.push(CaseScore {
            submission: self.submission.to_string(),
            task: task.name.clone(),
            case_id: case_id.to_string(),
            metric: metric.to_string(),
            value,
            status,
        });
    }

    fn aggregate(
        &mut self,
        task: &Task,
        metric: &str,
        value: Option<f64>,
        ci: Option<(f64, f64)>,
        n: usize,
        method: &'static str,
    ) {
        self.aggregates.push(Aggregate {
            submission: self.submission.to_string(),
            task: task.name.clone(),
            metric: metric.to_string(),
            value,
            ci_lower: ci.map(|c| c.0),
            ci_upper: ci.map(|c| c.1),
            n,
            ci_method: if ci.is_some() { method } else { "" }.to_string(),
            note: crate::results::precision_note(n, value, ci, self.challenge.scoring.min_cases),
        });
    }

    /// [`Self::bootstrap_ci`] of a statistic of draw counts ([`intervals::bootstrap_ci_counts`]).
    fn bootstrap_ci_counts(
        &self,
        strata: &[usize],
        statistic: impl Fn(&[u32]) -> Option<f64> + Sync,
    ) -> Option<(f64, f64)> {
        let spec = self.bootstrap()?;
        intervals::bootstrap_ci_counts(strata, &spec, statistic)
    }

    /// Bootstrap interval of `statistic`, or None when bootstrapping is switched off.
    fn bootstrap_ci(
        &self,
        strata: &[usize],
        statistic: impl Fn(&[usize]) -> Option<f64> + Sync,
    ) -> Option<(f64, f64)> {
        let spec = self.bootstrap()?;
        intervals::bootstrap_ci(strata, &spec, statistic)
    }

    fn binary(
        &mut self,
        task: &Task,
        column: &str,
        truth_column: &str,
        positive: &str,
        target_specificity: f64,
    ) {
        let threshold = self.challenge.scoring.threshold;
        let mut truth: Vec<bool> = Vec::new();
        let mut scores: Vec<f64> = Vec::new();
        let n_cases = self.truth.cases.len();
        let (mut kept, mut round_scores, mut round_truth) =
            (Vec::new(), vec![None; n_cases], vec![false; n_cases]);
        for (case_index, case_id) in self.truth.cases.iter().enumerate() {
            let Some(truth_value) = self.truth.value(case_id, truth_column) else {
                self.truth_problem(task, case_id, truth_column, None);
                continue;
            };
            let is_positive = truth_value == positive;
            let resolved = self.resolve_cell(case_id, column, |v| parse_probability(column, v));
            let (predicted, status) = match resolved {
                Ok(p) => (Some(p), CaseStatus::Ok),
                // The most wrong probability: 0 for a positive case, 1 for a negative one.
                Err(finding) => (
                    self.fallback(task, case_id, &finding, if is_positive { 0.0 } else { 1.0 }),
                    finding.0,
                ),
            };
            let correct = predicted.map(|p| f64::from(u8::from((p >= threshold) == is_positive)));
            self.case_score(task, case_id, "correct", correct, status);
            if let Some(p) = predicted {
                truth.push(is_positive);
                scores.push(p);
                kept.push(case_index);
                round_scores[case_index] = Some(p);
                round_truth[case_index] = is_positive;
            }
        }
        let strata: Vec<usize> = truth.iter().map(|&t| usize::from(t)).collect();
        let n = truth.len();
        let counts = classification::binary_counts(&truth, &scores, threshold);
        // Sorted once: a resample's operating points then cost O(n).
        let sorted = weighted::SortedScores::new(&truth, &scores);
        for metric in &task.metrics {
            match metric {
                Metric::Auc => match roc::delong(&truth, &scores) {
                    Some(d) => self.aggregate(
                        task,
                        metric.name(),
                        Some(d.auc),
                        Some(d.ci95()),
                        n,
                        "delong",
                    ),
                    None => self.aggregate(task, metric.name(), None, None, n, ""),
                },
                Metric::Sensitivity => {
                    let ci = intervals::wilson(counts.tp, counts.positives());
                    self.aggregate(task, metric.name(), counts.sensitivity(), ci, n, "wilson");
                }
                Metric::Specificity => {
                    let ci = intervals::wilson(counts.tn, counts.negatives());
                    self.aggregate(task, metric.name(), counts.specificity(), ci, n, "wilson");
                }
                Metric::SensitivityAtSpecificity
                | Metric::YoudenThreshold
                | Metric::AveragePrecision => {
                    let stat = |t: &[bool], s: &[f64]| match metric {
                        Metric::SensitivityAtSpecificity => {
                            roc::sensitivity_at_specificity(t, s, target_specificity)
                        }
                        Metric::YoudenThreshold => {
                            roc::youden_threshold(t, s).map(|(threshold, _)| threshold)
                        }
                        _ => roc::average_precision(t, s),
                    };
                    let value = stat(&truth, &scores);
                    let on_counts = |counts: &[u32]| {
                        let sorted = sorted.as_ref()?;
                        match metric {
                            Metric::SensitivityAtSpecificity => {
                                sorted.roc_curve(counts).and_then(|c| {
                                    roc::sensitivity_at_specificity_on(&c, target_specificity)
                                })
                            }
                            Metric::YoudenThreshold => sorted
                                .roc_curve(counts)
                                .and_then(|c| roc::youden_threshold_on(&c))
                                .map(|(threshold, _)| threshold),
                            _ => sorted.average_precision(counts),
                        }
                    };
                    let ci = value.and_then(|_| self.bootstrap_ci_counts(&strata, on_counts));
                    self.aggregate(task, metric.name(), value, ci, n, "bootstrap");
                }
                _ => {}
            }
        }
        if let Some(curve) = roc::roc_curve(&truth, &scores) {
            self.curve(task, positive, &curve);
        }
        if task.primary == Metric::Auc {
            let auc = BinaryAuc::new(round_scores, round_truth);
            self.primary(task, PrimaryValues::WholeSet(std::sync::Arc::new(auc)));
        } else {
            let (primary, t_all, s_all) = (task.primary, truth.clone(), scores.clone());
            self.primary_whole_set(task, &kept, move |counts| {
                let idx = weighted::expand(counts);
                let (t, s): (Vec<bool>, Vec<f64>) =
                    idx.iter().map(|&i| (t_all[i], s_all[i])).unzip();
                match primary {
                    Metric::Sensitivity => {
                        classification::binary_counts(&t, &s, threshold).sensitivity()
                    }
                    Metric::Specificity => {
                        classification::binary_counts(&t, &s, threshold).specificity()
                    }
                    Metric::SensitivityAtSpecificity => {
                        roc::sensitivity_at_specificity(&t, &s, target_specificity)
                    }
                    Metric::AveragePrecision => roc::average_precision(&t, &s),
                    _ => classification::roc_auc(&t, &s),
                }
            });
        }
        let labels = [positive.to_string(), format!("not {positive}")];
        let name = |positive_call: bool| labels[usize::from(!positive_call)].clone();
        let truth_names: Vec<String> = truth.iter().map(|&t| name(t)).collect();
        let predicted_names: Vec<String> = scores.iter().map(|&p| name(p >= threshold)).collect();
        self.confusion(task, &labels, &truth_names, &predicted_names);
    }

    fn curve(&mut self, task: &Task, class: &str, curve: &[roc::RocPoint]) {
        self.curves.extend(curve.iter().map(|p| CurvePoint {
            submission: self.submission.to_string(),
            task: task.name.clone(),
            class: class.to_string(),
            threshold: p.threshold,
            fpr: p.fpr,
            tpr: p.tpr,
        }));
    }

    /// Appends the full confusion matrix over `labels` (zero cells included, so that every
    /// matrix is complete for plotting).
    fn confusion(
        &mut self,
        task: &Task,
        labels: &[String],
        truth: &[String],
        predicted: &[String],
    ) {
        for t in labels {
            for p in labels {
                let count = truth
                    .iter()
                    .zip(predicted)
                    .filter(|(a, b)| *a == t && *b == p)
                    .count() as u64;
                self.confusion.push(ConfusionCell {
                    submission: self.submission.to_string(),
                    task: task.name.clone(),
                    truth: t.clone(),
                    predicted: p.clone(),
                    count,
                });
            }
        }
    }

    fn multiclass(
        &mut self,
        task: &Task,
        truth_column: &str,
        classes: &[String],
        columns: &[String],
    ) {
        let k = classes.len();
        let mut truth: Vec<usize> = Vec::new();
        let mut scores: Vec<Vec<f64>> = Vec::new();
        let mut kept = Vec::new();
        for (case_index, case_id) in self.truth.cases.iter().enumerate() {
            let truth_value = self.truth.value(case_id, truth_column);
            let Some(t) = truth_value.and_then(|v| classes.iter().position(|c| c == v)) else {
                self.truth_problem(task, case_id, truth_column, truth_value);
                continue;
            };
            let mut resolved: Resolved<Vec<f64>> = Ok(Vec::with_capacity(k));
            for column in columns {
                let cell = self.resolve_cell(case_id, column, |v| parse_probability(column, v));
                resolved = match (resolved, cell) {
                    (Ok(mut v), Ok(p)) => {
                        v.push(p);
                        Ok(v)
                    }
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                };
            }
            let (predicted, status) = match resolved {
                Ok(v) => (Some(v), CaseStatus::Ok),
                // Worst: the true class scores lowest, every other class highest.
                Err(finding) => {
                    let worst = (0..k).map(|c| if c == t { 0.0 } else { 1.0 }).collect();
                    (self.fallback(task, case_id, &finding, worst), finding.0)
                }
            };
            let correct = predicted
                .as_ref()
                .map(|v| f64::from(u8::from(classification::argmax(v) == Some(t))));
            self.case_score(task, case_id, "correct", correct, status);
            if let Some(v) = predicted {
                truth.push(t);
                scores.push(v);
                kept.push(case_index);
            }
        }
        let predicted: Vec<usize> = scores
            .iter()
            .map(|v| classification::argmax(v).unwrap_or(0))
            .collect();
        // Sorted and paired once: a resample then costs O(n).
        let one_vs_rest = weighted::OneVsRest::new(&truth, &scores, k);
        let pairs = weighted::LabelPairs::new(&truth, &predicted);
        let n = truth.len();
        for metric in &task.metrics {
            let (value, ci) = match metric {
                Metric::MacroAuc => {
                    let value = classification::macro_auc_ovr(&truth, &scores, k).macro_auc;
                    let ci = value.and_then(|_| {
                        let ovr = one_vs_rest.as_ref()?;
                        self.bootstrap_ci_counts(&truth, |counts| ovr.macro_auc(counts))
                    });
                    (value, ci)
                }
                Metric::BalancedAccuracy | Metric::Accuracy => {
                    let stat = |t: &[usize], p: &[usize]| {
                        if *metric == Metric::Accuracy {
                            ordinal::accuracy(t, p)
                        } else {
                            classification::balanced_accuracy(t, p, k)
                        }
                    };
                    let value = stat(&truth, &predicted);
                    let ci = value.and_then(|_| {
                        let pairs = pairs.as_ref()?;
                        self.bootstrap_ci_counts(&truth, |counts| {
                            if *metric == Metric::Accuracy {
                                pairs.accuracy(counts)
                            } else {
                                pairs.balanced_accuracy(counts, k)
                            }
                        })
                    });
                    (value, ci)
                }
                _ => continue,
            };
            self.aggregate(task, metric.name(), value, ci, n, "bootstrap");
        }
        let primary = task.primary;
        let (one_vs_rest, pairs) = (one_vs_rest.clone(), pairs.clone());
        self.primary_whole_set(task, &kept, move |counts| match primary {
            Metric::MacroAuc => one_vs_rest.as_ref()?.macro_auc(counts),
            Metric::Accuracy => pairs.as_ref()?.accuracy(counts),
            _ => pairs.as_ref()?.balanced_accuracy(counts, k),
        });
        let ovr = classification::macro_auc_ovr(&truth, &scores, k);
        for (c, class) in classes.iter().enumerate() {
            if ovr.excluded_classes.contains(&c) {
                continue;
            }
            let t: Vec<bool> = truth.iter().map(|&x| x == c).collect();
            let s: Vec<f64> = scores.iter().map(|v| v[c]).collect();
            if let Some(curve) = roc::roc_curve(&t, &s) {
                self.curve(task, class, &curve);
            }
        }
        if !ovr.excluded_classes.is_empty() && !truth.is_empty() {
            let names: Vec<&str> = ovr
                .excluded_classes
                .iter()
                .map(|&c| classes[c].as_str())
                .collect();
            let text = format!(
                "class {} has no case (or no other class) in the truth of this phase: macro_auc averages the one-vs-rest AUCs of the other classes",
                names.join(", ")
            );
            self.truth_finding(task, "*", text);
        }
        let name = |i: &usize| classes[*i].clone();
        let (t, p): (Vec<String>, Vec<String>) = truth
            .iter()
            .map(name)
            .zip(predicted.iter().map(name))
            .unzip();
        self.confusion(task, classes, &t, &p);
    }

    fn segmentation(&mut self, task: &Task, spec: &SegmentationSpec) {
        let wanted: Vec<Metric> = task
            .metrics
            .iter()
            .copied()
            .filter(|m| m.is_per_case())
            .collect();
        let needs_boundary = wanted.iter().any(|m| {
            matches!(
                m,
                Metric::Hd95 | Metric::Hd95Medpy | Metric::NsdVoxels | Metric::Assd
            )
        });
        let needs_surfels = wanted
            .iter()
            .any(|m| matches!(m, Metric::Nsd | Metric::Hd95Deepmind | Metric::AssdDeepmind));
        let labels = spec.labels;
        // Masks are read and compared in parallel; each worker holds at most two volumes, so
        // memory is bounded by the worker count, not the case count.
        let per_case: Vec<MaskComparison> = self
            .truth
            .cases
            .par_iter()
            .map(|case_id| {
                let truth_path = self.phase.truth_mask(spec.truth_dir, case_id);
                let truth = match self.truth.masks.truth_mask(&truth_path) {
                    Ok(t) => t,
                    Err(e) => return (case_id.clone(), Err(format!("truth mask: {e}"))),
                };
                // A prediction is written on the image's grid, so it is checked against the
                // image; a truth on another grid is the organizer's error, not the team's.
                let image_path = self.phase.image(case_id);
                let image_shape = match self.truth.masks.image_shape(&image_path) {
                    Ok(shape) => shape,
                    Err(e) => return (case_id.clone(), Err(format!("image: {e}"))),
                };
                if truth.geometry.shape != image_shape {
                    return (
                        case_id.clone(),
                        Err(format!(
                            "truth mask {} has shape {:?} but the image has {image_shape:?}",
                            truth_path.display(),
                            truth.geometry.shape
                        )),
                    );
                }
                let geometry = truth.geometry;
                let worst = || worst_values(&truth, labels, spec.worst_distance_mm);
                if let Some(failure) = self.run_failure(case_id) {
                    return (case_id.clone(), Ok((Err(failure), worst())));
                }
                let path = self.predictions.mask(spec.prediction_dir, case_id);
                let shown = format!("{}/{case_id}.nii.gz", spec.prediction_dir);
                if !path.exists() {
                    let (status, mut text) = self
                        .run_finding(case_id, &shown)
                        .unwrap_or_else(|| (CaseStatus::Missing, format!("no mask {shown}")));
                    // Said, so that a team does not go looking for a CSV problem too.
                    if self.predictions.has_row(case_id) {
                        text.push_str("; the case's row in predictions.csv is fine");
                    }
                    return (case_id.clone(), Ok((Err((status, text)), worst())));
                }
                // The team's header is checked against the truth's grid before any voxel is
                // decoded, so a mask claiming a huge volume costs nothing.
                let predicted =
                    match crate::io::nifti::read_sparse_labels_expecting(&path, image_shape) {
                        Ok(p) => p,
                        Err(e) => {
                            let text = e.to_string().replace(&path.display().to_string(), &shown);
                            return (
                                case_id.clone(),
                                Ok((Err((CaseStatus::Invalid, text)), worst())),
                            );
                        }
                    };
                // Both masks are zero outside the box around their labels, so every metric
                // computed inside that box equals the one over the whole image, at a fraction
                // of the memory and time.
                let frame = match (truth.bounding_box(), predicted.bounding_box()) {
                    (Some(a), Some(b)) => a.union(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => VoxelBox {
                        min: [0; 3],
                        max: [1; 3],
                    },
                };
                let t = truth.to_dense(frame);
                let p = predicted.to_dense(frame);
                let voxel_ml = geometry.spacing_mm.iter().product::<f64>() / 1000.0;
                let boundary_spec = BoundarySpec {
                    shape: frame.shape(),
                    spacing_mm: geometry.spacing_mm,
                    nsd_tolerance_mm: spec.nsd_tolerance_mm,
                    worst_distance_mm: spec
                        .worst_distance_mm
                        .unwrap_or_else(|| diagonal_mm(&geometry)),
                };
                // One budget for every label of the case, so the case as a whole is bounded.
                let image_voxels = geometry.voxels() as u64;
                let bound = self.challenge.scoring.case_bound;
                let budget = WorkBudget::new(
                    bound.max_surface_voxels(image_voxels),
                    bound.max_steps(image_voxels, labels.len()),
                );
                let mut values = Vec::with_capacity(labels.len());
                for &label in labels {
                    let o = segmentation::overlap(&p, &t, label).unwrap_or_default();
                    let (b, s) = if needs_boundary || needs_surfels {
                        match distance::both_definitions_within(
                            &p,
                            &t,
                            label,
                            &boundary_spec,
                            &budget,
                            [needs_boundary, needs_surfels],
                        ) {
                            Some(Ok(both)) => both,
                            Some(Err(over)) => {
                                let text = over_bound(&shown, label, over, image_voxels);
                                return (
                                    case_id.clone(),
                                    Ok((Err((CaseStatus::Invalid, text)), worst())),
                                );
                            }
                            None => (None, None),
                        }
                    } else {
                        (None, None)
                    };
                    values.push(LabelValues {
                        dice: o.dice(),
                        iou: o.iou(),
                        hd95: b.map_or(f64::NAN, |b| b.hd95_mm),
                        hd95_medpy: b.map_or(f64::NAN, |b| b.hd95_pooled_mm),
                        hd95_deepmind: s.map_or(f64::NAN, |s| s.hd95_mm),
                        nsd: s.map_or(f64::NAN, |s| s.nsd),
                        nsd_voxels: b.map_or(f64::NAN, |b| b.nsd_voxels),
                        assd: b.map_or(f64::NAN, |b| b.assd_mm),
                        assd_deepmind: s.map_or(f64::NAN, |s| s.assd_mm),
                        volume_error_ml: (o.predicted as f64 - o.truth as f64).abs() * voxel_ml,
                    });
                }
                (case_id.clone(), Ok((Ok(values), WorstValues::default())))
            })
            .collect();

        let name = |metric: Metric, label: u8| {
            if labels.len() == 1 {
                metric.name().to_string()
            } else {
                format!("{}_{label}", metric.name())
            }
        };
        // values[metric][label] = the per-case values entering the aggregate
        let mut values: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); labels.len()]; wanted.len()];
        let mut primary_values: Vec<Option<f64>> = vec![None; per_case.len()];
        for (case_index, (case_id, result)) in per_case.into_iter().enumerate() {
            let (result, worst) = match result {
                Ok(r) => r,
                Err(error) => {
                    self.truth_finding(
                        task,
                        &case_id,
                        format!("{error}; the case is left out of the task"),
                    );
                    continue;
                }
            };
            if let Err(finding) = &result {
                // One problem per case, not one per metric and label.
                self.record_finding(task, &case_id, finding);
            }
            let keep = self.policy() == MissingPolicy::Worst;
            for (m, metric) in wanted.iter().enumerate() {
                for (l, &label) in labels.iter().enumerate() {
                    let (value, status) = match &result {
                        Ok(per_label) => (Some(per_label[l].get(*metric)), CaseStatus::Ok),
                        Err(finding) => (keep.then(|| worst.get(*metric, l)), finding.0),
                    };
                    self.case_score(task, &case_id, &name(*metric, label), value, status);
                    if let Some(v) = value {
                        values[m][l].push(v);
                    }
                }
                if *metric == task.primary {
                    // The per-case mean over labels, as the task's value averages.
                    let per_label: Option<Vec<f64>> = labels
                        .iter()
                        .enumerate()
                        .map(|(l, _)| match &result {
                            Ok(per_label) => Some(per_label[l].get(*metric)),
                            Err(_) => keep.then(|| worst.get(*metric, l)),
                        })
                        .collect();
                    primary_values[case_index] =
                        per_label.map(|v| v.iter().sum::<f64>() / labels.len() as f64);
                }
            }
        }
        self.primary(task, PrimaryValues::PerCase(primary_values));
        for (m, metric) in wanted.iter().enumerate() {
            // The task's value is the mean over cases of the per-case mean over labels.
            let cases = values[m].first().map_or(0, Vec::len);
            let per_case_mean: Vec<f64> = (0..cases)
                .map(|i| values[m].iter().map(|v| v[i]).sum::<f64>() / labels.len() as f64)
                .collect();
            if labels.len() > 1 {
                for (l, &label) in labels.iter().enumerate() {
                    let v = values[m][l].clone();
                    self.mean_aggregate(task, &name(*metric, label), &v);
                }
            }
            self.mean_aggregate(task, metric.name(), &per_case_mean);
        }
    }

    fn mean_aggregate(&mut self, task: &Task, metric: &str, values: &[f64]) {
        let mean = |idx: &[usize]| {
            (!idx.is_empty())
                .then(|| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64)
        };
        let all: Vec<usize> = (0..values.len()).collect();
        let value = mean(&all);
        let ci = value.and_then(|_| self.bootstrap_ci(&vec![0; values.len()], mean));
        self.aggregate(task, metric, value, ci, values.len(), "bootstrap");
    }

    fn regression(
        &mut self,
        task: &Task,
        column: &str,
        truth_column: &str,
        (low, high): (f64, f64),
    ) {
        let mut truth = Vec::new();
        let mut predicted = Vec::new();
        let mut kept = Vec::new();
        let mut abs_errors = vec![None; self.truth.cases.len()];
        for (case_index, case_id) in self.truth.cases.iter().enumerate() {
            let truth_value = self.truth.value(case_id, truth_column);
            let Some(t) = truth_value
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|t| t.is_finite())
            else {
                self.truth_problem(task, case_id, truth_column, truth_value);
                continue;
            };
            let resolved = self.resolve_cell(case_id, column, |v| {
                let x = parse_number(column, v)?;
                if !(low..=high).contains(&x) {
                    return Err(format!(
                        "{column} = {v} lies outside the declared range [{low}, {high}]"
                    ));
                }
                Ok(x)
            });
            let (value, status) = match resolved {
                Ok(x) => (Some(x), CaseStatus::Ok),
                // Worst: the end of the range farthest from the truth.
                Err(finding) => {
                    let worst = if t - low > high - t { low } else { high };
                    (self.fallback(task, case_id, &finding, worst), finding.0)
                }
            };
            self.case_score(
                task,
                case_id,
                "abs_error",
                value.map(|x| (x - t).abs()),
                status,
            );
            if let Some(x) = value {
                truth.push(t);
                predicted.push(x);
                kept.push(case_index);
                abs_errors[case_index] = Some((x - t).abs());
                self.values.push(PairedValue {
                    submission: self.submission.to_string(),
                    task: task.name.clone(),
                    case_id: case_id.clone(),
                    truth: t,
                    predicted: x,
                    status,
                });
            }
        }
        if task.primary == Metric::Mae {
            self.primary(task, PrimaryValues::PerCase(abs_errors));
        } else {
            let (primary, p_all, t_all) = (task.primary, predicted.clone(), truth.clone());
            self.primary_whole_set(task, &kept, move |counts| {
                let (p, t): (Vec<f64>, Vec<f64>) = weighted::expand(counts)
                    .into_iter()
                    .map(|i| (p_all[i], t_all[i]))
                    .unzip();
                match primary {
                    Metric::Rmse => regression::rmse(&p, &t),
                    Metric::PearsonR => agreement::pearson_r(&p, &t),
                    _ => regression::mae(&p, &t),
                }
            });
        }
        let n = truth.len();
        let strata = vec![0; n];
        // A resample's errors without a copy: O(n) each.
        let errors = weighted::Errors::new(&predicted, &truth);
        for metric in &task.metrics {
            if *metric == Metric::PearsonR {
                let r = agreement::pearson_r(&predicted, &truth);
                let ci = r.and_then(|r| agreement::pearson_ci95(r, n));
                self.aggregate(task, metric.name(), r, ci, n, "fisher-z");
                continue;
            }
            let stat = |p: &[f64], t: &[f64]| match metric {
                Metric::Mae => regression::mae(p, t),
                Metric::Rmse => regression::rmse(p, t),
                Metric::Bias => agreement::bland_altman(p, t).map(|b| b.bias),
                Metric::LoaLower => agreement::bland_altman(p, t).map(|b| b.loa_lower),
                Metric::LoaUpper => agreement::bland_altman(p, t).map(|b| b.loa_upper),
                _ => None,
            };
            let value = stat(&predicted, &truth);
            let counted = |counts: &[u32]| {
                let errors = errors.as_ref()?;
                match metric {
                    Metric::Mae => errors.mae(counts),
                    Metric::Rmse => errors.rmse(counts),
                    Metric::Bias => errors.bland_altman(counts).map(|b| b.bias),
                    Metric::LoaLower => errors.bland_altman(counts).map(|b| b.loa_lower),
                    Metric::LoaUpper => errors.bland_altman(counts).map(|b| b.loa_upper),
                    _ => None,
                }
            };
            let ci = value.and_then(|_| self.bootstrap_ci_counts(&strata, counted));
            self.aggregate(task, metric.name(), value, ci, n, "bootstrap");
        }
    }

    fn ordinal(&mut self, task: &Task, column: &str, truth_column: &str, levels: &[String]) {
        let n_levels = levels.len();
        let mut truth = Vec::new();
        let mut predicted = Vec::new();
        let mut kept = Vec::new();
        for (case_index, case_id) in self.truth.cases.iter().enumerate() {
            let truth_value = self.truth.value(case_id, truth_column);
            let Some(t) = truth_value.and_then(|v| level_index(levels, v)) else {
                self.truth_problem(task, case_id, truth_column, truth_value);
                continue;
            };
            let resolved = self.resolve_cell(case_id, column, |v| {
                level_index(levels, v).ok_or_else(|| {
                    let kind = if v.parse::<f64>().is_ok_and(|x| x.fract() != 0.0) {
                        "is not an integer stage"
                    } else {
                        "is not a declared level"
                    };
                    format!(
                        "{column} = {v:?} {kind}; expected one of {}",
                        levels.join(", ")
                    )
                })
            });
            let (value, status) = match resolved {
                Ok(p) => (Some(p), CaseStatus::Ok),
                Err(finding) => {
                    let worst = if t * 2 < n_levels { n_levels - 1 } else { 0 };
                    (self.fallback(task, case_id, &finding, worst), finding.0)
                }
            };
            self.case_score(
                task,
                case_id,
                "abs_error",
                value.map(|p| p.abs_diff(t) as f64),
                status,
            );
            if let Some(p) = value {
                truth.push(t);
                predicted.push(p);
                kept.push(case_index);
            }
        }
        // Paired once: a resample's kappa then costs O(n).
        let pairs = weighted::LabelPairs::new(&truth, &predicted);
        let counted = move |counts: &[u32], metric: Metric| {
            let pairs = pairs.as_ref()?;
            match metric {
                Metric::QuadraticKappa => {
                    pairs.weighted_kappa(counts, n_levels, ordinal::KappaWeights::Quadratic)
                }
                Metric::LinearKappa => {
                    pairs.weighted_kappa(counts, n_levels, ordinal::KappaWeights::Linear)
                }
                _ => pairs.accuracy(counts),
            }
        };
        let primary = task.primary;
        let for_ranking = counted.clone();
        self.primary_whole_set(task, &kept, move |counts| for_ranking(counts, primary));
        let n = truth.len();
        for metric in &task.metrics {
            let stat = |t: &[usize], p: &[usize]| match metric {
                Metric::QuadraticKappa => {
                    ordinal::weighted_kappa(t, p, n_levels, ordinal::KappaWeights::Quadratic)
                }
                Metric::LinearKappa => {
                    ordinal::weighted_kappa(t, p, n_levels, ordinal::KappaWeights::Linear)
                }
                _ => ordinal::accuracy(t, p),
            };
            if !matches!(
                metric,
                Metric::QuadraticKappa | Metric::LinearKappa | Metric::Accuracy
            ) {
                continue;
            }
            let value = stat(&truth, &predicted);
            let ci = value
                .and_then(|_| self.bootstrap_ci_counts(&truth, |counts| counted(counts, *metric)));
            self.aggregate(task, metric.name(), value, ci, n, "bootstrap");
        }
        let name = |i: &usize| levels[*i].clone();
        let (t, p): (Vec<String>, Vec<String>) = truth
            .iter()
            .map(name)
            .zip(predicted.iter().map(name))
            .unzip();
        self.confusion(task, levels, &t, &p);
    }
}

fn parse_number(column: &str, text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(x) => Err(format!("{column} = {x} is not a finite number")),
        Err(_) => Err(format!("{column} = {text:?} is not a number")),
    }
}

fn parse_probability(column: &str, text: &str) -> Result<f64, String> {
    let p = parse_number(column, text)?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("{column} = {text} is not a probability in [0, 1]"));
    }
    Ok(p)
}

/// The position of a value among the declared levels. Integer levels also match numeric
/// spellings of the same integer (`2.0` for `2`), a harmless variant of spreadsheets.
fn level_index(levels: &[String], value: &str) -> Option<usize> {
    if let Some(i) = levels.iter().position(|l| l == value) {
        return Some(i);
    }
    let x = value.parse::<f64>().ok().filter(|x| x.fract() == 0.0)?;
    levels.iter().position(|l| l.parse::<f64>().ok() == Some(x))
}
