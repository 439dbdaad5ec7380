//! The case list of a phase and its truth table.

use std::collections::{BTreeMap, HashMap};

use crate::challenge::{Challenge, PhasePaths};
use crate::error::{Error, Result};
use crate::io::table::Table;

pub use crate::challenge::read_case_ids;

/// `truth/labels.csv`: the truth columns the tasks need, per case.
#[derive(Clone, Debug)]
pub struct Truth {
    pub cases: Vec<String>,
    values: HashMap<String, BTreeMap<String, String>>,
}

impl Truth {
    pub fn read(challenge: &Challenge, phase: &PhasePaths) -> Result<Truth> {
        let cases = read_case_ids(phase)?;
        let columns = challenge.truth_columns();
        let mut values = HashMap::new();
        if !columns.is_empty() {
            let path = phase.labels_csv();
            let table = Table::read(&path).map_err(|e| {
                Error::msg(format!(
                    "{e}\n  The truth of phase {:?} is read from {}; pass --truth DIR if it lives elsewhere.",
                    phase.name,
                    phase.truth.display()
                ))
            })?;
            let mut wanted = vec!["case_id".to_string()];
            wanted.extend(columns.iter().cloned());
            let idx = table.require(&wanted)?;
            for row in &table.rows {
                let case_id = row.fields[idx[0]].clone();
                // Their rows may be the very reason they are left out (a duplicate, say).
                if phase.left_out.contains_key(&case_id) {
                    continue;
                }
                let map: BTreeMap<String, String> = columns
                    .iter()
                    .zip(&idx[1..])
                    .map(|(c, &i)| (c.clone(), row.fields[i].clone()))
                    .collect();
                if values.insert(case_id.clone(), map).is_some() {
                    return Err(Error::msg(format!(
                        "{}:{}: case {case_id:?} appears twice in the truth",
                        path.display(),
                        row.line
                    )));
                }
            }
        }
        Ok(Truth { cases, values })
    }

    /// The truth value of a column for a case; `None` when the truth table lacks the case or the
    /// value is empty (a challenge data error that `podium validate` reports).
    pub fn value(&self, case_id: &str, column: &str) -> Option<&str> {
        self.values
            .get(case_id)
            .and_then(|m| m.get(column))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}
