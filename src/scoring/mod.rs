//! Scoring: predictions against the truth, task by task, into the results model.
//!
//! `podium score` and `podium run` share this code. Every finding in a submission's output is
//! recorded as a [`Problem`] for that case, the case gets the value the challenge's missing
//! policy gives it, and scoring goes on.

pub mod findings;
pub mod predictions;
mod tasks;
pub mod truth;

use std::collections::BTreeMap;
use std::path::Path;

use crate::challenge::split::{self, CaseSelection};
use crate::challenge::{Challenge, PhasePaths};
use crate::error::{Error, Result};
use crate::results::{CaseStatus, Problem, RoundScores, SubmissionInfo};
use crate::runner::CaseRecord;

pub use predictions::Predictions;
pub use truth::Truth;

/// podium's bound on the work of scoring one case of a segmentation task, so that masks built to
/// be expensive (every voxel on the surface, as in a checkerboard or voxel noise) cannot hold up
/// the round: a case over it is invalid and gets the worst value (docs/metrics.md, "Hostile or
/// malformed masks"). Both limits scale with the image, which the organizers choose, and are
/// deterministic: a case exceeds them or not whatever the machine and its load.
///
/// Not a `challenge.toml` key: the defaults never bind on a real segmentation, and tests lower
/// them to exercise the bound on small images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseBound {
    /// A predicted label may have at most `image voxels / surface_share` surface voxels (and at
    /// least `min_surface_voxels` are always allowed).
    pub surface_share: u64,
    pub min_surface_voxels: u64,
    /// Boundary-distance steps for the whole case: `max(steps_per_voxel * image voxels,
    /// min_steps)` for each label of the task (see `metrics::distance::WorkBudget`).
    pub steps_per_voxel: u64,
    pub min_steps: u64,
}

impl CaseBound {
    /// The distances of the surface voxels take 8 bytes each: an eighth of the image keeps them
    /// within one byte per image voxel, the size of the mask itself. Segmentations made of
    /// regions are far below it (both lungs of a 512 x 512 x 300 CT: 0.45 % of the voxels; a
    /// tree of 2-voxel-thick tubes: 0.3 %; scattered false positives over 5 % of the image: 5 %),
    /// while a checkerboard has half of the image on its surface.
    pub const SURFACE_SHARE: u64 = 8;
    /// Tiny images may have any mask: 65536 distances are 512 KiB.
    pub const MIN_SURFACE_VOXELS: u64 = 1 << 16;
    /// The costliest legitimate predictions measured take 4 to 7 steps per voxel: masks 120
    /// voxels apart, which need the full distance transform (4.2 on a 512 x 512 x 300 CT), or
    /// false positives scattered over 1-3 % of the image (4.8-6.0 on that CT, up to 7.2 on the
    /// demo's 64 x 64 x 48 grid). 32 leaves more than four times that, and is at most about
    /// 20 s of one CPU core per label on that CT (a step takes 5-10 ns). Under the surface
    /// bound no mask we tried took more than 11 steps per voxel.
    pub const STEPS_PER_VOXEL: u64 = 32;
    /// Tiny images get at least about a tenth of a second per label.
    pub const MIN_STEPS: u64 = 1 << 24;

    /// The surface voxels a predicted label may have on an image of `voxels` voxels.
    pub fn max_surface_voxels(&self, voxels: u64) -> u64 {
        (voxels / self.surface_share.max(1)).max(self.min_surface_voxels)
    }

    /// The distance steps a case of `labels` labels may take on an image of `voxels` voxels.
    pub fn max_steps(&self, voxels: u64, labels: usize) -> u64 {
        self.steps_per_voxel
            .saturating_mul(voxels)
            .max(self.min_steps)
            .saturating_mul(labels as u64)
    }
}

impl Default for CaseBound {
    fn default() -> Self {
        CaseBound {
            surface_share: CaseBound::SURFACE_SHARE,
            min_surface_voxels: CaseBound::MIN_SURFACE_VOXELS,
            steps_per_voxel: CaseBound::STEPS_PER_VOXEL,
            min_steps: CaseBound::MIN_STEPS,
        }
    }
}

/// One submission to score: its name and predictions folder, and how its cases ran when podium
/// ran them.
pub struct ScoringInput<'a> {
    pub name: String,
    pub team: String,
    pub baseline: bool,
    pub predictions_dir: &'a Path,
    pub runs: Option<&'a BTreeMap<String, CaseRecord>>,
}

/// Scores every submission on the phase. Fails only when the phase itself (its case list or
/// truth) cannot be read; problems with a submission's files are findings, not errors, and
/// problems with the truth of a case are the organizer's (`truth_findings`), never a team's.
/// The cases of `phase.left_out` are scored for no submission.
///
/// `selection` restricts scoring to a split of the phase (`CaseSelection::Public` is every case
/// when the phase has no split); predictions of the other cases are neither scored nor flagged.
pub fn score_round(
    challenge: &Challenge,
    phase: &PhasePaths,
    inputs: &[ScoringInput],
    selection: CaseSelection,
) -> Result<RoundScores> {
    score_round_on(challenge, phase, inputs, selection, None)
}

