//! The demo end to end with the real example submissions (their debug builds, which
//! `cargo test --workspace` produces): the baseline must beat the random floor on every task.

mod common;

use std::process::Command;

use common::*;
use podium::pipeline::run_and_score;
use podium::runner::{process::ProcessBackend, RoundOptions};
use podium::submission::Submission;

#[test]
fn threshold_baseline_beats_random_guess_on_every_task() {
    let (dir, challenge) = small_challenge(30);
    let subs = dir.path().join("subs");
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    let phase = challenge.phase_paths("test", None).unwrap();
    let options = RoundOptions {
        jobs: 2,
        out_dir: dir.path().join("out"),
        resume: false,
        gpus: None,
    };
    let submissions = Submission::discover(&subs).unwrap();
    let outcome = run_and_score(
        &challenge,
        &phase,
        &submissions,
        &ProcessBackend,
        &options,
        &mut |_| {},
    )
    .unwrap();
    let scores = &outcome.scores;
    assert!(
        scores.problems.is_empty(),
        "{:#?}",
        &scores.problems[..scores.problems.len().min(5)]
    );
    for task in &challenge.tasks {
        let metric = task.primary.name();
        let baseline = common::metric(scores, "threshold-baseline", &task.name, metric).unwrap();
        let random = common::metric(scores, "random-guess", &task.name, metric).unwrap();
        let better = if task.primary.higher_is_better() {
            baseline > random
        } else {
            baseline < random
        };
        assert!(
            better,
            "{}: threshold-baseline {metric} = {baseline}, random-guess {random}",
            task.name
        );
    }
    assert_eq!(outcome.leaderboard[0].submission, "threshold-baseline");
    assert!(outcome.leaderboard[0]
        .tasks
        .iter()
        .all(|t| t.rank == Some(1)));
}

#[test]
fn the_demo_command_generates_runs_and_prints_the_leaderboard() {
    let dir = tempfile::tempdir().unwrap();
    let subs = dir.path().join("subs");
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    let run = |out: &str| {
        Command::new(env!("CARGO_BIN_EXE_podium"))
            .current_dir(dir.path())
            .args([
                "demo",
                "--cases",
                "6",
                "--jobs",
                "2",
                "--out",
                out,
                "--submissions",
            ])
            .arg(&subs)
            .output()
            .unwrap()
    };
    let first = run("out1");
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(
        stderr.contains("generating 6 synthetic chest CTs per phase"),
        "{stderr}"
    );
    assert!(
        stdout.contains("detection auc") && stdout.contains("staging quadratic_kappa"),
        "{stdout}"
    );
    let board = read_csv(&dir.path().join("out1/leaderboard.csv"));
    assert_eq!(board.len(), 2);
    assert_eq!(board[0]["submission"], "threshold-baseline", "{board:?}");
    // The output folder was given relative to the caller; the programs run elsewhere and must
    // still have found their absolute input and output folders.
    let runs = read_csv(&dir.path().join("out1/runs.csv"));
    assert_eq!(runs.len(), 12);
    assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
    // The demo runs its submissions isolated wherever bubblewrap is (`tests/run.sh` installs
    // it; under `CI=true` its absence fails here rather than passing unisolated).
    let receipt = std::fs::read_to_string(dir.path().join("out1/run.json")).unwrap();
    // Absolute, though the demo data was named relative to the caller: `podium report` draws
    // the slices from the challenge, from whatever folder it is run.
    let parsed: serde_json::Value = serde_json::from_str(&receipt).unwrap();
    for folder in ["challenge_dir", "truth_dir"] {
        let path = std::path::Path::new(parsed[folder].as_str().unwrap());
        assert!(
            path.is_absolute() && path.is_dir(),
            "{folder}: {}",
            path.display()
        );
    }
    if require_bubblewrap() {
        assert!(
            receipt.contains("\"backend\": \"sandbox\"")
                && receipt.contains("bubblewrap namespaces"),
            "the demo did not run sandboxed: {receipt}"
        );
    }
    // A second demo reuses the generated data.
    let second = run("out2");
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("reusing the demo data"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out1/scores.csv")).unwrap(),
        std::fs::read_to_string(dir.path().join("out2/scores.csv")).unwrap(),
        "the same data and submissions give the same scores"
    );
}
