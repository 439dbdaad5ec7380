//! The machine-readable outputs of a scored round: `scores.csv`, `metrics.csv`,
//! `problems.csv`, `curves.csv`, `confusion.csv`, `values.csv` and `leaderboard.csv` (docs/contract.md describes every column).
//! Every text cell goes through [`text`] ([`crate::text::csv_text`]): these files are opened in
//! spreadsheets and some cells quote what a team wrote. Numeric cells are written as they are.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ranking::analysis::RankingAnalysis;
use crate::ranking::LeaderboardRow;
use crate::results::RoundScores;
use crate::text::csv_text as text;

/// Writes the CSV files into `dir` and returns their paths.
pub fn write_all(
    dir: &Path,
    round: &RoundScores,
    leaderboard: &[LeaderboardRow],
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let num = |v: Option<f64>| v.map(format_value).unwrap_or_default();

    let scores = dir.join("scores.csv");
    write_rows(
        &scores,
        &["submission", "task", "case_id", "metric", "value", "status"],
        round.case_scores.iter().map(|c| {
            vec![
                text(&c.submission),
                text(&c.task),
                text(&c.case_id),
                text(&c.metric),
                num(c.value),
                text(c.status.as_str()),
            ]
        }),
    )?;

    let metrics = dir.join("metrics.csv");
    write_rows(
        &metrics,
        &[
            "submission",
            "task",
            "metric",
            "value",
            "ci_lower",
            "ci_upper",
            "n",
            "ci_method",
            "note",
        ],
        round.aggregates.iter().map(|a| {
            vec![
                text(&a.submission),
                text(&a.task),
                text(&a.metric),
                num(a.value),
                num(a.ci_lower),
                num(a.ci_upper),
                a.n.to_string(),
                text(&a.ci_method.to_string()),
                text(&a.note),
            ]
        }),
    )?;

    let problems = dir.join("problems.csv");
    write_rows(
        &problems,
        &["submission", "case_id", "task", "problem"],
        round.problems.iter().map(|p| {
            vec![
                text(&p.submission),
                text(&p.case_id),
                text(&p.task),
                text(&p.problem),
            ]
        }),
    )?;

    // The organizer's: the truth's problems never mix with the teams' in problems.csv.
    let truth_findings = dir.join("truth-findings.csv");
    let left_out = round.left_out.iter().flat_map(|case| {
        case.reasons.iter().map(|reason| {
            vec![
                text(&case.case_id),
                String::new(),
                "left out".to_string(),
                text(reason),
            ]
        })
    });
    let while_scoring = round.truth_findings.iter().map(|f| {
        vec![
            text(&f.case_id),
            text(&f.task),
            if f.case_id == "*" {
                "note"
            } else {
                "left out of the task"
            }
            .to_string(),
            text(&f.finding),
        ]
    });
    write_rows(
        &truth_findings,
        &["case_id", "task", "effect", "finding"],
        left_out.chain(while_scoring),
    )?;

    let curves = dir.join("curves.csv");
    write_rows(
        &curves,
        &["submission", "task", "class", "threshold", "fpr", "tpr"],
        round.curves.iter().map(|c| {
            let threshold = if c.threshold.is_infinite() {
                "inf".to_string()
            } else {
                format_value(c.threshold)
            };
            vec![
                text(&c.submission),
                text(&c.task),
                text(&c.class),
                threshold,
                format_value(c.fpr),
                format_value(c.tpr),
            ]
        }),
    )?;

    let confusion = dir.join("confusion.csv");
    write_rows(
        &confusion,
        &["submission", "task", "truth", "predicted", "count"],
        round.confusion.iter().map(|c| {
            vec![
                text(&c.submission),
                text(&c.task),
                text(&c.truth),
                text(&c.predicted),
                c.count.to_string(),
            ]
        }),
    )?;

    let values = dir.join("values.csv");
    write_rows(
        &values,
        &[
            "submission",
            "task",
            "case_id",
            "truth",
            "predicted",
            "status",
        ],
        round.values.iter().map(|v| {
            vec![
                text(&v.submission),
                text(&v.task),
                text(&v.case_id),
                format_value(v.truth),
                format_value(v.predicted),
                text(v.status.as_str()),
            ]
        }),
    )?;

    let board = dir.join("leaderboard.csv");
    let mut header: Vec<String> = ["rank", "submission", "team", "baseline", "mean_task_rank"]
        .map(String::from)
        .to_vec();
    if let Some(first) = leaderboard.first() {
        for t in &first.tasks {
            for suffix in ["", "_ci_lower", "_ci_upper"] {
                header.push(text(&format!("{}.{}{suffix}", t.task, t.column())));
            }
            header.push(text(&format!("{}.rank", t.task)));
        }
    }
    // `INCOMPLETE` on every row of a partial result, so no row read alone passes for final.
    header.extend(["cases_ok", "cases_not_ok", "result", "notes"].map(String::from));
    let result = if round.incomplete.is_some() {
        "INCOMPLETE"
    } else {
        "complete"
    };
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    write_rows(
        &board,
        &header_refs,
        leaderboard.iter().map(|r| {
            let mut row = vec![
                r.rank.map(|r| r.to_string()).unwrap_or_default(),
                text(&r.submission),
                text(&r.team),
                r.baseline.to_string(),
                num(r.mean_task_rank),
            ];
            for t in &r.tasks {
                row.extend([
                    num(t.value),
                    num(t.ci.map(|c| c.0)),
                    num(t.ci.map(|c| c.1)),
                    t.rank.map(|r| r.to_string()).unwrap_or_default(),
                ]);
            }
            let ok = r
                .run_counts
                .iter()
                .filter(|(s, _)| s.as_str() == "ok")
                .map(|(_, n)| n)
                .sum::<usize>();
            let not_ok = r.run_counts.values().sum::<usize>() - ok;
            let run = |n: usize| {
                if r.run_counts.is_empty() {
                    String::new()
                } else {
                    n.to_string()
                }
            };
            row.extend([run(ok), run(not_ok), result.to_string()]);
            row.push(text(&notes_cell(&r.tasks)));
            row
        }),
    )?;
    Ok(vec![
        scores,
        metrics,
        problems,
        truth_findings,
        curves,
        confusion,
        values,
        board,
    ])
}

