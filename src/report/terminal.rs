//! The leaderboard as a plain-text table for the terminal (and for pasting into an e-mail).

use crate::ranking::analysis::RankingAnalysis;
use crate::ranking::LeaderboardRow;
use crate::text::shown as clean;

/// The mark after a value that carries a precision note, explained in a footnote.
pub const NOTE_MARK: &str = "*";

/// One footnote of the leaderboard: the submissions whose value of `task`'s `label` carries the
/// same precision note ([`crate::results::precision_note`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PrecisionFootnote {
    pub task: String,
    pub label: String,
    pub note: String,
    pub submissions: Vec<String>,
}

/// The leaderboard's precision notes, one per task and note, in the order of the tasks.
pub fn precision_footnotes(rows: &[LeaderboardRow]) -> Vec<PrecisionFootnote> {
    let mut notes: Vec<PrecisionFootnote> = Vec::new();
    for r in rows {
        for t in r.tasks.iter().filter(|t| !t.note.is_empty()) {
            match notes
                .iter_mut()
                .find(|n| n.task == t.task && n.label == t.label() && n.note == t.note)
            {
                Some(n) => n.submissions.push(r.submission.clone()),
                None => notes.push(PrecisionFootnote {
                    task: t.task.clone(),
                    label: t.label(),
                    note: t.note.clone(),
                    submissions: vec![r.submission.clone()],
                }),
            }
        }
    }
    let task_order: Vec<&str> = rows
        .first()
        .map(|r| r.tasks.iter().map(|t| t.task.as_str()).collect())
        .unwrap_or_default();
    notes.sort_by_key(|n| task_order.iter().position(|t| *t == n.task));
    notes
}

