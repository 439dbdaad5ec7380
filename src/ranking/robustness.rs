//! Ranking on worst-subgroup performance (robustness), beside the declared method: each task
//! ranks the submissions on the value of their worst eligible level of a subgroup
//! (`subgroup_summary.csv`'s `worst_value`), and the consensus is the weighted mean of those
//! task ranks, as for the declared method. One method per subgroup, named `worst-<subgroup>`.

use super::analysis::{MethodRank, CONSENSUS};
use super::competition_ranks;
use crate::challenge::Challenge;
use crate::results::RoundScores;

/// The name of the robustness method of `subgroup` in `ranking/methods.csv`.
pub fn method_name(subgroup: &str) -> String {
    format!("worst-{subgroup}")
}

/// Ranks of `submissions` per task and consensus on their worst level of each declared
/// subgroup. A submission without an eligible level on a task takes that task's last rank.
pub fn worst_subgroup_ranks(
    challenge: &Challenge,
    scores: &RoundScores,
    submissions: &[String],
) -> Vec<MethodRank> {
    let mut rows = Vec::new();
    for subgroup in &challenge.analysis.subgroups {
        let method = method_name(subgroup);
        let mut per_task: Vec<(Vec<usize>, f64)> = Vec::new();
        for task in &challenge.tasks {
            let worst: Vec<Option<f64>> = submissions
                .iter()
                .map(|s| {
                    scores
                        .subgroup_summaries
                        .iter()
                        .find(|x| {
                            &x.submission == s && x.task == task.name && &x.subgroup == subgroup
                        })
                        .and_then(|x| x.worst_value)
                })
                .collect();
            let ranks = competition_ranks(&worst, task.primary.higher_is_better());
            for (s, rank) in submissions.iter().zip(&ranks) {
                rows.push(MethodRank {
                    method: method.clone(),
                    scope: task.name.clone(),
                    submission: s.clone(),
                    rank: *rank,
                });
            }
            let weight = challenge
                .ranking
                .weights
                .get(&task.name)
                .copied()
                .unwrap_or(1.0);
            per_task.push((ranks, weight));
        }
        let total: f64 = per_task.iter().map(|(_, w)| w).sum();
        let means: Vec<Option<f64>> = (0..submissions.len())
            .map(|s| {
                (total > 0.0)
                    .then(|| per_task.iter().map(|(r, w)| r[s] as f64 * w).sum::<f64>() / total)
            })
            .collect();
        for (s, rank) in submissions.iter().zip(competition_ranks(&means, false)) {
            rows.push(MethodRank {
                method: method.clone(),
                scope: CONSENSUS.to_string(),
                submission: s.clone(),
                rank,
            });
        }
    }
    rows
}
