//! A final round at real scale, measured beside its alternatives in the same run (issue 18).
//!
//! ```sh
//! cargo bench --bench scale            # 30 submissions × 1000 small cases
//! cargo bench --bench scale -- ct      # 60 CT-sized cases: podium score against the floor
//! ```
//!
//! The round is the demo challenge's five tasks (detection, differential, segmentation with
//! all six metrics, quantification, staging) on 1000 generated cases of the `test` phase, and
//! 30 synthetic submissions of graded skill: probabilities that favour the true class more
//! as skill grows, involvement and stage closer to the truth, masks that are the true lesions
//! shifted by 1 to 5 voxels (fewer for the better teams), and a few failed cases for the
//! weakest. The round's folder is what `podium run` leaves (round.json, runs.csv,
//! predictions/), so what is timed is the real command:
//!
//! - `podium rescore ROUND --out DIR`: scoring 30 000 cases, then the ranking analysis
//!   (every method, 1000 bootstrap resamples with rank intervals and Kendall's τ, the
//!   significance matrices);
//! - the same ranking analysis in vectorized numpy (`benches/python/ranking.py`), on the
//!   per-case values podium wrote, when numpy is installed;
//! - `podium report ROUND`: time and size of report.html and report-data.json.
//!
//! Each command runs 3 times after one warm-up (files in the page cache); the median is shown
//! with the CPU time (user + system) of the child, so that the use of both cores shows.
//! Data stay in target/bench-scale/ and are generated again only when missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use podium::demo::{init_covid19_ct, GenerationStamp, Size};
use podium::pipeline::RoundPlan;
use podium::submission::Identity;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SUBMISSIONS: usize = 30;
const CASES: usize = 1000;
const RUNS: usize = 3;
/// Distinct predicted masks per case: the true lesions shifted by 1..=MASK_VARIANTS voxels.
const MASK_VARIANTS: usize = 5;

fn main() {
    if std::env::args().any(|a| a == "ct") {
        return ct_round();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-scale");
    let data = root.join(format!("covid19-ct-small-{CASES}"));
    let stamp = GenerationStamp::new(CASES, Size::Small, 11);
    if !stamp.is_present(&data) {
        eprintln!(
            "generating {CASES} small cases per phase in {}",
            data.display()
        );
        init_covid19_ct(&data, &stamp, &|_| {}).unwrap();
    }
    // The suffix changes with the generator, so that an older round is not reused.
    let round = root.join(format!("round-{SUBMISSIONS}x{CASES}-v2"));
    if !round.join("round.json").exists() {
        eprintln!(
            "writing {SUBMISSIONS} submissions' outputs in {}",
            round.display()
        );
        write_round(&data, &round);
    }
    if std::env::args().any(|a| a == "--generate-only") {
        return;
    }
    if std::env::args().any(|a| a == "phases") {
        let (scoring, analysis) = phases(&round);
        scoring.print("scoring (in-process)");
        analysis.print("ranking analysis (in-process)");
        return;
    }
    let podium = env!("CARGO_BIN_EXE_podium");

    println!("| {SUBMISSIONS} submissions × {CASES} cases, 5 tasks | median of {RUNS} (wall) | CPU (user+sys) | min |");
    println!("|---|---|---|---|");
    let rescored = root.join("rescored");
    let rescore = measure(|| {
        let _ = std::fs::remove_dir_all(&rescored);
        let mut command = Command::new(podium);
        command
            .arg("rescore")
            .arg(&round)
            .arg("--out")
            .arg(&rescored);
        command
    });
    rescore.print("`podium rescore` (scoring + ranking analysis + report)");
    let (scoring, analysis) = phases(&round);
    scoring
        .print("of which scoring 30 000 cases, 5 tasks, with intervals and subgroups (in-process)");
    analysis.print("of which the ranking analysis (in-process)");

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_numpy = Command::new(&python)
        .args(["-c", "import numpy, scipy"])
        .status()
        .is_ok_and(|s| s.success());
    if has_numpy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/ranking.py");
        let numpy = measure(|| {
            let mut command = Command::new(&python);
            command.arg(&script).arg(&rescored).arg("--quiet");
            command
        });
        numpy.print("the same ranking analysis in numpy (`benches/python/ranking.py`)");
    } else {
        println!("| numpy ranking | not measured: `{python} -c 'import numpy, scipy'` failed (pip install numpy scipy) | | |");
    }

    let report = measure(|| {
        let mut command = Command::new(podium);
        command.arg("report").arg(&rescored);
        command
    });
    report.print("`podium report` (report.html, report.md, CSV)");
    for file in ["report.html", "report-data.json"] {
        let bytes = std::fs::metadata(rescored.join(file))
            .map(|m| m.len())
            .unwrap_or(0);
        println!("| size of {file} | {:.1} MB | | |", bytes as f64 / 1e6);
    }
}