/// [`score_round`] on the cases of `selection` that are also in `only`, when given: a partial
/// result of an interrupted round scores only the cases every submission ran.
pub fn score_round_on(
    challenge: &Challenge,
    phase: &PhasePaths,
    inputs: &[ScoringInput],
    selection: CaseSelection,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<RoundScores> {
    let mut truth = Truth::read(challenge, phase)?;
    let phase_cases = truth.cases.clone();
    let public = split::public_cases(challenge, phase, &phase_cases)?;
    let selected = split::select(&phase_cases, public.as_ref(), selection);
    let (left_out, scored): (Vec<String>, Vec<String>) = selected
        .into_iter()
        .partition(|case_id| phase.left_out.contains_key(case_id));
    truth.cases = scored;
    if let Some(only) = only {
        truth.cases.retain(|c| only.contains(c));
    }
    let in_split: std::collections::BTreeSet<&String> = truth.cases.iter().collect();
    let mut round = RoundScores {
        challenge: challenge.name.clone(),
        phase: phase.name.clone(),
        cases: truth.cases.len(),
        phase_cases: phase_cases.len(),
        selection: if public.is_some() {
            selection
        } else {
            CaseSelection::All
        },
        bootstrap_resamples: challenge.scoring.bootstrap_resamples,
        seed: challenge.scoring.seed,
        submissions: Vec::new(),
        case_scores: Vec::new(),
        aggregates: Vec::new(),
        problems: Vec::new(),
        left_out: left_out
            .into_iter()
            .map(|case_id| crate::results::LeftOutCase {
                reasons: phase.left_out[&case_id].clone(),
                case_id,
            })
            .collect(),
        truth_findings: Vec::new(),
        curves: Vec::new(),
        confusion: Vec::new(),
        values: Vec::new(),
        ranking: crate::ranking::inputs::RankingInputs {
            cases: truth.cases.clone(),
            values: BTreeMap::new(),
        },
        incomplete: None,
    };
    for input in inputs {
        let mut problems = Vec::new();
        if let Some(runs) = input.runs {
            for (case_id, record) in runs {
                if record.status.is_run_failure() && in_split.contains(case_id) {
                    problems.push(Problem {
                        submission: input.name.clone(),
                        case_id: case_id.clone(),
                        task: String::new(),
                        // Team-safe: on a hidden phase it never quotes the program's output.
                        problem: format!("{}: {}", record.status.as_str(), record.team_message),
                    });
                }
            }
        }
        let predictions = Predictions::load(
            input.predictions_dir,
            challenge,
            &phase_cases,
            &input.name,
            &mut problems,
        );
        let mut context = tasks::Context {
            challenge,
            phase,
            truth: &truth,
            predictions: &predictions,
            submission: &input.name,
            runs: input.runs,
            case_scores: &mut round.case_scores,
            aggregates: &mut round.aggregates,
            curves: &mut round.curves,
            confusion: &mut round.confusion,
            values: &mut round.values,
            problems: &mut problems,
            truth_findings: &mut round.truth_findings,
            ranking: &mut round.ranking.values,
        };
        for task in &challenge.tasks {
            context.score_task(task);
        }
        round.problems.extend(problems);
        round.submissions.push(SubmissionInfo {
            name: input.name.clone(),
            team: input.team.clone(),
            baseline: input.baseline,
            run_counts: input
                .runs
                .map(|r| crate::runner::events::count_statuses(r.values()))
                .unwrap_or_default(),
        });
    }
    Ok(round)
}

/// `podium score` of one predictions folder: fails, with a message saying why, when nothing of
/// it could be scored at all.
pub fn score_folder(
    challenge: &Challenge,
    phase: &PhasePaths,
    predictions_dir: &Path,
    name: &str,
) -> Result<RoundScores> {
    if !predictions_dir.is_dir() {
        return Err(Error::msg(format!(
            "{} is not a folder; pass the folder holding predictions.csv and masks/",
            predictions_dir.display()
        )));
    }
    let input = ScoringInput {
        name: name.to_string(),
        team: String::new(),
        baseline: false,
        predictions_dir,
        runs: None,
    };
    let round = score_round(challenge, phase, &[input], CaseSelection::All)?;
    let scored = round.case_scores.iter().any(|c| c.status == CaseStatus::Ok);
    if !scored {
        let reasons: Vec<String> = round
            .problems
            .iter()
            .filter(|p| p.case_id == "*")
            .map(|p| p.problem.clone())
            .chain(
                round
                    .problems
                    .iter()
                    .take(3)
                    .map(|p| format!("case {}: {}", p.case_id, p.problem)),
            )
            .collect();
        return Err(Error::msg(format!(
            "nothing in {} could be scored against phase {:?}:\n  {}",
            predictions_dir.display(),
            phase.name,
            reasons.join("\n  ")
        )));
    }
    Ok(round)
}
