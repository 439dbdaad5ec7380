//! The challenge definition: `challenge.toml` and the phase folders beside it.
//!
//! A challenge is read in two steps: serde parses the file strictly (unknown keys are errors),
//! then [`Challenge::from_file_def`] checks what serde cannot (kinds against their keys, metric
//! names against the task kind) and turns the loose file shape into typed [`Task`]s.

mod definition;
pub mod metadata;
pub mod metric;
mod settings;
pub mod split;
pub mod validate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use definition::{
    AnalysisSettings, ClusterSettings, LeaderboardSettings, Limits, MissingPolicy, PhaseDef,
    QuotaPeriod, RankingSettings, Scheduler, ScoringSettings, SubmissionChoice, Visibility,
};
pub use metric::Metric;
pub use settings::{BackendKind, CaseBound, RankingMethod, SignificanceRule};

use crate::error::{Error, Result};
use crate::io::table::Table;

/// The kind of a task decides which columns it reads and which metrics it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    BinaryClassification,
    MulticlassClassification,
    Segmentation,
    Regression,
    Ordinal,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::BinaryClassification => "binary-classification",
            TaskKind::MulticlassClassification => "multiclass-classification",
            TaskKind::Segmentation => "segmentation",
            TaskKind::Regression => "regression",
            TaskKind::Ordinal => "ordinal",
        }
    }
}

/// What a task compares, with everything its kind needs.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskSpec {
    Binary {
        prediction: String,
        truth: String,
        positive_class: String,
        /// The specificity at which `sensitivity_at_specificity` is read off the ROC curve.
        target_specificity: f64,
    },
    Multiclass {
        truth: String,
        classes: Vec<String>,
        class_predictions: Vec<String>,
    },
    Segmentation {
        prediction_dir: String,
        truth_dir: String,
        labels: Vec<u8>,
        /// Tolerance of `nsd`, in mm.
        nsd_tolerance_mm: f64,
        /// Distance given to `hd95` and `assd` when exactly one mask is empty; None = the
        /// image diagonal in mm.
        worst_distance_mm: Option<f64>,
    },
    Regression {
        prediction: String,
        truth: String,
        value_range: (f64, f64),
    },
    Ordinal {
        prediction: String,
        truth: String,
        levels: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub name: String,
    pub kind: TaskKind,
    pub spec: TaskSpec,
    pub metrics: Vec<Metric>,
    pub primary: Metric,
}

#[derive(Clone, Debug)]
pub struct Challenge {
    /// The folder holding `challenge.toml`.
    pub root: PathBuf,
    pub name: String,
    pub title: String,
    pub description: String,
    pub scoring: ScoringSettings,
    pub limits: Limits,
    pub ranking: RankingSettings,
    pub leaderboard: LeaderboardSettings,
    /// `[cluster]`: where rounds run when not on this machine.
    pub cluster: Option<ClusterSettings>,
    /// `[analysis]`: the subgroups of the truth's metadata.
    pub analysis: AnalysisSettings,
    pub phases: Vec<PhaseDef>,
    pub tasks: Vec<Task>,
}

/// Where one phase's data lives. The truth may be given elsewhere (`--truth DIR`), so that a
/// hidden truth never has to sit inside the folder that teams receive.
#[derive(Clone, Debug)]
pub struct PhasePaths {
    pub name: String,
    pub input: PathBuf,
    pub truth: PathBuf,
    /// Cases left out of scoring, for every submission alike, because validation found their
    /// truth or image broken and the organizer accepted leaving them out
    /// (`--leave-out-bad-truth`): case id → the findings.
    pub left_out: std::collections::BTreeMap<String, Vec<String>>,
    /// The organizer accepted leaving such cases out (`--leave-out-bad-truth`), whether or not
    /// any was found: a round records it, so that its resumption and rescores do the same.
    pub leave_out_bad_truth: bool,
}

