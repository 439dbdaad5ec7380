//! Rounds over time: resuming after `kill -9`, rescoring without rerunning, and `podium check`
//! for teams, all through the command line.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn podium() -> Command {
    Command::new(env!("CARGO_BIN_EXE_podium"))
}

/// A submission that answers perfectly, slowly enough to be interrupted mid-round.
fn slow_submission(
    parent: &std::path::Path,
    challenge: &podium::challenge::Challenge,
) -> std::path::PathBuf {
    let body = "sleep 0.4\nmkdir -p \"$OUT/masks\"\nhead -n 1 answers/predictions.csv > \"$OUT/predictions.csv\"\ngrep \"^$CASE,\" answers/predictions.csv >> \"$OUT/predictions.csv\"\ncp \"answers/masks/$CASE.nii.gz\" \"$OUT/masks/\"";
    let sub = script_submission(parent, "steady", body);
    perfect_predictions(challenge, "test", &sub.join("answers"));
    sub
}

#[test]
fn a_round_killed_with_sigkill_resumes_without_rerunning_finished_cases_and_scores_the_same() {
    // A hidden phase from the command line runs sandboxed, or not at all.
    if !require_bubblewrap() {
        return;
    }
    let (dir, challenge) = small_challenge(8);
    let subs = dir.path().join("subs");
    slow_submission(&subs, &challenge);
    let run = |out: &str| {
        let mut cmd = podium();
        cmd.args(["run", "--jobs", "1", "--phase", "test", "--challenge"])
            .arg(&challenge.root)
            .arg("--submissions")
            .arg(&subs)
            .arg("--out")
            .arg(dir.path().join(out))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };
    let complete = run("complete").output().unwrap();
    assert!(
        complete.status.success(),
        "{}",
        String::from_utf8_lossy(&complete.stderr)
    );

    let mut child = run("interrupted").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1800));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = dir.path().join("interrupted");
    let before = read_csv(&out.join("runs.csv"));
    assert!(
        !before.is_empty() && before.len() < 8,
        "{} cases finished before the kill",
        before.len()
    );

    let resumed = podium()
        .arg("run")
        .arg("--resume")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let after = read_csv(&out.join("runs.csv"));
    assert_eq!(after.len(), 8, "each case recorded exactly once");
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old, new, "finished cases are kept as they were, not rerun");
    }
    assert!(after.iter().all(|r| r["status"] == "ok"));
    let scores = |d: &str| std::fs::read_to_string(dir.path().join(d).join("scores.csv")).unwrap();
    assert_eq!(scores("interrupted"), scores("complete"));
    let metrics =
        |d: &str| std::fs::read_to_string(dir.path().join(d).join("metrics.csv")).unwrap();
    assert_eq!(metrics("interrupted"), metrics("complete"));
}

