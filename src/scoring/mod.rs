//! Scoring: predictions against the truth, task by task, into the results model.
//!
//! `podium score` and `podium run` share this code. Every finding in a submission's output is
//! recorded as a [`Problem`] for that case, the case gets the value the challenge's missing
//! policy gives it, and scoring goes on.

pub mod findings;
pub mod predictions;
mod subgroups;
mod tasks;
pub mod truth;

use std::collections::BTreeMap;
use std::path::Path;

use crate::challenge::split::{self, CaseSelection};
use crate::challenge::{Challenge, PhasePaths};
use crate::error::{Error, Result};
use crate::results::CaseRecord;
use crate::results::{CaseStatus, Problem, RoundScores, SubmissionInfo};

pub use crate::challenge::CaseBound;
pub use predictions::Predictions;
pub use truth::Truth;

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
    let metadata = crate::challenge::metadata::CaseMetadata::read(challenge, phase)?;
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
        min_cases: challenge.scoring.min_cases,
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
        ranking: crate::results::ranking_inputs::RankingInputs {
            cases: truth.cases.clone(),
            values: BTreeMap::new(),
        },
        subgroups: Vec::new(),
        subgroup_summaries: Vec::new(),
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
        // This submission's per-case values are the ones appended from here.
        let first_case_score = round.case_scores.len();
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
        if let Some(metadata) = &metadata {
            round.subgroups.extend(subgroups::level_aggregates(
                challenge,
                phase,
                &truth,
                &predictions,
                &input.name,
                input.runs,
                metadata,
                &round.case_scores[first_case_score..],
            ));
        }
        round.problems.extend(problems);
        round.submissions.push(SubmissionInfo {
            name: input.name.clone(),
            team: input.team.clone(),
            baseline: input.baseline,
            run_counts: input
                .runs
                .map(|r| crate::results::count_statuses(r.values()))
                .unwrap_or_default(),
        });
    }
    if let Some(metadata) = &metadata {
        round.subgroup_summaries = subgroups::summaries(challenge, &round, &truth, metadata);
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