impl PhasePaths {
    pub fn cases_csv(&self) -> PathBuf {
        self.input.join("cases.csv")
    }
    pub fn image(&self, case_id: &str) -> PathBuf {
        self.input.join("images").join(format!("{case_id}.nii.gz"))
    }
    pub fn labels_csv(&self) -> PathBuf {
        self.truth.join("labels.csv")
    }
    /// The cases' metadata (site, scanner, …): truth side, never staged to teams.
    pub fn metadata_csv(&self) -> PathBuf {
        self.truth.join("metadata.csv")
    }
    pub fn truth_mask(&self, dir: &str, case_id: &str) -> PathBuf {
        self.truth.join(dir).join(format!("{case_id}.nii.gz"))
    }
}

/// The case ids of `input/cases.csv`, in file order. Ids must be unique and path-safe.
pub fn read_case_ids(phase: &PhasePaths) -> Result<Vec<String>> {
    let path = phase.cases_csv();
    let table = Table::read(&path)?;
    let id = table.require(&["case_id".to_string()])?[0];
    let mut problems = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut ids = Vec::new();
    for row in &table.rows {
        let case_id = &row.fields[id];
        if !crate::ids::is_valid_case_id(case_id) {
            problems.push(format!(
                "{}:{}: case id {case_id:?} must be 1-128 letters, digits, '-', '_' or '.', not starting with '.'",
                path.display(),
                row.line
            ));
        } else if let Some(first) = seen.insert(case_id.clone(), row.line) {
            problems.push(format!(
                "{}:{}: case id {case_id:?} repeats line {first}",
                path.display(),
                row.line
            ));
        } else {
            ids.push(case_id.clone());
        }
    }
    if !problems.is_empty() {
        return Err(Error::List(problems));
    }
    Ok(ids)
}

