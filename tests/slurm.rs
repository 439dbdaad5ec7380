//! The Slurm backend against a real Slurm (issue 8): `.ci/slurm-cluster.sh start DIR` runs a
//! single-node cluster on localhost (munged, slurmctld, slurmd), and `tests/run.sh` starts it before
//! the tests with `SLURM_CONF` exported. Under `CI=true` a cluster that does not answer fails
//! these tests; elsewhere they print a visible SKIPPED line.
//!
//! Every round goes through the `podium` binary, as an organizer runs it: the nodes run that same
//! binary (`podium exec-case`), which they find at the path it has here.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// The tests share one cluster, and one of them takes its node down: one test at a time.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the test can go on: `sinfo` answers (see `common::components`).
fn require_slurm() -> bool {
    let answer = Command::new("sinfo").args(["-h", "-o", "%T"]).output();
    let problem = match &answer {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => return true,
        Ok(o) => format!(
            "`sinfo` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("cannot run `sinfo`: {e}"),
    };
    component_missing(
        "a Slurm cluster",
        &format!("{problem}; `.ci/slurm-cluster.sh start DIR` starts one"),
    )
}

/// A small demo challenge whose rounds go to the cluster (`[cluster]`), polling fast.
fn cluster_challenge(cases: usize, cluster: &str) -> (tempfile::TempDir, PathBuf) {
    let (dir, challenge) = small_challenge(cases);
    let toml = challenge.root.join("challenge.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(&format!("\n[cluster]\npoll_interval_s = 0.2\n{cluster}\n"));
    std::fs::write(&toml, text).unwrap();
    (dir, challenge.root.clone())
}

fn podium(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(args)
        .output()
        .unwrap()
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "podium failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `podium run` of the test phase into `out`.
fn round(challenge: &Path, subs: &Path, out: &Path, backend: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_podium"));
    command
        .arg("run")
        .arg("--challenge")
        .arg(challenge)
        .args(["--phase", "test", "--submissions"])
        .arg(subs)
        .arg("--out")
        .arg(out)
        .args(["--backend", backend]);
    command
}

fn run(challenge: &Path, subs: &Path, out: &Path, backend: &str) -> Output {
    let child = round(challenge, subs, out, backend)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_at_most(child, Duration::from_secs(600))
}

#[test]
fn a_round_through_slurm_scores_exactly_as_a_local_round() {
    let _cluster = one_at_a_time();
    if !require_slurm() {
        return;
    }
    let (dir, challenge) = cluster_challenge(6, "");
    let subs = dir.path().join("subs");
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    let local = dir.path().join("local");
    assert_success(&run(&challenge, &subs, &local, "sandbox"));
    // `auto` takes the challenge's [cluster].
    let cluster = dir.path().join("cluster");
    let out = run(&challenge, &subs, &cluster, "auto");
    assert_success(&out);
    let receipt = std::fs::read_to_string(cluster.join("run.json")).unwrap();
    assert!(receipt.contains("\"backend\": \"slurm\""), "{receipt}");
    for file in [
        "scores.csv",
        "metrics.csv",
        "leaderboard.csv",
        "problems.csv",
    ] {
        assert_eq!(
            std::fs::read_to_string(local.join(file)).unwrap(),
            std::fs::read_to_string(cluster.join(file)).unwrap(),
            "{file}: the cluster's round differs from the local one"
        );
    }
    // Each submission went to the cluster as one job array of six tasks.
    let jobs = read_lines(&cluster.join("slurm/jobs.csv"));
    assert_eq!(jobs.len(), 12, "{jobs:?}");
    for submission in ["threshold-baseline", "random-guess"] {
        let arrays: std::collections::BTreeSet<&str> = jobs
            .iter()
            .filter(|l| l.starts_with(&format!("{submission},")))
            .map(|l| l.split(',').nth(2).unwrap().split('_').next().unwrap())
            .collect();
        assert_eq!(arrays.len(), 1, "one array for {submission}: {jobs:?}");
    }
    let runs = read_csv(&cluster.join("runs.csv"));
    assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
    assert!(
        runs.iter().all(|r| !r["peak_memory_mib"].is_empty()),
        "measured on the node"
    );
}

#[test]
fn a_job_killed_by_slurm_for_memory_is_oom() {
    let _cluster = one_at_a_time();
    if !require_slurm() {
        return;
    }
    // podium's own limit (1024 MB) is above the job's (--mem=100M), so Slurm's limit is the
    // one a case taking 300 MB hits.
    for (node_backend, extra) in [("sandbox", None), ("process", Some("--allow-unisolated"))] {
        let (dir, challenge) = cluster_challenge(
            3,
            &format!("job_memory_mb = 100\nnode_backend = \"{node_backend}\""),
        );
        let toml = challenge.join("challenge.toml");
        let text = std::fs::read_to_string(&toml)
            .unwrap()
            .replace("memory_mb = 4096", "memory_mb = 1024");
        std::fs::write(&toml, text).unwrap();
        let subs = dir.path().join("subs");
        // tail holds the 300 MB line (no newline ends it) in memory.
        script_submission(
            &subs,
            "hog",
            "head -c 300000000 /dev/zero | tail -n 1 > /dev/null\n",
        );
        let out = dir.path().join("out");
        // `auto`: the challenge's [cluster].
        let mut command = round(&challenge, &subs, &out, "auto");
        command.args(extra);
        assert_success(&command.output().unwrap());
        let runs = read_csv(&out.join("runs.csv"));
        assert_eq!(runs.len(), 3);
        for r in &runs {
            assert_eq!(r["status"], "oom", "{node_backend}: {runs:?}");
            assert_eq!(
                r["message"], "killed by Slurm for exceeding the job's memory (100 MB)",
                "{node_backend}: {runs:?}"
            );
        }
        if node_backend == "process" {
            // Without the sandbox's group in between, Slurm saw the kill itself.
            let shown = first_task(&out);
            assert!(shown.contains("JobState=OUT_OF_MEMORY"), "{shown}");
        }
    }
}

/// A Docker submission runs in the node's engine, and scores as it does on one machine.
#[test]
fn a_docker_submission_runs_in_the_nodes_engine() {
    let _cluster = one_at_a_time();
    if !require_slurm() || !common::docker_images::require_docker() {
        return;
    }
    let (dir, challenge) = cluster_challenge(3, "");
    let subs = dir.path().join("subs");
    let image = "podium-test/slurm-baseline:1";
    common::docker_images::build_baseline_image(image);
    let docker = subs.join("docker-baseline");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("submission.toml"),
        format!("team = \"examples\"\nname = \"docker-baseline\"\n[run]\nkind = \"docker\"\nimage = \"{image}\"\n"),
    )
    .unwrap();
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    let local = dir.path().join("local");
    assert_success(&run(&challenge, &subs, &local, "sandbox"));
    let cluster = dir.path().join("cluster");
    assert_success(&run(&challenge, &subs, &cluster, "slurm"));
    assert_eq!(
        std::fs::read_to_string(local.join("scores.csv")).unwrap(),
        std::fs::read_to_string(cluster.join("scores.csv")).unwrap()
    );
    let runs = read_csv(&cluster.join("runs.csv"));
    assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
    let result =
        std::fs::read_to_string(cluster.join("slurm/docker-baseline/results/test-0001.json"))
            .unwrap();
    assert!(result.contains("\"backend\": \"docker\""), "{result}");
    assert!(
        common::docker_images::podium_containers().is_empty(),
        "no container left"
    );
}

/// An organizer's `scancel` ends the case as failed, saying so, and the round goes on.
#[test]
fn a_cancelled_job_fails_its_case_and_the_round_goes_on() {
    let _cluster = one_at_a_time();
    if !require_slurm() {
        return;
    }
    let (dir, challenge) = cluster_challenge(3, "");
    let subs = dir.path().join("subs");
    script_submission(&subs, "sleeper", "sleep 600\n");
    let out = dir.path().join("out");
    let running = round(&challenge, &subs, &out, "slurm")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while read_lines(&out.join("slurm/jobs.csv")).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing submitted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every task of the round's array, running or waiting.
    let jobs = read_lines(&out.join("slurm/jobs.csv"));
    let array = jobs[0]
        .split(',')
        .nth(2)
        .unwrap()
        .split('_')
        .next()
        .unwrap()
        .to_string();
    let cancel = Command::new("scancel").arg(&array).output().unwrap();
    assert!(
        cancel.status.success(),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );
    let finished = wait_at_most(running, Duration::from_secs(300));
    assert_success(&finished);
    let runs = read_csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 3);
    for r in &runs {
        assert_eq!(r["status"], "failed", "{runs:?}");
        assert!(
            r["message"].starts_with("the Slurm job ") && r["message"].ends_with(" was cancelled"),
            "{runs:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// Slurm's `--time` counts minutes; the per-case limit in seconds is podium's, inside the job.
#[test]
fn the_per_case_wall_limit_in_seconds_holds_inside_a_job_of_whole_minutes() {
    let _cluster = one_at_a_time();
    if !require_slurm() {
        return;
    }
    let (dir, challenge) = cluster_challenge(3, "");
    let toml = challenge.join("challenge.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        "wall_time_per_case_s = 120",
        "wall_time_per_case_s = 2\ngrace_period_s = 1",
    );
    std::fs::write(&toml, text).unwrap();
    let subs = dir.path().join("subs");
    script_submission(&subs, "sleeper", "sleep 60\n");
    let out = dir.path().join("out");
    let started = Instant::now();
    assert_success(&run(&challenge, &subs, &out, "slurm"));
    let runs = read_csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 3);
    for r in &runs {
        assert_eq!(r["status"], "timeout", "{runs:?}");
        let wall: f64 = r["wall_s"].parse().unwrap();
        assert!(
            (2.0..4.5).contains(&wall),
            "stopped at 2 s (+1 s grace): {runs:?}"
        );
    }
    // Three cases on two CPUs, each stopped after 2-3 s: far below Slurm's minute.
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    // The job asked Slurm for whole minutes: (2 + 1) s + 120 s of margin, 3 minutes.
    let shown = first_task(&out);
    assert!(shown.contains("TimeLimit=00:03:00"), "{shown}");
}

#[test]
fn a_round_resumes_after_the_organizers_podium_is_killed() {
    let _cluster = one_at_a_time();
    if !require_slurm() {
        return;
    }
    let (dir, challenge) = cluster_challenge(6, "");
    let subs = dir.path().join("subs");
    let slow = script_submission(
        &subs,
        "slow",
        "sleep 2\nexec ./threshold-baseline \"$IN\" \"$OUT\"\n",
    );
    std::fs::copy(
        workspace_binary("threshold-baseline"),
        slow.join("threshold-baseline"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut first = round(&challenge, &subs, &out, "slurm")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed (SIGKILL, no clean-up) once the first case is in the journal.
    let started = Instant::now();
    while read_lines(&out.join("runs.csv")).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no case finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let done_before = read_lines(&out.join("runs.csv")).len() - 1;
    assert!(
        done_before < 6,
        "the round finished before it could be killed"
    );

    let resumed = podium(&["run", "--resume", out.to_str().unwrap()]);
    assert_success(&resumed);
    let runs = read_csv(&out.join("runs.csv"));
    let cases: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r["case_id"].as_str()).collect();
    assert_eq!((runs.len(), cases.len()), (6, 6), "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
    // The jobs went on without podium: no case was submitted twice.
    let jobs = read_lines(&out.join("slurm/jobs.csv"));
    assert_eq!(jobs.len(), 6, "{jobs:?}");
    assert!(out.join("report.html").is_file() && out.join("scores.csv").is_file());
}

#[test]
fn jobs_lost_with_their_node_are_submitted_again_without_counting_against_the_team() {
    let _cluster = one_at_a_time();
    if !require_slurm() {
        return;
    }
    let (dir, challenge) = cluster_challenge(3, "");
    let subs = dir.path().join("subs");
    let slow = script_submission(
        &subs,
        "slow",
        "sleep 4\nexec ./threshold-baseline \"$IN\" \"$OUT\"\n",
    );
    std::fs::copy(
        workspace_binary("threshold-baseline"),
        slow.join("threshold-baseline"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let running = round(&challenge, &subs, &out, "slurm")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once two tasks run (the node's two CPUs; the third waits), the node goes down under
    // them (NODE_FAIL), then comes back.
    let started = Instant::now();
    loop {
        let queue = Command::new("squeue")
            .args(["-h", "-r", "-t", "RUNNING", "-o", "%j"])
            .output()
            .unwrap();
        let busy = String::from_utf8_lossy(&queue.stdout)
            .lines()
            .filter(|l| l.ends_with("-slow"))
            .count();
        if busy == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the tasks never ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let down = Command::new("scontrol")
        .args([
            "update",
            "NodeName=localhost",
            "State=DOWN",
            "Reason=podium-test",
        ])
        .output()
        .unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    // The test cluster returns a node to service when its slurmd answers (ReturnToService=2);
    // elsewhere it takes an explicit RESUME.
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let state = Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&state.stdout).contains("down") {
            break;
        }
        if started.elapsed() > Duration::from_secs(3) {
            let _ = Command::new("scontrol")
                .args(["update", "NodeName=localhost", "State=RESUME"])
                .output();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node stayed down"
        );
    }
    let finished = wait_at_most(running, Duration::from_secs(300));
    assert_success(&finished);
    let runs = read_csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
    // The two running cases were submitted twice: attempt 0 lost with the node, attempt 1
    // ran. The waiting one ran once the node was back.
    let jobs = read_lines(&out.join("slurm/jobs.csv"));
    let attempts: Vec<&str> = jobs.iter().map(|l| l.split(',').nth(3).unwrap()).collect();
    assert_eq!(
        attempts.iter().filter(|a| **a == "1").count(),
        2,
        "{jobs:?}"
    );
    let shown = first_task(&out);
    assert!(shown.contains("JobState=NODE_FAIL"), "{shown}");
}

/// Waits for podium, for at most `limit`: a cluster whose node stays unavailable would
/// otherwise hold the test (and CI) forever. On time out, podium is killed and the test fails
/// with what Slurm says of its node and queue. Its output is read meanwhile, so that a full
/// pipe never stops it.
fn wait_at_most(child: std::process::Child, limit: Duration) -> Output {
    let pid = child.id() as libc::pid_t;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: a signal to the podium this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let said = |args: &[&str]| {
                let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            panic!(
                "podium did not finish within {limit:?}; Slurm's node:\n{}\nqueue:\n{}",
                said(&["sinfo", "-N", "-l"]),
                said(&["squeue", "-l"])
            );
        }
    }
}

/// What `scontrol show job` says of the round's first submitted task.
fn first_task(out: &Path) -> String {
    let jobs = read_lines(&out.join("slurm/jobs.csv"));
    let task = jobs[0].split(',').nth(2).unwrap();
    let shown = Command::new("scontrol")
        .args(["show", "job", "-o", task])
        .output()
        .unwrap();
    String::from_utf8_lossy(&shown.stdout).into_owned()
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Returns the node to service when dropped, whatever the test did.
struct Resume;

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("scontrol")
            .args(["update", "NodeName=localhost", "State=RESUME"])
            .output();
    }
}

/// A drained node would hold a round forever without a word: podium says what Slurm says and
/// what ends it, and the round goes on once the node is back.
#[test]
fn a_round_waiting_for_a_drained_node_says_so_and_goes_on_when_it_returns() {
    let _cluster = one_at_a_time();
    if !require_slurm() {
        return;
    }
    let (dir, challenge) = cluster_challenge(3, "");
    let subs = dir.path().join("subs");
    std::fs::create_dir_all(&subs).unwrap();
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    let drained = Command::new("scontrol")
        .args([
            "update",
            "NodeName=localhost",
            "State=DRAIN",
            "Reason=podium-test",
        ])
        .output()
        .unwrap();
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    let resume = Resume;
    let out = dir.path().join("out");
    let mut child = round(&challenge, &subs, &out, "slurm")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let said = std::sync::Arc::clone(&said);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                said.lock().unwrap().push_str(&(line + "\n"));
            }
        })
    };
    let started = Instant::now();
    while !said.lock().unwrap().contains("WAITING") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no word of the drained node:\n{}",
            said.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(resume);
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the round did not go on once the node was back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    reader.join().unwrap();
    let said = said.lock().unwrap().clone();
    let line = said.lines().find(|l| l.contains("WAITING")).unwrap();
    assert!(
        line.contains("no node to run on") && line.contains("State=RESUME"),
        "{line}"
    );
    assert!(child.wait().unwrap().success(), "{said}");
    let runs = read_csv(&out.join("runs.csv"));
    assert!(
        runs.len() == 3 && runs.iter().all(|r| r["status"] == "ok"),
        "{runs:?}"
    );
}
