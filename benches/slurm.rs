//! A 200-case round through Slurm against the same round in the local sandbox, on the local
//! single-node cluster (`.ci/slurm-cluster.sh start DIR`, then `export SLURM_CONF=…`):
//!
//! ```sh
//! cargo bench --bench slurm
//! ```
//!
//! The submission does almost nothing (it writes an empty `predictions.csv`), so the times are
//! podium's and Slurm's overhead: staging, scheduling, the sandbox, collection and scoring. The
//! phase has 200 cases of the demo's small synthetic CTs. Each round runs once: the local one
//! with 2 slots (this machine's cores), the Slurm one with its default of one task per case,
//! then again with ten cases per task.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn podium(args: &[&str]) -> f64 {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(args)
        .output()
        .expect("run podium");
    assert!(
        out.status.success(),
        "podium {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

fn main() {
    let sinfo = Command::new("sinfo").args(["-h", "-o", "%D %c"]).output();
    let nodes = match sinfo {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            eprintln!("no Slurm cluster answers `sinfo`: start one with `.ci/slurm-cluster.sh start DIR` and export SLURM_CONF");
            std::process::exit(1);
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let challenge = root.join("challenge");
    podium(&[
        "init",
        "--template",
        "covid19-ct",
        challenge.to_str().unwrap(),
        "--cases",
        "200",
    ]);
    let toml = challenge.join("challenge.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{text}\n[cluster]\npoll_interval_s = 0.5\n")).unwrap();
    let subs = root.join("subs");
    let sub = subs.join("idle");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(
        sub.join("submission.toml"),
        "team = \"bench\"\nname = \"idle\"\n[run]\nkind = \"process\"\ncommand = [\"/bin/sh\", \"-c\", \"echo case_id > \\\"$1/predictions.csv\\\"\", \"sh\", \"{output}\"]\n",
    )
    .unwrap();
    let round = |backend: &str, out: &Path, jobs: Option<&str>| -> f64 {
        let mut args = vec![
            "run",
            "--challenge",
            challenge.to_str().unwrap(),
            "--phase",
            "test",
            "--submissions",
            subs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--backend",
            backend,
        ];
        if let Some(j) = jobs {
            args.extend(["--jobs", j]);
        }
        if backend == "process" {
            args.push("--allow-unisolated");
        }
        podium(&args)
    };
    let process = round("process", &root.join("process"), Some("2"));
    let local = round("sandbox", &root.join("local"), Some("2"));
    let slurm = round("slurm", &root.join("slurm"), None);
    std::fs::write(
        &toml,
        format!("{text}\n[cluster]\npoll_interval_s = 0.5\ncases_per_job = 10\n"),
    )
    .unwrap();
    let batched = round("slurm", &root.join("batched"), None);
    let scores = |d: &str| std::fs::read_to_string(root.join(d).join("scores.csv")).unwrap();
    assert_eq!(scores("local"), scores("slurm"), "the rounds scored alike");
    assert_eq!(
        scores("local"),
        scores("process"),
        "the rounds scored alike"
    );
    assert_eq!(
        scores("local"),
        scores("batched"),
        "the rounds scored alike"
    );
    let (n, cpus) = nodes.split_once(' ').unwrap_or((&nodes, "?"));
    println!(
        "| 200-case round, one idle submission (Slurm: {n} node, {cpus} CPUs) | wall | per case |"
    );
    println!("|---|---|---|");
    println!(
        "| local process backend, 2 slots | {process:.1} s | {:.0} ms |",
        process * 1000.0 / 200.0
    );
    println!(
        "| local sandbox backend, 2 slots | {local:.1} s | {:.0} ms |",
        local * 1000.0 / 200.0
    );
    println!(
        "| slurm backend: one job array, 200 tasks | {slurm:.1} s | {:.0} ms |",
        slurm * 1000.0 / 200.0
    );
    println!(
        "| slurm backend, `cases_per_job = 10`: one job array, 20 tasks | {batched:.1} s | {:.0} ms |",
        batched * 1000.0 / 200.0
    );
}
