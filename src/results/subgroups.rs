//! Aggregates per subgroup level (`[analysis] subgroups`, docs/metrics.md "Subgroups"): a row
//! of `metrics_by_subgroup.csv` each, and per submission, task and subgroup the worst level,
//! the spread between levels and a heterogeneity test (`subgroup_summary.csv`).

use serde::{Deserialize, Serialize};

/// One aggregate on the cases of one level: a row of `metrics_by_subgroup.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubgroupAggregate {
    pub submission: String,
    pub task: String,
    pub metric: String,
    /// The metadata column, e.g. `site`.
    pub subgroup: String,
    /// Its value for these cases, e.g. `hospital-a`.
    pub level: String,
    /// None when withheld (see `withheld`) or undefined on the level.
    pub value: Option<f64>,
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
    /// Cases of the level that entered the aggregate.
    pub n: usize,
    /// Classification tasks: the level's cases per truth class, in the task's class order.
    #[serde(default)]
    pub class_support: Vec<(String, usize)>,
    /// Why no number is given ("too few cases: …"), when the honesty rules withhold it.
    #[serde(default)]
    pub withheld: Option<String>,
}

impl SubgroupAggregate {
    /// `class=count;…`, the CSV cell of the class support.
    pub fn class_support_text(&self) -> String {
        self.class_support
            .iter()
            .map(|(class, n)| format!("{class}={n}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The note shown beside the value: the reason it is withheld or undefined, or, for an
    /// average over classes, which classes were present on the level.
    pub fn note(&self) -> String {
        if let Some(reason) = &self.withheld {
            return reason.clone();
        }
        if self.value.is_none() {
            return "undefined on this level's cases".to_string();
        }
        let absent: Vec<&str> = self
            .class_support
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(c, _)| c.as_str())
            .collect();
        if self.class_support.len() > 2 && !absent.is_empty() {
            let present: Vec<&str> = self
                .class_support
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(c, _)| c.as_str())
                .collect();
            return format!(
                "classes present: {}; absent: {}",
                present.join(", "),
                absent.join(", ")
            );
        }
        String::new()
    }
}

/// How far a submission's primary metric differs between the levels of one subgroup: a row of
/// `subgroup_summary.csv`. Only levels the honesty rules let through (eligible) count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubgroupSummary {
    pub submission: String,
    pub task: String,
    /// The task's primary metric.
    pub metric: String,
    pub subgroup: String,
    /// Levels with a value, of the levels the subgroup has.
    pub eligible_levels: usize,
    pub levels: usize,
    /// The level with the worst value (lowest, or highest for a metric where lower is better).
    pub worst_level: Option<String>,
    pub worst_value: Option<f64>,
    pub best_level: Option<String>,
    pub best_value: Option<f64>,
    /// Best minus worst, as a non-negative difference; None with fewer than two eligible levels.
    pub spread: Option<f64>,
    /// Percentile bootstrap of the spread, resampling cases within each level.
    pub spread_ci_lower: Option<f64>,
    pub spread_ci_upper: Option<f64>,
    /// `cochran-q` or `kruskal-wallis`, empty when no test could be made.
    pub test: String,
    pub statistic: Option<f64>,
    pub df: Option<usize>,
    pub p_value: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        value: Option<f64>,
        support: &[(&str, usize)],
        withheld: Option<&str>,
    ) -> SubgroupAggregate {
        SubgroupAggregate {
            submission: "s".into(),
            task: "t".into(),
            metric: "m".into(),
            subgroup: "site".into(),
            level: "a".into(),
            value,
            ci_lower: None,
            ci_upper: None,
            n: support.iter().map(|(_, n)| n).sum(),
            class_support: support.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            withheld: withheld.map(str::to_string),
        }
    }

    #[test]
    fn the_note_says_why_there_is_no_number_or_which_classes_were_averaged() {
        let withheld = row(None, &[("a", 2), ("b", 9)], Some("too few cases: a has 2"));
        assert_eq!(withheld.note(), "too few cases: a has 2");
        assert_eq!(withheld.class_support_text(), "a=2;b=9");
        assert_eq!(
            row(None, &[], None).note(),
            "undefined on this level's cases"
        );
        let absent = row(Some(0.8), &[("x", 6), ("y", 5), ("z", 0)], None);
        assert_eq!(absent.note(), "classes present: x, y; absent: z");
        // A binary task's classes are both required, so never "absent" in a note.
        assert_eq!(row(Some(0.8), &[("p", 6), ("not p", 6)], None).note(), "");
    }
}
