//! Speed and memory of scoring, measured on the machine it runs on:
//!
//! ```sh
//! cargo bench --bench scoring                      # podium's figures
//! python3 benches/python/bench.py target/bench-data # the Python stack on the same files
//! ```
//!
//! `benches/run.sh` runs both and prints one table; docs/benchmarks.md records the results.
//! Each figure is the median of several runs after one warm-up run, with the files already in
//! the page cache, as the targets of issue 3 state.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ndarray::Array3;
use podium::metrics::distance::{self, BoundarySpec};
use podium::metrics::{classification, segmentation};

const RUNS: usize = 5;

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&data).unwrap();
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    println!("| benchmark | podium (median of {RUNS}) | min |");
    println!("|---|---|---|");

    if wanted("auc") {
        let (truth, scores) = auc_data(10_000_000);
        report("auc: roc_auc of 1e7 scores", || {
            std::hint::black_box(classification::roc_auc(&truth, &scores));
        });
    }

    let shape = [512usize, 512, 300];
    let spacing = [0.7, 0.7, 1.0];
    let needs_volumes = ["dice", "read", "hd95", "surfels", "score"]
        .iter()
        .any(|n| wanted(n));
    if needs_volumes {
        let (truth, predicted) = lung_masks(shape, 0);
        if wanted("dice") {
            let (t, p) = (truth.as_slice().unwrap(), predicted.as_slice().unwrap());
            report("dice: two 512x512x300 uint8 volumes, 2 labels", || {
                for label in [1, 2] {
                    std::hint::black_box(segmentation::overlap(p, t, label).unwrap().dice());
                }
            });
        }
        if wanted("hd95") {
            let spec = BoundarySpec {
                shape,
                spacing_mm: spacing,
                nsd_tolerance_mm: 2.0,
                worst_distance_mm: 1000.0,
            };
            let (t, p) = (truth.as_slice().unwrap(), predicted.as_slice().unwrap());
            report(
                "hd95: lung-sized label 1 (with hd, assd, nsd), 512x512x300",
                || {
                    std::hint::black_box(distance::boundary_metrics(p, t, 1, &spec).unwrap());
                },
            );
        }
        if wanted("surfels") {
            let spec = BoundarySpec {
                shape,
                spacing_mm: spacing,
                nsd_tolerance_mm: 2.0,
                worst_distance_mm: 1000.0,
            };
            let (t, p) = (truth.as_slice().unwrap(), predicted.as_slice().unwrap());
            let unlimited = distance::WorkBudget::unlimited();
            report(
                "surfels: lung-sized label 1, DeepMind's nsd (with hd95_deepmind, assd_deepmind), 512x512x300",
                || {
                    std::hint::black_box(
                        distance::surfel_metrics_within(p, t, 1, &spec, &unlimited)
                            .unwrap()
                            .unwrap(),
                    );
                },
            );
        }
        let truth_file = data.join("lung_truth.nii.gz");
        let pred_file = data.join("lung_pred.nii.gz");
        if !truth_file.exists() {
            podium::io::nifti::write_volume(&truth_file, truth.view(), spacing, 6).unwrap();
            podium::io::nifti::write_volume(&pred_file, predicted.view(), spacing, 6).unwrap();
        }
        if wanted("read") {
            report(
                "read: one 512x512x300 uint8 .nii.gz (gzip level 6), flate2 + zlib-rs",
                || {
                    std::hint::black_box(podium::io::nifti::read_labels(&truth_file).unwrap());
                },
            );
            let compressed = std::fs::read(&truth_file).unwrap();
            let size = shape.iter().product::<usize>() + 352;
            report(
                "read: the same file, gunzip only, libdeflate (for comparison)",
                || {
                    let mut out = vec![0u8; size];
                    let mut d = libdeflater::Decompressor::new();
                    std::hint::black_box(d.gzip_decompress(&compressed, &mut out).unwrap());
                },
            );
        }
        if wanted("score") {
            // Peak RSS is the maximum over the runs so far: the cheaper work first.
            score_benchmark(&data, "nsd_voxels", "Dice, HD95, NSD counting voxels");
            score_benchmark(&data, "nsd", "Dice, HD95, DeepMind's NSD");
        }
    }
}

/// Runs `f` once to warm up, then RUNS times; prints the median and minimum.
fn report(name: &str, mut f: impl FnMut()) {
    f();
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "| {name} | {} | {} |",
        show(times[RUNS / 2]),
        show(times[0])
    );
}

fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// 1e7 scores, 30 % positives, positives shifted up: a realistic, tie-free score set.
fn auc_data(n: usize) -> (Vec<bool>, Vec<f64>) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let positive = next() < 0.3;
            let score = next() * 0.8 + if positive { 0.2 } else { 0.0 };
            (positive, score)
        })
        .unzip()
}

