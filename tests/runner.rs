//! The process runner with fixture submissions written as shell scripts: failures, timeouts,
//! missing and invalid outputs, capped logs and a clean environment, each recorded per case
//! while the round goes on.

mod common;

use std::path::Path;

use common::*;
use podium::challenge::Challenge;
use podium::pipeline::run_and_score;
use podium::results::CaseStatus;
use podium::runner::{process::ProcessBackend, RoundOptions};
use podium::submission::Submission;

/// A script body that answers from `answers/` in the submission folder (perfect predictions),
/// after running `special` (which may exit early for some cases).
fn answering_script(special: &str) -> String {
    format!(
        "{special}\nmkdir -p \"$OUT/masks\"\nhead -n 1 answers/predictions.csv > \"$OUT/predictions.csv\"\ngrep \"^$CASE,\" answers/predictions.csv >> \"$OUT/predictions.csv\"\ncp \"answers/masks/$CASE.nii.gz\" \"$OUT/masks/\"\n"
    )
}

fn round(challenge: &Challenge, submissions: &Path, out: &Path) -> podium::pipeline::RoundOutcome {
    let phase = challenge.phase_paths("test", None).unwrap();
    let subs = Submission::discover(submissions).unwrap();
    let options = RoundOptions {
        jobs: 2,
        out_dir: out.to_path_buf(),
        resume: false,
        gpus: None,
    };
    run_and_score(
        challenge,
        &phase,
        &subs,
        &ProcessBackend,
        &options,
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn failed_timed_out_missing_and_invalid_cases_are_recorded_and_the_round_goes_on() {
    let (dir, challenge) = small_challenge(8);
    let challenge = with_limits(
        &challenge,
        "wall_time_per_case_s = 2\ngrace_period_s = 1\noutput_mb = 1\n",
    );
    let ids: Vec<String> = truth_rows(&challenge, "test")
        .into_iter()
        .map(|r| r.0)
        .collect();
    let subs = dir.path().join("subs");
    let pid_file = dir.path().join("grandchild.pid");
    let special = format!(
        r#"case "$CASE" in
  {crash}) echo "loading weights" >&2; echo "model crashed on $CASE" >&2; exit 3 ;;
  {slow}) sleep 300 & echo $! > {pid}; wait ;;
  {silent}) exit 0 ;;
  {garbage}) printf 'case_id,p_covid\n"unterminated\n' > "$OUT/predictions.csv"; exit 0 ;;
  {hard}) mkdir -p "$OUT/masks"; ln {truth_mask} "$OUT/masks/$CASE.nii.gz"; grep -h "^case_id\|^$CASE," answers/predictions.csv > "$OUT/predictions.csv"; exit 0 ;;
  {huge}) head -c 3000000 /dev/zero > "$OUT/weights.bin"; echo "still here" >&2 ;;
  {link}) mkdir -p "$OUT/masks"; ln -s /etc/passwd "$OUT/masks/$CASE.nii.gz"; grep -h "^case_id\|^$CASE," answers/predictions.csv > "$OUT/predictions.csv"; exit 0 ;;