/// The aggregates per subgroup level, `metrics_by_subgroup.csv`, and per submission, task and
/// subgroup the worst level, spread and heterogeneity test, `subgroup_summary.csv`
/// (docs/metrics.md, "Subgroups"). Nothing is written for a round without subgroups.
pub fn write_subgroups(dir: &Path, round: &RoundScores) -> Result<Vec<PathBuf>> {
    if round.subgroups.is_empty() && round.subgroup_summaries.is_empty() {
        return Ok(Vec::new());
    }
    let num = |v: Option<f64>| v.map(format_value).unwrap_or_default();
    let by_level = dir.join("metrics_by_subgroup.csv");
    write_rows(
        &by_level,
        &[
            "submission",
            "task",
            "metric",
            "subgroup",
            "level",
            "value",
            "ci_lower",
            "ci_upper",
            "n",
            "class_support",
            "note",
        ],
        round.subgroups.iter().map(|a| {
            vec![
                text(&a.submission),
                text(&a.task),
                text(&a.metric),
                text(&a.subgroup),
                text(&a.level),
                num(a.value),
                num(a.ci_lower),
                num(a.ci_upper),
                a.n.to_string(),
                text(&a.class_support_text()),
                text(&a.note()),
            ]
        }),
    )?;
    let summary = dir.join("subgroup_summary.csv");
    write_rows(
        &summary,
        &[
            "submission",
            "task",
            "metric",
            "subgroup",
            "levels",
            "eligible_levels",
            "worst_level",
            "worst_value",
            "best_level",
            "best_value",
            "spread",
            "spread_ci_lower",
            "spread_ci_upper",
            "test",
            "statistic",
            "df",
            "p_value",
        ],
        round.subgroup_summaries.iter().map(|s| {
            vec![
                text(&s.submission),
                text(&s.task),
                text(&s.metric),
                text(&s.subgroup),
                s.levels.to_string(),
                s.eligible_levels.to_string(),
                text(s.worst_level.as_deref().unwrap_or_default()),
                num(s.worst_value),
                text(s.best_level.as_deref().unwrap_or_default()),
                num(s.best_value),
                num(s.spread),
                num(s.spread_ci_lower),
                num(s.spread_ci_upper),
                text(&s.test),
                num(s.statistic),
                s.df.map(|d| d.to_string()).unwrap_or_default(),
                s.p_value.map(|p| format!("{p:e}")).unwrap_or_default(),
            ]
        }),
    )?;
    Ok(vec![by_level, summary])
}

