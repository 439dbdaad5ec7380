//! Ranking submissions: each task ranks them on its primary metric under the declared method,
//! and the consensus is the weighted mean of the task ranks (grand-challenge's "mean
//! position"). Ties share the lowest rank; an undefined or absent value takes the worst rank, so
//! an empty submission can never come first. [`analysis`] holds the methods, the bootstrap
//! stability and the significance tests (docs/ranking.md).

pub mod analysis;
pub use crate::results::ranking_inputs as inputs;
pub mod robustness;
pub mod significance;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::challenge::Task;
use crate::results::{CaseStatus, RoundScores};
use inputs::PrimaryValues::PerCase;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskStanding {
    pub task: String,
    pub metric: String,
    pub value: Option<f64>,
    pub ci: Option<(f64, f64)>,
    /// None for a baseline that is shown but not ranked.
    pub rank: Option<usize>,
    /// `value` is the median over cases, with its order-statistic CI, since the round ranks
    /// medians (median-then-rank); else the metric's own aggregate (a mean, or a whole-set
    /// metric such as AUC, which median-then-rank ranks as it is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub median: bool,
    /// [`crate::results::precision_note`] of the value shown; empty when it needs none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl TaskStanding {
    /// The value's name in a table header: `median dice` when it is a median.
    pub fn label(&self) -> String {
        if self.median {
            format!("median {}", self.metric)
        } else {
            self.metric.clone()
        }
    }

    /// The value's name in a CSV column (`<task>.<column>`): `median_dice` when a median.
    pub fn column(&self) -> String {
        if self.median {
            format!("median_{}", self.metric)
        } else {
            self.metric.clone()
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaderboardRow {
    /// None for a baseline that is shown but not ranked.
    pub rank: Option<usize>,
    pub submission: String,
    pub team: String,
    pub baseline: bool,
    pub mean_task_rank: Option<f64>,
    pub tasks: Vec<TaskStanding>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub run_counts: BTreeMap<CaseStatus, usize>,
}

/// Standard competition ranking ("1224"): equal values share the lowest rank. `None` values
/// all share the rank after every defined value.
pub fn competition_ranks(values: &[Option<f64>], higher_is_better: bool) -> Vec<usize> {
    let better = |a: f64, b: f64| if higher_is_better { a > b } else { a < b };
    values
        .iter()
        .map(|v| match v {
            Some(x) => {
                1 + values
                    .iter()
                    .filter(|o| o.is_some_and(|y| better(y, *x)))
                    .count()
            }
            None => 1 + values.iter().filter(|o| o.is_some()).count(),
        })
        .collect()
}

/// The leaderboard under the analysis' declared method: each task ranks the submissions on its
/// primary metric, and the consensus ranks the weighted mean of the task ranks. Best first;
/// equal ranks are listed by name.
pub fn leaderboard(
    round: &RoundScores,
    tasks: &[Task],
    weights: &BTreeMap<String, f64>,
    analysis: &analysis::RankingAnalysis,
) -> Vec<LeaderboardRow> {
    let method = analysis
        .method
        .unwrap_or(analysis::RankingMethod::MeanThenRank);
    let weight = |task: &str| weights.get(task).copied().unwrap_or(1.0);
    let total_weight: f64 = tasks.iter().map(|t| weight(&t.name)).sum();
    let mut rows: Vec<LeaderboardRow> = round
        .submissions
        .iter()
        .map(|s| {
            let standings: Vec<TaskStanding> = tasks
                .iter()
                .map(|task| {
                    let metric = task.primary.name();
                    let aggregate = round.aggregate(&s.name, &task.name, metric);
                    let mut standing = TaskStanding {
                        task: task.name.clone(),
                        metric: metric.to_string(),
                        value: aggregate.and_then(|a| a.value),
                        ci: aggregate.and_then(|a| Some((a.ci_lower?, a.ci_upper?))),
                        rank: analysis.rank(method, &task.name, &s.name),
                        median: false,
                        note: aggregate.map(|a| a.note.clone()).unwrap_or_default(),
                    };
                    // Show what is ranked: the median of the very per-case values ranked.
                    let key = (s.name.clone(), task.name.clone());
                    if let (analysis::RankingMethod::MedianThenRank, Some(PerCase(per_case))) =
                        (method, round.ranking.values.get(&key))
                    {
                        let present: Vec<f64> = per_case.iter().flatten().copied().collect();
                        let median = crate::metrics::intervals::median_with_ci(&present);
                        standing.value = median.map(|(m, _)| m);
                        standing.ci = median.and_then(|(_, ci)| ci);
                        standing.median = true;
                        standing.note = crate::results::precision_note(
                            present.len(),
                            standing.value,
                            standing.ci,
                            round.min_cases,
                        );
                    }
                    standing
                })
                .collect();
            let mean = standings
                .iter()
                .map(|t| Some(t.rank? as f64 * weight(&t.task)))
                .sum::<Option<f64>>()
                .filter(|_| total_weight > 0.0)
                .map(|sum| sum / total_weight);
            LeaderboardRow {
                rank: analysis.rank(method, analysis::CONSENSUS, &s.name),
                submission: s.name.clone(),
                team: s.team.clone(),
                baseline: s.baseline,
                mean_task_rank: mean,
                tasks: standings,
                run_counts: s.run_counts.clone(),
            }
        })
        .collect();
    // Ranked rows first, then the unranked baselines.
    rows.sort_by(|a, b| {
        (a.rank.is_none(), a.rank)
            .cmp(&(b.rank.is_none(), b.rank))
            .then_with(|| a.submission.cmp(&b.submission))
    });
    place_baselines(rows, analysis)
}

/// Moves each unranked baseline to its place among the teams, as benchmark rows stand in a
/// Kaggle table: above the first team it places strictly above (teams keep their order and
/// their rank numbers; a team level with a baseline stays above it). Rows without a place
/// (an analysis without [`analysis::RankingAnalysis::placement`]) stay at the end.
fn place_baselines(
    rows: Vec<LeaderboardRow>,
    analysis: &analysis::RankingAnalysis,
) -> Vec<LeaderboardRow> {
    let place = |r: &LeaderboardRow| analysis.place(analysis::CONSENSUS, &r.submission);
    let (mut baselines, ranked): (Vec<LeaderboardRow>, Vec<LeaderboardRow>) = rows
        .into_iter()
        .partition(|r| r.rank.is_none() && place(r).is_some());
    baselines.sort_by_key(|r| (place(r), r.submission.clone()));
    let mut placed = Vec::with_capacity(ranked.len() + baselines.len());
    let mut waiting = baselines.into_iter().peekable();
    for row in ranked {
        let team_place = place(&row);
        while let Some(baseline) = waiting
            .next_if(|b| row.rank.is_some() && team_place.is_some_and(|t| place(b) < Some(t)))
        {
            placed.push(baseline);
        }
        placed.push(row);
    }
    placed.extend(waiting);
    placed
}

/// Who the analysis ranks: the team submissions. Baselines are shown beside them but not
/// ranked, so an example can never push a team down; a round of baselines only (the demo, an
/// organizer's dry run) ranks them, since there is nothing else to rank.
pub fn ranked_submissions(round: &RoundScores) -> Vec<String> {
    let teams: Vec<String> = round
        .submissions
        .iter()
        .filter(|s| !s.baseline)
        .map(|s| s.name.clone())
        .collect();
    if teams.is_empty() {
        round.submissions.iter().map(|s| s.name.clone()).collect()
    } else {
        teams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_the_lowest_rank_and_undefined_values_come_last() {
        let v = [Some(0.9), None, Some(0.7), Some(0.9), Some(0.5)];
        assert_eq!(competition_ranks(&v, true), vec![1, 5, 3, 1, 4]);
        let errors = [Some(3.0), Some(1.0), None];
        assert_eq!(competition_ranks(&errors, false), vec![2, 1, 3]);
        assert_eq!(competition_ranks(&[None, None], true), vec![1, 1]);
    }

    fn row(name: &str, rank: Option<usize>) -> LeaderboardRow {
        LeaderboardRow {
            rank,
            submission: name.into(),
            team: name.into(),
            baseline: rank.is_none(),
            mean_task_rank: None,
            tasks: Vec::new(),
            run_counts: BTreeMap::new(),
        }
    }

    #[test]
    fn baselines_stand_above_the_first_team_they_place_strictly_above() {
        let places = [("a", 1), ("x", 2), ("b", 3), ("c", 3), ("y", 3), ("z", 9)];
        let analysis = analysis::RankingAnalysis {
            submissions: vec!["a".into(), "b".into(), "c".into()],
            placement: places
                .iter()
                .map(|(s, rank)| analysis::MethodRank {
                    method: "mean-then-rank".into(),
                    scope: analysis::CONSENSUS.into(),
                    submission: s.to_string(),
                    rank: *rank,
                })
                .collect(),
            ..Default::default()
        };
        let rows = vec![
            row("a", Some(1)),
            row("b", Some(2)),
            row("c", Some(2)),
            row("z", None),
            row("y", None),
            row("x", None),
        ];
        let order: Vec<String> = place_baselines(rows, &analysis)
            .into_iter()
            .map(|r| r.submission)
            .collect();
        // y is level with b and c: a team level with a baseline stays above it.
        assert_eq!(order, ["a", "x", "b", "c", "y", "z"]);
        let verdict = analysis.baseline_verdict();
        assert!(verdict.is_none(), "team a places above every baseline");
    }
}