/// A truth with two lungs (label 1) and lesions inside them (label 2), and a prediction that
/// is the truth shifted by one voxel with its lesions scaled: lung-sized labels with a real,
/// non-trivial boundary disagreement. `seed` varies the shapes between cases.
pub fn lung_masks(shape: [usize; 3], seed: u64) -> (Array3<u8>, Array3<u8>) {
    let [nx, ny, nz] = shape;
    let wobble = (seed % 7) as f64 * 0.01;
    let make = |shift: f64, lesion_scale: f64| {
        Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| {
            let (fx, fy, fz) = (
                (x as f64 + shift) / nx as f64,
                y as f64 / ny as f64,
                z as f64 / nz as f64,
            );
            let mut label = 0u8;
            for cx in [0.3, 0.7] {
                let d = ((fx - cx) / (0.17 + wobble)).powi(2)
                    + ((fy - 0.5) / 0.3).powi(2)
                    + ((fz - 0.5) / 0.45).powi(2);
                if d < 1.0 {
                    label = 1;
                    let l = ((fx - cx - 0.05) / (0.06 * lesion_scale)).powi(2)
                        + ((fy - 0.6) / (0.08 * lesion_scale)).powi(2)
                        + ((fz - 0.4) / (0.1 * lesion_scale)).powi(2);
                    if l < 1.0 {
                        label = 2;
                    }
                }
            }
            label
        })
    };
    (make(0.0, 1.0), make(1.0, 0.9))
}

/// `podium score`, as a child process, of a 20-case round whose segmentation task computes `dice`, `hd95` and
/// `nsd_metric`.
fn score_benchmark(data: &Path, nsd_metric: &str, what: &str) {
    let challenge = data.join("score20");
    let cases = 20;
    // Each case's image is its truth mask (scoring reads only its grid): podium checks the truth
    // against the images before it scores.
    if !challenge.join("ready-with-images").exists() {
        let _ = std::fs::remove_dir_all(&challenge);
        let input = challenge.join("phases/test/input");
        let images = input.join("images");
        let truth = challenge.join("phases/test/truth/masks");
        let preds = challenge.join("predictions/masks");
        for d in [&images, &truth, &preds] {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut csv = String::from("case_id\n");
        for i in 0..cases {
            let id = format!("case-{i:02}");
            csv += &format!("{id}\n");
            let (t, p) = lung_masks([512, 512, 300], i as u64);
            podium::io::nifti::write_volume(
                &truth.join(format!("{id}.nii.gz")),
                t.view(),
                [0.7, 0.7, 1.0],
                6,
            )
            .unwrap();
            std::fs::hard_link(
                truth.join(format!("{id}.nii.gz")),
                images.join(format!("{id}.nii.gz")),
            )
            .unwrap();
            podium::io::nifti::write_volume(
                &preds.join(format!("{id}.nii.gz")),
                p.view(),
                [0.7, 0.7, 1.0],
                6,
            )
            .unwrap();
        }
        std::fs::write(input.join("cases.csv"), csv).unwrap();
        std::fs::write(challenge.join("ready-with-images"), "").unwrap();
    }
    std::fs::write(
        challenge.join("challenge.toml"),
        SCORE_CHALLENGE.replace("NSD_METRIC", nsd_metric),
    )
    .unwrap();
    let podium = env!("CARGO_BIN_EXE_podium");
    let out = data.join("score20-out");
    let run = || {
        let start = Instant::now();
        let status = Command::new(podium)
            .args(["score", "--challenge"])
            .arg(&challenge)
            .args(["--phase", "test", "--predictions"])
            .arg(challenge.join("predictions"))
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        start.elapsed()
    };
    run();
    let mut times: Vec<Duration> = (0..3).map(|_| run()).collect();
    times.sort();
    // Children's peak RSS: the maximum over every podium run above, all identical work.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    println!(
        "| score: `podium score` of 20 CT-sized cases ({what}, 2 labels), median of 3 | {} wall, {:.0} MiB peak RSS | {} |",
        show(times[1]),
        usage.ru_maxrss as f64 / 1024.0,
        show(times[0])
    );
}

const SCORE_CHALLENGE: &str = r#"
name = "bench-score20"
[scoring]
bootstrap_resamples = 1000
[[phases]]
name = "test"
[[tasks]]
name = "segmentation"
kind = "segmentation"
prediction = "masks"
truth = "masks"
labels = [1, 2]
metrics = ["dice", "hd95", "NSD_METRIC"]
primary = "dice"
"#;