#[test]
fn rescore_recomputes_from_the_stored_outputs_after_a_truth_fix_without_running() {
    // A hidden phase from the command line runs sandboxed, or not at all.
    if !require_bubblewrap() {
        return;
    }
    let (dir, challenge) = small_challenge(4);
    let subs = dir.path().join("subs");
    slow_submission(&subs, &challenge);
    let out = dir.path().join("round");
    let status = podium()
        .args(["run", "--phase", "test", "--challenge"])
        .arg(&challenge.root)
        .arg("--submissions")
        .arg(&subs)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let runs_before = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let mae = |d: &std::path::Path| {
        read_csv(&d.join("metrics.csv"))
            .into_iter()
            .find(|r| r["task"] == "quantification" && r["metric"] == "mae")
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(mae(&out), "0");
    // The organizers fix the truth of one case: its involvement was off by 4 points.
    let labels = challenge.root.join("phases/test/truth/labels.csv");
    let text = std::fs::read_to_string(&labels).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut fields: Vec<String> = lines[1].split(',').map(String::from).collect();
    fields[2] = format!("{}", fields[2].parse::<f64>().unwrap() + 4.0);
    lines[1] = fields.join(",");
    std::fs::write(&labels, lines.join("\n") + "\n").unwrap();
    // The submission could not run any more: rescoring must not need it.
    std::fs::remove_file(subs.join("steady/predict.sh")).unwrap();

    // Never over the official result in passing: a plain rescore names its target.
    let refused = |args: &[&std::ffi::OsStr], why: &str| {
        let output = podium()
            .arg("rescore")
            .args(args)
            .arg(&out)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && said.contains(why),
            "{args:?}: {said}"
        );
    };
    refused(&[], "--out");
    let inside = out.join("compare");
    refused(
        &["--out".as_ref(), inside.as_os_str()],
        "inside the round's folder",
    );
    refused(
        &["--out".as_ref(), out.as_os_str()],
        "inside the round's folder",
    );
    let taken = dir.path().join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "kept").unwrap();
    refused(&["--out".as_ref(), taken.as_os_str()], "not empty");
    assert_eq!(mae(&out), "0", "the refusals wrote nothing");

    let compared = dir.path().join("compared");
    let rescored = podium()
        .arg("rescore")
        .arg("--out")
        .arg(&compared)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        rescored.status.success(),
        "{}",
        String::from_utf8_lossy(&rescored.stderr)
    );
    assert_eq!(mae(&compared), "1", "4 points on one case of 4");
    assert_eq!(
        mae(&out),
        "0",
        "the official result stays until it is replaced"
    );

    let rescored = podium()
        .arg("rescore")
        .arg("--replace-official")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        rescored.status.success(),
        "{}",
        String::from_utf8_lossy(&rescored.stderr)
    );
    assert_eq!(mae(&out), "1", "4 points on one case of 4");
    let kept: Vec<std::path::PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("replaced-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(mae(&kept[0]), "0", "the replaced result is kept");
    assert_eq!(
        std::fs::read_to_string(out.join("runs.csv")).unwrap(),
        runs_before
    );
    // A second replacement, within the same second or not, keeps the first one's files too.
    let again = podium()
        .arg("rescore")
        .arg("--replace-official")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let replaced = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("replaced-"))
        .count();
    assert_eq!(replaced, 2);
}

/// An interrupted round is refused, pointing to --resume; a partial result, when asked for,
/// says INCOMPLETE everywhere, names no winner and blames no team for what never ran.
#[test]
fn rescore_refuses_an_interrupted_round_unless_a_partial_result_is_asked_for() {
    let (dir, challenge) = small_challenge(8);
    let subs = dir.path().join("subs");
    slow_submission(&subs, &challenge);
    let out = dir.path().join("interrupted");
    let mut child = podium()
        .args(["run", "--jobs", "1", "--phase", "test", "--challenge"])
        .arg(&challenge.root)
        .arg("--submissions")
        .arg(&subs)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1800));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let ran: std::collections::BTreeSet<String> = read_csv(&out.join("runs.csv"))
        .into_iter()
        .map(|r| r["case_id"].clone())
        .collect();
    assert!(!ran.is_empty() && ran.len() < 8, "{} cases ran", ran.len());
    let counts = format!("{} of 8 case runs", ran.len());

    for target in [&["--replace-official"][..], &["--out", "anywhere"][..]] {
        let refused = podium()
            .arg("rescore")
            .args(target)
            .arg(&out)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{target:?}");
        assert!(
            said.contains(&format!("podium run --resume {}", out.display()))
                && said.contains(&counts),
            "{said}"
        );
    }
    assert!(!dir.path().join("anywhere").join("leaderboard.csv").exists());

    let partial = dir.path().join("partial");
    let rescored = podium()
        .args(["rescore", "--allow-incomplete", "--out"])
        .arg(&partial)
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&rescored.stdout);
    assert!(
        rescored.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&rescored.stderr)
    );
    assert!(
        text.contains("INCOMPLETE") && text.contains(&counts),
        "{text}"
    );
    assert!(!text.contains("ranks first"), "{text}");
    let board = read_csv(&partial.join("leaderboard.csv"));
    assert!(!board.is_empty() && board.iter().all(|r| r["result"] == "INCOMPLETE"));
    let receipt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(partial.join("run.json")).unwrap()).unwrap();
    assert_eq!(receipt["incomplete"]["runs_recorded"], ran.len());
    assert_eq!(receipt["incomplete"]["runs_expected"], 8);
    let report = std::fs::read_to_string(partial.join("report.html")).unwrap();
    assert!(report.contains("INCOMPLETE result") && !report.contains("Winner:"));
    let scored: std::collections::BTreeSet<String> = read_csv(&partial.join("scores.csv"))
        .into_iter()
        .map(|r| r["case_id"].clone())
        .collect();
    assert_eq!(scored, ran, "only the cases that ran are scored");
    let blamed: Vec<_> = read_csv(&partial.join("problems.csv"))
        .into_iter()
        .filter(|p| !ran.contains(&p["case_id"]))
        .collect();
    assert!(blamed.is_empty(), "cases that never ran: {blamed:?}");
    let markdown = podium()
        .args(["leaderboard", "--format", "markdown"])
        .arg(&partial)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&markdown.stdout).contains("**INCOMPLETE result**"));
}

