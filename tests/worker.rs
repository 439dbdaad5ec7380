//! Worker mode with the process backend: a program started once per slot serves many cases
//! over the line protocol, each case keeping its own status, limit, logs and output check.
//! Fixture workers are bash scripts (the sandbox's are in tests/sandbox.rs).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use podium::challenge::Challenge;
use podium::pipeline::{run_and_score, RoundOutcome};
use podium::runner::{process::ProcessBackend, Backend, RoundOptions, RunEvent};
use podium::submission::Submission;

/// What a case does: answer from `answers/` (perfect predictions), after `special`, which
/// may `continue` to skip the answer or exit.
fn answer(special: &str) -> String {
    format!(
        "{special}\n  mkdir -p \"$OUT/masks\"\n  head -n 1 answers/predictions.csv > \"$OUT/predictions.csv\"\n  grep \"^$CASE,\" answers/predictions.csv >> \"$OUT/predictions.csv\"\n  cp \"answers/masks/$CASE.nii.gz\" \"$OUT/masks/\"\n  echo \"case $CASE answered\" >&2"
    )
}

/// A worker-mode submission: `setup` runs once, then each case line runs `case_body`.
fn worker_submission(
    challenge: &Challenge,
    parent: &Path,
    name: &str,
    setup: &str,
    case_body: &str,
) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("worker.sh"),
        format!(
            "#!/bin/bash\nset -u\nIN=\"$1\"; OUT=\"$2\"\n{setup}\necho \"loading the model\"\necho ready\nwhile read -r CASE; do\n  [ \"$(tail -n 1 \"$IN/cases.csv\")\" = \"$CASE\" ] || {{ echo \"input holds another case\" >&2; exit 7; }}\n  [ -z \"$(ls -A \"$OUT\")\" ] || {{ echo \"output not emptied\" >&2; exit 8; }}\n{case_body}\n  echo \"done $CASE\"\ndone\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        format!("team = \"fixtures\"\nname = \"{name}\"\n[run]\nkind = \"process\"\nmode = \"worker\"\ncommand = [\"/bin/bash\", \"./worker.sh\", \"{{input}}\", \"{{output}}\"]\n"),
    )
    .unwrap();
    perfect_predictions(challenge, "test", &dir.join("answers"));
    dir
}

/// Runs the submissions of `subs` with `jobs` slots; returns the outcome and how many
/// workers each submission started.
fn round(
    challenge: &Challenge,
    subs: &Path,
    out: &Path,
    jobs: usize,
    backend: &dyn Backend,
) -> (RoundOutcome, std::collections::BTreeMap<String, usize>) {
    let phase = challenge.phase_paths("test", None).unwrap();
    let options = RoundOptions {
        jobs,
        out_dir: out.to_path_buf(),
        resume: false,
        gpus: None,
    };
    let mut starts = std::collections::BTreeMap::new();
    let outcome = run_and_score(
        challenge,
        &phase,
        &Submission::discover(subs).unwrap(),
        backend,
        &options,
        &mut |event| {
            if let RunEvent::WorkerStarted { submission, .. } = event {
                *starts.entry(submission.clone()).or_insert(0) += 1;
            }
        },
    )
    .unwrap();
    (outcome, starts)
}

fn runs_of(out: &Path, submission: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    read_csv(&out.join("runs.csv"))
        .into_iter()
        .filter(|r| r["submission"] == submission)
        .collect()
}

