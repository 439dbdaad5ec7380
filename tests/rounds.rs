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
            .stderr(Stdio::null());
        cmd
    };
    let complete = run("complete").status().unwrap();
    assert!(complete.success());

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
    assert!(status.status.success());
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
fn check_tells_a_team_case_by_case_what_would_get_it_rejected() {
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
    podium::io::nifti::write_volume(
        &dev_answers.join("masks").join(format!("{first}.nii.gz")),
        ndarray::Array3::<u8>::zeros((40, 64, 64)).view(),
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
    assert!(stdout.contains(&format!("case {first} (segmentation): masks/{first}.nii.gz has shape [64, 64, 40], the image has [64, 64, 48]")), "{stdout}");
    assert!(
        stdout.contains(&format!("case {second}"))
            && stdout.contains("not a probability in [0, 1]"),
        "{stdout}"
    );
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
