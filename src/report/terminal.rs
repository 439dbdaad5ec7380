//! The leaderboard as a plain-text table for the terminal (and for pasting into an e-mail).

use crate::ranking::LeaderboardRow;
use crate::runner::events::clean;

/// Renders the leaderboard: rank, submission, then each task's primary metric with its 95% CI.
pub fn leaderboard_table(rows: &[LeaderboardRow]) -> String {
    let mut header = vec!["rank".to_string(), "submission".to_string()];
    if let Some(first) = rows.first() {
        header.extend(
            first
                .tasks
                .iter()
                .map(|t| format!("{} {}", t.task, t.metric)),
        );
    }
    header.push("mean rank".into());
    let mut table: Vec<Vec<String>> = vec![header];
    for r in rows {
        let mut name = clean(&r.submission);
        if r.baseline {
            name.push_str(" (baseline)");
        }
        let mut line = vec![r.rank.to_string(), name];
        for t in &r.tasks {
            let cell = match (t.value, t.ci) {
                (Some(v), Some((lo, hi))) => format!("{v:.3} [{lo:.3}, {hi:.3}]"),
                (Some(v), None) => format!("{v:.3}"),
                (None, _) => "undefined".into(),
            };
            line.push(cell);
        }
        line.push(format!("{:.2}", r.mean_task_rank));
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
    out
}