esac"#,
        crash = ids[0],
        slow = ids[1],
        silent = ids[2],
        garbage = ids[3],
        link = ids[4],
        huge = ids[5],
        hard = ids[6],
        truth_mask = challenge
            .phase_paths("test", None)
            .unwrap()
            .truth_mask("masks", &ids[6])
            .display(),
        pid = pid_file.display()
    );
    let sub = script_submission(&subs, "fixture", &answering_script(&special));
    perfect_predictions(&challenge, "test", &sub.join("answers"));

    let out = dir.path().join("out");
    let outcome = round(&challenge, &subs, &out);

    let runs = read_csv(&out.join("runs.csv"));
    let status_of = |id: &str| {
        runs.iter()
            .find(|r| r["case_id"] == id)
            .map(|r| (r["status"].clone(), r["message"].clone()))
            .unwrap()
    };
    let (status, message) = status_of(&ids[0]);
    assert_eq!(status, "failed");
    assert!(
        message.contains("exit code 3") && message.contains("model crashed on"),
        "{message}"
    );
    assert_eq!(status_of(&ids[1]).0, "timeout");
    assert!(status_of(&ids[1]).1.contains("wall-time limit of 2.0 s"));
    assert_eq!(status_of(&ids[2]).0, "missing");
    assert_eq!(status_of(&ids[3]).0, "invalid");
    let (status, message) = status_of(&ids[4]);
    assert_eq!(status, "missing");
    assert!(message.contains("symbolic link"), "{message}");
    let (status, message) = status_of(&ids[5]);
    assert_eq!(status, "output_limit");
    assert!(
        message.contains("reaching the output limit of 1 MB"),
        "{message}"
    );
    // A hard link to the truth mask is refused: podium never reads a file it could share
    // with the host.
    let (status, message) = status_of(&ids[6]);
    assert_eq!(status, "missing");
    assert!(message.contains("is a hard link"), "{message}");
    assert_eq!(status_of(&ids[7]).0, "ok");

    // The whole process group died with the timed-out case, its background child included.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    // Gone, or a zombie waiting for init to reap it: either way no longer running.
    let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok();
    let running = state
        .as_deref()
        .and_then(|s| s.rsplit(')').next())
        .is_some_and(|rest| !rest.trim_start().starts_with('Z'));
    assert!(
        !running,
        "the grandchild {} outlived the timeout: {state:?}",
        pid.trim()
    );

    // Scoring kept the good cases and gave the bad ones the worst value with their status.
    let scores = &outcome.scores;
    let dice = |id: &str| {
        scores
            .case_scores
            .iter()
            .find(|c| c.task == "segmentation" && c.case_id == id)
            .map(|c| (c.value, c.status))
            .unwrap()
    };
    assert_eq!(dice(&ids[0]), (Some(0.0), CaseStatus::Failed));
    assert_eq!(dice(&ids[1]), (Some(0.0), CaseStatus::Timeout));
    assert_eq!(dice(&ids[4]), (Some(0.0), CaseStatus::Missing));
    assert_eq!(dice(&ids[6]), (Some(0.0), CaseStatus::Missing));
    assert_eq!(dice(&ids[7]), (Some(1.0), CaseStatus::Ok));
    // The link case still counts for the tasks its valid CSV row answers.
    let detection = scores
        .case_scores
        .iter()
        .find(|c| c.task == "detection" && c.case_id == ids[4])
        .unwrap();
    assert_eq!(detection.status, CaseStatus::Ok);
    // The test phase is hidden: the organizer's runs.csv quotes the program (above), but what
    // may reach the team says what happened in podium's words only.
    let crash = scores
        .problems
        .iter()
        .find(|p| p.case_id == ids[0])
        .unwrap();
    assert_eq!(crash.problem, "failed: exit code 3");
    let team = read_csv(&out.join("teams/fixture/runs.csv"));
    let team_crash = team.iter().find(|r| r["case_id"] == ids[0]).unwrap();
    assert_eq!(team_crash["message"], "exit code 3");
    assert!(team.iter().all(|r| !r["message"].contains("model crashed")));
    assert!(out.join("leaderboard.csv").is_file() && out.join("run.json").is_file());
    let stderr_log = std::fs::read_to_string(
        out.join("logs/fixture")
            .join(format!("{}.stderr.log", ids[0])),
    )
    .unwrap();
    assert!(stderr_log.contains("loading weights"));
}

