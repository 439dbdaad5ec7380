//! Text that others wrote (team names, a program's stderr line, a team's CSV values, a folder
//! name) as podium shows it (issue 13; docs/contract.md, "Text podium shows"): no escape
//! sequence or bidi override reaches a CSV file, the terminal, Markdown or HTML, no CSV text
//! cell becomes a spreadsheet formula, and every name stays recognisable.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const FORMULA: &str = "=HYPERLINK(\"http://x\",\"click\")";
/// Sets the terminal's window title, then clears the screen.
const ESCAPES: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J";
/// Reads as `evilexe.png` where a right-to-left override is obeyed.
const BIDI: &str = "evil\u{202e}gnp.exe";
/// The crasher's last stderr line: a screen clear, a window title and a bidi override.
const CRASH: &str = r"printf '\033[2J\033]0;pwned\007 model crashed \342\200\256gnp\n' >&2; exit 3";

/// What must never come out raw: ESC, BEL, RIGHT-TO-LEFT OVERRIDE.
const RAW: [char; 3] = ['\u{1b}', '\u{7}', '\u{202e}'];

fn assert_shown(what: &str, text: &str) {
    assert!(
        !text.contains(RAW),
        "{what} holds a raw control or bidi character: {text:?}"
    );
}

/// No cell begins with a character that makes a spreadsheet evaluate it, unless it is a number.
fn assert_no_formula(what: &str, csv_text: &str) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    for record in reader.records() {
        for cell in record.unwrap().iter() {
            let starts = cell
                .trim_start()
                .starts_with(['=', '+', '-', '@', '\t', '\r']);
            assert!(
                !starts || cell.trim().parse::<f64>().is_ok(),
                "{what}: the cell {cell:?} would be a formula"
            );
        }
    }
}

/// Every CSV, Markdown and HTML file under `dir` (the programs' own logs are not podium's text).
fn shown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if path.is_dir() {
                folders.push(path);
            } else if matches!(ext, "csv" | "md" | "html") {
                files.push(path);
            }
        }
    }
    files
}

fn assert_files_shown(dir: &Path) {
    let files = shown_files(dir);
    assert!(files.iter().any(|f| f.ends_with("leaderboard.csv")));
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let what = file.display().to_string();
        assert_shown(&what, &text);
        if what.ends_with(".csv") {
            assert_no_formula(&what, &text);
        }
    }
}

/// `podium ARGS`, which must succeed; its stdout, its stderr checked for raw characters.
fn podium(args: &[&str], path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "podium {args:?}: {stderr}");
    assert_shown(&format!("podium {args:?}'s stderr"), &stderr);
    String::from_utf8(out.stdout).unwrap()
}

/// `podium leaderboard DIR` in every format, each checked; the JSON export parsed.
fn exports(dir: &Path) -> (String, String, String, serde_json::Value) {
    let export = |format: &str| {
        let text = podium(&["leaderboard", "--format", format], dir);
        assert_shown(&format!("podium leaderboard --format {format}"), &text);
        text
    };
    let csv = export("csv");
    assert_no_formula("podium leaderboard --format csv", &csv);
    let json = serde_json::from_str(&export("json")).unwrap();
    (csv, export("table"), export("markdown"), json)
}

/// A submission answering with the truth of `phase`.
fn perfect_submission(
    parent: &Path,
    name: &str,
    challenge: &podium::challenge::Challenge,
    phase: &str,
) -> PathBuf {
    let body = "mkdir -p \"$OUT/masks\"\nhead -n 1 answers/predictions.csv > \"$OUT/predictions.csv\"\ngrep \"^$CASE,\" answers/predictions.csv >> \"$OUT/predictions.csv\"\ncp \"answers/masks/$CASE.nii.gz\" \"$OUT/masks/\"";
    let sub = script_submission(parent, name, body);
    perfect_predictions(challenge, phase, &sub.join("answers"));
    sub
}