#[test]
fn check_tells_a_team_what_the_server_would_find_and_do() {
    let (dir, challenge) = small_challenge(3);
    let good = script_submission(&dir.path().join("good"), "good", "mkdir -p \"$OUT/masks\"\nhead -n 1 answers/predictions.csv > \"$OUT/predictions.csv\"\ngrep \"^$CASE,\" answers/predictions.csv >> \"$OUT/predictions.csv\"\ncp \"answers/masks/$CASE.nii.gz\" \"$OUT/masks/\"");
    let dev_answers = good.join("answers");
    let dev = challenge.phase_paths("dev", None).unwrap();
    // perfect_predictions reads the test phase; build dev answers from dev's truth instead.
    std::fs::create_dir_all(dev_answers.join("masks")).unwrap();
    let table = podium::io::table::Table::read(&dev.labels_csv()).unwrap();
    let mut csv =
        String::from("case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage\n");
    for row in &table.rows {
        let (id, d) = (&row.fields[0], &row.fields[1]);
        let p = |c: &str| if d == c { "1" } else { "0" };
        csv += &format!(
            "{id},{},{},{},{},{}\n",
            p("covid"),
            p("other_pneumonia"),
            p("normal"),
            row.fields[2],
            row.fields[3]
        );
        std::fs::copy(
            dev.truth_mask("masks", id),
            dev_answers.join("masks").join(format!("{id}.nii.gz")),
        )
        .unwrap();
    }
    std::fs::write(dev_answers.join("predictions.csv"), &csv).unwrap();

    let check = |sub: &std::path::Path, out: &str| {
        podium()
            .arg("check")
            .arg(sub)
            .arg("--challenge")
            .arg(&challenge.root)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    let passed = check(&good, "out-good");
    let stdout = String::from_utf8_lossy(&passed.stdout);
    assert!(
        passed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&passed.stderr)
    );
    assert!(
        stdout.contains("check passed: every case of phase dev"),
        "{stdout}"
    );

    // The same submission with one mask on the wrong grid and a probability above 1.
    let first = table.rows[0].fields[0].clone();
    // Eight slices fewer than the case's image, whichever simulated scanner made it.
    let image = podium::io::nifti::read_geometry(&dev.image(&first))
        .unwrap()
        .shape;
    let short = [image[0], image[1], image[2] - 8];
    podium::io::nifti::write_volume(
        &dev_answers.join("masks").join(format!("{first}.nii.gz")),
        ndarray::Array3::<u8>::zeros((short[2], short[1], short[0])).view(),
        [1.0; 3],
        6,
    )
    .unwrap();
    let second = &table.rows[1].fields[0];
    let broken: String = csv
        .lines()
        .map(|line| {
            let mut f: Vec<&str> = line.split(',').collect();
            if f[0] == second.as_str() {
                f[1] = "1.7";
            }
            f.join(",") + "\n"
        })
        .collect();
    std::fs::write(dev_answers.join("predictions.csv"), broken).unwrap();
    let failed = check(&good, "out-bad");
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("check FAILED"), "{stdout}");
    assert!(stdout.contains(&format!("segmentation: case {first}: masks/{first}.nii.gz has shape {short:?}, the image has {image:?}")), "{stdout}");
    assert!(
        stdout.contains(&format!("case {second}"))
            && stdout.contains("not a probability in [0, 1]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("these 2 cases would be scored with the worst value")
            && stdout.contains("the submission is not rejected"),
        "{stdout}"
    );
}

