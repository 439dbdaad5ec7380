//! `podium validate`: checks a challenge's phase data against its definition, so organizers
//! find a broken truth file before a round, not in the middle of one. `podium run`, `score`
//! and `rescore` run the same checks on their phase first ([`check_before_scoring`]).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use super::{Challenge, PhaseDef, PhasePaths, TaskSpec, Visibility};
use crate::error::{Error, Result};
use crate::io::table::Table;

#[derive(Debug, Default)]
pub struct ValidationReport {
    /// Problems that would make scoring wrong or impossible.
    pub errors: Vec<String>,
    /// Things worth knowing that do not block a round.
    pub notes: Vec<String>,
    /// One line per phase: what was checked.
    pub checked: Vec<String>,
    /// The errors that concern single cases, by case: such a case can be left out of scoring.
    pub bad_cases: BTreeMap<String, Vec<String>>,
    /// The errors that concern a whole phase (an unreadable cases.csv or labels.csv, a missing
    /// column or truth folder): no case can be scored until they are fixed.
    pub phase_errors: Vec<String>,
}

impl ValidationReport {
    fn case_error(&mut self, case_id: &str, text: String) {
        self.bad_cases
            .entry(case_id.to_string())
            .or_default()
            .push(text.clone());
        self.errors.push(text);
    }

    fn phase_error(&mut self, text: String) {
        self.phase_errors.push(text.clone());
        self.errors.push(text);
    }
}

/// How deeply truth masks are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MaskCheck {
    /// Every voxel (`podium validate`): finds corrupt data too.
    Full,
    /// The header alone (before a round): the shape and readability, in milliseconds per case
    /// even on CT-sized masks. Corrupt voxel data still surfaces while scoring, as a truth
    /// finding of the organizer's.
    Header,
}

/// Checks every phase (or only `only_phase`). `truth_override` replaces the truth folder of the
/// phase being checked, as `--truth` does for `run` and `score`.
pub fn validate(
    challenge: &Challenge,
    only_phase: Option<&str>,
    truth_override: Option<&Path>,
) -> ValidationReport {
    let mut report = ValidationReport::default();
    for phase in &challenge.phases {
        if only_phase.is_some_and(|p| p != phase.name) {
            continue;
        }
        let Ok(paths) = challenge.phase_paths(&phase.name, truth_override) else {
            continue;
        };
        check_phase(challenge, phase, &paths, MaskCheck::Full, &mut report);
    }
    report
}

/// What `podium run`, `score` and `rescore` check before anything runs or is scored: the phase's
/// case list, images, truth table and truth masks (headers only, so that a large round does not
/// wait on it). Without findings it returns `phase` as it is. With findings about single cases
/// and `leave_out_bad_truth`, it returns `phase` with those cases in
/// [`PhasePaths::left_out`], so that they are left out of scoring for every submission alike.
/// Otherwise it fails with the findings grouped by case, saying what to do.
pub fn check_before_scoring(
    challenge: &Challenge,
    phase: &PhasePaths,
    leave_out_bad_truth: bool,
) -> Result<PhasePaths> {
    let definition = challenge.phase(&phase.name)?;
    let mut report = ValidationReport::default();
    check_phase(challenge, definition, phase, MaskCheck::Header, &mut report);
    let mut checked = phase.clone();
    checked.leave_out_bad_truth = leave_out_bad_truth;
    if report.errors.is_empty() {
        return Ok(checked);
    }
    if leave_out_bad_truth && report.phase_errors.is_empty() {
        checked.left_out = report.bad_cases;
        return Ok(checked);
    }
    Err(Error::msg(refusal(
        &challenge.root,
        &phase.name,
        &report,
        leave_out_bad_truth,
    )))
}

/// The findings that stop a round, grouped: the phase's own first, then case by case.
fn refusal(
    challenge_dir: &Path,
    phase: &str,
    report: &ValidationReport,
    leave_out_bad_truth: bool,
) -> String {
    let count = report.phase_errors.len() + report.bad_cases.values().map(Vec::len).sum::<usize>();
    let mut text = format!(
        "the data of phase {phase:?} has {count} problem{} (the organizer's to fix, not the teams'); nothing was run or scored:",
        if count == 1 { "" } else { "s" }
    );
    if !report.phase_errors.is_empty() {
        text.push_str("\n  the whole phase:");
        for error in &report.phase_errors {
            text.push_str(&format!("\n    - {error}"));
        }
    }
    for (case_id, reasons) in &report.bad_cases {
        text.push_str(&format!("\n  case {case_id}:"));
        for reason in reasons {
            text.push_str(&format!("\n    - {reason}"));
        }
    }
    text.push_str(&format!(
        "\nFix the truth or the images, then check them with `podium validate {} --phase {phase}`.",
        challenge_dir.display()
    ));
    if !report.phase_errors.is_empty() {
        if leave_out_bad_truth {
            text.push_str(
                " --leave-out-bad-truth cannot help here: a problem of the whole phase leaves no case to score.",
            );
        }
    } else {
        text.push_str(&format!(
            " Or pass --leave-out-bad-truth to score without {} case{} for every submission alike (the leaderboard, report and run.json then say so).",
            if report.bad_cases.len() == 1 { "this" } else { "these" },
            if report.bad_cases.len() == 1 { "" } else { "s" },
        ));
    }
    text
}

