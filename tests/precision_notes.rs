//! Small-sample honesty: an aggregate from fewer than `[scoring] min_cases` cases, or with a
//! degenerate CI, carries a note in metrics.csv, the leaderboard (terminal, CSV, Markdown) and
//! the report, instead of looking precise.

mod common;

use common::*;

fn random_guess_round(cases: usize) -> (tempfile::TempDir, podium::pipeline::RoundOutcome, usize) {
    let (dir, challenge) = small_challenge(cases);
    let subs = dir.path().join("subs");
    binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    let out = dir.path().join("out");
    let outcome = process_round(&challenge, &subs, &out);
    (dir, outcome, challenge.scoring.min_cases)
}

#[test]
fn a_three_case_round_flags_its_aggregates_everywhere_they_are_shown() {
    let (dir, outcome, min_cases) = random_guess_round(3);
    let out = dir.path().join("out");
    let few = format!("few cases (3 < {min_cases})");

    let metrics = read_csv(&out.join("metrics.csv"));
    let macro_auc = metrics
        .iter()
        .find(|r| r["task"] == "differential" && r["metric"] == "macro_auc")
        .unwrap();
    assert!(macro_auc["note"].contains(&few), "{macro_auc:?}");

    let table = podium::report::terminal::leaderboard_table(&outcome.leaderboard);
    let footnote = table
        .lines()
        .find(|l| l.starts_with("* differential macro_auc: "))
        .unwrap_or_else(|| panic!("no footnote for macro_auc:\n{table}"));
    assert!(
        footnote.contains(&few) && footnote.contains("random-guess"),
        "{footnote}"
    );
    let row = table
        .lines()
        .find(|l| l.contains("random-guess ("))
        .unwrap();
    assert!(row.contains("]*"), "the value carries the mark: {row}");

    let board = read_csv(&out.join("leaderboard.csv"));
    assert!(
        board[0]["notes"].contains(&format!("differential.macro_auc: {few}")),
        "{:?}",
        board[0]
    );
    // `podium leaderboard RUN_DIR` reads the notes back from leaderboard.csv.
    let stored = podium::report::leaderboard::read(&out).unwrap();
    let rendered = podium::report::leaderboard::render(
        &out,
        &stored,
        podium::report::leaderboard::Format::Table,
    )
    .unwrap();
    assert!(rendered.contains(footnote), "{rendered}");
    let markdown = podium::report::leaderboard::markdown(
        &stored.iter().map(|r| r.row.clone()).collect::<Vec<_>>(),
    );
    assert!(
        markdown.contains("\\* differential macro\\_auc: few cases"),
        "{markdown}"
    );

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains(&format!(
            "<sup class=\"precision-note\" title=\"{}",
            few.replace('<', "&lt;")
        )),
        "report.html marks the value with its reason"
    );
    assert!(html.contains(&format!(
        "* differential macro_auc: {}",
        few.replace('<', "&lt;")
    )));
}

#[test]
fn a_forty_case_round_of_an_imperfect_submission_flags_nothing() {
    let (dir, outcome, min_cases) = random_guess_round(40);
    assert!(40 >= min_cases, "the template's min_cases is above 40");
    let out = dir.path().join("out");
    let noted: Vec<_> = read_csv(&out.join("metrics.csv"))
        .into_iter()
        .filter(|r| !r["note"].is_empty())
        .collect();
    assert!(noted.is_empty(), "{noted:?}");
    let table = podium::report::terminal::leaderboard_table(&outcome.leaderboard);
    assert!(!table.contains('*'), "{table}");
    let board = read_csv(&out.join("leaderboard.csv"));
    assert!(board.iter().all(|r| r["notes"].is_empty()), "{board:?}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("precision-note\""), "no mark in the report");
}
