//! The judges' report at hackathon scale: 20 submissions × 300 cases, with a detection task
//! (ROC curves, operating points, confusion matrices), a segmentation task (per-case Dice, NSD
//! and HD95 as dot-and-box plots), a quantification task (scatter and a Bland–Altman plot per
//! submission) and a staging task (5 × 5 confusion matrices), plus the ranking analysis with
//! 1000 bootstrap resamples. Measures rendering `report.html` and writing every chart as SVG
//! and PNG (`podium report --plots`), and the report's size.
//!
//! ```sh
//! cargo bench --bench report
//! ```
//!
//! Each time is the median of 3 runs after one warm-up run. The report and its charts stay in
//! target/bench-report/ for a look at how they read with 20 submissions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use podium::challenge::split::CaseSelection;
use podium::challenge::Challenge;
use podium::ranking::analysis::analyze;
use podium::ranking::inputs::{PrimaryValues, RankingInputs};
use podium::report::{ReportDataRefs, ReportOptions, View};
use podium::results::{
    Aggregate, CaseScore, CaseStatus, ConfusionCell, CurvePoint, PairedValue, RoundScores,
    SubmissionInfo,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SUBMISSIONS: usize = 20;
const CASES: usize = 300;
const RUNS: usize = 3;

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
positive_class = "covid"
metrics = ["auc"]
primary = "auc"
[[tasks]]
name = "segmentation"
kind = "segmentation"
prediction = "masks"
truth = "masks"
labels = [1]
metrics = ["dice", "nsd", "hd95"]
primary = "dice"
[[tasks]]
name = "quantification"
kind = "regression"
prediction = "x"
truth = "x"
value_range = [0.0, 100.0]
metrics = ["mae"]
primary = "mae"
[[tasks]]
name = "staging"
kind = "ordinal"
prediction = "stage"
truth = "stage"
levels = ["0", "1", "2", "3", "4"]
metrics = ["quadratic_kappa"]
primary = "quadratic_kappa"
"#;

/// A synthetic round: submissions of increasing skill, every table the report reads filled.
fn round() -> RoundScores {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let cases: Vec<String> = (0..CASES).map(|c| format!("case-{c:04}")).collect();
    let positive: Vec<bool> = (0..CASES)
        .map(|_| rng.random_range(0.0..1.0) < 0.4)
        .collect();
    let involvement: Vec<f64> = (0..CASES).map(|_| rng.random_range(0.0..60.0)).collect();
    let stage: Vec<usize> = involvement.iter().map(|x| (x / 15.0) as usize).collect();
    let mut scores = RoundScores {
        challenge: "bench".into(),
        phase: "test".into(),
        cases: CASES,
        phase_cases: CASES,
        selection: CaseSelection::All,
        bootstrap_resamples: 1000,
        seed: 1,
        min_cases: 10,
        submissions: Vec::new(),
        case_scores: Vec::new(),
        aggregates: Vec::new(),
        problems: Vec::new(),
        left_out: Vec::new(),
        truth_findings: Vec::new(),
        curves: Vec::new(),
        confusion: Vec::new(),
        values: Vec::new(),
        ranking: RankingInputs {
            cases: cases.clone(),
            values: BTreeMap::new(),
        },
        subgroups: Vec::new(),
        subgroup_summaries: Vec::new(),
        incomplete: None,
    };
    for s in 0..SUBMISSIONS {
        let name = format!("team-{s:02}");
        let skill = 0.5 + s as f64 / (2.0 * SUBMISSIONS as f64);
        scores.submissions.push(SubmissionInfo {
            name: name.clone(),
            team: format!("Team {s}"),
            baseline: false,
            run_counts: BTreeMap::new(),
        });
        let aggregate = |task: &str, metric: &str, value: f64| Aggregate {
            submission: name.clone(),
            task: task.into(),
            metric: metric.into(),
            value: Some(value),
            ci_lower: Some(value * 0.9),
            ci_upper: Some(value * 1.1),
            n: CASES,
            ci_method: "bootstrap".into(),
            note: String::new(),
        };
        // Detection: a ROC point per case, and the confusion matrix at 0.5.
        let p: Vec<f64> = positive
            .iter()
            .map(|&t| {
                let noise: f64 = rng.random_range(0.0..1.0);
                if t {
                    skill * noise + (1.0 - skill)
                } else {
                    noise * (1.0 - skill / 2.0)
                }
            })
            .collect();
        for k in 0..=CASES {
            let fpr = k as f64 / CASES as f64;
            scores.curves.push(CurvePoint {
                submission: name.clone(),
                task: "detection".into(),
                class: "covid".into(),
                threshold: 1.0 - fpr,
                fpr,
                tpr: fpr.powf(1.0 - skill),
            });
        }
        for (truth, predicted) in [
            ("covid", "covid"),
            ("covid", "not covid"),
            ("not covid", "covid"),
            ("not covid", "not covid"),
        ] {
            let count = positive
                .iter()
                .zip(&p)
                .filter(|(&t, &x)| {
                    (t == (truth == "covid")) && ((x >= 0.5) == (predicted == "covid"))
                })
                .count() as u64;
            scores.confusion.push(ConfusionCell {
                submission: name.clone(),
                task: "detection".into(),
                truth: truth.into(),
                predicted: predicted.into(),
                count,
            });
        }
        scores.aggregates.push(aggregate("detection", "auc", skill));
        // Segmentation: Dice, NSD and HD95 per case.
        let mut dice = Vec::new();
        for case in &cases {
            let d = (skill + rng.random_range(-0.3..0.3)).clamp(0.0, 1.0);
            dice.push(Some(d));
            for (metric, value) in [("dice", d), ("nsd", d * 0.9), ("hd95", (1.0 - d) * 80.0)] {
                scores.case_scores.push(CaseScore {
                    submission: name.clone(),
                    task: "segmentation".into(),
                    case_id: case.clone(),
                    metric: metric.into(),
                    value: Some(value),
                    status: CaseStatus::Ok,
                });
            }
        }
        scores
            .aggregates
            .push(aggregate("segmentation", "dice", skill));
        // Quantification: predicted beside true involvement.
        let mut errors = Vec::new();
        for (case, &truth) in cases.iter().zip(&involvement) {
            let predicted =
                (truth + rng.random_range(-20.0..20.0) * (1.5 - skill)).clamp(0.0, 100.0);
            errors.push(Some((predicted - truth).abs()));
            scores.values.push(PairedValue {
                submission: name.clone(),
                task: "quantification".into(),
                case_id: case.clone(),
                truth,
                predicted,
                status: CaseStatus::Ok,
            });
            scores.case_scores.push(CaseScore {
                submission: name.clone(),
                task: "quantification".into(),
                case_id: case.clone(),
                metric: "abs_error".into(),
                value: Some((predicted - truth).abs()),
                status: CaseStatus::Ok,
            });
        }
        scores
            .aggregates
            .push(aggregate("quantification", "mae", 10.0 * (1.5 - skill)));
        // Staging: a 5 × 5 confusion matrix.
        let mut stage_errors = Vec::new();
        let predicted_stage: Vec<usize> = stage
            .iter()
            .map(|&t| {
                let shift = if rng.random_range(0.0..1.0) < skill {
                    0
                } else {
                    1
                };
                (t + shift).min(4)
            })
            .collect();
        for t in 0..5 {
            for q in 0..5 {
                let count = stage
                    .iter()
                    .zip(&predicted_stage)
                    .filter(|(&a, &b)| a == t && b == q)
                    .count() as u64;
                scores.confusion.push(ConfusionCell {
                    submission: name.clone(),
                    task: "staging".into(),
                    truth: t.to_string(),
                    predicted: q.to_string(),
                    count,
                });
            }
        }
        for (a, b) in stage.iter().zip(&predicted_stage) {
            stage_errors.push(Some(a.abs_diff(*b) as f64));
        }
        scores
            .aggregates
            .push(aggregate("staging", "quadratic_kappa", skill));
        let key = |task: &str| (name.clone(), task.to_string());
        let values = &mut scores.ranking.values;
        values.insert(
            key("detection"),
            PrimaryValues::PerCase(p.iter().map(|&x| Some(x)).collect()),
        );
        values.insert(key("segmentation"), PrimaryValues::PerCase(dice));
        values.insert(key("quantification"), PrimaryValues::PerCase(errors));
        values.insert(key("staging"), PrimaryValues::PerCase(stage_errors));
    }
    scores
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let challenge = Challenge::parse(
        CHALLENGE,
        Path::new("bench/challenge.toml"),
        PathBuf::from("bench"),
    )
    .unwrap();
    let scores = round();
    let names = podium::ranking::ranked_submissions(&scores);
    let analysis = analyze(&challenge, &scores.ranking, &names, None);
    let leaderboard = podium::ranking::leaderboard(
        &scores,
        &challenge.tasks,
        &challenge.ranking.weights,
        &analysis,
    );
    let receipt: podium::pipeline::Receipt = serde_json::from_value(serde_json::json!({
        "podium_version": env!("CARGO_PKG_VERSION"), "challenge": "bench", "challenge_dir": "bench",
        "phase": "test", "hidden": true, "truth_dir": "bench", "started_unix": 0,
        "started_utc": "19700101-000000", "finished_unix": 0, "backend": null, "isolation": null,
        "limits": challenge.limits, "limits_enforced": [], "scoring": challenge.scoring,
        "ranking": challenge.ranking, "selection": "all", "cases_scored": CASES,
        "phase_cases": CASES, "confidence_intervals": "", "submissions": [],
        "host": {"os": "linux", "arch": "x86_64", "cpus": 2}
    }))
    .unwrap();
    let data = ReportDataRefs {
        scores: &scores,
        leaderboard: &leaderboard,
        analysis: &analysis,
        receipt: &receipt,
    };
    let dir = tempfile::tempdir().unwrap();
    let charts =
        podium::report::figures::all(&scores, &analysis, podium::report::figures::Detail::PerCase)
            .len();
    println!(
        "| report of {SUBMISSIONS} submissions x {CASES} cases x 4 tasks ({charts} charts) | median of {RUNS} | size |"
    );
    println!("|---|---|---|");
    for (label, plots) in [
        ("report.html and report.md", false),
        ("the same, plus every chart as SVG and PNG (--plots)", true),
    ] {
        let mut times = Vec::new();
        let html = dir.path().join("report.html");
        for run in 0..=RUNS {
            let options = ReportOptions {
                view: View::Organizer,
                html: html.clone(),
                plots: plots.then(|| dir.path().join(format!("plots-{run}"))),
            };
            let started = Instant::now();
            podium::report::write_report(dir.path(), &data, &options).unwrap();
            if run > 0 {
                times.push(started.elapsed().as_secs_f64());
            }
        }
        let size = if plots {
            let plots_dir = dir.path().join("plots-1");
            let bytes: u64 = std::fs::read_dir(&plots_dir)
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum();
            format!("{:.1} MB of SVG and PNG", bytes as f64 / 1e6)
        } else {
            let bytes = std::fs::metadata(&html).unwrap().len();
            format!("report.html {:.2} MB", bytes as f64 / 1e6)
        };
        println!("| {label} | {:.2} s | {size} |", median(times));
    }
    // Kept for a look at how the charts read with 20 submissions.
    let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
    let options = ReportOptions {
        view: View::Organizer,
        html: keep.join("report.html"),
        plots: Some(keep.join("plots")),
    };
    podium::report::write_report(dir.path(), &data, &options).unwrap();
    println!("\nThe report and its charts: {}", keep.display());
}