#[test]
fn logs_are_capped_the_environment_is_clean_and_the_paths_come_as_arguments_and_variables() {
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(&challenge, "log_kb = 1\n");
    let subs = dir.path().join("subs");
    let body = r#"head -c 100000 /dev/zero | tr '\0' 'x'
env >&2
[ "$PODIUM_INPUT" = "$IN" ] && [ "$PODIUM_OUTPUT" = "$OUT" ] || { echo "paths differ" >&2; exit 9; }"#;
    let sub = script_submission(&subs, "chatty", &answering_script(body));
    perfect_predictions(&challenge, "test", &sub.join("answers"));
    let out = dir.path().join("out");
    let outcome = round(&challenge, &subs, &out);
    assert!(
        outcome
            .scores
            .case_scores
            .iter()
            .all(|c| c.status == CaseStatus::Ok),
        "{:?}",
        outcome.scores.problems
    );
    let id = &truth_rows(&challenge, "test")[0].0;
    let log =
        std::fs::read_to_string(out.join("logs/chatty").join(format!("{id}.stdout.log"))).unwrap();
    assert!(log.len() < 1200, "log of {} bytes", log.len());
    assert!(
        log.contains("98976 bytes dropped here"),
        "{}",
        log.replace("xxxx", "")
    );
    assert!(
        log.starts_with("xxxx") && log.ends_with("xxxx"),
        "the head and the tail are kept"
    );
    // The program saw podium's variables and nothing of the caller's (cargo sets CARGO_* here).
    let env =
        std::fs::read_to_string(out.join("logs/chatty").join(format!("{id}.stderr.log"))).unwrap();
    assert!(
        env.contains(&format!("PODIUM_CASE_ID={id}")) && env.contains("PODIUM_CPUS=1"),
        "{env}"
    );
    assert!(
        !env.contains("CARGO"),
        "the caller's environment leaked: {env}"
    );
    assert!(
        !out.join("work/chatty").exists(),
        "per-case work folders are cleaned up"
    );
}

#[test]
fn a_submission_that_cannot_be_prepared_fails_every_case_with_the_reason() {
    let (dir, challenge) = small_challenge(3);
    let subs = dir.path().join("subs");
    let sub = script_submission(&subs, "unbuildable", "exit 0");
    let toml = sub.join("submission.toml");
    let text = std::fs::read_to_string(&toml).unwrap()
        + "build = [\"/bin/bash\", \"-c\", \"echo 'cc: error: missing header' >&2; exit 1\"]\n";
    std::fs::write(&toml, text).unwrap();
    let out = dir.path().join("out");
    let outcome = round(&challenge, &subs, &out);
    let runs = read_csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(
        |r| r["status"] == "failed" && r["message"].contains("preparing the submission failed")
    ));
    // The build's own words, not its command line (which holds them too here).
    let logs = out.canonicalize().unwrap().join("logs/unbuildable");
    assert!(
        runs[0]["message"].contains("exit code 1; its stderr ends with: cc: error: missing header")
            && runs[0]["message"].contains(&format!(
                "{} (stderr)",
                logs.join("prepare.err.log").display()
            )),
        "{}",
        runs[0]["message"]
    );
    // An empty submission ranks last on every task, never first.
    assert_eq!(outcome.leaderboard[0].submission, "unbuildable");
    assert!(outcome.leaderboard[0]
        .tasks
        .iter()
        .all(|t| t.value.is_none_or(|v| v <= 0.5 || t.metric == "mae")));
}

#[test]
fn slots_run_the_cases_of_different_submissions_at_the_same_time() {
    let (dir, challenge) = small_challenge(3);
    let subs = dir.path().join("subs");
    let trace = dir.path().join("trace.log");
    for name in ["alpha", "beta"] {
        let body = format!(
            "echo \"start {name} $(date +%s.%N)\" >> {trace}\nsleep 0.5\necho \"end {name} $(date +%s.%N)\" >> {trace}",
            trace = trace.display()
        );
        script_submission(&subs, name, &body);
    }
    let out = dir.path().join("out");
    round(&challenge, &subs, &out);
    // Each line: "start|end <name> <time>". Find an interval of alpha overlapping one of beta.
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut open: Vec<(String, f64)> = Vec::new();
    let mut intervals: Vec<(String, f64, f64)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let t: f64 = f[2].parse().unwrap();
        if f[0] == "start" {
            open.push((f[1].to_string(), t));
        } else if let Some(i) = open.iter().position(|(n, _)| n == f[1]) {
            let (n, s) = open.remove(i);
            intervals.push((n, s, t));
        }
    }
    assert_eq!(intervals.len(), 6, "{text}");
    let overlap = intervals.iter().any(|(a, s1, e1)| {
        intervals
            .iter()
            .any(|(b, s2, e2)| a != b && s1 < e2 && s2 < e1)
    });
    assert!(
        overlap,
        "no case of alpha ran while a case of beta ran:\n{text}"
    );
}

