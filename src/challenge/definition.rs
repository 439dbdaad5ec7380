//! The serde shape of `challenge.toml`. Strict: every table rejects unknown keys, so a typo
//! such as `primery = "auc"` is an error instead of a silently ignored line.

use serde::{Deserialize, Serialize};

use super::{Metric, Task, TaskKind, TaskSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChallengeFile {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub scoring: ScoringSettings,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub ranking: RankingSettings,
    #[serde(default)]
    pub leaderboard: LeaderboardSettings,
    pub cluster: Option<ClusterSettings>,
    #[serde(default)]
    pub analysis: AnalysisSettings,
    #[serde(default)]
    pub phases: Vec<PhaseDef>,
    #[serde(default)]
    pub tasks: Vec<TaskFile>,
}

/// What a missing or invalid prediction becomes (docs/metrics.md, "Missing and invalid predictions").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingPolicy {
    /// The case stays in every aggregate with the worst value its task allows.
    #[default]
    Worst,
    /// The case is left out of the aggregates (and reported), as some challenges prefer.
    Exclude,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringSettings {
    /// A probability `>= threshold` is a positive call.
    pub threshold: f64,
    pub missing: MissingPolicy,
    pub bootstrap_resamples: usize,
    pub seed: u64,
    /// An aggregate over fewer cases than this is shown with a note (`few cases (3 < 10)`) in
    /// metrics.csv, the leaderboard and the report, so that it does not look precise.
    pub min_cases: usize,
    /// podium's, not the organizers': not read from `challenge.toml` (a key of that name is
    /// refused as unknown) and not written to `run.json`.
    #[serde(skip)]
    pub case_bound: super::CaseBound,
}

impl Default for ScoringSettings {
    fn default() -> Self {
        ScoringSettings {
            threshold: 0.5,
            missing: MissingPolicy::Worst,
            bootstrap_resamples: 1000,
            seed: 20201,
            min_cases: 10,
            case_bound: super::CaseBound::default(),
        }
    }
}

impl ScoringSettings {
    pub(super) fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.threshold.is_finite() && (0.0..=1.0).contains(&self.threshold)) {
            problems.push(format!(
                "[scoring] threshold = {} must lie in [0, 1]",
                self.threshold
            ));
        }
        if self.bootstrap_resamples > 1_000_000 {
            problems.push(format!(
                "[scoring] bootstrap_resamples = {} is more than the 1000000 podium accepts",
                self.bootstrap_resamples
            ));
        }
        problems
    }
}

/// `[analysis]`: the subgroups every aggregate is also computed on (docs/metrics.md,
/// "Subgroups"). Their columns come from the truth's `metadata.csv`, which teams never get.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisSettings {
    /// Columns of `truth/metadata.csv` whose values (levels) split the cases into subgroups.
    pub subgroups: Vec<String>,
    /// A level with fewer cases is reported as "too few cases", not as a number.
    pub min_cases: usize,
    /// For a classification task, a level where any class has fewer cases is reported as
    /// "too few cases": a per-level value otherwise ranks levels by what their split contains.
    pub min_class_support: usize,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            subgroups: Vec::new(),
            min_cases: 10,
            min_class_support: 5,
        }
    }
}

impl AnalysisSettings {
    pub(super) fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for column in &self.subgroups {
            if column.trim().is_empty() || column == "case_id" {
                problems.push(format!(
                    "[analysis] subgroups names {column:?}; name a column of truth/metadata.csv other than case_id"
                ));
            } else if !seen.insert(column) {
                problems.push(format!(
                    "[analysis] subgroups names {column:?} twice; remove the repeat"
                ));
            }
        }
        if self.min_class_support == 0 {
            problems.push(
                "[analysis] min_class_support = 0 would report an AUC on a level with one class; give at least 1"
                    .to_string(),
            );
        }
        if self.min_cases == 0 {
            problems.push(
                "[analysis] min_cases = 0 would report a level without cases; give at least 1"
                    .to_string(),
            );
        }
        problems
    }
}

