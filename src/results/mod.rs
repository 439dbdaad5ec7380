//! The results model of a scored round. Scoring fills it; every reporter (terminal, CSV,
//! and later HTML) reads it, so numbers are computed once and shown identically everywhere.

pub mod ranking_inputs;
mod receipt;
mod runs;
pub mod subgroups;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use receipt::{Host, Receipt, ReceiptSubmission};
pub use runs::{count_statuses, CaseRecord, GpuUsage, RunsCsv};

/// The status of one case of one submission after its outputs were checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Ok,
    /// The program exited non-zero, was killed, or could not start.
    Failed,
    Timeout,
    /// Killed for exceeding the memory limit (from the cgroup's OOM-kill counter or the
    /// engine's state, never guessed from an exit code).
    Oom,
    /// Wrote more than the output limit.
    OutputLimit,
    /// The program succeeded but its outputs are malformed.
    Invalid,
    /// The program succeeded but wrote no prediction for the case.
    Missing,
}

impl CaseStatus {
    /// The run itself failed, so the case has no output worth scoring.
    pub fn is_run_failure(self) -> bool {
        matches!(
            self,
            CaseStatus::Failed | CaseStatus::Timeout | CaseStatus::Oom | CaseStatus::OutputLimit
        )
    }

    pub fn parse(text: &str) -> Option<CaseStatus> {
        [
            CaseStatus::Ok,
            CaseStatus::Failed,
            CaseStatus::Timeout,
            CaseStatus::Oom,
            CaseStatus::OutputLimit,
            CaseStatus::Invalid,
            CaseStatus::Missing,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Ok => "ok",
            CaseStatus::Failed => "failed",
            CaseStatus::Timeout => "timeout",
            CaseStatus::Oom => "oom",
            CaseStatus::OutputLimit => "output_limit",
            CaseStatus::Invalid => "invalid",
            CaseStatus::Missing => "missing",
        }
    }
}

/// One per-case value: a row of `scores.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseScore {
    pub submission: String,
    pub task: String,
    pub case_id: String,
    pub metric: String,
    /// None when the case is excluded (missing policy `exclude`) or the value is undefined.
    pub value: Option<f64>,
    pub status: CaseStatus,
}

/// One aggregate over the test set: a row of `metrics.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Aggregate {
    pub submission: String,
    pub task: String,
    pub metric: String,
    /// None when undefined (for example an AUC with one class present).
    pub value: Option<f64>,
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
    /// Cases that entered the aggregate.
    pub n: usize,
    /// `delong`, `wilson`, `fisher-z`, `bootstrap`, or empty when no interval could be formed.
    pub ci_method: String,
    /// Why the value is less precise than it looks ([`precision_note`]); empty when it is not.
    #[serde(default)]
    pub note: String,
}

/// What a reader must know before trusting an aggregate's precision: `few cases (3 < 10)` when
/// it stands on fewer than `min_cases` cases, `degenerate CI` when its interval has no width
/// (every resample gave the same value: a 3-case AUC of 0.167 [0.167, 0.167] is not exact),
/// `no CI` when a value has no interval. Empty when none applies, and for an undefined value,
/// which looks precise to nobody.
pub fn precision_note(
    n: usize,
    value: Option<f64>,
    ci: Option<(f64, f64)>,
    min_cases: usize,
) -> String {
    if value.is_none() {
        return String::new();
    }
    let mut notes = Vec::new();
    if n < min_cases {
        notes.push(format!("few cases ({n} < {min_cases})"));
    }
    match ci {
        Some((lower, upper)) if lower == upper => notes.push("degenerate CI".to_string()),
        Some(_) => {}
        None => notes.push("no CI".to_string()),
    }
    notes.join("; ")
}

/// A validation finding, in words a team can act on: a row of `problems.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Problem {
    pub submission: String,
    /// `*` when the finding concerns the whole file rather than one case.
    pub case_id: String,
    /// Empty when the finding concerns every task of the case.
    pub task: String,
    pub problem: String,
}

/// A finding about the challenge's own data (its truth or a case's image), found while scoring:
/// a row of the organizer's `truth-findings.csv`. It is never a team's problem, so it never
/// reaches `problems.csv` or a team's files, and it is the same for every submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthFinding {
    /// `*` when the finding concerns the whole phase rather than one case.
    pub case_id: String,
    pub task: String,
    pub finding: String,
}

/// A case the organizer chose to leave out of scoring (`--leave-out-bad-truth`) because
/// validation found its truth or image broken; left out of every task, for every submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeftOutCase {
    pub case_id: String,
    /// The validation findings that made the case unusable.
    pub reasons: Vec<String>,
}

/// A point of a ROC curve, kept for plotting: a row of `curves.csv`. For a multiclass task
/// there is one one-vs-rest curve per class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CurvePoint {
    pub submission: String,
    pub task: String,
    /// The positive class of the curve.
    pub class: String,
    /// +∞ for the curve's first point (nothing called positive).
    #[serde(deserialize_with = "non_finite::infinity")]
    pub threshold: f64,
    pub fpr: f64,
    pub tpr: f64,
}