/// The two phases of a rescore timed in-process, as `podium rescore` runs them: scoring every
/// submission (the wall time; CPU is the process's), then the ranking analysis.
fn phases(round: &Path) -> (Measured, Measured) {
    use podium::challenge::split::CaseSelection;
    let plan = RoundPlan::read(round).unwrap();
    let (challenge, phase, submissions) = plan.load().unwrap();
    let records = podium::results::RunsCsv::read(&round.join("runs.csv")).unwrap();
    let by_submission = podium::pipeline::records_by_submission(records);
    let dirs: Vec<PathBuf> = submissions
        .iter()
        .map(|s| round.join("predictions").join(&s.name))
        .collect();
    let inputs: Vec<podium::scoring::ScoringInput> = submissions
        .iter()
        .zip(&dirs)
        .map(|(s, dir)| podium::scoring::ScoringInput {
            name: s.name.clone(),
            team: s.team.clone(),
            baseline: s.baseline,
            predictions_dir: dir,
            runs: by_submission.get(&s.name),
        })
        .collect();
    let (mut scoring, mut analysis) = (
        Measured {
            wall: Vec::new(),
            cpu: Vec::new(),
        },
        Measured {
            wall: Vec::new(),
            cpu: Vec::new(),
        },
    );
    for run in 0..=RUNS {
        let (cpu, started) = (own_cpu(), Instant::now());
        let scores = podium::scoring::score_round_on(
            &challenge,
            &phase,
            &inputs,
            CaseSelection::Public,
            None,
        )
        .unwrap();
        let (scored_cpu, scored_wall) = (own_cpu() - cpu, started.elapsed().as_secs_f64());
        let names = podium::ranking::ranked_submissions(&scores);
        let (cpu, started) = (own_cpu(), Instant::now());
        let result = podium::ranking::analysis::analyze(&challenge, &scores.ranking, &names, None);
        let (ranked_cpu, ranked_wall) = (own_cpu() - cpu, started.elapsed().as_secs_f64());
        assert!(!result.kendall.is_empty());
        if run > 0 {
            scoring.wall.push(scored_wall);
            scoring.cpu.push(scored_cpu);
            analysis.wall.push(ranked_wall);
            analysis.cpu.push(ranked_cpu);
        }
    }
    (scoring, analysis)
}

/// User + system CPU seconds of this process so far (every thread).
fn own_cpu() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

struct Measured {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Measured {
    fn print(&self, what: &str) {
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let min = self.wall.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "| {what} | {:.2} s | {:.2} s | {:.2} s |",
            median(&self.wall),
            median(&self.cpu),
            min
        );
    }
}

/// Runs the command once to warm up, then [`RUNS`] times; wall and child CPU time of each.
fn measure(command: impl Fn() -> Command) -> Measured {
    measure_runs(RUNS, command)
}

