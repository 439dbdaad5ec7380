//! Worker mode against per-case mode for a program that takes about 2 s to start (a model's
//! imports and weights), over 100 cases.
//!
//! ```sh
//! cargo bench --bench worker
//! ```
//!
//! The program is a bash script: `sleep 2` stands for loading the model, then each case
//! writes its one-row `predictions.csv` at once. Per case, the program's own work is
//! therefore nil, and what a case costs beyond it is podium's: staging the input, (per case)
//! starting the program, the line protocol, checking and collecting the output, the journal.
//!
//! - per-case mode: every case starts the program, so a case costs its ~2 s start plus
//!   podium's overhead;
//! - worker mode: the program starts once per slot; the overhead per case is
//!   `(round − worker start) / cases`, to compare with the 5 ms target.
//!
//! Both with the process backend, 1 job; worker mode also in the sandbox when bwrap works.

mod common;

use std::path::Path;
use std::time::Instant;

use podium::challenge::{Challenge, PhasePaths};
use podium::runner::{process::ProcessBackend, run_round, Backend, RoundOptions, RunEvent};
use podium::submission::Submission;

const CASES: usize = 100;
const START_S: f64 = 2.0;

/// The same script serves both modes: per case it answers the case in its input folder and
/// exits; as a worker it answers every case line.
const PROGRAM: &str = r#"#!/bin/bash
IN="$1"; OUT="$2"
sleep 2
answer() { printf 'case_id,p\n%s,0.5\n' "$1" > "$OUT/predictions.csv"; }
if [ "${PODIUM_MODE-}" != worker ]; then answer "$(tail -n 1 "$IN/cases.csv")"; exit 0; fi
echo ready
while read -r CASE; do answer "$CASE"; echo "done $CASE"; done
"#;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (challenge, phase) = common::tiny_challenge(&dir.path().join("challenge"), CASES);
    let per_case = write_submission(&dir.path().join("per-case"), "per-case");
    let worker = write_submission(&dir.path().join("worker"), "worker");
    let sandbox = podium::runner::sandbox::SandboxBackend::probe();

    println!("| mode, backend ({CASES} cases, 1 job, program start {START_S} s) | round | per case | podium's overhead per case |");
    println!("|---|---|---|---|");
    let mut rows: Vec<(&str, &Submission, &dyn Backend)> = vec![
        ("worker mode, process backend", &worker, &ProcessBackend),
        ("per-case mode, process backend", &per_case, &ProcessBackend),
    ];
    match &sandbox {
        Ok(s) => rows.insert(1, ("worker mode, sandbox backend", &worker, s)),
        Err(e) => eprintln!("sandbox unavailable, its row is not measured: {e}"),
    }
    for (label, submission, backend) in rows {
        let out = dir
            .path()
            .join(format!("out-{}", label.replace([' ', ','], "-")));
        let (round_s, start_s, ok) = time_round(&challenge, &phase, submission, backend, &out);
        assert_eq!(ok, CASES, "{label}: every case must be answered");
        // Per case, the program's own time is its start (per-case mode) or nothing (worker
        // mode, whose one start is taken out of the round).
        let overhead = match start_s {
            Some(start) => (round_s - start) / CASES as f64,
            None => round_s / CASES as f64 - START_S,
        };
        println!(
            "| {label} | {round_s:.1} s | {:.1} ms | {:.2} ms |",
            round_s / CASES as f64 * 1000.0,
            overhead * 1000.0
        );
    }
}

/// One round; returns its wall time, the workers' start time (worker mode) and the cases
/// answered.
fn time_round(
    challenge: &Challenge,
    phase: &PhasePaths,
    submission: &Submission,
    backend: &dyn Backend,
    out: &Path,
) -> (f64, Option<f64>, usize) {
    let options = RoundOptions {
        jobs: 1,
        out_dir: out.to_path_buf(),
        resume: false,
        gpus: None,
    };
    let mut start_s: Option<f64> = None;
    let mut finished: Vec<Instant> = Vec::new();
    let began = Instant::now();
    let runs = run_round(
        challenge,
        phase,
        std::slice::from_ref(submission),
        backend,
        &options,
        &mut |event| match event {
            RunEvent::WorkerStarted { seconds, .. } => *start_s.get_or_insert(0.0) += seconds,
            RunEvent::CaseFinished(_) => finished.push(Instant::now()),
            _ => {}
        },
    )
    .unwrap();
    let round_s = began.elapsed().as_secs_f64();
    let (first, last) = (finished[0], finished[finished.len() - 1]);
    eprintln!(
        "  first case done after {:.3} s, last case done {:.3} s before the round's end; between them {:.2} ms per case",
        first.duration_since(began).as_secs_f64(),
        round_s - last.duration_since(began).as_secs_f64(),
        last.duration_since(first).as_secs_f64() * 1000.0 / (finished.len() - 1) as f64
    );
    let ok = runs[0]
        .cases
        .values()
        .filter(|c| c.status == podium::results::CaseStatus::Ok)
        .count();
    (round_s, start_s, ok)
}

fn write_submission(dir: &Path, mode: &str) -> Submission {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("model.sh"), PROGRAM).unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        format!("team = \"bench\"\nname = \"{mode}\"\n[run]\nkind = \"process\"\nmode = \"{mode}\"\ncommand = [\"/bin/bash\", \"./model.sh\", \"{{input}}\", \"{{output}}\"]\n"),
    )
    .unwrap();
    Submission::load(dir).unwrap()
}