/// A phase without its case list, as on a fresh clone where the data is not generated yet:
/// what to run, not an I/O error.
fn no_data_yet(challenge: &Challenge, phase: &str, paths: &PhasePaths) -> String {
    let root = challenge.root.display();
    format!(
        "phase {phase:?} has no data yet: no {}. Generate synthetic data for this challenge with `podium init --template covid19-ct {root}` (it keeps challenge.toml), or copy the phase's files there (docs/contract.md); `podium demo` generates its own copy of the demo challenge and runs the examples on it",
        paths.cases_csv().display()
    )
}

fn check_phase(
    challenge: &Challenge,
    phase: &PhaseDef,
    paths: &PhasePaths,
    masks: MaskCheck,
    report: &mut ValidationReport,
) {
    let cases = match super::read_case_ids(paths) {
        Ok(c) => c,
        Err(_) if !paths.cases_csv().exists() => {
            report.phase_error(no_data_yet(challenge, &phase.name, paths));
            return;
        }
        Err(e) => {
            report.phase_error(format!("phase {:?}: {e}", phase.name));
            return;
        }
    };
    // Headers only: a full decompression of every CT would make validation slow.
    let image_errors: Vec<(String, Result<crate::io::nifti::Geometry, String>)> = cases
        .par_iter()
        .map(|case_id| {
            let path = paths.image(case_id);
            (
                case_id.clone(),
                crate::io::nifti::read_geometry(&path).map_err(|e| e.to_string()),
            )
        })
        .collect();
    let mut geometries = std::collections::HashMap::new();
    for (case_id, result) in image_errors {
        match result {
            Ok(g) => {
                geometries.insert(case_id, g);
            }
            Err(e) => report.case_error(
                &case_id,
                format!("phase {:?}, case {case_id}: image: {e}", phase.name),
            ),
        }
    }

    if !paths.truth.exists() {
        let text = format!(
            "phase {:?}: no truth folder at {}; only the inputs were checked{}",
            phase.name,
            paths.truth.display(),
            if phase.visibility == Visibility::Hidden {
                " (a hidden phase's truth may live elsewhere: pass --truth DIR)"
            } else {
                ""
            }
        );
        // `podium validate` may check a hidden phase's inputs alone; scoring needs the truth.
        if phase.visibility == Visibility::Hidden && masks == MaskCheck::Full {
            report.notes.push(text);
        } else {
            report.phase_error(text);
        }
        report.checked.push(format!(
            "phase {}: {} cases, inputs only",
            phase.name,
            cases.len()
        ));
        return;
    }
    check_labels(challenge, &phase.name, &paths.labels_csv(), &cases, report);
    check_metadata(challenge, &phase.name, paths, &cases, report);
    for task in &challenge.tasks {
        if let TaskSpec::Segmentation { truth_dir, .. } = &task.spec {
            let problems: Vec<(String, String)> = cases
                .par_iter()
                .filter_map(|case_id| {
                    let path = paths.truth_mask(truth_dir, case_id);
                    let shape = match masks {
                        MaskCheck::Full => crate::io::nifti::read_labels(&path).map(|m| m.geometry.shape),
                        MaskCheck::Header => crate::io::nifti::read_geometry(&path).map(|g| g.shape),
                    };
                    let shape = match shape {
                        Ok(s) => s,
                        Err(e) => return Some((case_id.clone(), format!("phase {:?}, case {case_id}: truth mask: {e}", phase.name))),
                    };
                    match geometries.get(case_id) {
                        Some(g) if g.shape != shape => Some((case_id.clone(), format!(
                            "phase {:?}, case {case_id}: truth mask {} has shape {:?} but the image has {:?}",
                            phase.name,
                            path.display(),
                            shape,
                            g.shape
                        ))),
                        _ => None,
                    }
                })
                .collect();
            for (case_id, text) in problems {
                report.case_error(&case_id, text);
            }
        }
    }
    report.checked.push(format!(
        "phase {}: {} cases, inputs and truth",
        phase.name,
        cases.len()
    ));
}

