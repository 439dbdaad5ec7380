//! Ranking submissions. For now one method: each task ranks the submissions on its primary
//! metric, and the consensus is the mean of the task ranks (grand-challenge's "mean position").
//! Ties share the lowest rank; an undefined or absent value takes the worst rank, so an empty
//! submission can never come first.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::challenge::Task;
use crate::results::{CaseStatus, RoundScores};

#[derive(Clone, Debug, Serialize)]
pub struct TaskStanding {
    pub task: String,
    pub metric: String,
    pub value: Option<f64>,
    pub ci: Option<(f64, f64)>,
    pub rank: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct LeaderboardRow {
    pub rank: usize,
    pub submission: String,
    pub team: String,
    pub baseline: bool,
    pub mean_task_rank: f64,
    pub tasks: Vec<TaskStanding>,
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

/// The leaderboard by mean task rank, best first; equal means share a rank and are listed by name.
pub fn mean_task_rank(round: &RoundScores, tasks: &[Task]) -> Vec<LeaderboardRow> {
    let subs = &round.submissions;
    let mut rows: Vec<LeaderboardRow> = subs
        .iter()
        .map(|s| LeaderboardRow {
            rank: 0,
            submission: s.name.clone(),
            team: s.team.clone(),
            baseline: s.baseline,
            mean_task_rank: 0.0,
            tasks: Vec::new(),
            run_counts: s.run_counts.clone(),
        })
        .collect();
    for task in tasks {
        let metric = task.primary.name();
        let aggregates: Vec<_> = subs
            .iter()
            .map(|s| round.aggregate(&s.name, &task.name, metric))
            .collect();
        let values: Vec<Option<f64>> = aggregates.iter().map(|a| a.and_then(|a| a.value)).collect();
        let ranks = competition_ranks(&values, task.primary.higher_is_better());
        for (i, row) in rows.iter_mut().enumerate() {
            let ci = aggregates[i].and_then(|a| Some((a.ci_lower?, a.ci_upper?)));
            row.tasks.push(TaskStanding {
                task: task.name.clone(),
                metric: metric.to_string(),
                value: values[i],
                ci,
                rank: ranks[i],
            });
        }
    }
    for row in &mut rows {
        let n = row.tasks.len().max(1) as f64;
        row.mean_task_rank = row.tasks.iter().map(|t| t.rank as f64).sum::<f64>() / n;
    }
    let means: Vec<Option<f64>> = rows.iter().map(|r| Some(r.mean_task_rank)).collect();
    let final_ranks = competition_ranks(&means, false);
    for (row, rank) in rows.iter_mut().zip(final_ranks) {
        row.rank = rank;
    }
    rows.sort_by(|a, b| {
        a.rank
            .cmp(&b.rank)
            .then_with(|| a.submission.cmp(&b.submission))
    });
    rows
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