/// A regression task's prediction beside its truth, for one case: a row of `values.csv`, the
/// data of the Bland–Altman and scatter plots. Cases whose prediction was missing or invalid
/// carry the value they were scored with (the worst one) under the `worst` policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PairedValue {
    pub submission: String,
    pub task: String,
    pub case_id: String,
    pub truth: f64,
    pub predicted: f64,
    pub status: CaseStatus,
}

/// A cell of a confusion matrix: a row of `confusion.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfusionCell {
    pub submission: String,
    pub task: String,
    pub truth: String,
    pub predicted: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmissionInfo {
    pub name: String,
    pub team: String,
    pub baseline: bool,
    /// How the cases ran, when podium ran them (empty for `podium score`).
    pub run_counts: BTreeMap<CaseStatus, usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoundScores {
    pub challenge: String,
    pub phase: String,
    /// Cases scored: the split's, or the phase's when it has none, less those in `left_out`.
    pub cases: usize,
    /// Cases of the phase.
    pub phase_cases: usize,
    /// `all` when the phase has no split; else `public` (a round's live leaderboard) or
    /// `private` (`podium leaderboard --final`).
    pub selection: crate::challenge::split::CaseSelection,
    pub bootstrap_resamples: usize,
    pub seed: u64,
    /// `[scoring] min_cases`: an aggregate over fewer cases carries a note.
    #[serde(default = "default_min_cases")]
    pub min_cases: usize,
    pub submissions: Vec<SubmissionInfo>,
    pub case_scores: Vec<CaseScore>,
    pub aggregates: Vec<Aggregate>,
    pub problems: Vec<Problem>,
    /// Cases of the selection left out of scoring because of their truth or image.
    #[serde(default)]
    pub left_out: Vec<LeftOutCase>,
    /// Findings about the challenge's own data met while scoring (for the organizer only).
    #[serde(default)]
    pub truth_findings: Vec<TruthFinding>,
    pub curves: Vec<CurvePoint>,
    pub confusion: Vec<ConfusionCell>,
    /// Regression tasks' predictions beside their truth.
    #[serde(default)]
    pub values: Vec<PairedValue>,
    /// Each task's primary metric per submission, resamplable, for the ranking analysis.
    #[serde(skip)]
    pub ranking: ranking_inputs::RankingInputs,
    /// Every aggregate per level of each `[analysis] subgroups` column (empty without them).
    #[serde(default)]
    pub subgroups: Vec<subgroups::SubgroupAggregate>,
    /// Per submission, task and subgroup: worst level, spread and heterogeneity.
    #[serde(default)]
    pub subgroup_summaries: Vec<subgroups::SubgroupSummary>,
    /// Set when the organizer asked for a partial result of an interrupted round
    /// (`podium rescore --allow-incomplete`): such a result names no winner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<Incomplete>,
}

fn default_min_cases() -> usize {
    crate::challenge::ScoringSettings::default().min_cases
}

/// How much of an interrupted round a partial result stands on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incomplete {
    /// Case runs `runs.csv` records, of the submissions × phase cases the round was to run.
    pub runs_recorded: usize,
    pub runs_expected: usize,
    /// Cases of the selection that at least one submission never ran. They are left out of
    /// every submission's scores, so all are compared on the same cases and none is blamed
    /// for a case that never ran.
    pub cases_not_run: Vec<String>,
}

impl Incomplete {
    /// One sentence for every place the result shows.
    pub fn summary(&self, cases_scored: usize) -> String {
        format!(
            "INCOMPLETE result: runs.csv records {} of {} case runs; scored on the {cases_scored} cases every submission ran, {} not run (not counted against any team); no winner",
            self.runs_recorded,
            self.runs_expected,
            self.cases_not_run.len()
        )
    }
}

impl RoundScores {
    pub fn aggregate(&self, submission: &str, task: &str, metric: &str) -> Option<&Aggregate> {
        self.aggregates
            .iter()
            .find(|a| a.submission == submission && a.task == task && a.metric == metric)
    }
}

/// serde_json writes a non-finite number as `null`; these read it back into a plain `f64`.
pub mod non_finite {
    use serde::{Deserialize, Deserializer};

    pub fn infinity<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }

    pub fn nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::precision_note;

    #[test]
    fn precision_notes_name_few_cases_and_intervals_without_width() {
        assert_eq!(
            precision_note(3, Some(0.167), Some((0.167, 0.167)), 10),
            "few cases (3 < 10); degenerate CI"
        );
        assert_eq!(
            precision_note(3, Some(0.5), Some((0.2, 0.8)), 10),
            "few cases (3 < 10)"
        );
        assert_eq!(precision_note(40, Some(0.5), None, 10), "no CI");
        assert_eq!(precision_note(40, Some(0.5), Some((0.4, 0.6)), 10), "");
        assert_eq!(
            precision_note(10, Some(0.5), Some((0.4, 0.6)), 10),
            "",
            "10 is enough"
        );
        assert_eq!(precision_note(3, None, None, 10), "", "an undefined value");
    }
}
