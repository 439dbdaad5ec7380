//! The runner's own overhead per case: a submission that exits at once, run case by case.
//!
//! ```sh
//! cargo bench --bench runner
//! ```
//!
//! Everything podium does around a case is included: staging the input, spawning and waiting
//! for the process, checking the output folder, appending and syncing the journal. The
//! figure is the wall time of the round divided by its cases, with one job.
//!
//! The docker part runs a `FROM scratch` image whose only file is a static program that
//! returns 0 (compiled with `gcc -static` at bench time), through podium's docker backend,
//! then the same image with bare `docker run --rm`: what an organizer's shell loop pays per
//! case. Without a reachable engine (or without gcc) it prints why it skipped, and the rest
//! of the bench is unaffected.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use podium::challenge::{Challenge, Limits, PhasePaths};
use podium::results::CaseStatus;
use podium::runner::docker::DockerBackend;
use podium::runner::events::count_statuses;
use podium::runner::sandbox::{MAX_PROCESSES, SLOT_ID_BASE};
use podium::runner::{process::ProcessBackend, run_round, Backend, RoundOptions};
use podium::submission::Submission;

const CASES: usize = 200;
/// A container costs over 100 ms, so docker rounds are smaller: a warm-up and 3 timed rounds
/// of 100 cases already take about a minute.
const DOCKER_CASES: usize = 100;
/// Timed rounds per row, after one warm-up round.
const ROUNDS: usize = 3;
/// Timed bare `docker run`s per row, after one warm-up run.
const BARE_RUNS: usize = 30;
const IMAGE_TAG: &str = "podium-bench/instant:latest";

/// A challenge written for the bench, with its one phase.
struct Phase {
    challenge: Challenge,
    paths: PhasePaths,
}

/// What one timed round measured.
struct RoundTimes {
    /// Wall time of the whole round (staging included) divided by its cases.
    per_case_s: f64,
    /// Mean of the cases' own `wall_s`: the part of a case the backend spent running the
    /// program (for docker, from starting the container to its exit).
    mean_exec_s: f64,
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let phase = write_challenge(&dir.path().join("challenge"), CASES);
    let submission = write_submission(
        &dir.path().join("instant"),
        "kind = \"process\"\ncommand = [\"/bin/true\"]",
    );
    native_rows(&phase, &submission, dir.path());
    println!();
    docker_rows(dir.path());
}

/// The process and sandbox backends, 1 and 2 jobs.
fn native_rows(phase: &Phase, submission: &Submission, dir: &Path) {
    println!("| benchmark | per case | round of {CASES} cases |");
    println!("|---|---|---|");
    let sandbox = podium::runner::sandbox::SandboxBackend::probe();
    let mut backends: Vec<(&str, &dyn Backend)> = vec![("process", &ProcessBackend)];
    match &sandbox {
        Ok(s) => backends.push(("sandbox", s)),
        Err(e) => eprintln!("sandbox backend unavailable, not measured: {e}"),
    }
    for (label, backend) in backends {
        for jobs in [1, 2] {
            let out = dir.join(format!("out-{label}-{jobs}"));
            let rounds = time_rounds(phase, submission, backend, jobs, &out);
            let per_case = median(rounds.iter().map(|r| r.per_case_s).collect());
            println!(
                "| runner overhead, {label} backend, `/bin/true`, {jobs} job{} (median of {ROUNDS} rounds) | {:.2} ms | {:.2} s |",
                if jobs == 1 { "" } else { "s" },
                per_case * 1000.0,
                per_case * CASES as f64
            );
        }
    }
}

