//! The cases' metadata, `truth/metadata.csv` (`case_id,site,scanner,…`, one row per case,
//! header first): the subgroups of `[analysis] subgroups` are columns of it. It sits with the
//! truth, so it is never staged to a team's program nor sent to teams.

use std::collections::BTreeMap;

use super::{Challenge, PhasePaths};
use crate::error::{Error, Result};
use crate::io::table::Table;

/// The declared subgroup columns of one phase's cases.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CaseMetadata {
    /// case id → (subgroup column → level), for the columns of `[analysis] subgroups`.
    pub levels: BTreeMap<String, BTreeMap<String, String>>,
}

impl CaseMetadata {
    /// The phase's metadata when the challenge declares subgroups; None when it declares none.
    /// The file must exist and hold every declared column; rows are checked against `cases`
    /// by [`check_cases`], which `podium validate` reports.
    pub fn read(challenge: &Challenge, phase: &PhasePaths) -> Result<Option<CaseMetadata>> {
        let columns = &challenge.analysis.subgroups;
        if columns.is_empty() {
            return Ok(None);
        }
        let path = phase.metadata_csv();
        if !path.is_file() {
            return Err(Error::msg(format!(
                "{}: not found; [analysis] subgroups = [{}] needs the cases' metadata there (`case_id,{}`, one row per case), or remove [analysis] subgroups",
                path.display(),
                columns.join(", "),
                columns.join(",")
            )));
        }
        let table = Table::read(&path)?;
        let mut wanted = vec!["case_id".to_string()];
        wanted.extend(columns.iter().cloned());
        let index = table.require(&wanted)?;
        let mut levels = BTreeMap::new();
        let mut problems = Vec::new();
        for row in &table.rows {
            let case_id = row.fields[index[0]].clone();
            let mut of_case = BTreeMap::new();
            for (column, &i) in columns.iter().zip(&index[1..]) {
                let level = &row.fields[i];
                if level.is_empty() {
                    problems.push(format!(
                        "{}:{}: case {case_id:?} has no {column}; give every case a level (for example `unknown`)",
                        path.display(),
                        row.line
                    ));
                }
                of_case.insert(column.clone(), level.clone());
            }
            if levels.insert(case_id.clone(), of_case).is_some() {
                problems.push(format!(
                    "{}:{}: case {case_id:?} has a second row; keep one row per case",
                    path.display(),
                    row.line
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Error::List(problems));
        }
        Ok(Some(CaseMetadata { levels }))
    }

    /// The level of `case_id` in `column`, if the metadata has one.
    pub fn level(&self, case_id: &str, column: &str) -> Option<&str> {
        self.levels.get(case_id)?.get(column).map(String::as_str)
    }

    /// What is wrong between the metadata and the phase's `cases`: ids it does not know, and
    /// cases it lacks (which would fall in no subgroup). Messages name `path`.
    pub fn check_cases(&self, cases: &[String], path: &std::path::Path) -> MetadataMismatch {
        let known: std::collections::BTreeSet<&String> = cases.iter().collect();
        let unknown: Vec<&str> = self
            .levels
            .keys()
            .filter(|id| !known.contains(id))
            .map(String::as_str)
            .collect();
        let missing: Vec<&str> = cases
            .iter()
            .filter(|id| !self.levels.contains_key(*id))
            .map(String::as_str)
            .collect();
        let listed = |ids: &[&str]| {
            let shown: Vec<&str> = ids.iter().take(5).copied().collect();
            let more = ids.len().saturating_sub(shown.len());
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("{}{tail}", shown.join(", "))
        };
        MetadataMismatch {
            unknown_cases: (!unknown.is_empty()).then(|| format!(
                "{}: {} case id(s) not in input/cases.csv: {}; remove those rows or fix the ids",
                path.display(),
                unknown.len(),
                crate::text::shown(&listed(&unknown))
            )),
            missing_cases: (!missing.is_empty()).then(|| format!(
                "{}: {} case(s) of input/cases.csv have no row, so they fall in no subgroup: {}; add a row for each",
                path.display(),
                missing.len(),
                crate::text::shown(&listed(&missing))
            )),
        }
    }
}

/// [`CaseMetadata::check_cases`]' findings, each a message naming the file.
#[derive(Debug, Default)]
pub struct MetadataMismatch {
    /// Rows of ids the phase does not have: harmless, they change no value.
    pub unknown_cases: Option<String>,
    /// Cases without a row: they would fall in no subgroup.
    pub missing_cases: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge_with(dir: &std::path::Path, analysis: &str) -> Challenge {
        let text = format!(
            "name = \"c\"\n[[phases]]\nname = \"test\"\n[[tasks]]\nname = \"covid\"\nkind = \"binary-classification\"\nprediction = \"p\"\ntruth = \"label\"\npositive_class = \"covid\"\nmetrics = [\"auc\"]\nprimary = \"auc\"\n{analysis}"
        );
        Challenge::parse(&text, &dir.join("challenge.toml"), dir.to_path_buf()).unwrap()
    }

    #[test]
    fn a_declared_column_the_file_lacks_is_named_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let challenge = challenge_with(
            dir.path(),
            "[analysis]\nsubgroups = [\"site\", \"scanner\"]\n",
        );
        let phase = challenge.phase_paths("test", Some(dir.path())).unwrap();
        std::fs::write(phase.metadata_csv(), "case_id,site\na,h1\n").unwrap();
        let error = CaseMetadata::read(&challenge, &phase)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("metadata.csv:1") && error.contains("scanner"),
            "{error}"
        );
    }

    #[test]
    fn no_declared_subgroup_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let challenge = challenge_with(dir.path(), "");
        let phase = challenge.phase_paths("test", Some(dir.path())).unwrap();
        assert_eq!(CaseMetadata::read(&challenge, &phase).unwrap(), None);
    }

    #[test]
    fn unknown_and_missing_cases_are_both_reported() {
        let dir = tempfile::tempdir().unwrap();
        let challenge = challenge_with(dir.path(), "[analysis]\nsubgroups = [\"site\"]\n");
        let phase = challenge.phase_paths("test", Some(dir.path())).unwrap();
        std::fs::write(phase.metadata_csv(), "case_id,site\na,h1\nzz,h2\n").unwrap();
        let metadata = CaseMetadata::read(&challenge, &phase).unwrap().unwrap();
        let cases = vec!["a".to_string(), "b".to_string()];
        let mismatch = metadata.check_cases(&cases, &phase.metadata_csv());
        assert!(mismatch.unknown_cases.unwrap().contains("zz"));
        assert!(mismatch.missing_cases.unwrap().contains(": b;"));
    }

    #[test]
    fn a_case_without_a_level_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let challenge = challenge_with(dir.path(), "[analysis]\nsubgroups = [\"site\"]\n");
        let phase = challenge.phase_paths("test", Some(dir.path())).unwrap();
        std::fs::write(phase.metadata_csv(), "case_id,site\na,h1\nb,\n").unwrap();
        let error = CaseMetadata::read(&challenge, &phase)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("metadata.csv:3") && error.contains("\"b\""),
            "{error}"
        );
    }
}