#[test]
fn a_worker_starts_once_per_slot_and_its_predictions_equal_the_per_case_programs() {
    let (dir, challenge) = small_challenge(6);
    let subs = dir.path().join("subs");
    worker_submission(&challenge, &subs, "served", "sleep 0.3", &answer(""));
    let per_case = script_submission(&subs, "per-case", &answer(""));
    perfect_predictions(&challenge, "test", &per_case.join("answers"));
    let out = dir.path().join("out");
    let (outcome, starts) = round(&challenge, &subs, &out, 2, &ProcessBackend);

    // Two slots: at most one worker each, never one per case.
    let started = starts.get("served").copied().unwrap_or(0);
    assert!((1..=2).contains(&started), "{starts:?}");
    assert!(!starts.contains_key("per-case"));
    let runs = runs_of(&out, "served");
    assert_eq!(runs.len(), 6);
    assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
    // The two modes collect the same predictions, so they score the same.
    let read = |sub: &str, file: &str| {
        std::fs::read(out.join("predictions").join(sub).join(file)).unwrap()
    };
    // (Rows come in the order cases finished.)
    let rows = |sub: &str| {
        let text = String::from_utf8(read(sub, "predictions.csv")).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines.sort();
        lines
    };
    assert_eq!(rows("served"), rows("per-case"));
    assert_eq!(rows("served").len(), 7);
    for (id, ..) in truth_rows(&challenge, "test") {
        let mask = format!("masks/{id}.nii.gz");
        assert_eq!(read("served", &mask), read("per-case", &mask));
    }
    let score = |sub: &str| metric(&outcome.scores, sub, "segmentation", "dice");
    assert_eq!(score("served"), score("per-case"));
    assert!(score("served").is_some());
    // Each case's stderr goes to its own log; the start's output to the worker's log.
    let id = &truth_rows(&challenge, "test")[0].0;
    let log =
        std::fs::read_to_string(out.join("logs/served").join(format!("{id}.stderr.log"))).unwrap();
    assert_eq!(log.trim(), format!("case {id} answered"));
    let worker_log = std::fs::read_to_string(out.join("logs/served/worker-0.stdout.log"))
        .or_else(|_| std::fs::read_to_string(out.join("logs/served/worker-1.stdout.log")))
        .unwrap();
    assert!(worker_log.contains("loading the model"), "{worker_log}");
}

#[test]
fn a_timeout_a_crash_or_a_wrong_answer_fails_that_case_alone_and_a_new_worker_serves_the_next() {
    let (dir, challenge) = small_challenge(7);
    let challenge = with_limits(&challenge, "wall_time_per_case_s = 2\ngrace_period_s = 1\n");
    let ids: Vec<String> = truth_rows(&challenge, "test")
        .into_iter()
        .map(|r| r.0)
        .collect();
    let subs = dir.path().join("subs");
    let pid_file = dir.path().join("helper.pid");
    let special = format!(
        r#"  case "$CASE" in
    {slow}) sleep 300 & echo $! > {pid}; wait ;;
    {crash}) echo "CUDA error: out of memory" >&2; exit 3 ;;
    {wrong}) echo "done {other}"; continue ;;
    {quiet}) exec 1>&- ; sleep 300 ;;
  esac"#,
        slow = ids[1],
        crash = ids[3],
        wrong = ids[4],
        other = ids[0],
        quiet = ids[5],
        pid = pid_file.display()
    );
    worker_submission(&challenge, &subs, "fragile", "", &answer(&special));
    let out = dir.path().join("out");
    let (_, starts) = round(&challenge, &subs, &out, 1, &ProcessBackend);

    let runs = runs_of(&out, "fragile");
    let status_of = |id: &str| {
        let r = runs.iter().find(|r| r["case_id"] == id).unwrap();
        (r["status"].clone(), r["message"].clone())
    };
    for ok in [&ids[0], &ids[2], &ids[6]] {
        assert_eq!(status_of(ok).0, "ok", "{:?}", status_of(ok));
    }
    let (status, message) = status_of(&ids[1]);
    assert_eq!(status, "timeout");
    assert!(message.contains("wall-time limit of 2.0 s"), "{message}");
    let (status, message) = status_of(&ids[3]);
    assert_eq!(status, "failed");
    assert!(
        message.contains("ended without answering `done`: exit code 3")
            && message.contains("CUDA error: out of memory"),
        "{message}"
    );
    let (status, message) = status_of(&ids[4]);
    assert_eq!(status, "failed");
    assert!(
        message.contains(&format!(
            "answered `done {}` while case {} was running",
            ids[0], ids[4]
        )),
        "{message}"
    );
    // A worker that closes stdout and hangs is stopped at the case's limit.
    assert_eq!(status_of(&ids[5]).0, "timeout", "{:?}", status_of(&ids[5]));
    // The first worker, then one after each of the four cases that ended one.
    assert_eq!(starts.get("fragile"), Some(&5), "{starts:?}");
    // The timed-out worker's whole process group died with it, its background child too.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok();
    let running = state
        .as_deref()
        .and_then(|s| s.rsplit(')').next())
        .is_some_and(|rest| !rest.trim_start().starts_with('Z'));
    assert!(!running, "{} outlived the timeout: {state:?}", pid.trim());
    // The crash's last words are in that case's log.
    let log = std::fs::read_to_string(
        out.join("logs/fragile")
            .join(format!("{}.stderr.log", ids[3])),
    )
    .unwrap();
    assert!(log.contains("CUDA error"), "{log}");
}