/// podium's docker backend on [`DOCKER_CASES`] cases with one job, then bare `docker run`s of
/// the same image, with and without the flags podium gives its containers.
fn docker_rows(dir: &Path) {
    println!("Docker backend: podium rounds of {DOCKER_CASES} cases, 1 job; bare runs sequential");
    println!();
    let backend = match DockerBackend::connect() {
        Ok(b) => b,
        Err(e) => return println!("skipped: docker engine not available ({e})"),
    };
    if let Err(e) = build_instant_image(&backend, &dir.join("instant-image")) {
        return println!("skipped: cannot build the image {IMAGE_TAG} ({e})");
    }
    let phase = write_challenge(&dir.join("docker-challenge"), DOCKER_CASES);
    let submission = write_submission(
        &dir.join("instant-docker"),
        &format!("kind = \"docker\"\nimage = \"{IMAGE_TAG}\""),
    );
    println!(
        "| benchmark ({}) | per case | min – max |",
        backend.engine()
    );
    println!("|---|---|---|");

    let rounds = time_rounds(&phase, &submission, &backend, 1, &dir.join("out-docker"));
    let per_case: Vec<f64> = rounds.iter().map(|r| r.per_case_s).collect();
    print_row(
        &format!("podium, docker backend, image exiting at once, 1 job (round / cases, median of {ROUNDS} rounds)"),
        &per_case,
    );
    let exec: Vec<f64> = rounds.iter().map(|r| r.mean_exec_s).collect();
    print_row(
        &format!("… of which start → exit of the container, as podium records it (mean `wall_s`, median of {ROUNDS} rounds)"),
        &exec,
    );

    let bare = vec!["--network".to_string(), "none".to_string()];
    let (input, output) = bare_mounts(&phase, &dir.join("bare"));
    let flagged = podium_flags(&phase.challenge.limits, &input, &output);
    for (label, flags) in [
        ("`docker run --rm --network none`", bare),
        ("`docker run --rm` with podium's flags and mounts", flagged),
    ] {
        let label = format!("bare {label} (median of {BARE_RUNS} runs)");
        match time_docker_runs(&flags) {
            Ok(times) => print_row(&label, &times),
            Err(e) => println!("| {label} | skipped: {e} | |"),
        }
    }
}

/// A challenge of `cases` tiny cases at `root`.
fn write_challenge(root: &Path, cases: usize) -> Phase {
    let (challenge, paths) = common::tiny_challenge(root, cases);
    Phase { challenge, paths }
}

/// A submission folder whose `[run]` table holds `run` (TOML lines).
fn write_submission(dir: &Path, run: &str) -> Submission {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        format!("team = \"bench\"\nname = \"instant\"\n[run]\n{run}\n"),
    )
    .unwrap();
    Submission::load(dir).unwrap()
}

/// One warm-up round, then [`ROUNDS`] timed rounds; returns the timed ones. Each round starts
/// from scratch in its own folder (the backend's `start_round` and `prepare` included, as
/// `run_round` calls them).
fn time_rounds(
    phase: &Phase,
    submission: &Submission,
    backend: &dyn Backend,
    jobs: usize,
    out: &Path,
) -> Vec<RoundTimes> {
    let cases = count_cases(&phase.paths);
    let mut timed = Vec::new();
    for run in 0..=ROUNDS {
        let options = RoundOptions {
            jobs,
            out_dir: out.join(format!("round-{run}")),
            resume: false,
            gpus: None,
        };
        let start = Instant::now();
        let runs = run_round(
            &phase.challenge,
            &phase.paths,
            std::slice::from_ref(submission),
            backend,
            &options,
            &mut |_| {},
        )
        .unwrap();
        let elapsed = start.elapsed().as_secs_f64();
        let records = &runs[0].cases;
        assert_eq!(records.len(), cases);
        // The program writes nothing, so every case must end `missing`: anything else means
        // the backend failed before the program ran, and the figure would be meaningless.
        let statuses = count_statuses(records.values());
        assert_eq!(
            statuses.get(&CaseStatus::Missing),
            Some(&cases),
            "{}: {statuses:?}",
            backend.name()
        );
        if run > 0 {
            timed.push(RoundTimes {
                per_case_s: elapsed / cases as f64,
                mean_exec_s: records.values().map(|r| r.wall_s).sum::<f64>() / cases as f64,
            });
        }
    }
    timed
}

fn count_cases(phase: &PhasePaths) -> usize {
    let csv = std::fs::read_to_string(phase.cases_csv()).unwrap();
    csv.lines().skip(1).filter(|l| !l.is_empty()).count()
}