/// One folder per submission, `teams/<submission>/`, holding what may be sent to that team:
/// `runs.csv` (`case_id,status,message` with the team-safe message, which on a hidden phase
/// never quotes the program's output) and `problems.csv` (that submission's findings only).
pub fn write_team_files(
    dir: &Path,
    round: &RoundScores,
    runs: &[crate::results::CaseRecord],
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for submission in &round.submissions {
        let team_dir = dir.join("teams").join(&submission.name);
        std::fs::create_dir_all(&team_dir).map_err(|e| Error::io("create", &team_dir, e))?;
        let runs_path = team_dir.join("runs.csv");
        write_rows(
            &runs_path,
            &["case_id", "status", "message"],
            runs.iter()
                .filter(|r| r.submission == submission.name)
                .map(|r| {
                    vec![
                        text(&r.case_id),
                        text(r.status.as_str()),
                        text(&r.team_message),
                    ]
                }),
        )?;
        let problems_path = team_dir.join("problems.csv");
        write_rows(
            &problems_path,
            &["case_id", "task", "problem"],
            round
                .problems
                .iter()
                .filter(|p| p.submission == submission.name)
                .map(|p| vec![text(&p.case_id), text(&p.task), text(&p.problem)]),
        )?;
        files.extend([runs_path, problems_path]);
    }
    Ok(files)
}

/// `leaderboard.csv`'s `notes` cell: each noted value as `<task>.<column>: <note>`, joined by
/// ` | `; [`super::leaderboard::read`] reads it back.
pub fn notes_cell(tasks: &[crate::ranking::TaskStanding]) -> String {
    tasks
        .iter()
        .filter(|t| !t.note.is_empty())
        .map(|t| format!("{}.{}: {}", t.task, t.column(), t.note))
        .collect::<Vec<_>>()
        .join(NOTES_SEPARATOR)
}

pub const NOTES_SEPARATOR: &str = " | ";

/// Six significant decimals: enough to compare versions, short enough to read.
pub fn format_value(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// The ranking analysis, in `ranking/` (docs/ranking.md describes every column).
pub fn write_ranking(dir: &Path, analysis: &RankingAnalysis) -> Result<Vec<PathBuf>> {
    let dir = dir.join("ranking");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    let num = |v: f64| format_value(v);
    let mut files = Vec::new();
    let mut file = |name: &str| {
        let path = dir.join(name);
        files.push(path.clone());
        path
    };
    write_rows(
        &file("methods.csv"),
        &["method", "scope", "submission", "rank"],
        analysis.methods.iter().map(|m| {
            vec![
                text(&m.method.to_string()),
                text(&m.scope),
                text(&m.submission),
                m.rank.to_string(),
            ]
        }),
    )?;
    write_rows(
        &file("significance.csv"),
        &[
            "task",
            "metric",
            "submission",
            "opponent",
            "test",
            "statistic",
            "p_value",
            "p_holm",
            "significant",
        ],
        analysis.significance.iter().map(|t| {
            vec![
                text(&t.task),
                text(&t.metric),
                text(&t.submission),
                text(&t.opponent),
                text(&t.test.to_string()),
                num(t.statistic),
                format!("{:e}", t.p_value),
                format!("{:e}", t.p_holm),
                t.significant.to_string(),
            ]
        }),
    )?;
    write_rows(
        &file("rank_intervals.csv"),
        &[
            "scope",
            "submission",
            "rank",
            "median_rank",
            "rank_lower",
            "rank_upper",
            "first",
        ],
        analysis.intervals.iter().map(|i| {
            vec![
                text(&i.scope),
                text(&i.submission),
                i.rank.to_string(),
                num(i.median_rank),
                i.rank_lower.to_string(),
                i.rank_upper.to_string(),
                num(i.first),
            ]
        }),
    )?;
    write_rows(
        &file("bootstrap_ranks.csv"),
        &["scope", "submission", "rank", "resamples"],
        analysis.rank_counts.iter().map(|c| {
            vec![
                text(&c.scope),
                text(&c.submission),
                c.rank.to_string(),
                c.resamples.to_string(),
            ]
        }),
    )?;
    write_rows(
        &file("kendall_tau.csv"),
        &["scope", "resample", "tau"],
        analysis.kendall.iter().map(|k| {
            vec![
                text(&k.scope),
                k.resample.to_string(),
                k.tau.map(num).unwrap_or_default(),
            ]
        }),
    )?;
    Ok(files)
}

fn write_rows(path: &Path, header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Result<()> {
    let err = |e: csv::Error| Error::io("write", path, e);
    let mut writer = csv::Writer::from_path(path).map_err(err)?;
    writer.write_record(header).map_err(err)?;
    for row in rows {
        writer.write_record(&row).map_err(err)?;
    }
    writer.flush().map_err(|e| Error::io("write", path, e))
}