/// How submissions are ranked (docs/ranking.md). The method can be overridden on the command
/// line, so judges can compare.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RankingSettings {
    pub method: super::RankingMethod,
    /// Weight of each task in the consensus (the weighted mean of task ranks); a task not
    /// listed weighs 1.
    pub weights: std::collections::BTreeMap<String, f64>,
    /// Resamples of the rank-stability bootstrap over cases; 0 switches it off.
    pub bootstrap_resamples: usize,
    /// Significance level of the pairwise tests, after Holm's correction.
    pub alpha: f64,
    /// Whether a Holm-adjusted p equal to `alpha` is a win: "p < alpha" (default, scipy-style
    /// scripts) or "p <= alpha" (challengeR).
    pub significant_if: super::SignificanceRule,
    /// Continuity correction in the Wilcoxon test's normal approximation: false (default,
    /// scipy's `correction=False`) or true (R's `wilcox.test` default, which challengeR uses).
    pub wilcoxon_continuity_correction: bool,
    pub seed: u64,
}

impl Default for RankingSettings {
    fn default() -> Self {
        RankingSettings {
            method: super::RankingMethod::MeanThenRank,
            weights: std::collections::BTreeMap::new(),
            bootstrap_resamples: 1000,
            alpha: 0.05,
            significant_if: super::SignificanceRule::default(),
            wilcoxon_continuity_correction: false,
            seed: 20201,
        }
    }
}

impl RankingSettings {
    /// `declared`: the name of every `[[tasks]]` table, those with errors of their own too,
    /// so that one mistake in a task is not also reported as an undeclared task here.
    pub(super) fn check(&self, declared: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        for (task, weight) in &self.weights {
            if !declared.contains(task) {
                let names: Vec<&str> = declared.iter().map(String::as_str).collect();
                problems.push(format!(
                    "[ranking] weights names task {task:?}, which is not declared; the tasks are: {}",
                    names.join(", ")
                ));
            }
            if !(weight.is_finite() && *weight >= 0.0) {
                problems.push(format!(
                    "[ranking] weights.{task} = {weight} must be a number >= 0"
                ));
            }
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            problems.push(format!(
                "[ranking] alpha = {} must lie strictly between 0 and 1",
                self.alpha
            ));
        }
        if self.bootstrap_resamples > 1_000_000 {
            problems.push(format!(
                "[ranking] bootstrap_resamples = {} is more than the 1000000 podium accepts",
                self.bootstrap_resamples
            ));
        }
        problems
    }
}

/// `[cluster]`: run the rounds on a cluster's scheduler (docs/slurm.md). With this table,
/// `podium run` hands every case to Slurm unless `--backend` says otherwise.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// The scheduler; only `slurm` for now.
    pub scheduler: Scheduler,
    /// `sbatch --partition`, when the cluster's default partition is not the one.
    pub partition: Option<String>,
    /// `sbatch --account`.
    pub account: Option<String>,
    /// More `sbatch` arguments, as given (for example `["--qos=hackathon"]`).
    pub sbatch_args: Vec<String>,
    /// Cases per Slurm job: each submission's cases become one job array of
    /// ceil(cases / cases_per_job) tasks.
    pub cases_per_job: usize,
    /// `sbatch --mem`, in MB. Default: `[limits] memory_mb` plus 256 for podium and the
    /// sandbox on the node, so that podium's own limit, not Slurm's, ends a case that takes
    /// too much and says so precisely.
    pub job_memory_mb: Option<u64>,
    /// How cases run inside a job on the node: `auto` (the sandbox when bubblewrap works there),
    /// `sandbox` or `process`. Docker submissions use the node's Docker engine.
    pub node_backend: super::BackendKind,
    /// Times a job lost to the infrastructure (NODE_FAIL, BOOT_FAIL, PREEMPTED) is submitted
    /// again before its cases count as failed.
    pub resubmissions: u32,
    /// Seconds between two looks at the queue.
    pub poll_interval_s: f64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            scheduler: Scheduler::Slurm,
            partition: None,
            account: None,
            sbatch_args: Vec::new(),
            cases_per_job: 1,
            job_memory_mb: None,
            node_backend: super::BackendKind::Auto,
            resubmissions: 3,
            poll_interval_s: 1.0,
        }
    }
}

