//! The runner's own overhead per case: a submission that exits at once, run case by case.
//!
//! ```sh
//! cargo bench --bench runner
//! ```
//!
//! Everything podium does around a case is included: staging the input, spawning and waiting
//! for the process, checking the output folder, appending and syncing the journal. The
//! figure is the wall time of the round divided by its cases, with one job.

use std::time::Instant;

use podium::challenge::Challenge;
use podium::runner::{process::ProcessBackend, run_round, RoundOptions};
use podium::submission::Submission;

const CASES: usize = 200;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("challenge");
    let input = root.join("phases/test/input");
    std::fs::create_dir_all(input.join("images")).unwrap();
    std::fs::write(root.join("challenge.toml"), CHALLENGE).unwrap();
    let mut csv = String::from("case_id\n");
    let tiny = ndarray::Array3::<i16>::zeros((2, 2, 2));
    for i in 0..CASES {
        let id = format!("case-{i:04}");
        podium::io::nifti::write_volume(
            &input.join(format!("images/{id}.nii.gz")),
            tiny.view(),
            [1.0; 3],
            6,
        )
        .unwrap();
        csv += &format!("{id}\n");
    }
    std::fs::write(input.join("cases.csv"), csv).unwrap();
    let sub = dir.path().join("instant");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(
        sub.join("submission.toml"),
        "team = \"bench\"\nname = \"instant\"\n[run]\nkind = \"process\"\ncommand = [\"/bin/true\"]\n",
    )
    .unwrap();

    let challenge = Challenge::load(&root).unwrap();
    let phase = challenge.phase_paths("test", None).unwrap();
    let submissions = vec![Submission::load(&sub).unwrap()];
    println!("| benchmark | per case | round of {CASES} cases |");
    println!("|---|---|---|");
    let sandbox = podium::runner::sandbox::SandboxBackend::probe();
    let mut backends: Vec<(&str, &dyn podium::runner::Backend)> =
        vec![("process", &ProcessBackend)];
    match &sandbox {
        Ok(s) => backends.push(("sandbox", s)),
        Err(e) => eprintln!("sandbox backend unavailable, not measured: {e}"),
    }
    for (label, backend) in backends {
        for jobs in [1, 2] {
            let mut per_case = Vec::new();
            for run in 0..4 {
                let options = RoundOptions {
                    jobs,
                    out_dir: dir.path().join(format!("out-{jobs}-{run}")),
                    resume: false,
                };
                let start = Instant::now();
                let runs = run_round(
                    &challenge,
                    &phase,
                    &submissions,
                    backend,
                    &options,
                    &mut |_| {},
                )
                .unwrap();
                let elapsed = start.elapsed().as_secs_f64();
                assert_eq!(runs[0].cases.len(), CASES);
                // The program writes nothing, so every case must end `missing`: anything else means
                // the backend failed before the program ran, and the figure would be meaningless.
                let statuses = podium::runner::events::count_statuses(runs[0].cases.values());
                assert_eq!(
                    statuses.get(&podium::results::CaseStatus::Missing),
                    Some(&CASES),
                    "{label}: {statuses:?}"
                );
                if run > 0 {
                    per_case.push(elapsed / CASES as f64);
                }
            }
            per_case.sort_by(f64::total_cmp);
            let median = per_case[per_case.len() / 2];
            println!(
            "| runner overhead, {label} backend, `/bin/true`, {jobs} job{} (median of 3 rounds) | {:.2} ms | {:.2} s |",
            if jobs == 1 { "" } else { "s" },
            median * 1000.0,
            median * CASES as f64
        );
        }
    }
}

const CHALLENGE: &str = r#"
name = "bench-runner"
[[phases]]
name = "test"
[[tasks]]
name = "detection"
kind = "binary-classification"
prediction = "p"
truth = "label"
positive_class = "yes"
metrics = ["auc"]
primary = "auc"
"#;
