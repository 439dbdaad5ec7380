//! `podium validate`: checks a challenge's phase data against its definition, so organizers
//! find a broken truth file before a round, not in the middle of one.

use std::collections::HashSet;
use std::path::Path;

use rayon::prelude::*;

use super::{Challenge, TaskSpec, Visibility};
use crate::io::table::Table;

#[derive(Debug, Default)]
pub struct ValidationReport {
    /// Problems that would make scoring wrong or impossible.
    pub errors: Vec<String>,
    /// Things worth knowing that do not block a round.
    pub notes: Vec<String>,
    /// One line per phase: what was checked.
    pub checked: Vec<String>,
}

/// Checks every phase (or only `only_phase`). `truth_override` replaces the truth folder of the
/// phase being checked, as `--truth` does for `run` and `score`.
/// A phase without its case list, as on a fresh clone where the data is not generated yet:
/// what to run, not an I/O error.
fn no_data_yet(challenge: &Challenge, phase: &str, paths: &crate::challenge::PhasePaths) -> String {
    let root = challenge.root.display();
    format!(
        "phase {phase:?} has no data yet: no {}. Generate synthetic data for this challenge with `podium init --template covid19-ct {root}` (it keeps challenge.toml), or copy the phase's files there (docs/contract.md); `podium demo` generates its own copy of the demo challenge and runs the examples on it",
        paths.cases_csv().display()
    )
}

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
        let cases = match crate::scoring::truth::read_case_ids(&paths) {
            Ok(c) => c,
            Err(_) if !paths.cases_csv().exists() => {
                report
                    .errors
                    .push(no_data_yet(challenge, &phase.name, &paths));
                continue;
            }
            Err(e) => {
                report.errors.push(format!("phase {:?}: {e}", phase.name));
                continue;
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
                Err(e) => report.errors.push(format!(
                    "phase {:?}, case {case_id}: image: {e}",
                    phase.name
                )),
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
            if phase.visibility == Visibility::Hidden {
                report.notes.push(text);
            } else {
                report.errors.push(text);
            }
            report.checked.push(format!(
                "phase {}: {} cases, inputs only",
                phase.name,
                cases.len()
            ));
            continue;
        }
        check_labels(
            challenge,
            &phase.name,
            &paths.labels_csv(),
            &cases,
            &mut report,
        );
        for task in &challenge.tasks {
            if let TaskSpec::Segmentation { truth_dir, .. } = &task.spec {
                let problems: Vec<String> = cases
                    .par_iter()
                    .filter_map(|case_id| {
                        let path = paths.truth_mask(truth_dir, case_id);
                        let mask = match crate::io::nifti::read_labels(&path) {
                            Ok(m) => m,
                            Err(e) => return Some(format!("phase {:?}, case {case_id}: truth mask: {e}", phase.name)),
                        };
                        match geometries.get(case_id) {
                            Some(g) if g.shape != mask.geometry.shape => Some(format!(
                                "phase {:?}, case {case_id}: truth mask {} has shape {:?} but the image has {:?}",
                                phase.name,
                                path.display(),
                                mask.geometry.shape,
                                g.shape
                            )),
                            _ => None,
                        }
                    })
                    .collect();
                report.errors.extend(problems);
            }
        }
        report.checked.push(format!(
            "phase {}: {} cases, inputs and truth",
            phase.name,
            cases.len()
        ));
    }
    report
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
            report.errors.push(format!("phase {phase:?}: {e}"));
            return;
        }
    };
    let mut wanted = vec!["case_id".to_string()];
    wanted.extend(columns.iter().cloned());
    let idx = match table.require(&wanted) {
        Ok(i) => i,
        Err(e) => {
            report.errors.push(format!("phase {phase:?}: {e}"));
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
            report
                .errors
                .push(format!("{}: case {case_id:?} appears twice", at(row.line)));
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
                        _ => report.errors.push(format!(
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
                    report.errors.push(format!(
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
    }
}