#[test]
fn a_worker_that_cannot_start_fails_three_cases_and_the_rest_at_once() {
    let (dir, challenge) = small_challenge(8);
    let subs = dir.path().join("subs");
    let sub = worker_submission(
        &challenge,
        &subs,
        "broken",
        "echo \"ModuleNotFoundError: No module named 'torch'\" >&2; exit 1",
        &answer(""),
    );
    let out = dir.path().join("out");
    let started = Instant::now();
    let (_, starts) = round(&challenge, &subs, &out, 1, &ProcessBackend);
    assert!(started.elapsed().as_secs() < 60);
    assert!(!starts.contains_key("broken"));
    let runs = runs_of(&out, "broken");
    assert_eq!(runs.len(), 8);
    let tried: Vec<_> = runs
        .iter()
        .filter(|r| r["message"].contains("the worker stopped before saying `ready`: exit code 1"))
        .collect();
    assert_eq!(tried.len(), 3, "{runs:?}");
    assert!(tried
        .iter()
        .all(|r| r["status"] == "failed" && r["message"].contains("No module named 'torch'")));
    let skipped = runs
        .iter()
        .filter(|r| r["message"].contains("the worker failed to start 3 times in a row"))
        .count();
    assert_eq!(skipped, 5, "{runs:?}");
    let log = std::fs::read_to_string(out.join("logs/broken/worker-0.stderr.log")).unwrap();
    assert!(log.contains("No module named"), "{log}");
    drop(sub);
}

#[test]
fn a_worker_case_over_the_output_limit_is_stopped_and_the_next_case_is_served() {
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(&challenge, "output_mb = 1\nwall_time_per_case_s = 30\n");
    let ids: Vec<String> = truth_rows(&challenge, "test")
        .into_iter()
        .map(|r| r.0)
        .collect();
    let subs = dir.path().join("subs");
    // Many files each under the size rlimit: only the folder's total reaches the limit.
    let special = format!(
        "  if [ \"$CASE\" = {flood} ]; then for i in $(seq 1 40); do head -c 100000 /dev/zero > \"$OUT/chunk$i\"; done; sleep 5; fi",
        flood = ids[1]
    );
    worker_submission(&challenge, &subs, "flooding", "", &answer(&special));
    let out = dir.path().join("out");
    let (_, starts) = round(&challenge, &subs, &out, 1, &ProcessBackend);
    let runs = runs_of(&out, "flooding");
    let status = |id: &str| runs.iter().find(|r| r["case_id"] == id).unwrap()["status"].clone();
    assert_eq!(status(&ids[1]), "output_limit", "{runs:?}");
    assert_eq!(status(&ids[0]), "ok");
    assert_eq!(status(&ids[2]), "ok");
    assert_eq!(starts.get("flooding"), Some(&2));
}

/// A backend that starts one process per case (like docker and slurm).
struct PerCaseOnly;

impl Backend for PerCaseOnly {
    fn name(&self) -> &'static str {
        "per-case-only"
    }
    fn enforced_limits(&self) -> &'static [&'static str] {
        ProcessBackend.enforced_limits()
    }
    fn isolation(&self) -> String {
        ProcessBackend.isolation()
    }
    fn prepare(
        &self,
        submission: &Submission,
        log: &Path,
        limits: &podium::challenge::Limits,
    ) -> Result<(), String> {
        ProcessBackend.prepare(submission, log, limits)
    }
    fn run_case(
        &self,
        job: &podium::runner::CaseJob,
        limits: &podium::challenge::Limits,
    ) -> podium::runner::Execution {
        ProcessBackend.run_case(job, limits)
    }
}

#[test]
fn a_backend_without_workers_refuses_a_worker_submission_with_one_message() {
    let (dir, challenge) = small_challenge(3);
    let subs = dir.path().join("subs");
    worker_submission(&challenge, &subs, "served", "", &answer(""));
    let out = dir.path().join("out");
    let (_, starts) = round(&challenge, &subs, &out, 1, &PerCaseOnly);
    assert!(starts.is_empty());
    let runs = runs_of(&out, "served");
    assert!(
        runs.iter().all(|r| r["status"] == "failed"
            && r["message"]
                .contains("mode = \"worker\" runs with the process and sandbox backends")
            && r["message"].contains("per-case-only")),
        "{runs:?}"
    );
}
