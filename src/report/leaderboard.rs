//! `podium leaderboard RUN_DIR`: a finished round's leaderboard read back from its
//! `leaderboard.csv` and exported as a terminal table, CSV, JSON or Markdown. Nothing is
//! recomputed, so the export shows exactly what the round decided. The file's text cells are
//! read back as they were before [`crate::text::csv_text`] neutralized them, and each format
//! then applies its own escaping: the file may come from an older podium, or a hand.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::table::Table;
use crate::ranking::{LeaderboardRow, TaskStanding};
use crate::text;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for the terminal.
    Table,
    /// `leaderboard.csv` as the round wrote it, every text cell neutralized for spreadsheets.
    Csv,
    /// One object per row, with each task's value, interval and rank.
    Json,
    /// A GitHub-flavoured Markdown table, for e-mails and issues.
    Markdown,
}

/// One row of a stored leaderboard: the row and how its cases ran (empty for `podium score`).
#[derive(Clone, Debug, Serialize)]
pub struct StoredRow {
    #[serde(flatten)]
    pub row: LeaderboardRow,
    pub cases_ok: Option<usize>,
    pub cases_not_ok: Option<usize>,
    /// The row belongs to a partial result of an interrupted round (`result` = INCOMPLETE).
    pub incomplete: bool,
}