/// [`measure`] with `runs` timed runs; with one, no warm-up either.
fn measure_runs(runs: usize, command: impl Fn() -> Command) -> Measured {
    let mut measured = Measured {
        wall: Vec::new(),
        cpu: Vec::new(),
    };
    let warm_up = usize::from(runs > 1);
    for run in 0..runs + warm_up {
        let before = children_cpu();
        let started = Instant::now();
        let output = command().output().unwrap();
        let wall = started.elapsed().as_secs_f64();
        assert!(
            output.status.success(),
            "{:?} failed:\n{}{}",
            command(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if run >= warm_up {
            measured.wall.push(wall);
            measured.cpu.push(children_cpu() - before);
        }
    }
    measured
}

/// User + system CPU seconds of the children waited for so far.
fn children_cpu() -> f64 {
    rusage_seconds(libc::RUSAGE_CHILDREN)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The round's folder as `podium run` would leave it: round.json, runs.csv and every
/// submission's predictions (predictions.csv and masks/).
fn write_round(data: &Path, round: &Path) {
    let truth_dir = data.join("phases/test/truth");
    let labels = std::fs::read_to_string(truth_dir.join("labels.csv")).unwrap();
    let mut rows = labels.lines();
    assert_eq!(rows.next(), Some("case_id,diagnosis,involvement_pct,stage"));
    let cases: Vec<(String, usize, f64, usize)> = rows
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let class = ["covid", "other_pneumonia", "normal"]
                .iter()
                .position(|c| *c == f[1])
                .unwrap();
            (
                f[0].to_string(),
                class,
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(cases.len(), CASES);

    let _ = std::fs::remove_dir_all(round);
    let variants = round.join("mask-variants");
    std::fs::create_dir_all(&variants).unwrap();
    for (case, ..) in &cases {
        let truth = podium::io::nifti::read_labels(&truth_dir.join(format!("masks/{case}.nii.gz")))
            .unwrap();
        for shift in 1..=MASK_VARIANTS {
            let mut shifted = ndarray::Array3::<u8>::zeros(truth.labels.dim());
            let nx = truth.labels.dim().2;
            shifted
                .slice_mut(ndarray::s![.., .., shift..])
                .assign(&truth.labels.slice(ndarray::s![.., .., ..nx - shift]));
            podium::io::nifti::write_volume(
                &variants.join(format!("{case}-{shift}.nii.gz")),
                shifted.view(),
                truth.geometry.spacing_mm,
                1,
            )
            .unwrap();
        }
    }

    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let mut journal = String::from("submission,case_id,status,exit_code,signal,wall_s,cpu_s,peak_memory_mib,message,team_message,gpus,gpu_time_s,gpu_peak_memory_mib,gpus_used\n");
    let mut submission_dirs = Vec::new();
    for s in 0..SUBMISSIONS {
        let name = format!("team-{s:02}");
        let skill = s as f64 / (SUBMISSIONS - 1) as f64;
        let dir = round.join("submissions").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("submission.toml"),
            format!("team = \"{name}\"\nname = \"{name}\"\n[run]\nkind = \"process\"\ncommand = [\"true\"]\n"),
        )
        .unwrap();
        submission_dirs.push(dir);
        let out = round.join("predictions").join(&name);
        std::fs::create_dir_all(out.join("masks")).unwrap();
        let mut csv =
            String::from("case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage\n");
        for (case, class, involvement, stage) in &cases {
            // The weakest teams lose a case in a hundred.
            if skill < 0.2 && rng.random_range(0.0..1.0) < 0.01 {
                journal += &format!(
                    "{name},{case},failed,1,,0.031,0.020,2.1,exit code 1,exit code 1,,,,\n"
                );
                continue;
            }
            journal += &format!("{name},{case},ok,0,,0.031,0.020,2.1,,,,,,\n");
            let logits: Vec<f64> = (0..3)
                .map(|k| {
                    // Even the best team confuses some cases: no AUC of 1.
                    let boost = if k == *class { 2.0 * skill + 0.3 } else { 0.0 };
                    boost + rng.random_range(-2.0..2.0)
                })
                .collect();
            let total: f64 = logits.iter().map(|l| l.exp()).sum();
            let p: Vec<f64> = logits.iter().map(|l| l.exp() / total).collect();
            let spread = 12.0 * (1.0 - skill) + 1.0;
            let predicted = (involvement + rng.random_range(-spread..spread)).clamp(0.0, 100.0);
            let predicted_stage = if rng.random_range(0.0..1.0) < 0.3 + 0.6 * skill {
                *stage
            } else {
                (*stage as i64
                    + if rng.random_range(0.0..1.0) < 0.5 {
                        -1
                    } else {
                        1
                    })
                .clamp(0, 4) as usize
            };
            csv += &format!(
                "{case},{:.6},{:.6},{:.6},{predicted:.4},{predicted_stage}\n",
                p[0], p[1], p[2]
            );
            let shift = 1 + ((1.0 - skill) * rng.random_range(0.0..MASK_VARIANTS as f64)) as usize;
            std::fs::hard_link(
                variants.join(format!("{case}-{}.nii.gz", shift.min(MASK_VARIANTS))),
                out.join(format!("masks/{case}.nii.gz")),
            )
            .unwrap();
        }
        std::fs::write(out.join("predictions.csv"), csv).unwrap();
    }
    std::fs::write(round.join("runs.csv"), journal).unwrap();
    let plan = RoundPlan {
        challenge_dir: data.to_path_buf(),
        phase: "test".into(),
        truth_dir,
        identities: submission_dirs
            .iter()
            .map(|d| Identity {
                team: d.file_name().unwrap().to_string_lossy().into_owned(),
                baseline: false,
            })
            .collect(),
        submission_dirs,
        backend: "sandbox".into(),
        jobs: 2,
        gpus: None,
        leave_out_bad_truth: false,
        ranking_method: None,
    };
    plan.write(round).unwrap();
}

/// CT-sized cases of the `ct` round.
const CT_CASES: usize = 60;

/// `cargo bench --bench scale -- ct`: `podium score` of 60 CT-sized cases (512×512×200, the
/// demo's CT phantoms) against the floor, the CPU that merely decompressing every truth and
/// predicted mask and finding its non-zero voxels takes, and against a careful Python organizer
/// (`benches/python/organizer.py`, the same six metrics) when numpy is there. Two submissions:
/// `near`, the true lesions shifted by 2 voxels (a good model), and `far`, the lesions mirrored
/// to the other lung (a bad one, whose distances are long).
fn ct_round() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-scale");
    let data = root.join(format!("covid19-ct-ct-{CT_CASES}"));
    let stamp = GenerationStamp::new(CT_CASES, Size::Ct, 11);
    if !stamp.is_present(&data) {
        eprintln!(
            "generating {CT_CASES} CT-sized cases per phase in {}",
            data.display()
        );
        init_covid19_ct(&data, &stamp, &|_| {}).unwrap();
    }
    let truth_dir = data.join("phases/test/truth");
    let predictions = root.join(format!("ct-{CT_CASES}-predictions"));
    if !predictions.join("far/predictions.csv").exists() {
        eprintln!(
            "writing the near and far predictions in {}",
            predictions.display()
        );
        write_ct_predictions(&truth_dir, &predictions);
    }
    if std::env::args().any(|a| a == "--generate-only") {
        return;
    }
    if std::env::args().any(|a| a == "floor") {
        for kind in ["near", "far"] {
            let floor = measure_in_process(|| floor_cpu(&truth_dir, &predictions.join(kind)));
            floor.print(&format!("floor, `{kind}`"));
        }
        return;
    }
    let podium = env!("CARGO_BIN_EXE_podium");
    println!("| {CT_CASES} CT-sized cases, segmentation with dice, iou, hd95, nsd, assd, volume_error_ml | median of {RUNS} (wall) | CPU (user+sys) | min |");
    println!("|---|---|---|---|");
    for kind in ["near", "far"] {
        let floor = measure_in_process(|| floor_cpu(&truth_dir, &predictions.join(kind)));
        floor.print(&format!("floor, `{kind}`: decompress both masks of every case and find their non-zero voxels (one thread)"));
        let out = root.join(format!("ct-scored-{kind}"));
        let scored = measure(|| {
            let _ = std::fs::remove_dir_all(&out);
            let mut command = Command::new(podium);
            command
                .args(["score", "--phase", "test", "--challenge"])
                .arg(&data)
                .arg("--predictions")
                .arg(predictions.join(kind))
                .arg("--out")
                .arg(&out);
            command
        });
        scored.print(&format!(
            "`podium score`, `{kind}` (all five tasks, 1000 bootstrap resamples)"
        ));
        let cpu = |m: &Measured| {
            let mut v = m.cpu.clone();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| `podium score` CPU ÷ floor CPU, `{kind}` | {:.1}× | | |",
            cpu(&scored) / cpu(&floor)
        );
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/organizer.py");
        let has_numpy = Command::new(&python)
            .args(["-c", "import numpy, scipy, nibabel, surface_distance"])
            .status()
            .is_ok_and(|s| s.success());
        if has_numpy && script.exists() {
            // Once: at 3 to 4 s of CPU per CT case, 4 runs would be half an hour.
            let organizer = measure_runs(1, || {
                let mut command = Command::new(&python);
                command
                    .arg(&script)
                    .arg(truth_dir.join("masks"))
                    .arg(predictions.join(kind).join("masks"))
                    .arg("--quiet");
                command
            });
            organizer.print(&format!("careful Python organizer, `{kind}` (segmentation only, one run, `benches/python/organizer.py`)"));
        }
    }
}

/// [`measure`] for work done in this process: `work` returns its own CPU seconds.
fn measure_in_process(work: impl Fn() -> f64) -> Measured {
    let mut measured = Measured {
        wall: Vec::new(),
        cpu: Vec::new(),
    };
    for run in 0..=RUNS {
        let started = Instant::now();
        let cpu = work();
        if run > 0 {
            measured.wall.push(started.elapsed().as_secs_f64());
            measured.cpu.push(cpu);
        }
    }
    measured
}

/// CPU seconds of decompressing every truth and predicted mask and counting its non-zero
/// voxels, on one thread: what any scorer must at least do.
fn floor_cpu(truth_dir: &Path, predictions: &Path) -> f64 {
    use std::io::Read;
    let before = rusage_seconds(libc::RUSAGE_THREAD);
    let mut nonzero = 0usize;
    // Decompressed a block at a time into one buffer that stays in cache (as podium reads a
    // volume slice by slice), each block scanned as it arrives.
    let mut buffer = vec![0u8; 1 << 16];
    for entry in std::fs::read_dir(predictions.join("masks")).unwrap() {
        let predicted = entry.unwrap().path();
        let truth = truth_dir.join("masks").join(predicted.file_name().unwrap());
        for path in [truth, predicted] {
            let mut reader = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(path).unwrap(),
            ));
            loop {
                let n = reader.read(&mut buffer).unwrap();
                if n == 0 {
                    break;
                }
                // Blocks of 64 bytes fold to vector code (as podium's own scan does); the
                // header's bytes are counted too, which costs nothing.
                nonzero += buffer[..n]
                    .chunks(64)
                    .map(|b| b.iter().fold(0u8, |acc, &v| acc | v) as usize)
                    .sum::<usize>();
            }
        }
    }
    std::hint::black_box(nonzero);
    rusage_seconds(libc::RUSAGE_THREAD) - before
}

