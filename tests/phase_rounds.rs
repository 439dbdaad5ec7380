//! A scripted hackathon phase over several rounds (`podium run --rounds DIR`): quotas that
//! count a team's own failures but not the organizers', the best, latest or final submission
//! of each team on the phase leaderboard, and the private split revealed at the end.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A submission folder of `team` running the example `program`.
fn team_submission(parent: &Path, name: &str, team: &str, program: &str, extra: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    if !program.is_empty() {
        std::fs::copy(workspace_binary(program), dir.join("predict")).unwrap();
    }
    std::fs::write(
        dir.join("submission.toml"),
        format!("team = \"{team}\"\nname = \"{name}\"\n{extra}\n[run]\nkind = \"process\"\ncommand = [\"./predict\", \"{{input}}\", \"{{output}}\"]\n"),
    )
    .unwrap();
    dir
}

fn podium(args: &[&str], paths: &[&Path]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podium"));
    cmd.args(args);
    for p in paths {
        cmd.arg(p);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn round(challenge: &Path, rounds: &Path, subs: &Path) -> (bool, String) {
    podium(
        &["run", "--phase", "test", "--jobs", "2", "--challenge"],
        &[
            challenge,
            Path::new("--rounds"),
            rounds,
            Path::new("--submissions"),
            subs,
        ],
    )
}

#[test]
fn a_phase_over_rounds_with_quotas_best_latest_and_final_selection() {
    // A hidden phase from the command line runs sandboxed, or not at all.
    if !require_bubblewrap() {
        return;
    }
    let (dir, challenge) = small_challenge(6);
    let toml = challenge.root.join("challenge.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let text = text.replace(
        "visibility = \"hidden\"",
        "visibility = \"hidden\"\npublic_fraction = 0.5",
    );
    // The template's [leaderboard] table, with a quota of 2 submissions per team and day.
    let leaderboard = "[leaderboard]\nselect = \"best\"\nquota_period = \"day\"";
    assert_eq!(text.matches(leaderboard).count(), 1);
    let text = text.replace(
        leaderboard,
        "[leaderboard]\nselect = \"best\"\nquota = 2\nquota_period = \"day\"",
    );
    std::fs::write(&toml, text).unwrap();
    let rounds = dir.path().join("rounds");
    let s = |n: &str| dir.path().join(n);
    // The organizer's registry: who each submission folder belongs to, and the baseline. What
    // a submission.toml says about its team or being a baseline is never used.
    std::fs::write(
        challenge.root.join("teams.toml"),
        r#"baselines = ["example"]
[teams]
alpha-v1 = "Alpha"
alpha-v2 = "Alpha"
alpha-v3 = "Alpha"
beta-v1 = "Beta"
beta-v2 = "Beta"
gamma-v1 = "Gamma"
gamma-v2 = "Gamma"
mallory-v1 = "Mallory"
"#,
    )
    .unwrap();

    // Round 1: team Alpha's good model; team Beta's floor; the example baseline.
    team_submission(&s("r1"), "alpha-v1", "Alpha", "threshold-baseline", "");
    // Beta marks its floor model as its final selection.
    team_submission(&s("r1"), "beta-v1", "Beta", "random-guess", "final = true");
    team_submission(
        &s("r1"),
        "example",
        "podium",
        "random-guess",
        "baseline = true",
    );
    let (ok, said) = round(&challenge.root, &rounds, &s("r1"));
    assert!(ok, "{said}");
    // Round 2: Alpha's worse model (its own failure still counts: it ran); Gamma's program
    // is missing, so none of its cases could start: an organizer-side failure, not counted.
    team_submission(&s("r2"), "alpha-v2", "Alpha", "random-guess", "");
    team_submission(&s("r2"), "gamma-v1", "Gamma", "", "");
    // Beta's better model, not marked final.
    team_submission(&s("r2"), "beta-v2", "Beta", "threshold-baseline", "");
    let (ok, said) = round(&challenge.root, &rounds, &s("r2"));
    assert!(ok, "{said}");
    // Round 3: Alpha is over its quota of 2 per day and is refused; Gamma still has both.
    team_submission(&s("r3"), "alpha-v3", "Alpha", "threshold-baseline", "");
    team_submission(&s("r3"), "gamma-v2", "Gamma", "threshold-baseline", "");
    // Mallory claims to be Alpha, a final selection and a baseline: to spend Alpha's quota,
    // replace its final pick, and escape its own quota. The registry makes it Mallory's own.
    team_submission(
        &s("r3"),
        "mallory-v1",
        "Alpha",
        "random-guess",
        "final = true\nbaseline = true",
    );
    // A broken submission.toml, and a name another folder already has: refused alone.
    team_submission(&s("r3"), "broken", "Broken", "random-guess", "");
    std::fs::write(s("r3").join("broken/submission.toml"), "name = [unclosed\n").unwrap();
    let dup = team_submission(&s("r3"), "zz-copy", "Gamma", "random-guess", "");
    std::fs::write(
        dup.join("submission.toml"),
        "name = \"gamma-v2\"\n[run]\nkind = \"process\"\ncommand = [\"./predict\", \"{input}\", \"{output}\"]\n",
    )
    .unwrap();
    let (ok, said) = round(&challenge.root, &rounds, &s("r3"));
    assert!(ok, "{said}");
    assert!(
        said.contains("REFUSED") && said.contains("broken"),
        "{said}"
    );
    assert!(said.contains("already taken by"), "{said}");
    assert!(
        said.contains("mallory-v1: submission.toml claims team \"Alpha\" and baseline; podium uses the organizer's: team \"Mallory\""),
        "{said}"
    );
    let round3 = std::fs::read_dir(&rounds)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("refused.csv").is_file())
        .expect("the third round lists what it refused");
    let refused = read_csv(&round3.join("refused.csv"));
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        said.contains("REFUSED alpha-v3: team \"Alpha\" has used 2 of its 2 submissions today (UTC) on phase test; the next opens at"),
        "{said}"
    );
    assert!(!said.contains("REFUSED gamma"), "{said}");

    // Best per team: Alpha's v1 (not its later, worse v2); Beta's final selection v1, though
    // its v2 is better; Gamma's v2. The baseline is shown unranked.
    let (ok, said) = podium(&["leaderboard", "--format", "csv"], &[&rounds]);
    assert!(ok, "{said}");
    let board = read_csv(&rounds.join("phase-leaderboard/leaderboard.csv"));
    let names: Vec<(&str, &str)> = board
        .iter()
        .map(|r| {
            (
                r["submission"].split('@').next().unwrap(),
                r["rank"].as_str(),
            )
        })
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(
        names
            .iter()
            .any(|(n, rank)| *n == "mallory-v1" && !rank.is_empty()),
        "Mallory is ranked as its own team, not a baseline: {names:?}"
    );
    for expected in ["alpha-v1", "beta-v1", "gamma-v2", "example"] {
        assert!(
            names.iter().any(|(n, _)| *n == expected),
            "{expected} missing: {names:?}"
        );
    }
    assert!(
        names.contains(&("example", "")),
        "the baseline is not ranked: {names:?}"
    );
    let entries = read_csv(&rounds.join("phase-leaderboard/entries.csv"));
    assert_eq!(
        entries.len(),
        8,
        "every submission of every round is listed"
    );
    let entry = |n: &str| {
        entries
            .iter()
            .find(|e| e["submission"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(entry("beta-v2")["on_leaderboard"], "false");
    assert_eq!(entry("beta-v1")["final"], "true");
    assert_eq!(entry("gamma-v1")["counts_for_quota"], "false");
    assert_eq!(entry("alpha-v2")["counts_for_quota"], "true");
    assert_eq!(entry("alpha-v2")["on_leaderboard"], "false");
    assert_eq!(entry("mallory-v1")["team"], "Mallory");
    assert_eq!(entry("mallory-v1")["counts_for_quota"], "true");

    // Latest per team instead: Alpha's v2.
    std::fs::write(
        &toml,
        std::fs::read_to_string(&toml)
            .unwrap()
            .replace("select = \"best\"", "select = \"latest\""),
    )
    .unwrap();
    let (ok, said) = podium(&["leaderboard"], &[&rounds]);
    assert!(ok && said.contains("alpha-v2@"), "{said}");
    assert!(
        said.contains("beta-v1@"),
        "the final selection still wins: {said}"
    );
    assert!(!said.contains("alpha-v1@"), "{said}");

    // The private split decides at the end.
    let (ok, said) = podium(&["leaderboard", "--final"], &[&rounds]);
    assert!(ok, "{said}");
    assert!(
        said.contains("FINAL, private split: 3 of 6 cases"),
        "{said}"
    );
    assert!(rounds
        .join("phase-leaderboard-final/leaderboard.csv")
        .is_file());
}