#[test]
fn hostile_team_names_and_stderr_reach_no_csv_terminal_markdown_or_html_raw() {
    let (dir, challenge) = small_challenge(4);
    let subs = dir.path().join("subs");
    for (name, team) in [("formula", FORMULA), ("escapes", ESCAPES), ("bidi", BIDI)] {
        let sub = perfect_submission(&subs, name, &challenge, "dev");
        set_team(&sub, team);
    }
    script_submission(&subs, "crasher", CRASH);
    // Inside a rounds folder, so that the phase leaderboard reads it back too.
    let rounds = dir.path().join("rounds");
    let out = rounds.join("round-1");
    let options = podium::runner::RoundOptions {
        jobs: 2,
        out_dir: out.clone(),
        resume: false,
        gpus: None,
    };
    let phase = challenge.phase_paths("dev", None).unwrap();
    let submissions = podium::submission::Submission::discover(&subs).unwrap();
    podium::pipeline::run_and_score(
        &challenge,
        &phase,
        &submissions,
        &podium::runner::process::ProcessBackend,
        &options,
        &mut |_| {},
    )
    .unwrap();

    assert_files_shown(&out);
    let teams: Vec<String> = read_csv(&out.join("leaderboard.csv"))
        .into_iter()
        .map(|r| r["team"].clone())
        .collect();
    for team in [
        "'=HYPERLINK(\"http://x\",\"click\")",
        r"\u{1b}]0;pwned\u{7}\u{1b}[2J",
        r"evil\u{202e}gnp.exe",
    ] {
        assert!(teams.iter().any(|t| t == team), "{team} in {teams:?}");
    }
    let crashed = read_csv(&out.join("runs.csv"));
    let crashed = crashed
        .iter()
        .find(|r| r["submission"] == "crasher")
        .unwrap();
    for column in ["message", "team_message"] {
        assert!(
            crashed[column].contains(r"\u{1b}[2J\u{1b}]0;pwned\u{7} model crashed \u{202e}gnp"),
            "{crashed:?}"
        );
    }
    let team_runs = std::fs::read_to_string(out.join("teams/crasher/runs.csv")).unwrap();
    assert!(team_runs.contains("model crashed"), "{team_runs}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        md.contains("HYPERLINK") && md.contains(r"evil\\u{202e}gnp.exe"),
        "{md}"
    );
    assert!(
        html.contains("HYPERLINK") && html.contains(r"evil\u{202e}gnp.exe"),
        "{html}"
    );
    assert!(html.contains(r"\u{1b}]0;pwned\u{7}"));

    let (csv, table, markdown, json) = exports(&out);
    assert_eq!(
        csv,
        std::fs::read_to_string(out.join("leaderboard.csv")).unwrap(),
        "the file podium wrote reads back and neutralizes to itself"
    );
    assert!(table.contains("crasher"), "{table}");
    assert!(
        markdown.contains("HYPERLINK") && markdown.contains(r"evil\\u{202e}gnp.exe"),
        "{markdown}"
    );
    let json_teams: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["team"].as_str().unwrap())
        .collect();
    assert!(
        json_teams.contains(&FORMULA),
        "read back as it was: {json_teams:?}"
    );
    assert!(
        json_teams.contains(&r"\u{1b}]0;pwned\u{7}\u{1b}[2J"),
        "{json_teams:?}"
    );

    // The phase leaderboard of the rounds folder: its own CSV files and entries.csv.
    let (csv, _, markdown, _) = exports(&rounds);
    assert!(csv.contains("'=HYPERLINK("), "{csv}");
    assert!(markdown.contains(r"evil\\u{202e}gnp.exe"), "{markdown}");
    assert_files_shown(&rounds.join("phase-leaderboard"));
    let entries = read_csv(&rounds.join("phase-leaderboard/entries.csv"));
    assert!(entries
        .iter()
        .any(|e| e["team"] == "'=HYPERLINK(\"http://x\",\"click\")"));
}

#[test]
fn hostile_case_ids_and_folder_names_scored_by_podium_score_stay_text() {
    let (dir, challenge) = small_challenge(4);
    let preds = dir.path().join(BIDI);
    perfect_predictions(&challenge, "test", &preds);
    let csv = preds.join("predictions.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    for case in [
        "\"=HYPERLINK(\"\"http://x\"\",\"\"click\"\")\"",
        "\u{1b}]0;pwned\u{7}\u{1b}[2J",
        "-1+cmd|' /C calc'!A0",
        "@SUM(1)",
    ] {
        text += &format!("{case},1,0,0,0,0\n");
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("out");
    let said = Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["score", "--phase", "test", "--challenge"])
        .arg(&challenge.root)
        .arg("--predictions")
        .arg(&preds)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&said.stdout);
    assert!(
        said.status.success(),
        "{}",
        String::from_utf8_lossy(&said.stderr)
    );
    assert_shown(
        "podium score",
        &(stdout.to_string() + &String::from_utf8_lossy(&said.stderr)),
    );
    assert!(stdout.contains(r"evil\u{202e}gnp.exe"), "{stdout}");

    assert_files_shown(&out);
    let cases: Vec<String> = read_csv(&out.join("problems.csv"))
        .into_iter()
        .map(|p| p["case_id"].clone())
        .collect();
    for case in [
        "'=HYPERLINK(\"http://x\",\"click\")",
        r"\u{1b}]0;pwned\u{7}\u{1b}[2J",
        "'-1+cmd|' /C calc'!A0",
        "'@SUM(1)",
    ] {
        assert!(cases.iter().any(|c| c == case), "{case} in {cases:?}");
    }
    assert_eq!(
        read_csv(&out.join("leaderboard.csv"))[0]["submission"],
        r"evil\u{202e}gnp.exe"
    );
    let (_, table, markdown, json) = exports(&out);
    assert!(table.contains(r"evil\u{202e}gnp.exe"), "{table}");
    assert!(markdown.contains(r"evil\\u{202e}gnp.exe"), "{markdown}");
    assert_eq!(json[0]["submission"], r"evil\u{202e}gnp.exe");
}
