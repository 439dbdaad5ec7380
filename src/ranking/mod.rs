//! Ranking submissions: each task ranks them on its primary metric under the declared method,
//! and the consensus is the weighted mean of the task ranks (grand-challenge's "mean
//! position"). Ties share the lowest rank; an undefined or absent value takes the worst rank, so
//! an empty submission can never come first. [`analysis`] holds the methods, the bootstrap
//! stability and the significance tests (docs/ranking.md).

pub mod analysis;
pub mod inputs;
pub mod significance;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::challenge::Task;
use crate::results::{CaseStatus, RoundScores};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskStanding {
    pub task: String,
    pub metric: String,
    pub value: Option<f64>,
    pub ci: Option<(f64, f64)>,
    /// None for a baseline that is shown but not ranked.
    pub rank: Option<usize>,
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
                    TaskStanding {
                        task: task.name.clone(),
                        metric: metric.to_string(),
                        value: aggregate.and_then(|a| a.value),
                        ci: aggregate.and_then(|a| Some((a.ci_lower?, a.ci_upper?))),
                        rank: analysis.rank(method, &task.name, &s.name),
                    }
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
    rows
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
}