/// A submission that writes every row of predictions.csv but no mask: `podium check` says so
/// on one line with the number of cases, names the mask (not the row) as what is missing, and
/// says what the server does with those cases, which is scoring them, not refusing them. Each
/// case's finding is recorded once, in problems.csv and on the screen.
#[test]
fn check_groups_missing_masks_into_one_line_that_says_the_rows_are_fine() {
    let cases = 4;
    let (dir, challenge) = small_challenge(cases);
    let rows_only = script_submission(
        &dir.path().join("subs"),
        "rows-only",
        "echo case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage > \"$OUT/predictions.csv\"\necho \"$CASE,0.2,0.3,0.5,10,1\" >> \"$OUT/predictions.csv\"",
    );
    let out = dir.path().join("out");
    let checked = podium()
        .arg("check")
        .arg(&rows_only)
        .arg("--challenge")
        .arg(&challenge.root)
        .args(["--backend", "process", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert_eq!(checked.status.code(), Some(1), "{stdout}");
    let finding_lines: Vec<&str> = stdout.lines().filter(|l| l.contains("masks/")).collect();
    assert_eq!(finding_lines.len(), 1, "{stdout}");
    let line = finding_lines[0];
    assert!(
        line.contains(&format!("segmentation, {cases} cases"))
            && line.contains("no masks/<case>.nii.gz")
            && line.contains("row in predictions.csv is fine"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "these {cases} cases would be scored with the worst value"
        )) && stdout.contains("the submission is not rejected")
            && !stdout.contains("would get this submission rejected"),
        "{stdout}"
    );
    for problems in [
        out.join("problems.csv"),
        out.join("teams/rows-only/problems.csv"),
    ] {
        let rows = read_csv(&problems);
        assert_eq!(rows.len(), cases, "one row per case: {rows:?}");
        let distinct: std::collections::BTreeSet<_> = rows.iter().collect();
        assert_eq!(distinct.len(), rows.len(), "{rows:?}");
    }
}

/// A case whose predictions.csv holds its row twice is reported as that, in problems.csv too,
/// not as a case with no row (what the merged predictions alone would suggest).
#[test]
fn a_row_written_twice_is_reported_as_such_not_as_a_missing_row() {
    let (dir, challenge) = small_challenge(3);
    let twice = script_submission(
        &dir.path().join("subs"),
        "twice",
        "mkdir -p \"$OUT/masks\"\ncp answers/masks/$CASE.nii.gz \"$OUT/masks/\"\nhead -n 1 answers/predictions.csv > \"$OUT/predictions.csv\"\ngrep \"^$CASE,\" answers/predictions.csv >> \"$OUT/predictions.csv\"\ngrep \"^$CASE,\" answers/predictions.csv >> \"$OUT/predictions.csv\"",
    );
    perfect_predictions(&challenge, "test", &twice.join("answers"));
    let out = dir.path().join("out");
    process_round(&challenge, &dir.path().join("subs"), &out);
    let rows = read_csv(&out.join("problems.csv"));
    assert!(!rows.is_empty());
    for row in &rows {
        assert!(
            row["problem"].contains("predictions.csv has 2 rows for case"),
            "{rows:?}"
        );
    }
}

/// A round started with `--gpus 1` resumes on GPU 1, not on every GPU of the machine (fake
/// device nodes, since CI has no GPU). A GPU it started with that is gone since stops the
/// resumption before any case, with a message; `--gpus` then picks others, for later
/// resumptions too. A plan from before podium recorded its GPUs resumes on every GPU.
#[test]
fn a_resumed_round_keeps_the_gpus_it_started_with() {
    let (dir, challenge) = small_challenge(4);
    let challenge = with_limits(&challenge, "gpus = 1\n");
    let root = dir.path().join("fake-dev");
    std::fs::create_dir_all(&root).unwrap();
    for node in ["nvidia0", "nvidia1", "nvidia2", "nvidiactl"] {
        std::fs::write(root.join(node), "").unwrap();
    }
    let subs = dir.path().join("subs");
    script_submission(
        &subs,
        "gpu-probe",
        "echo \"cuda=$CUDA_VISIBLE_DEVICES\" >&2\nexit 1",
    );
    let out = dir.path().join("round");
    let podium = |args: &[&str]| {
        podium()
            .args(args)
            .env("PODIUM_DEVICE_ROOT", &root)
            .output()
            .unwrap()
    };
    let started = podium(&[
        "run",
        "--backend",
        "process",
        "--allow-unisolated",
        "--jobs",
        "3",
        "--gpus",
        "1",
        "--phase",
        "test",
        "--challenge",
        challenge.root.to_str().unwrap(),
        "--submissions",
        subs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let runs_csv = out.join("runs.csv");
    // An interruption after the first case: the journal holds it alone.
    let interrupt = || {
        let text = std::fs::read_to_string(&runs_csv).unwrap();
        let kept: Vec<&str> = text.lines().take(2).collect();
        std::fs::write(&runs_csv, kept.join("\n") + "\n").unwrap();
    };
    // Every case ran on `gpu`, as runs.csv says and as CUDA was told.
    let ran_on = |gpu: &str| {
        let runs = read_csv(&runs_csv);
        assert_eq!(runs.len(), 4);
        for r in &runs[1..] {
            assert_eq!(r["gpus"], gpu, "{r:?}");
            assert!(r["message"].ends_with(&format!("cuda={gpu}")), "{r:?}");
        }
    };
    ran_on("1");
    let resume = |extra: &[&str]| {
        let mut args = vec!["run", "--resume", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        podium(&args)
    };

    interrupt();
    let resumed = resume(&[]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    ran_on("1");

    interrupt();
    std::fs::remove_file(root.join("nvidia1")).unwrap();
    let refused = resume(&[]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("the round started on GPU(s) 1 (round.json), but GPU 1 has no device node"),
        "{said}"
    );
    assert_eq!(read_csv(&runs_csv).len(), 1, "no case ran");
    let moved = resume(&["--gpus", "2"]);
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    ran_on("2");
    interrupt();
    assert!(resume(&[]).status.success(), "round.json now lists GPU 2");
    ran_on("2");

    // A plan without the GPUs: the first of every GPU the machine has now.
    let plan_path = out.join("round.json");
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    assert_eq!(plan["gpus"], serde_json::json!([2]));
    plan.as_object_mut().unwrap().remove("gpus");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    interrupt();
    assert!(resume(&[]).status.success());
    ran_on("0");
}

/// `--submissions` repeated runs the submissions of every folder given; a name that a folder
/// given earlier took is refused, the others run.
#[test]
fn run_takes_several_submissions_folders() {
    let (dir, challenge) = small_challenge(3);
    let body = "mkdir -p \"$OUT/masks\"\nhead -n 1 answers/predictions.csv > \"$OUT/predictions.csv\"\ngrep \"^$CASE,\" answers/predictions.csv >> \"$OUT/predictions.csv\"\ncp \"answers/masks/$CASE.nii.gz\" \"$OUT/masks/\"";
    let first = script_submission(&dir.path().join("first"), "alpha", body);
    let second = script_submission(&dir.path().join("second"), "beta", body);
    let clash = script_submission(&dir.path().join("third"), "alpha", body);
    for sub in [&first, &second, &clash] {
        perfect_predictions(&challenge, "test", &sub.join("answers"));
    }
    let out = dir.path().join("out");
    let ran = podium()
        .args([
            "run",
            "--phase",
            "test",
            "--backend",
            "process",
            "--allow-unisolated",
        ])
        .arg("--challenge")
        .arg(&challenge.root)
        .arg("--submissions")
        .arg(dir.path().join("first"))
        .arg("--submissions")
        .arg(&second)
        .arg("--submissions")
        .arg(&clash)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let ranked: Vec<String> = read_csv(&out.join("leaderboard.csv"))
        .into_iter()
        .map(|r| r["submission"].clone())
        .collect();
    assert_eq!(ranked.len(), 2, "{ranked:?}");
    assert!(ranked.contains(&"alpha".to_string()) && ranked.contains(&"beta".to_string()));
    let refused = read_csv(&out.join("refused.csv"));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]["reason"].contains("already taken"),
        "{refused:?}"
    );
}

/// `--ranking-method` is an option of the commands that rank only, and `podium leaderboard` of
/// one round, which prints what the round wrote, says to rescore instead of ignoring it.
#[test]
fn ranking_method_is_an_option_of_the_ranking_commands_only() {
    let help = |args: &[&str]| {
        let out = podium().args(args).arg("--help").output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for ranks in [
        &["run"][..],
        &["rescore"],
        &["score"],
        &["demo"],
        &["leaderboard"],
    ] {
        assert!(help(ranks).contains("--ranking-method"), "{ranks:?}");
    }
    for does_not in [&[][..], &["validate"], &["init"], &["report"], &["check"]] {
        assert!(!help(does_not).contains("--ranking-method"), "{does_not:?}");
    }
    let refused = podium()
        .args([
            "validate",
            "anywhere",
            "--ranking-method",
            "median-then-rank",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let dir = tempfile::tempdir().unwrap();
    let leaderboard = podium()
        .arg("leaderboard")
        .arg(dir.path().join("round"))
        .args(["--ranking-method", "median-then-rank"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&leaderboard.stderr);
    assert!(
        !leaderboard.status.success() && stderr.contains("podium rescore"),
        "{stderr}"
    );
}

/// Ctrl-C (SIGINT) and SIGTERM alike: the cases' programs, in process groups of their own, are
/// killed; the finished case stays in the journal, the interrupted ones are not recorded;
/// podium says how to resume and exits with 128 + the signal. The resumed round says what it
/// keeps and runs only the rest.
#[test]
fn an_interrupted_round_stops_its_programs_keeps_finished_cases_and_says_how_to_resume() {
    for (signal, marker) in [(libc::SIGINT, "271.8281"), (libc::SIGTERM, "271.8282")] {
        // Unique to this test process, so a run beside another counts only its own programs.
        let marker = &format!("{marker}{}", std::process::id());
        let (_dir, out, said, code) = interrupt_stalling_round("process", signal, marker);
        assert_eq!(code, Some(128 + signal), "{said}");
        assert!(
            said.contains(&format!(
                "1 of 4 case(s) finished and kept in {}",
                out.join("runs.csv").display()
            )) && said.contains(&format!(
                "`podium run --resume {}` runs the other 3",
                out.display()
            )),
            "{said}"
        );
        wait_for("end of the killed programs", || {
            processes_running(marker) == 0
        });
        let runs = read_csv(&out.join("runs.csv"));
        assert_eq!(runs.len(), 1, "only the finished case: {runs:?}");
        assert_eq!(runs[0]["status"], "ok");

        std::fs::write(out.parent().unwrap().join("subs/stalling/resume-now"), "").unwrap();
        let resumed = podium()
            .args(["run", "--resume"])
            .arg(&out)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&resumed.stderr);
        assert!(resumed.status.success(), "{said}");
        assert!(
            said.contains("resuming: 1 case kept from runs.csv, 3 to run"),
            "{said}"
        );
        let runs = read_csv(&out.join("runs.csv"));
        assert_eq!(runs.len(), 4);
        assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
        assert!(
            !out.join("work").exists(),
            "the empty work/ folder is removed"
        );
    }
}

/// With stderr not a terminal (a CI log), a round prints progress lines with the cases done of
/// the total, the failures and an ETA; and it leaves no empty work/ folder.
#[test]
fn a_round_logged_to_a_file_prints_progress_lines_and_leaves_no_work_folder() {
    let (dir, challenge) = small_challenge(4);
    let subs = dir.path().join("subs");
    slow_submission(&subs, &challenge);
    let out = dir.path().join("round");
    let ran = podium()
        .args(["run", "--jobs", "1", "--phase", "test", "--challenge"])
        .arg(&challenge.root)
        .arg("--submissions")
        .arg(&subs)
        .arg("--out")
        .arg(&out)
        // A line per tenth of the cases, however short the round (10 s apart by default).
        .env("PODIUM_PROGRESS_INTERVAL_S", "0")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{said}");
    let progress: Vec<&str> = said.lines().filter(|l| l.contains("PROGRESS")).collect();
    let cases = truth_rows(&challenge, "test").len();
    assert!(
        progress[0].contains(&format!("steady 1/{cases} cases, 0 failed, ETA ")),
        "{said}"
    );
    assert!(progress.len() < cases, "none for the last case: {said}");
    assert!(out.join("runs.csv").is_file());
    assert!(
        !out.join("work").exists(),
        "{:?}",
        std::fs::read_dir(&out).unwrap().collect::<Vec<_>>()
    );
}
