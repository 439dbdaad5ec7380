//! The ranking analysis at hackathon scale: 30 submissions × 1000 cases × 3 tasks (a binary
//! AUC, a per-case Dice, a per-case absolute error), with the full analysis: every ranking
//! method, the bootstrap over cases (1000 resamples by default) with rank intervals and
//! Kendall's τ, and the Holm-corrected significance matrix of every task.
//!
//! ```sh
//! cargo bench --bench ranking
//! ```
//!
//! The synthetic submissions differ in skill, so ranks are neither all tied nor trivially
//! separated. Each figure is the median of 5 runs after one warm-up run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use podium::challenge::Challenge;
use podium::ranking::analysis::{analyze, RankingMethod};
use podium::ranking::inputs::{BinaryAuc, PrimaryValues, RankingInputs};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SUBMISSIONS: usize = 30;
const CASES: usize = 1000;
const RUNS: usize = 5;

const CHALLENGE: &str = r#"
name = "bench"
[ranking]
bootstrap_resamples = 1000
[[phases]]
name = "test"
[[tasks]]
name = "detection"
kind = "binary-classification"
prediction = "p"
truth = "y"
positive_class = "1"
metrics = ["auc"]
primary = "auc"
[[tasks]]
name = "segmentation"
kind = "segmentation"
prediction = "masks"
truth = "masks"
labels = [1]
metrics = ["dice"]
primary = "dice"
[[tasks]]
name = "quantification"
kind = "regression"
prediction = "x"
truth = "x"
value_range = [0.0, 100.0]
metrics = ["mae"]
primary = "mae"
"#;

fn inputs() -> (RankingInputs, Vec<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let truth: Vec<bool> = (0..CASES)
        .map(|_| rng.random_range(0.0..1.0) < 0.4)
        .collect();
    let names: Vec<String> = (0..SUBMISSIONS).map(|s| format!("team-{s:02}")).collect();
    let mut inputs = RankingInputs {
        cases: (0..CASES).map(|c| format!("case-{c:04}")).collect(),
        ..Default::default()
    };
    for (s, name) in names.iter().enumerate() {
        let skill = 0.5 + s as f64 / (2.0 * SUBMISSIONS as f64);
        let scores: Vec<Option<f64>> = truth
            .iter()
            .map(|&t| {
                let noise: f64 = rng.random_range(0.0..1.0);
                Some(if t {
                    skill * noise + (1.0 - skill)
                } else {
                    noise * (1.0 - skill / 2.0)
                })
            })
            .collect();
        let dice: Vec<Option<f64>> = (0..CASES)
            .map(|_| Some((skill + rng.random_range(-0.3..0.3)).clamp(0.0, 1.0)))
            .collect();
        let errors: Vec<Option<f64>> = (0..CASES)
            .map(|_| Some(rng.random_range(0.0..20.0) * (1.5 - skill)))
            .collect();
        let key = |task: &str| (name.clone(), task.to_string());
        inputs.values.insert(
            key("detection"),
            PrimaryValues::WholeSet(Arc::new(BinaryAuc::new(scores, truth.clone()))),
        );
        inputs
            .values
            .insert(key("segmentation"), PrimaryValues::PerCase(dice));
        inputs
            .values
            .insert(key("quantification"), PrimaryValues::PerCase(errors));
    }
    (inputs, names)
}

fn main() {
    let challenge = Challenge::parse(
        CHALLENGE,
        Path::new("bench/challenge.toml"),
        PathBuf::from("bench"),
    )
    .unwrap();
    let (inputs, names) = inputs();
    println!(
        "| analysis ({SUBMISSIONS} submissions x {CASES} cases x 3 tasks, {} resamples) | median of {RUNS} | min |",
        challenge.ranking.bootstrap_resamples
    );
    println!("|---|---|---|");
    for method in [RankingMethod::MeanThenRank, RankingMethod::RankThenMean] {
        let mut times = Vec::new();
        let mut last = None;
        for run in 0..=RUNS {
            let started = Instant::now();
            let analysis = analyze(&challenge, &inputs, &names, Some(method));
            let seconds = started.elapsed().as_secs_f64();
            if run > 0 {
                times.push(seconds);
            }
            last = Some(analysis);
        }
        let analysis = last.unwrap();
        assert_eq!(analysis.kendall.len(), 1000 * 4);
        assert_eq!(
            analysis.significance.len(),
            3 * SUBMISSIONS * (SUBMISSIONS - 1)
        );
        times.sort_by(f64::total_cmp);
        println!(
            "| declared method {}: every method's ranks, bootstrap with rank intervals and Kendall tau, significance matrix | {:.3} s | {:.3} s |",
            method.name(),
            times[RUNS / 2],
            times[0]
        );
    }
}
