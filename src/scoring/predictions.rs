//! A submission's predictions folder: `predictions.csv` plus mask folders.
//!
//! Loading never fails on the team's content: every finding becomes a [`Problem`] and the
//! affected values become "missing" or "invalid", so one bad row cannot sink a submission.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::challenge::Challenge;
use crate::io::table::Table;
use crate::results::Problem;

/// What became of one requested value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell<'a> {
    Value(&'a str),
    /// No row for the case, or no such column, or an empty field.
    Missing(String),
    /// The case's row cannot be trusted (for example it appears twice).
    Invalid(String),
}

pub struct Predictions {
    pub dir: PathBuf,
    /// case id → (column name → field)
    rows: HashMap<String, HashMap<String, String>>,
    duplicated: HashSet<String>,
    /// Why the whole file is unusable, if it is.
    file_problem: Option<String>,
}

impl Predictions {
    /// Reads `<dir>/predictions.csv`. `cases` is the phase's case list, used to report unknown
    /// ids; file-level findings are appended to `problems`.
    pub fn load(
        dir: &Path,
        challenge: &Challenge,
        cases: &[String],
        submission: &str,
        problems: &mut Vec<Problem>,
    ) -> Predictions {
        let mut predictions = Predictions {
            dir: dir.to_path_buf(),
            rows: HashMap::new(),
            duplicated: HashSet::new(),
            file_problem: None,
        };
        let columns = challenge.prediction_columns();
        if columns.is_empty() {
            return predictions;
        }
        let path = dir.join("predictions.csv");
        let mut file_problem = |text: String| {
            problems.push(Problem {
                submission: submission.to_string(),
                case_id: "*".into(),
                task: String::new(),
                problem: text.clone(),
            });
            text
        };
        if !path.exists() {
            predictions.file_problem = Some(file_problem(format!(
                "no predictions.csv in {}; write one with the columns case_id,{}",
                dir.display(),
                columns.join(",")
            )));
            return predictions;
        }
        let table = match Table::read(&path) {
            Ok(t) => t,
            Err(e) => {
                predictions.file_problem = Some(file_problem(format!("{e}")));
                return predictions;
            }
        };
        let Some(id_col) = table.column("case_id") else {
            predictions.file_problem = Some(file_problem(format!(
                "{}:1: no case_id column; the header has: {}",
                path.display(),
                table.headers.join(", ")
            )));
            return predictions;
        };
        for column in &columns {
            if table.column(column).is_none() {
                file_problem(format!(
                    "{}:1: no column {column}; every case counts as missing for the tasks that read it",
                    path.display()
                ));
            }
        }
        let known: HashSet<&str> = cases.iter().map(String::as_str).collect();
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for row in &table.rows {
            let case_id = row.fields[id_col].clone();
            if !known.contains(case_id.as_str()) {
                problems.push(Problem {
                    submission: submission.to_string(),
                    case_id: case_id.clone(),
                    task: String::new(),
                    problem: format!(
                        "{}:{}: unknown case id {case_id:?}; it is not in this phase's cases.csv and is ignored",
                        path.display(),
                        row.line
                    ),
                });
                continue;
            }
            if let Some(first) = first_line.get(&case_id) {
                if self_insert(&mut predictions.duplicated, &case_id) {
                    problems.push(Problem {
                        submission: submission.to_string(),
                        case_id: case_id.clone(),
                        task: String::new(),
                        problem: format!(
                            "{}:{}: case {case_id} already appears on line {first}; write each case once (the case counts as invalid)",
                            path.display(),
                            row.line
                        ),
                    });
                }
                continue;
            }
            first_line.insert(case_id.clone(), row.line);
            let values = columns
                .iter()
                .filter_map(|c| table.column(c).map(|i| (c.clone(), row.fields[i].clone())))
                .collect();
            predictions.rows.insert(case_id, values);
        }
        predictions
    }

    pub fn cell(&self, case_id: &str, column: &str) -> Cell<'_> {
        if self.duplicated.contains(case_id) {
            return Cell::Invalid(format!(
                "case {case_id} appears more than once in predictions.csv"
            ));
        }
        if let Some(problem) = &self.file_problem {
            return Cell::Missing(format!("predictions.csv is unusable: {problem}"));
        }
        match self.rows.get(case_id) {
            None => Cell::Missing(format!("predictions.csv has no row for case {case_id}")),
            Some(row) => match row.get(column).map(String::as_str) {
                None => Cell::Missing(format!("predictions.csv has no column {column}")),
                Some("") => Cell::Missing(format!("{column} is empty")),
                Some(value) => Cell::Value(value),
            },
        }
    }

    /// The case has exactly one row in predictions.csv (whatever its fields hold).
    pub fn has_row(&self, case_id: &str) -> bool {
        self.file_problem.is_none()
            && !self.duplicated.contains(case_id)
            && self.rows.contains_key(case_id)
    }

    pub fn mask(&self, dir: &str, case_id: &str) -> PathBuf {
        self.dir.join(dir).join(format!("{case_id}.nii.gz"))
    }
}

fn self_insert(set: &mut HashSet<String>, value: &str) -> bool {
    set.insert(value.to_string())
}