impl Challenge {
    /// Reads `<dir>/challenge.toml` (or the file itself when `path` names it).
    pub fn load(path: &Path) -> Result<Challenge> {
        let (root, file) = if path.is_dir() {
            (path.to_path_buf(), path.join("challenge.toml"))
        } else {
            let root = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            (root, path.to_path_buf())
        };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Error::msg(format!(
                "cannot read the challenge definition {}: {e}. Pass the challenge folder that holds challenge.toml.",
                file.display()
            ))
        })?;
        Self::parse(&text, &file, root)
    }

    /// Parses the text of a `challenge.toml`; `file` is only used in messages.
    pub fn parse(text: &str, file: &Path, root: PathBuf) -> Result<Challenge> {
        let def: definition::ChallengeFile = toml::from_str(text)
            .map_err(|e| Error::msg(format!("{}: {}", file.display(), e.to_string().trim_end())))?;
        Self::from_file_def(def, file, root)
    }

    fn from_file_def(
        def: definition::ChallengeFile,
        file: &Path,
        root: PathBuf,
    ) -> Result<Challenge> {
        let mut problems = Vec::new();
        let at = |what: String| format!("{}: {what}", file.display());
        if !crate::ids::is_safe_name(&def.name) {
            problems.push(at(format!(
                "`name` = {:?} must be 1-64 characters of letters, digits, '-', '_' or '.', since it names folders",
                def.name
            )));
        }
        if def.phases.is_empty() {
            problems.push(at(
                "no [[phases]] declared; add at least one, for example `name = \"dev\"`".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for phase in &def.phases {
            if let Some(f) = phase.public_fraction {
                if !(f > 0.0 && f < 1.0) {
                    problems.push(at(format!(
                        "phase {:?}: public_fraction = {f} must lie strictly between 0 and 1",
                        phase.name
                    )));
                }
                if phase.visibility == Visibility::Public {
                    problems.push(at(format!(
                        "phase {:?} is public: its truth is already with the teams, so a private split of it means nothing; remove public_fraction",
                        phase.name
                    )));
                }
            }
            if !crate::ids::is_safe_name(&phase.name) {
                problems.push(at(format!(
                    "phase name {:?} must be letters, digits, '-', '_' or '.'",
                    phase.name
                )));
            }
            if !seen.insert(phase.name.clone()) {
                problems.push(at(format!("phase {:?} is declared twice", phase.name)));
            }
        }
        problems.extend(def.scoring.check().into_iter().map(&at));
        problems.extend(def.limits.check().into_iter().map(&at));
        problems.extend(def.analysis.check().into_iter().map(&at));
        if let Some(cluster) = &def.cluster {
            problems.extend(cluster.check().into_iter().map(&at));
        }
        if def.tasks.is_empty() {
            problems.push(at("no [[tasks]] declared".into()));
        }
        let mut tasks = Vec::new();
        let declared: Vec<String> = def.tasks.iter().map(|t| t.name.clone()).collect();
        let mut task_names = std::collections::BTreeSet::new();
        for (i, raw) in def.tasks.into_iter().enumerate() {
            let label = format!("task #{} ({:?})", i + 1, raw.name);
            if !task_names.insert(raw.name.clone()) {
                problems.push(at(format!("{label}: the name is used by an earlier task")));
            }
            match raw.into_task() {
                Ok(task) => tasks.push(task),
                Err(errs) => problems.extend(errs.into_iter().map(|e| at(format!("{label}: {e}")))),
            }
        }
        problems.extend(def.ranking.check(&declared).into_iter().map(&at));
        if def.leaderboard.quota == Some(0) {
            problems.push(at(
                "[leaderboard] quota = 0 would refuse every submission; give at least 1, or remove it for no quota".into(),
            ));
        }
        if !problems.is_empty() {
            return Err(Error::List(problems));
        }
        Ok(Challenge {
            root,
            name: def.name,
            title: def.title.unwrap_or_default(),
            description: def.description.unwrap_or_default(),
            scoring: def.scoring,
            limits: def.limits,
            ranking: def.ranking,
            leaderboard: def.leaderboard,
            cluster: def.cluster,
            analysis: def.analysis,
            phases: def.phases,
            tasks,
        })
    }

    pub fn phase(&self, name: &str) -> Result<&PhaseDef> {
        self.phases.iter().find(|p| p.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.phases.iter().map(|p| p.name.as_str()).collect();
            Error::msg(format!(
                "challenge {:?} has no phase {name:?}; its phases are: {}",
                self.name,
                known.join(", ")
            ))
        })
    }

    /// Paths of a phase's data; `truth_override` replaces `phases/<phase>/truth`.
    pub fn phase_paths(&self, phase: &str, truth_override: Option<&Path>) -> Result<PhasePaths> {
        self.phase(phase)?;
        let dir = self.root.join("phases").join(phase);
        Ok(PhasePaths {
            name: phase.to_string(),
            input: dir.join("input"),
            truth: truth_override
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.join("truth")),
            left_out: Default::default(),
            leave_out_bad_truth: false,
        })
    }

    /// The prediction columns the tasks read from `predictions.csv`, in declaration order.
    pub fn prediction_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = Vec::new();
        let mut add = |c: &String| {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        };
        for task in &self.tasks {
            match &task.spec {
                TaskSpec::Binary { prediction, .. }
                | TaskSpec::Regression { prediction, .. }
                | TaskSpec::Ordinal { prediction, .. } => add(prediction),
                TaskSpec::Multiclass {
                    class_predictions, ..
                } => class_predictions.iter().for_each(&mut add),
                TaskSpec::Segmentation { .. } => {}
            }
        }
        columns
    }

    /// The truth columns the tasks read from `labels.csv`.
    pub fn truth_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = Vec::new();
        for task in &self.tasks {
            let column = match &task.spec {
                TaskSpec::Binary { truth, .. }
                | TaskSpec::Multiclass { truth, .. }
                | TaskSpec::Regression { truth, .. }
                | TaskSpec::Ordinal { truth, .. } => truth,
                TaskSpec::Segmentation { .. } => continue,
            };
            if !columns.contains(column) {
                columns.push(column.clone());
            }
        }
        columns
    }

    /// The mask folders the tasks read from a submission's output.
    pub fn prediction_mask_dirs(&self) -> Vec<String> {
        let mut dirs = Vec::new();
        for task in &self.tasks {
            if let TaskSpec::Segmentation { prediction_dir, .. } = &task.spec {
                if !dirs.contains(prediction_dir) {
                    dirs.push(prediction_dir.clone());
                }
            }
        }
        dirs
    }
}

#[cfg(test)]
mod tests;