/// `truth/metadata.csv` against `[analysis] subgroups`: the file and its declared columns must
/// be there, and every case needs a row (else it falls in no subgroup). Rows of unknown cases
/// are only noted: they change no value.
fn check_metadata(
    challenge: &Challenge,
    phase: &str,
    paths: &PhasePaths,
    cases: &[String],
    report: &mut ValidationReport,
) {
    match super::metadata::CaseMetadata::read(challenge, paths) {
        Ok(None) => {}
        Ok(Some(metadata)) => {
            let mismatch = metadata.check_cases(cases, &paths.metadata_csv());
            if let Some(unknown) = mismatch.unknown_cases {
                report.notes.push(format!("phase {phase:?}: {unknown}"));
            }
            if let Some(missing) = mismatch.missing_cases {
                report.phase_error(format!("phase {phase:?}: {missing}"));
            }
        }
        Err(e) => report.phase_error(format!("phase {phase:?}: {e}")),
    }
}

fn check_labels(
    challenge: &Challenge,
    phase: &str,
    path: &Path,
    cases: &[String],
    report: &mut ValidationReport,
) {
    let columns = challenge.truth_columns();
    if columns.is_empty() {
        return;
    }
    let table = match Table::read(path) {
        Ok(t) => t,
        Err(e) => {
            report.phase_error(format!("phase {phase:?}: {e}"));
            return;
        }
    };
    let mut wanted = vec!["case_id".to_string()];
    wanted.extend(columns.iter().cloned());
    let idx = match table.require(&wanted) {
        Ok(i) => i,
        Err(e) => {
            report.phase_error(format!("phase {phase:?}: {e}"));
            return;
        }
    };
    let known: HashSet<&str> = cases.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    let at = |line: u64| format!("{}:{line}", path.display());
    for row in &table.rows {
        let case_id = row.fields[idx[0]].as_str();
        if !known.contains(case_id) {
            report.notes.push(format!(
                "{}: case {case_id:?} is not in cases.csv and is ignored",
                at(row.line)
            ));
            continue;
        }
        if !seen.insert(case_id.to_string()) {
            report.case_error(
                case_id,
                format!("{}: case {case_id:?} appears twice", at(row.line)),
            );
        }
        for task in &challenge.tasks {
            let expectation = match &task.spec {
                TaskSpec::Binary { truth, .. } => Some((truth, None)),
                TaskSpec::Multiclass { truth, classes, .. } => Some((truth, Some(classes.clone()))),
                TaskSpec::Ordinal { truth, levels, .. } => Some((truth, Some(levels.clone()))),
                TaskSpec::Regression {
                    truth, value_range, ..
                } => {
                    let value = &row.fields[table.column(truth).unwrap_or(0)];
                    match value.parse::<f64>() {
                        Ok(x) if x.is_finite() && x >= value_range.0 && x <= value_range.1 => {}
                        _ => report.case_error(case_id, format!(
                            "{}: {truth} = {value:?} for case {case_id}: expected a number in [{}, {}] (task {})",
                            at(row.line),
                            value_range.0,
                            value_range.1,
                            task.name
                        )),
                    }
                    None
                }
                TaskSpec::Segmentation { .. } => None,
            };
            if let Some((column, allowed)) = expectation {
                let value = &row.fields[table.column(column).unwrap_or(0)];
                let ok = !value.is_empty() && allowed.as_ref().is_none_or(|a| a.contains(value));
                if !ok {
                    let expected = allowed
                        .map(|a| format!("one of {}", a.join(", ")))
                        .unwrap_or_else(|| "a value".into());
                    report.case_error(case_id, format!(
                        "{}: {column} = {value:?} for case {case_id}: expected {expected} (task {})",
                        at(row.line),
                        task.name
                    ));
                }
            }
        }
    }
    let missing: Vec<&String> = cases.iter().filter(|c| !seen.contains(*c)).collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).map(|s| s.as_str()).collect();
        report.errors.push(format!(
            "{}: no truth for {} case{} of cases.csv: {}{}",
            path.display(),
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        ));
        for case_id in missing {
            report
                .bad_cases
                .entry(case_id.clone())
                .or_default()
                .push(format!(
                    "{}: no truth row for case {case_id}",
                    path.display()
                ));
        }
    }
}