/// A case's input is staged when its first run needs it and removed after its last, not all
/// before the round: while a case runs, the staging folder holds that case alone, as a copy of
/// its image (never a link to the challenge's) beside a one-row `cases.csv`, readable by all.
#[test]
fn each_case_is_staged_just_before_it_runs_and_removed_after_its_last_run() {
    let (dir, challenge) = small_challenge(3);
    let subs = dir.path().join("subs");
    let body = r#"ls -a "$(dirname "$IN")" | grep -v '^\.' | tr '\n' ' ' >&2; echo >&2
stat -c '%a %h %i' "$IN" "$IN/images" "$IN/cases.csv" "$IN/images/$CASE.nii.gz" >&2
ls "$IN" >&2; ls "$IN/images" >&2
cat "$IN/cases.csv" >&2"#;
    for name in ["alpha", "beta"] {
        script_submission(&subs, name, body);
    }
    let out = dir.path().join("out");
    let phase = challenge.phase_paths("test", None).unwrap();
    let options = RoundOptions {
        jobs: 1,
        out_dir: out.clone(),
        resume: false,
        gpus: None,
    };
    podium::runner::run_round(
        &challenge,
        &phase,
        &Submission::discover(&subs).unwrap(),
        &ProcessBackend,
        &options,
        &mut |_| {},
    )
    .unwrap();
    for (id, ..) in truth_rows(&challenge, "test") {
        use std::os::unix::fs::MetadataExt;
        let original = std::fs::metadata(phase.image(&id)).unwrap().ino();
        for name in ["alpha", "beta"] {
            let log = std::fs::read_to_string(
                out.join("logs").join(name).join(format!("{id}.stderr.log")),
            )
            .unwrap();
            let lines: Vec<&str> = log.lines().collect();
            assert_eq!(lines[0].trim(), id, "the staging folder held more: {log}");
            let stats: Vec<Vec<&str>> = lines[1..5]
                .iter()
                .map(|l| l.split_whitespace().collect())
                .collect();
            let modes: Vec<&str> = stats.iter().map(|s| s[0]).collect();
            assert_eq!(modes, ["755", "755", "644", "644"], "{log}");
            assert_eq!(stats[3][1], "1", "the image has other links: {log}");
            assert_ne!(
                stats[3][2],
                original.to_string(),
                "the challenge's own file"
            );
            let listing = format!("cases.csv\nimages\n{id}.nii.gz\n");
            assert!(log.contains(&listing), "{log}");
            assert!(log.ends_with(&format!("case_id\n{id}\n")), "{log}");
        }
    }
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging-"))
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

/// A fake device root of `gpus` NVIDIA GPUs and the control node (CI has no GPU).
fn fake_gpus(dir: &Path, gpus: u32) -> std::path::PathBuf {
    let root = dir.join("fake-dev");
    std::fs::create_dir_all(&root).unwrap();
    for node in (0..gpus)
        .map(|k| format!("nvidia{k}"))
        .chain(["nvidiactl".to_string()])
    {
        std::fs::write(root.join(node), "").unwrap();
    }
    root
}

/// Each case's `runs.csv` row names the GPU its slot gave it (the one the program was told
/// to use), and leaves GPU time and peak GPU memory empty: fake device nodes have no driver
/// to report them. The report shows the GPU columns.
#[test]
fn runs_csv_names_each_cases_gpus_and_leaves_what_no_driver_reported_empty() {
    use podium::runner::gpus::GpuPool;
    let (dir, challenge) = small_challenge(4);
    let challenge = with_limits(&challenge, "gpus = 1\n");
    let root = fake_gpus(dir.path(), 2);
    let subs = dir.path().join("subs");
    script_submission(
        &subs,
        "gpu-probe",
        "sleep 0.2\necho \"cuda=$CUDA_VISIBLE_DEVICES\" >&2\nexit 1",
    );
    let out = dir.path().join("out");
    let phase = challenge.phase_paths("test", None).unwrap();
    let pool = GpuPool::new(GpuPool::discover(&root), 1, root.clone()).unwrap();
    let options = RoundOptions {
        jobs: pool.max_slots(),
        out_dir: out.clone(),
        resume: false,
        gpus: Some(pool.clone()),
    };
    let subs = Submission::discover(&subs).unwrap();
    run_and_score(
        &challenge,
        &phase,
        &subs,
        &ProcessBackend,
        &options,
        &mut |_| {},
    )
    .unwrap();
    let runs = read_csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 4);
    let slots: Vec<String> = (0..pool.max_slots())
        .map(|s| pool.list_for_slot(s))
        .collect();
    for r in &runs {
        let saw = r["message"].rsplit("cuda=").next().unwrap().trim();
        assert_eq!(r["gpus"], saw, "{r:?}");
        assert!(slots.contains(&r["gpus"]), "{r:?} not one of {slots:?}");
        for empty in ["gpu_time_s", "gpu_peak_memory_mib", "gpus_used"] {
            assert_eq!(r[empty], "", "{empty} of {r:?}");
        }
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("<th>peak GPU memory (MiB)</th>"));
    for r in &runs {
        let cells = format!(
            "<td>{}</td><td class=\"n\">–</td><td class=\"n\">–</td>",
            r["gpus"]
        );
        assert!(report.contains(&cells), "no {cells} for {}", r["case_id"]);
    }
}