/// `near` (lesions shifted by 2 voxels) and `far` (lesions mirrored left–right) predictions of
/// every test case, with a perfect predictions.csv so that only the masks differ.
fn write_ct_predictions(truth_dir: &Path, out: &Path) {
    let labels = std::fs::read_to_string(truth_dir.join("labels.csv")).unwrap();
    let mut csv =
        String::from("case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage\n");
    for line in labels.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let p = |class: &str| if f[1] == class { 0.9 } else { 0.05 };
        csv += &format!(
            "{},{},{},{},{},{}\n",
            f[0],
            p("covid"),
            p("other_pneumonia"),
            p("normal"),
            f[2],
            f[3]
        );
    }
    for kind in ["near", "far"] {
        std::fs::create_dir_all(out.join(kind).join("masks")).unwrap();
        std::fs::write(out.join(kind).join("predictions.csv"), &csv).unwrap();
    }
    for entry in std::fs::read_dir(truth_dir.join("masks")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        let truth = podium::io::nifti::read_labels(&path).unwrap();
        let nx = truth.labels.dim().2;
        let mut near = ndarray::Array3::<u8>::zeros(truth.labels.dim());
        near.slice_mut(ndarray::s![.., .., 2..])
            .assign(&truth.labels.slice(ndarray::s![.., .., ..nx - 2]));
        let far = truth.labels.slice(ndarray::s![.., .., ..;-1]).to_owned();
        for (kind, mask) in [("near", near), ("far", far)] {
            podium::io::nifti::write_volume(
                &out.join(kind).join("masks").join(&name),
                mask.view(),
                truth.geometry.spacing_mm,
                1,
            )
            .unwrap();
        }
    }
}