/// Reads `RUN_DIR/leaderboard.csv`.
pub fn read(run_dir: &Path) -> Result<Vec<StoredRow>> {
    let path = run_dir.join("leaderboard.csv");
    if !path.is_file() {
        return Err(Error::msg(format!(
            "{} does not exist: pass the folder of a finished `podium run` or `podium score`",
            path.display()
        )));
    }
    let mut table = Table::read(&path)?;
    for header in &mut table.headers {
        *header = text::from_csv_text(header).to_string();
    }
    let column = |name: &str| table.headers.iter().position(|h| h == name);
    let fixed = ["rank", "submission", "team", "baseline", "mean_task_rank"];
    let idx = fixed
        .iter()
        .map(|c| {
            column(c).ok_or_else(|| {
                Error::msg(format!(
                    "{}: no column {c:?}; it was not written by podium",
                    path.display()
                ))
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    // Task columns come in fours: `<task>.<metric>`, its two CI bounds, `<task>.rank`.
    let tasks: Vec<(String, String, usize)> = table
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let (task, metric) = h.split_once('.')?;
            let is_value = metric != "rank"
                && !metric.ends_with("_ci_lower")
                && !metric.ends_with("_ci_upper");
            is_value.then(|| (task.to_string(), metric.to_string(), i))
        })
        .collect();
    let number = |text: &str| text.parse::<f64>().ok();
    let mut rows = Vec::new();
    for row in &table.rows {
        let f = |i: usize| row.fields[i].as_str();
        let bad = |what: &str| Error::msg(format!("{}:{}: {what}", path.display(), row.line));
        let standings = tasks
            .iter()
            .map(|(task, metric, i)| {
                let rank = column(&format!("{task}.rank")).and_then(|r| f(r).parse().ok());
                let ci = match (number(f(i + 1)), number(f(i + 2))) {
                    (Some(lo), Some(hi)) => Some((lo, hi)),
                    _ => None,
                };
                // `median_<metric>`: the round ranked medians ([`TaskStanding::column`]).
                let (metric, median) = match metric.strip_prefix("median_") {
                    Some(m) => (m.to_string(), true),
                    None => (metric.clone(), false),
                };
                Ok(TaskStanding {
                    task: task.clone(),
                    metric,
                    value: number(f(*i)),
                    ci,
                    rank,
                    median,
                    note: String::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Older files have no `notes` column: their values simply carry no note.
        let notes = column("notes").map(|c| text::from_csv_text(f(c)).to_string());
        let mut standings = standings;
        for entry in notes
            .iter()
            .flat_map(|n| n.split(super::csv_files::NOTES_SEPARATOR))
        {
            let Some((key, note)) = entry.split_once(": ") else {
                continue;
            };
            if let Some(t) = standings
                .iter_mut()
                .find(|t| format!("{}.{}", t.task, t.column()) == key)
            {
                t.note = note.to_string();
            }
        }
        let count = |name: &str| column(name).and_then(|c| f(c).parse().ok());
        rows.push(StoredRow {
            row: LeaderboardRow {
                rank: match f(idx[0]) {
                    "" => None,
                    text => Some(text.parse().map_err(|_| bad("rank is not a number"))?),
                },
                submission: text::from_csv_text(f(idx[1])).to_string(),
                team: text::from_csv_text(f(idx[2])).to_string(),
                baseline: f(idx[3]) == "true",
                mean_task_rank: number(f(idx[4])),
                tasks: standings,
                run_counts: BTreeMap::new(),
            },
            cases_ok: count("cases_ok"),
            cases_not_ok: count("cases_not_ok"),
            incomplete: column("result").is_some_and(|c| f(c) == "INCOMPLETE"),
        });
    }
    Ok(rows)
}

/// The leaderboard in `format`.
pub fn render(run_dir: &Path, rows: &[StoredRow], format: Format) -> Result<String> {
    let warning = if rows.iter().any(|r| r.incomplete) {
        "INCOMPLETE result of an interrupted round: no winner (run.json says how many cases ran)\n\n"
    } else {
        ""
    };
    Ok(match format {
        Format::Csv => neutralized_csv(&run_dir.join("leaderboard.csv"))?,
        Format::Json => {
            // An export for people and their tools: shown text, like every other format.
            let shown: Vec<StoredRow> = rows
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.row.submission = text::shown(&r.row.submission);
                    r.row.team = text::shown(&r.row.team);
                    for t in &mut r.row.tasks {
                        t.task = text::shown(&t.task);
                        t.metric = text::shown(&t.metric);
                    }
                    r
                })
                .collect();
            let mut json =
                serde_json::to_string_pretty(&shown).map_err(|e| Error::msg(e.to_string()))?;
            json.push('\n');
            json
        }
        Format::Table => {
            let plain: Vec<LeaderboardRow> = rows.iter().map(|r| r.row.clone()).collect();
            format!("{warning}{}", super::terminal::leaderboard_table(&plain))
        }
        Format::Markdown => {
            let plain: Vec<LeaderboardRow> = rows.iter().map(|r| r.row.clone()).collect();
            format!(
                "{}{}",
                warning.replace("INCOMPLETE result", "**INCOMPLETE result**"),
                markdown(&plain)
            )
        }
    })
}

/// `leaderboard.csv` written again, cell by cell: a number stays as it is, every other cell is
/// read back and neutralized again by [`text::csv_text`].
fn neutralized_csv(path: &Path) -> Result<String> {
    let table = Table::read(path)?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let cell = |c: &String| text::csv_text(text::from_csv_text(c));
    let err = |e: csv::Error| Error::io("write", path, e);
    writer
        .write_record(table.headers.iter().map(cell))
        .map_err(err)?;
    for row in &table.rows {
        writer
            .write_record(row.fields.iter().map(cell))
            .map_err(err)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
}

/// The leaderboard as a Markdown table, names escaped.
pub fn markdown(rows: &[LeaderboardRow]) -> String {
    let mut header = vec!["rank".to_string(), "submission".into(), "team".into()];
    if let Some(first) = rows.first() {
        header.extend(first.tasks.iter().map(|t| {
            format!(
                "{} {}",
                escape_markdown(&t.task),
                escape_markdown(&t.label())
            )
        }));
    }
    header.push("mean rank".into());
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        let mut name = escape_markdown(&r.submission);
        if r.baseline {
            name.push_str(" (baseline)");
        }
        let rank = r.rank.map_or("-".to_string(), |r| r.to_string());
        let mut cells = vec![rank, name, escape_markdown(&r.team)];
        for t in &r.tasks {
            let cell = match (t.value, t.ci) {
                (Some(v), Some((lo, hi))) => format!("{v:.3} [{lo:.3}, {hi:.3}]"),
                (Some(v), None) => format!("{v:.3}"),
                (None, _) => "undefined".into(),
            };
            let mark = if t.note.is_empty() { "" } else { "\\*" };
            cells.push(format!("{cell}{mark}"));
        }
        cells.push(
            r.mean_task_rank
                .map_or("-".to_string(), |m| format!("{m:.2}")),
        );
        out += &format!("| {} |\n", cells.join(" | "));
    }
    for n in super::terminal::precision_footnotes(rows) {
        let submissions: Vec<String> = n.submissions.iter().map(|s| escape_markdown(s)).collect();
        out += &format!(
            "\n\\* {} {}: {} ({})\n",
            escape_markdown(&n.task),
            escape_markdown(&n.label),
            escape_markdown(&n.note),
            submissions.join(", ")
        );
    }
    out
}

/// Team names and ids are untrusted: in Markdown they must neither break the table nor become
/// links, emphasis or HTML, nor carry control or bidi characters ([`crate::text::is_hidden`]).
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            // Its escape, with the backslash escaped too, reads the same as a name that was
            // shown already (from leaderboard.csv) and escaped here.
            c if text::is_hidden(c) => {
                out.push('\\');
                out.extend(c.escape_default());
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_text_in_markdown() {
        assert_eq!(
            escape_markdown("<script>alert(1)</script> | [x](http://e) *b*"),
            "&lt;script&gt;alert\\(1\\)&lt;/script&gt; \\| \\[x\\]\\(http://e\\) \\*b\\*"
        );
        assert_eq!(escape_markdown("a\nb\u{1b}"), "a b\\\\u{1b}");
        assert_eq!(
            escape_markdown("evil\u{202e}gnp"),
            escape_markdown(&text::shown("evil\u{202e}gnp"))
        );
    }
}