/// `podium check` says, for the GPU a program was given, that podium cannot tell whether the
/// program used it, and why; without any GPU, `check` and `run` stop before the round with one
/// message, not a failed case per case.
#[test]
fn check_reports_on_the_gpus_and_a_host_without_one_stops_before_the_round() {
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(&challenge, "gpus = 1\n");
    let root = fake_gpus(dir.path(), 1);
    let subs = dir.path().join("subs");
    let sub = script_submission(&subs, "gpu-probe", "exit 0");
    let podium = |args: &[&str], out: &Path, device_root: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
            .args(args)
            .args(["--backend", "process", "--challenge"])
            .arg(&challenge.root)
            .arg("--out")
            .arg(out)
            .env("PODIUM_DEVICE_ROOT", device_root)
            .output()
            .unwrap()
    };
    let out = dir.path().join("out-check");
    let checked = podium(&["check", sub.to_str().unwrap()], &out, &root);
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        stdout.contains("GPU: podium cannot tell whether the program used GPU 0: its GPUs are in a test device root"),
        "{stdout}{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let none = dir.path().join("no-dev");
    std::fs::create_dir_all(&none).unwrap();
    let run_args = [
        "run",
        "--allow-unisolated",
        "--phase",
        "test",
        "--submissions",
        subs.to_str().unwrap(),
    ];
    for (args, out) in [
        (&["check", sub.to_str().unwrap()][..], "out-check-none"),
        (&run_args[..], "out-run-none"),
    ] {
        let out = dir.path().join(out);
        let done = podium(args, &out, &none);
        let said = String::from_utf8_lossy(&done.stderr);
        assert!(!done.status.success(), "{args:?}: {said}");
        assert_eq!(
            said.lines()
                .filter(|l| l.contains("no NVIDIA GPU was found"))
                .count(),
            1,
            "{args:?}: {said}"
        );
        assert!(!out.join("runs.csv").exists(), "{args:?} ran cases");
    }
}