/// Renders the leaderboard: rank, submission, then each task's primary metric with its 95% CI;
/// a value marked [`NOTE_MARK`] is less precise than it looks, and a footnote says why.
pub fn leaderboard_table(rows: &[LeaderboardRow]) -> String {
    let mut header = vec!["rank".to_string(), "submission".to_string()];
    if let Some(first) = rows.first() {
        header.extend(
            first
                .tasks
                .iter()
                .map(|t| clean(&format!("{} {}", t.task, t.label()))),
        );
    }
    header.push("mean rank".into());
    let mut table: Vec<Vec<String>> = vec![header];
    for r in rows {
        let mut name = clean(&r.submission);
        if r.baseline {
            name.push_str(" (baseline)");
        }
        let mut line = vec![r.rank.map_or("-".to_string(), |r| r.to_string()), name];
        for t in &r.tasks {
            let cell = match (t.value, t.ci) {
                (Some(v), Some((lo, hi))) => format!("{v:.3} [{lo:.3}, {hi:.3}]"),
                (Some(v), None) => format!("{v:.3}"),
                (None, _) => "undefined".into(),
            };
            let mark = if t.note.is_empty() { "" } else { NOTE_MARK };
            line.push(format!("{cell}{mark}"));
        }
        line.push(
            r.mean_task_rank
                .map_or("-".to_string(), |m| format!("{m:.2}")),
        );
        table.push(line);
    }
    let columns = table[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in table.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    for n in precision_footnotes(rows) {
        out.push_str(&format!(
            "{NOTE_MARK} {} {}: {} ({})\n",
            clean(&n.task),
            clean(&n.label),
            clean(&n.note),
            n.submissions
                .iter()
                .map(|s| clean(s))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

/// What a judge must know about the ranking, in a few lines: how stable the winner is, how
/// much the bootstrap rankings agree with the full one, and whether the methods agree.
pub fn ranking_caveats(analysis: &RankingAnalysis) -> Vec<String> {
    use crate::ranking::analysis::{RankingMethod, CONSENSUS};
    let mut lines = Vec::new();
    let Some(method) = analysis.method else {
        return lines;
    };
    let winners = |m: RankingMethod| -> Vec<String> {
        analysis
            .methods
            .iter()
            .filter(|r| r.method == m.name() && r.scope == CONSENSUS && r.rank == 1)
            .map(|r| clean(&r.submission))
            .collect()
    };
    let declared = winners(method);
    lines.extend(baseline_sentence(analysis));
    let among = if analysis.placement.is_empty() {
        ""
    } else {
        " among the teams"
    };
    if analysis.resamples > 0 {
        for interval in analysis
            .intervals
            .iter()
            .filter(|i| i.scope == CONSENSUS && i.rank == 1)
        {
            lines.push(format!(
                "{} ranks first{among} in {:.0}% of {} bootstrap resamples over cases (95% rank interval {}–{})",
                clean(&interval.submission),
                interval.first * 100.0,
                analysis.resamples,
                interval.rank_lower,
                interval.rank_upper
            ));
        }
        if let Some(tau) = analysis.median_tau(CONSENSUS) {
            let word = if tau >= 0.9 {
                "stable"
            } else if tau >= 0.7 {
                "fairly stable"
            } else {
                "UNSTABLE"
            };
            lines.push(format!(
                "ranking {word}: median Kendall's tau between the full and the bootstrap rankings {tau:.2}"
            ));
        }
    }
    let disagree: Vec<String> = RankingMethod::ALL
        .iter()
        .filter(|m| **m != method && winners(**m) != declared)
        .map(|m| format!("{} → {}", m.name(), winners(*m).join(", ")))
        .collect();
    lines.extend(robustness_lines(analysis, &declared));
    if disagree.is_empty() {
        lines.push(format!(
            "all four ranking methods put {} first",
            declared.join(", ")
        ));
    } else {
        lines.push(format!(
            "the winner depends on the method: {} → {}; {}",
            method.name(),
            declared.join(", "),
            disagree.join("; ")
        ));
    }
    lines
}

/// Where no team beats the best baseline, in words, so that a team below it is never
/// announced as a plain winner; None when a team beats it overall and on every task.
pub fn baseline_sentence(analysis: &RankingAnalysis) -> Option<String> {
    let verdict = analysis.baseline_verdict()?;
    let tasks = if verdict.unbeaten_tasks.len() == verdict.task_count {
        "every task".to_string()
    } else {
        format!(
            "task{} {}",
            if verdict.unbeaten_tasks.len() == 1 {
                ""
            } else {
                "s"
            },
            verdict
                .unbeaten_tasks
                .iter()
                .map(|t| clean(t))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Some(if verdict.unbeaten_overall {
        let also = if verdict.unbeaten_tasks.is_empty() {
            String::new()
        } else {
            format!(" and on {tasks}")
        };
        format!(
            "NO TEAM BEATS THE BEST BASELINE, {}: it places above or level with every team overall{also}",
            clean(&verdict.best_baseline)
        )
    } else {
        format!("no team beats the best baseline on {tasks}")
    })
}

/// Each submission's worst level of each subgroup, task by task, one line per submission and
/// subgroup: `site: team-a worst at b on detection (auc 0.712; spread 0.120 [0.031, 0.250],
/// cochran-q p = 0.04)`. Empty for a round without subgroups.
pub fn worst_subgroup_lines(scores: &crate::results::RoundScores) -> Vec<String> {
    let mut lines = Vec::new();
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for s in &scores.subgroup_summaries {
        if !keys.contains(&(s.subgroup.as_str(), s.submission.as_str())) {
            keys.push((s.subgroup.as_str(), s.submission.as_str()));
        }
    }
    for (subgroup, submission) in keys {
        let tasks: Vec<String> = scores
            .subgroup_summaries
            .iter()
            .filter(|s| s.subgroup == subgroup && s.submission == submission)
            .map(|s| {
                let (Some(level), Some(value)) = (&s.worst_level, s.worst_value) else {
                    return format!("{}: no level with enough cases", clean(&s.task));
                };
                let mut text = format!(
                    "{} at {} ({} {value:.3}",
                    clean(&s.task),
                    clean(level),
                    clean(&s.metric)
                );
                if s.eligible_levels >= 2 {
                    if let Some(spread) = s.spread {
                        text += &format!("; spread {spread:.3}");
                    }
                    if let (Some(lo), Some(hi)) = (s.spread_ci_lower, s.spread_ci_upper) {
                        text += &format!(" [{lo:.3}, {hi:.3}]");
                    }
                    if let Some(p) = s.p_value {
                        text += &format!(", {} p = {p:.2}", s.test);
                    }
                } else {
                    text += "; the only level with enough cases";
                }
                text + ")"
            })
            .collect();
        lines.push(format!(
            "worst {}: {}: {}",
            clean(subgroup),
            clean(submission),
            tasks.join("; ")
        ));
    }
    lines
}

/// The robustness lines of [`ranking_caveats`] alone, for the report's ranking analysis.
pub fn robustness_caveats(analysis: &RankingAnalysis) -> Vec<String> {
    let Some(method) = analysis.method else {
        return Vec::new();
    };
    let declared: Vec<String> = analysis
        .methods
        .iter()
        .filter(|r| {
            r.method == method.name()
                && r.scope == crate::ranking::analysis::CONSENSUS
                && r.rank == 1
        })
        .map(|r| clean(&r.submission))
        .collect();
    robustness_lines(analysis, &declared)
}

/// One line per robustness method (`worst-<subgroup>`, ranking each task on the worst level
/// of the subgroup): who comes first, and whether the declared method agrees.
fn robustness_lines(analysis: &RankingAnalysis, declared_winners: &[String]) -> Vec<String> {
    let mut methods: Vec<&str> = Vec::new();
    for m in &analysis.methods {
        if m.method.starts_with("worst-") && !methods.contains(&m.method.as_str()) {
            methods.push(&m.method);
        }
    }
    methods
        .into_iter()
        .map(|method| {
            let first: Vec<String> = analysis
                .methods
                .iter()
                .filter(|r| {
                    r.method == method
                        && r.scope == crate::ranking::analysis::CONSENSUS
                        && r.rank == 1
                })
                .map(|r| clean(&r.submission))
                .collect();
            let subgroup = clean(method.trim_start_matches("worst-"));
            let agreement = if first == declared_winners {
                "as the declared method does".to_string()
            } else {
                format!("the declared method puts {} first", declared_winners.join(", "))
            };
            format!(
                "robustness, each task ranked on the worst {subgroup} (ranking/methods.csv, method {}): {} first; {agreement}",
                clean(method),
                first.join(", ")
            )
        })
        .collect()
}
