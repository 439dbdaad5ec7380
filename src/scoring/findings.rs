//! A submission's findings grouped by kind, for people to read: forty missing masks are one
//! line naming the count and the first cases, not forty lines (`problems.csv` keeps one row per
//! case and finding, for tools).

use std::collections::BTreeSet;

use crate::challenge::MissingPolicy;
use crate::results::Problem;

/// Cases named on a group's line before "and N more".
const CASES_SHOWN: usize = 3;

/// Findings that say the same thing of different cases.
#[derive(Clone, Debug, PartialEq)]
pub struct FindingGroup {
    /// The finding, with the case id it named written as `<case>`.
    pub what: String,
    /// The tasks it concerns; empty when it concerns every task of the case.
    pub tasks: Vec<String>,
    /// The cases, in the order found; empty for a finding about a whole file.
    pub cases: Vec<String>,
}

impl FindingGroup {
    /// One line, such as `segmentation, 40 cases (case-001, case-002, case-003 and 37 more):
    /// no mask masks/<case>.nii.gz`.
    pub fn line(&self) -> String {
        let tasks = if self.tasks.is_empty() {
            "every task".to_string()
        } else {
            self.tasks.join(", ")
        };
        let cases = match self.cases.as_slice() {
            [] => return format!("{tasks}: {}", self.what),
            [case] => {
                return format!(
                    "{tasks}: case {case}: {}",
                    self.what.replace("<case>", case)
                )
            }
            cases => cases,
        };
        let mut named = cases[..cases.len().min(CASES_SHOWN)].join(", ");
        if cases.len() > CASES_SHOWN {
            named.push_str(&format!(" and {} more", cases.len() - CASES_SHOWN));
        }
        format!("{tasks}, {} cases ({named}): {}", cases.len(), self.what)
    }
}

/// The findings of `submission` grouped by what they say, in the order first found. A finding
/// recorded twice for the same case and task counts once.
pub fn group(problems: &[Problem], submission: &str) -> Vec<FindingGroup> {
    let mut groups: Vec<FindingGroup> = Vec::new();
    let mut seen = BTreeSet::new();
    for p in problems.iter().filter(|p| p.submission == submission) {
        if !seen.insert((&p.case_id, &p.task, &p.problem)) {
            continue;
        }
        let whole_file = p.case_id == "*";
        let what = if whole_file {
            p.problem.clone()
        } else {
            replace_id(&p.problem, &p.case_id)
        };
        let group = match groups
            .iter_mut()
            .find(|g| g.what == what && g.cases.is_empty() == whole_file)
        {
            Some(group) => group,
            None => {
                groups.push(FindingGroup {
                    what,
                    tasks: Vec::new(),
                    cases: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        if !p.task.is_empty() && !group.tasks.contains(&p.task) {
            group.tasks.push(p.task.clone());
        }
        if !whole_file && !group.cases.contains(&p.case_id) {
            group.cases.push(p.case_id.clone());
        }
    }
    groups
}

/// `text` with each mention of `case_id` as a word of its own (not inside a longer id or
/// word: case `1` in `case-0001`) written as `<case>`.
fn replace_id(text: &str, case_id: &str) -> String {
    if case_id.is_empty() {
        return text.to_string();
    }
    let part_of_id = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(case_id) {
        let before = rest[..at].chars().next_back().or(out.chars().next_back());
        let after = rest[at + case_id.len()..].chars().next();
        let whole = !before.is_some_and(part_of_id) && !after.is_some_and(part_of_id);
        out.push_str(&rest[..at]);
        out.push_str(if whole { "<case>" } else { case_id });
        rest = &rest[at + case_id.len()..];
    }
    out.push_str(rest);
    out
}

/// What the server does with the cases of these findings, in a sentence: they are scored, not
/// refused, under the challenge's missing policy.
pub fn consequence(groups: &[FindingGroup], policy: MissingPolicy) -> String {
    let cases: BTreeSet<&String> = groups.iter().flat_map(|g| &g.cases).collect();
    let these = match cases.len() {
        0 => "the cases these findings concern".to_string(),
        1 => "this case".to_string(),
        n => format!("these {n} cases"),
    };
    let fate = match policy {
        MissingPolicy::Worst => format!(
            "{these} would be scored with the worst value of each metric of the tasks named ([scoring] missing = \"worst\")"
        ),
        MissingPolicy::Exclude => format!(
            "{these} would be left out of the aggregates of the tasks named ([scoring] missing = \"exclude\")"
        ),
    };
    format!("{fate}; the submission is not rejected")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(case_id: &str, task: &str, text: &str) -> Problem {
        Problem {
            submission: "team".into(),
            case_id: case_id.into(),
            task: task.into(),
            problem: text.into(),
        }
    }

    #[test]
    fn the_same_finding_of_many_cases_is_one_group_naming_the_first_cases() {
        let cases: Vec<String> = (1..=5).map(|k| format!("case-00{k}")).collect();
        let problems: Vec<Problem> = cases
            .iter()
            .map(|c| problem(c, "segmentation", &format!("no mask masks/{c}.nii.gz")))
            .collect();
        let groups = group(&problems, "team");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].cases, cases);
        assert_eq!(
            groups[0].line(),
            format!(
                "segmentation, {} cases ({} and {} more): no mask masks/<case>.nii.gz",
                cases.len(),
                cases[..CASES_SHOWN].join(", "),
                cases.len() - CASES_SHOWN
            )
        );
    }

    #[test]
    fn one_finding_read_by_several_tasks_is_one_group_naming_them() {
        let tasks = ["detection", "staging"];
        let problems: Vec<Problem> = ["a", "b"]
            .iter()
            .flat_map(|c| {
                tasks.iter().map(move |t| {
                    problem(c, t, &format!("predictions.csv has no row for case {c}"))
                })
            })
            .collect();
        let groups = group(&problems, "team");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].tasks, tasks);
        assert_eq!(groups[0].cases, ["a", "b"]);
    }

    #[test]
    fn a_finding_recorded_twice_counts_once_and_other_submissions_are_left_out() {
        let twice = problem("a", "segmentation", "no mask masks/a.nii.gz");
        let mut other = twice.clone();
        other.submission = "other".into();
        let groups = group(&[twice.clone(), twice, other], "team");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].cases, ["a"]);
        assert_eq!(groups[0].what, "no mask masks/<case>.nii.gz");
        assert_eq!(
            groups[0].line(),
            "segmentation: case a: no mask masks/a.nii.gz"
        );
    }

    #[test]
    fn the_consequence_follows_the_missing_policy_and_never_says_rejected() {
        let groups = group(
            &[
                problem("a", "segmentation", "no mask masks/a.nii.gz"),
                problem("b", "", "failed: exit code 1"),
            ],
            "team",
        );
        let worst = consequence(&groups, MissingPolicy::Worst);
        assert!(
            worst.starts_with("these 2 cases would be scored with the worst value"),
            "{worst}"
        );
        assert!(worst.ends_with("the submission is not rejected"), "{worst}");
        let exclude = consequence(&groups, MissingPolicy::Exclude);
        assert!(exclude.contains("left out of the aggregates"), "{exclude}");
    }
}