impl ClusterSettings {
    pub(super) fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.cases_per_job == 0 {
            problems.push("[cluster] cases_per_job = 0: a job needs at least one case".into());
        }
        if !(self.poll_interval_s.is_finite() && self.poll_interval_s > 0.0) {
            problems.push(format!(
                "[cluster] poll_interval_s = {} must be a positive number of seconds",
                self.poll_interval_s
            ));
        }
        if self.node_backend == super::BackendKind::Slurm {
            problems.push(
                "[cluster] node_backend = \"slurm\": the nodes run cases locally; use auto, sandbox or process".into(),
            );
        }
        if self.job_memory_mb == Some(0) {
            problems.push("[cluster] job_memory_mb = 0 leaves a job no memory".into());
        }
        problems
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    #[default]
    Slurm,
}

/// Which of a team's submissions count on a phase's leaderboard, and how many it may send.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderboardSettings {
    /// `best` (the team's best-ranked submission) or `latest`; a team's submissions marked
    /// `final = true` take precedence over both.
    pub select: SubmissionChoice,
    /// Submissions a team may have evaluated per `quota_period` on a phase; none when absent.
    pub quota: Option<usize>,
    pub quota_period: QuotaPeriod,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubmissionChoice {
    #[default]
    Best,
    Latest,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuotaPeriod {
    /// A UTC calendar day.
    Day,
    /// A week starting on Monday, 00:00 UTC.
    Week,
    /// The whole phase.
    #[default]
    Phase,
}

/// Resource limits of one submission. The same numbers apply on a team's laptop (`podium run`
/// on the dev phase) and on the organizers' server, because both read them from here.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub wall_time_per_case_s: f64,
    pub wall_time_per_submission_s: f64,
    /// Wall-clock limit of a submission's `build` command (run once, before its cases, with
    /// a case's other limits).
    pub build_time_s: f64,
    /// Seconds between SIGTERM and SIGKILL when a limit is hit.
    pub grace_period_s: f64,
    pub memory_mb: u64,
    pub cpus: u32,
    pub output_mb: u64,
    /// Bytes of stdout and of stderr kept per case; the rest is counted and dropped.
    pub log_kb: u64,
    pub network: bool,
    /// Size of `/dev/shm` in a Docker container (PyTorch data loaders need more than Docker's
    /// 64 MB default). The sandbox gives a private tmpfs `/dev/shm` bounded by `memory_mb`.
    pub shm_mb: u64,
    /// GPUs each case gets: each slot of the round has its own `gpus` of the machine's, bound
    /// alone into the sandbox, selected for the process backend, asked by id from Docker
    /// (docs/contract.md, "Limits").
    pub gpus: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall_time_per_case_s: 300.0,
            wall_time_per_submission_s: 3600.0,
            build_time_s: 900.0,
            grace_period_s: 5.0,
            memory_mb: 4096,
            cpus: 1,
            output_mb: 1024,
            log_kb: 256,
            network: false,
            shm_mb: 64,
            gpus: 0,
        }
    }
}

impl Limits {
    pub(super) fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("wall_time_per_case_s", self.wall_time_per_case_s),
            (
                "wall_time_per_submission_s",
                self.wall_time_per_submission_s,
            ),
            ("build_time_s", self.build_time_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                problems.push(format!(
                    "[limits] {key} = {value} must be a positive number of seconds"
                ));
            }
        }
        if !(self.grace_period_s.is_finite() && self.grace_period_s >= 0.0) {
            problems.push(format!(
                "[limits] grace_period_s = {} must be zero or more seconds",
                self.grace_period_s
            ));
        }
        if self.cpus == 0 {
            problems.push("[limits] cpus must be at least 1".into());
        }
        if self.shm_mb == 0 {
            problems.push("[limits] shm_mb must be at least 1 (MB of /dev/shm)".into());
        }
        problems
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Visibility {
    /// Teams get the inputs and the truth (a development split).
    Public,
    /// Only organizers see the truth; teams see scores at most.
    #[default]
    Hidden,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseDef {
    pub name: String,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub description: String,
    /// Share of a hidden phase's cases on the live (public) leaderboard, Kaggle style; the
    /// others form the private split, revealed by `podium leaderboard --final`. A
    /// `splits.csv` (`case_id,split`) in the phase's truth folder assigns them by hand instead.
    #[serde(default)]
    pub public_fraction: Option<f64>,
    /// Seed of the public/private assignment (default: `[scoring] seed`).
    #[serde(default)]
    pub split_seed: Option<u64>,
}

/// One `[[tasks]]` table as written. Which keys are required depends on `kind`; that check
/// lives in [`TaskFile::into_task`] so its messages can say what the kind needs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TaskFile {
    pub name: String,
    pub kind: TaskKind,
    pub prediction: Option<String>,
    pub truth: Option<String>,
    pub positive_class: Option<String>,
    pub classes: Option<Vec<String>>,
    pub class_predictions: Option<Vec<String>>,
    pub labels: Option<Vec<u8>>,
    pub value_range: Option<[f64; 2]>,
    pub levels: Option<Vec<String>>,
    pub target_specificity: Option<f64>,
    pub nsd_tolerance_mm: Option<f64>,
    pub worst_distance_mm: Option<f64>,
    pub metrics: Vec<String>,
    pub primary: String,
}