/// Builds [`IMAGE_TAG`]: `FROM scratch` with one static program that returns 0, so that a case
/// costs only podium and the engine. Rebuilt each time so the bench needs nothing prepared;
/// the engine's build cache makes that instant after the first time.
fn build_instant_image(backend: &DockerBackend, work: &Path) -> Result<String, String> {
    let context = work.join("context");
    std::fs::create_dir_all(&context).map_err(|e| e.to_string())?;
    // The source stays outside the context: the image holds the binary alone.
    let source = work.join("instant.c");
    std::fs::write(&source, "int main(void) { return 0; }\n").map_err(|e| e.to_string())?;
    let gcc = Command::new("gcc")
        .args(["-static", "-O2", "-s", "-o"])
        .arg(context.join("instant"))
        .arg(&source)
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !gcc.status.success() {
        return Err(format!(
            "`gcc -static` failed: {}",
            String::from_utf8_lossy(&gcc.stderr).trim()
        ));
    }
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY instant /instant\nENTRYPOINT [\"/instant\"]\n",
    )
    .map_err(|e| e.to_string())?;
    backend.build_image(&context, IMAGE_TAG)
}

/// An input folder like the one podium stages for a case (its `cases.csv` and image), and an
/// empty output folder, for the bare runs that mount them.
fn bare_mounts(phase: &Phase, dir: &Path) -> (PathBuf, PathBuf) {
    let case = "case-0000";
    let (input, output) = (dir.join("input"), dir.join("output"));
    std::fs::create_dir_all(input.join("images")).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    std::fs::write(input.join("cases.csv"), format!("case_id\n{case}\n")).unwrap();
    std::fs::copy(
        phase.paths.image(case),
        input.join(format!("images/{case}.nii.gz")),
    )
    .unwrap();
    (input, output)
}

/// The flags podium gives a container (`container_config` in src/runner/docker.rs), spelled
/// as a shell script would, with the challenge's limits: the fair comparison. Labels and the
/// per-case tmpfs behind `/output` are podium's own bookkeeping, left out.
fn podium_flags(limits: &Limits, input: &Path, output: &Path) -> Vec<String> {
    let mb = |v: u64| format!("{v}m");
    let mut flags: Vec<String> = [
        "--network",
        "none",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--init",
        "--ulimit",
        "core=0",
        "--log-opt",
        "max-file=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let output_bytes = limits.output_mb << 20;
    // podium's user for slot 0 when it runs as root, as the sandbox's.
    let uid = SLOT_ID_BASE;
    flags.extend([
        "--user".into(),
        format!("{uid}:{uid}"),
        "--pids-limit".into(),
        MAX_PROCESSES.to_string(),
        "--memory".into(),
        mb(limits.memory_mb),
        "--memory-swap".into(),
        mb(limits.memory_mb),
        "--cpus".into(),
        limits.cpus.to_string(),
        "--shm-size".into(),
        mb(limits.shm_mb),
        "--tmpfs".into(),
        format!("/tmp:rw,nosuid,nodev,size={}m,mode=1777", limits.memory_mb),
        "--ulimit".into(),
        format!("fsize={output_bytes}:{output_bytes}"),
        "--log-opt".into(),
        format!("max-size={}k", limits.log_kb.max(1) * 4),
        "-v".into(),
        format!("{}:/input:ro", input.display()),
        "-v".into(),
        format!("{}:/output", output.display()),
    ]);
    flags
}

/// Wall time of each of [`BARE_RUNS`] sequential `docker run --rm <flags> IMAGE_TAG`, after one
/// untimed run (the first container after a build meets cold caches).
fn time_docker_runs(flags: &[String]) -> Result<Vec<f64>, String> {
    let run = || -> Result<f64, String> {
        let start = Instant::now();
        let out = Command::new("docker")
            .args(["run", "--rm"])
            .args(flags)
            .arg(IMAGE_TAG)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
        let elapsed = start.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "`docker run` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(elapsed)
    };
    run()?;
    (0..BARE_RUNS).map(|_| run()).collect()
}

/// A docker table row: the median, and the range of `seconds`.
fn print_row(label: &str, seconds: &[f64]) {
    let min = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let max = seconds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "| {label} | {:.1} ms | {:.1} – {:.1} ms |",
        median(seconds.to_vec()) * 1000.0,
        min * 1000.0,
        max * 1000.0
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}