impl TaskFile {
    pub(super) fn into_task(self) -> Result<Task, Vec<String>> {
        let mut problems = Vec::new();
        let kind = self.kind;
        let kind_name = kind.as_str();
        let prediction = self.prediction;
        let truth = self.truth;
        // Keys that belong to another kind are reported rather than ignored: they are almost
        // always a task whose kind was mistyped.
        let present = [
            ("positive_class", self.positive_class.is_some()),
            ("target_specificity", self.target_specificity.is_some()),
            ("classes", self.classes.is_some()),
            ("class_predictions", self.class_predictions.is_some()),
            ("labels", self.labels.is_some()),
            ("nsd_tolerance_mm", self.nsd_tolerance_mm.is_some()),
            ("worst_distance_mm", self.worst_distance_mm.is_some()),
            ("value_range", self.value_range.is_some()),
            ("levels", self.levels.is_some()),
            ("prediction", prediction.is_some()),
        ];
        let own: &[&str] = match kind {
            TaskKind::BinaryClassification => {
                &["positive_class", "target_specificity", "prediction"]
            }
            TaskKind::MulticlassClassification => &["classes", "class_predictions"],
            TaskKind::Segmentation => &[
                "labels",
                "nsd_tolerance_mm",
                "worst_distance_mm",
                "prediction",
            ],
            TaskKind::Regression => &["value_range", "prediction"],
            TaskKind::Ordinal => &["levels", "prediction"],
        };
        let stray: Vec<&str> = present
            .iter()
            .filter(|(key, is_set)| *is_set && !own.contains(key))
            .map(|(key, _)| *key)
            .collect();
        let spec = match kind {
            TaskKind::BinaryClassification => {
                let target_specificity = self.target_specificity.unwrap_or(0.9);
                if !(0.0..=1.0).contains(&target_specificity) {
                    problems.push(format!(
                        "`target_specificity` = {target_specificity} must lie in [0, 1]"
                    ));
                }
                TaskSpec::Binary {
                    target_specificity,
                    prediction: need(&mut problems, kind_name, "prediction", prediction),
                    truth: need(&mut problems, kind_name, "truth", truth),
                    positive_class: need(
                        &mut problems,
                        kind_name,
                        "positive_class",
                        self.positive_class,
                    ),
                }
            }
            TaskKind::MulticlassClassification => {
                let truth = need(&mut problems, kind_name, "truth", truth);
                let classes = self.classes.unwrap_or_default();
                let class_predictions = self.class_predictions.unwrap_or_default();
                if classes.len() < 2 {
                    problems.push(
                        "kind multiclass-classification needs `classes` with at least two names"
                            .into(),
                    );
                }
                if class_predictions.len() != classes.len() {
                    problems.push(format!(
                        "`class_predictions` must name one prediction column per class: {} classes, {} columns",
                        classes.len(),
                        class_predictions.len()
                    ));
                }
                if let Some(dup) = first_duplicate(&classes) {
                    problems.push(format!("class {dup:?} is listed twice in `classes`"));
                }
                TaskSpec::Multiclass {
                    truth,
                    classes,
                    class_predictions,
                }
            }
            TaskKind::Segmentation => {
                let prediction_dir = need(&mut problems, kind_name, "prediction", prediction);
                let truth_dir = need(&mut problems, kind_name, "truth", truth);
                for (key, dir) in [("prediction", &prediction_dir), ("truth", &truth_dir)] {
                    if !dir.is_empty() && !crate::ids::is_safe_name(dir) {
                        problems.push(format!(
                            "`{key}` = {dir:?} names a mask folder and must be one plain folder name"
                        ));
                    }
                }
                let labels = self.labels.unwrap_or_else(|| vec![1]);
                if labels.is_empty() || labels.contains(&0) {
                    problems.push(
                        "`labels` must list foreground labels (1-255); 0 is the background".into(),
                    );
                }
                let nsd_tolerance_mm = self.nsd_tolerance_mm.unwrap_or(2.0);
                if !(nsd_tolerance_mm.is_finite() && nsd_tolerance_mm >= 0.0) {
                    problems.push(format!("`nsd_tolerance_mm` = {nsd_tolerance_mm} must be a distance in mm, 0 or more"));
                }
                if let Some(w) = self.worst_distance_mm {
                    if !(w.is_finite() && w > 0.0) {
                        problems.push(format!(
                            "`worst_distance_mm` = {w} must be a positive distance in mm"
                        ));
                    }
                }
                TaskSpec::Segmentation {
                    prediction_dir,
                    truth_dir,
                    labels,
                    nsd_tolerance_mm,
                    worst_distance_mm: self.worst_distance_mm,
                }
            }
            TaskKind::Regression => {
                let [low, high] = self
                    .value_range
                    .unwrap_or([f64::NEG_INFINITY, f64::INFINITY]);
                if self.value_range.is_none() {
                    problems.push("kind regression needs `value_range = [low, high]`: the worst value of a missing prediction is taken from it".into());
                } else if !(low.is_finite() && high.is_finite() && low < high) {
                    problems.push(format!(
                        "`value_range` = [{low}, {high}] must be two finite numbers, low < high"
                    ));
                }
                TaskSpec::Regression {
                    prediction: need(&mut problems, kind_name, "prediction", prediction),
                    truth: need(&mut problems, kind_name, "truth", truth),
                    value_range: (low, high),
                }
            }
            TaskKind::Ordinal => {
                let levels = self.levels.unwrap_or_default();
                if levels.len() < 2 {
                    problems.push(
                        "kind ordinal needs `levels`, the ordered list of at least two stages"
                            .into(),
                    );
                }
                if let Some(dup) = first_duplicate(&levels) {
                    problems.push(format!("level {dup:?} is listed twice in `levels`"));
                }
                TaskSpec::Ordinal {
                    prediction: need(&mut problems, kind_name, "prediction", prediction),
                    truth: need(&mut problems, kind_name, "truth", truth),
                    levels,
                }
            }
        };
        for key in stray {
            problems.push(format!("`{key}` does not apply to kind {kind_name}"));
        }

        let mut metrics = Vec::new();
        let mut unknown_metric = false;
        if self.metrics.is_empty() {
            problems.push("`metrics` is empty; list at least the primary metric".into());
        }
        for name in &self.metrics {
            match Metric::parse_for(name, kind) {
                Ok(m) if metrics.contains(&m) => {
                    problems.push(format!("metric {name:?} is listed twice"))
                }
                Ok(m) => metrics.push(m),
                Err(e) => {
                    unknown_metric = true;
                    problems.push(e)
                }
            }
        }
        let primary = match Metric::parse_for(&self.primary, kind) {
            Ok(m) if !m.is_rankable() => {
                problems.push(format!(
                    "`primary` = {:?} describes a submission but does not rank it (higher is not better); choose another metric",
                    self.primary
                ));
                None
            }
            Ok(m) => {
                // An unknown name in `metrics` is most likely the primary misspelt: said once.
                if !metrics.contains(&m) && !metrics.is_empty() && !unknown_metric {
                    problems.push(format!(
                        "`primary` = {:?} must also be listed in `metrics`",
                        self.primary
                    ));
                }
                Some(m)
            }
            Err(e) => {
                problems.push(format!("`primary`: {e}"));
                None
            }
        };
        match (problems.is_empty(), primary) {
            (true, Some(primary)) => Ok(Task {
                name: self.name,
                kind,
                spec,
                metrics,
                primary,
            }),
            _ => Err(problems),
        }
    }
}

fn first_duplicate(names: &[String]) -> Option<&String> {
    names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
        .map(|(_, n)| n)
}

fn need(problems: &mut Vec<String>, kind_name: &str, key: &str, value: Option<String>) -> String {
    match value {
        Some(v) if !v.trim().is_empty() => v,
        _ => {
            problems.push(format!("kind {kind_name} needs `{key}`"));
            String::new()
        }
    }
}
