//! Scoring end to end on a small generated challenge: the truth scored against itself, a
//! shuffled submission, and every kind of malformed input.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use podium::results::{CaseStatus, RoundScores};
use podium::scoring::score_folder;

fn case_value(
    round: &RoundScores,
    task: &str,
    case_id: &str,
    metric: &str,
) -> (Option<f64>, CaseStatus) {
    let c = round
        .case_scores
        .iter()
        .find(|c| c.task == task && c.case_id == case_id && c.metric == metric)
        .unwrap_or_else(|| panic!("no score for {task}/{case_id}/{metric}"));
    (c.value, c.status)
}

fn problems_of<'a>(round: &'a RoundScores, case_id: &str) -> Vec<&'a str> {
    round
        .problems
        .iter()
        .filter(|p| p.case_id == case_id)
        .map(|p| p.problem.as_str())
        .collect()
}

#[test]
fn the_truth_scored_against_itself_is_perfect_on_every_metric() {
    let (dir, challenge) = small_challenge(9);
    let preds = dir.path().join("perfect");
    perfect_predictions(&challenge, "test", &preds);
    let phase = challenge.phase_paths("test", None).unwrap();
    let round = score_folder(&challenge, &phase, &preds, "perfect").unwrap();
    let expected = [
        ("detection", "auc", 1.0),
        ("detection", "sensitivity", 1.0),
        ("detection", "specificity", 1.0),
        ("detection", "sensitivity_at_specificity", 1.0),
        ("detection", "average_precision", 1.0),
        ("differential", "macro_auc", 1.0),
        ("differential", "balanced_accuracy", 1.0),
        ("differential", "accuracy", 1.0),
        ("segmentation", "dice", 1.0),
        ("segmentation", "iou", 1.0),
        ("segmentation", "hd95", 0.0),
        ("segmentation", "nsd", 1.0),
        ("segmentation", "assd", 0.0),
        ("segmentation", "volume_error_ml", 0.0),
        ("quantification", "mae", 0.0),
        ("quantification", "rmse", 0.0),
        ("quantification", "bias", 0.0),
        ("quantification", "loa_lower", 0.0),
        ("quantification", "loa_upper", 0.0),
        ("quantification", "pearson_r", 1.0),
        ("staging", "quadratic_kappa", 1.0),
        ("staging", "linear_kappa", 1.0),
        ("staging", "accuracy", 1.0),
    ];
    for (task, name, value) in expected {
        let got = metric(&round, "perfect", task, name).unwrap();
        assert!(
            (got - value).abs() < 1e-12,
            "{task}/{name} = {got}, expected {value}"
        );
        let a = round.aggregate("perfect", task, name).unwrap();
        assert_eq!(a.n, 9);
        assert!(
            a.ci_lower.is_some() && a.ci_upper.is_some(),
            "{task}/{name} has no CI"
        );
    }
    assert!(round.problems.is_empty(), "{:?}", round.problems);
    assert!(round.case_scores.iter().all(|c| c.status == CaseStatus::Ok));
}

#[test]
fn a_shuffled_submission_scores_worse_than_the_truth() {
    let (dir, challenge) = small_challenge(12);
    let preds = dir.path().join("shuffled");
    perfect_predictions(&challenge, "test", &preds);
    // Rotate every prediction (row and mask) by one case.
    let rows = truth_rows(&challenge, "test");
    let csv = std::fs::read_to_string(preds.join("predictions.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    let mut shuffled =
        String::from("case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage\n");
    for (i, (id, ..)) in rows.iter().enumerate() {
        let source = lines[(i + 1) % lines.len()];
        shuffled += &format!("{id},{}\n", source.split_once(',').unwrap().1);
    }
    std::fs::write(preds.join("predictions.csv"), shuffled).unwrap();
    let phase = challenge.phase_paths("test", None).unwrap();
    for (i, (id, ..)) in rows.iter().enumerate() {
        let (next, ..) = &rows[(i + 1) % rows.len()];
        std::fs::copy(
            phase.truth_mask("masks", next),
            preds.join("masks").join(format!("{id}.nii.gz")),
        )
        .unwrap();
    }
    let round = score_folder(&challenge, &phase, &preds, "shuffled").unwrap();
    assert!(metric(&round, "shuffled", "detection", "auc").unwrap() < 1.0);
    assert!(metric(&round, "shuffled", "differential", "balanced_accuracy").unwrap() < 1.0);
    assert!(metric(&round, "shuffled", "segmentation", "dice").unwrap() < 1.0);
    assert!(metric(&round, "shuffled", "quantification", "mae").unwrap() > 0.0);
    assert!(metric(&round, "shuffled", "staging", "quadratic_kappa").unwrap() < 1.0);
}

#[test]
fn harmless_variants_bom_crlf_column_order_and_extra_columns_are_accepted() {
    let (dir, challenge) = small_challenge(6);
    let preds = dir.path().join("variant");
    perfect_predictions(&challenge, "test", &preds);
    let csv = std::fs::read_to_string(preds.join("predictions.csv")).unwrap();
    let mut out = String::from(
        "\u{feff}stage,notes,involvement_pct,p_normal,p_other_pneumonia,p_covid,case_id\r\n",
    );
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        out += &format!(
            "{},\"free, text\",{},{},{},{},{}\r\n",
            f[5], f[4], f[3], f[2], f[1], f[0]
        );
    }
    std::fs::write(preds.join("predictions.csv"), out).unwrap();
    let phase = challenge.phase_paths("test", None).unwrap();
    let round = score_folder(&challenge, &phase, &preds, "variant").unwrap();
    assert!(round.problems.is_empty(), "{:?}", round.problems);
    assert_eq!(
        metric(&round, "variant", "quantification", "mae"),
        Some(0.0)
    );
    assert_eq!(
        metric(&round, "variant", "staging", "quadratic_kappa"),
        Some(1.0)
    );
}

#[test]
fn each_malformed_input_is_recorded_for_its_case_gets_the_worst_value_and_scoring_goes_on() {
    let (dir, challenge) = small_challenge(12);
    let preds = dir.path().join("broken");
    perfect_predictions(&challenge, "test", &preds);
    let rows = truth_rows(&challenge, "test");
    let id = |i: usize| rows[i].0.clone();
    let csv = std::fs::read_to_string(preds.join("predictions.csv")).unwrap();
    let mut lines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<String> = line.split(',').map(String::from).collect();
        lines.insert(f[0].clone(), f);
    }
    lines.remove(&id(0)); // missing case
    lines.get_mut(&id(2)).unwrap()[1] = "abc".into(); // non-numeric
    lines.get_mut(&id(3)).unwrap()[2] = "NaN".into();
    lines.get_mut(&id(4)).unwrap()[3] = "inf".into();
    lines.get_mut(&id(5)).unwrap()[1] = "1.5".into(); // out of [0, 1]
    lines.get_mut(&id(6)).unwrap()[5] = "2.5".into(); // non-integer stage
    let mut text =
        String::from("case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage\n");
    for f in lines.values() {
        text += &(f.join(",") + "\n");
    }
    text += &(lines[&id(1)].join(",") + "\n"); // duplicate case
    text += "ghost-0001,0.5,0.25,0.25,10,1\n"; // unknown case
    std::fs::write(preds.join("predictions.csv"), text).unwrap();
    // A mask of the wrong shape and a truncated mask.
    let masks = preds.join("masks");
    podium::io::nifti::write_volume(
        &masks.join(format!("{}.nii.gz", id(7))),
        ndarray::Array3::<u8>::zeros((4, 4, 4)).view(),
        [1.0; 3],
        6,
    )
    .unwrap();
    let bytes = std::fs::read(masks.join(format!("{}.nii.gz", id(8)))).unwrap();
    std::fs::write(
        masks.join(format!("{}.nii.gz", id(8))),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    std::fs::remove_file(masks.join(format!("{}.nii.gz", id(9)))).unwrap();
    std::fs::remove_file(masks.join(format!("{}.nii.gz", id(0)))).unwrap(); // the whole case is missing

    let phase = challenge.phase_paths("test", None).unwrap();
    let round = score_folder(&challenge, &phase, &preds, "broken").unwrap();
    let has = |case: String, needle: &str| {
        let found = problems_of(&round, &case);
        assert!(
            found.iter().any(|p| p.contains(needle)),
            "case {case}: no problem containing {needle:?} in {found:?}"
        );
    };
    has(id(0), "no row for case");
    has(id(1), "already appears on line");
    has("ghost-0001".into(), "unknown case id");
    has(id(2), "is not a number");
    has(id(3), "not a finite number");
    has(id(4), "not a finite number");
    has(id(5), "not a probability in [0, 1]");
    has(id(6), "is not an integer stage");
    has(id(7), "has shape [4, 4, 4]");
    has(id(8), "truncated or corrupt");
    has(id(9), "no mask masks/");

    // Worst values: the missing case is wrong on detection, gets Dice 0 and the farthest
    // involvement and stage.
    let (_, _, involvement, stage) = &rows[0];
    assert_eq!(
        case_value(&round, "detection", &id(0), "correct"),
        (Some(0.0), CaseStatus::Missing)
    );
    assert_eq!(
        case_value(&round, "segmentation", &id(0), "dice"),
        (Some(0.0), CaseStatus::Missing)
    );
    let t: f64 = involvement.parse().unwrap();
    assert_eq!(
        case_value(&round, "quantification", &id(0), "abs_error").0,
        Some(t.max(100.0 - t))
    );
    let s: f64 = stage.parse().unwrap();
    assert_eq!(
        case_value(&round, "staging", &id(0), "abs_error").0,
        Some(s.max(4.0 - s))
    );
    assert_eq!(
        case_value(&round, "detection", &id(1), "correct").1,
        CaseStatus::Invalid
    );
    assert_eq!(
        case_value(&round, "detection", &id(2), "correct"),
        (Some(0.0), CaseStatus::Invalid)
    );
    assert_eq!(
        case_value(&round, "segmentation", &id(7), "dice"),
        (Some(0.0), CaseStatus::Invalid)
    );
    assert_eq!(
        case_value(&round, "segmentation", &id(8), "dice"),
        (Some(0.0), CaseStatus::Invalid)
    );
    assert_eq!(
        case_value(&round, "staging", &id(6), "abs_error").1,
        CaseStatus::Invalid
    );
    // An intact case still scores perfectly, and every case enters the aggregates.
    assert_eq!(
        case_value(&round, "segmentation", &id(11), "dice"),
        (Some(1.0), CaseStatus::Ok)
    );
    assert_eq!(round.aggregate("broken", "detection", "auc").unwrap().n, 12);
    assert!(metric(&round, "broken", "detection", "auc").unwrap() < 1.0);
}

#[test]
fn the_exclude_policy_leaves_bad_cases_out_of_the_aggregates() {
    let (dir, challenge) = small_challenge(9);
    let toml = challenge.root.join("challenge.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("missing = \"worst\"", "missing = \"exclude\"");
    std::fs::write(&toml, text).unwrap();
    let challenge = podium::challenge::Challenge::load(&challenge.root).unwrap();
    let preds = dir.path().join("partial");
    perfect_predictions(&challenge, "test", &preds);
    let csv = std::fs::read_to_string(preds.join("predictions.csv")).unwrap();
    let kept: Vec<&str> = csv.lines().take(6).collect(); // header + 5 cases
    std::fs::write(preds.join("predictions.csv"), kept.join("\n")).unwrap();
    let phase = challenge.phase_paths("test", None).unwrap();
    let round = score_folder(&challenge, &phase, &preds, "partial").unwrap();
    assert_eq!(
        round
            .aggregate("partial", "quantification", "mae")
            .unwrap()
            .n,
        5
    );
    assert_eq!(
        metric(&round, "partial", "quantification", "mae"),
        Some(0.0)
    );
    assert_eq!(
        round
            .aggregate("partial", "segmentation", "dice")
            .unwrap()
            .n,
        9
    );
}

#[test]
fn score_writes_the_csv_files_and_fails_clearly_only_when_nothing_can_be_scored() {
    let (dir, challenge) = small_challenge(6);
    let preds = dir.path().join("perfect");
    perfect_predictions(&challenge, "test", &preds);
    let out = dir.path().join("out");
    let podium = env!("CARGO_BIN_EXE_podium");
    let status = Command::new(podium)
        .args(["score", "--challenge"])
        .arg(&challenge.root)
        .args(["--phase", "test", "--predictions"])
        .arg(&preds)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        stdout.contains("Leaderboard") && stdout.contains("perfect"),
        "{stdout}"
    );
    let scores = read_csv(&out.join("scores.csv"));
    // Per case: one row for each non-segmentation task, and one per per-case segmentation metric.
    assert_eq!(
        scores.len(),
        6 * (4 + 6),
        "one row per case and per-case metric"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.csv"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
        "submission,task,metric,value,ci_lower,ci_upper,n,ci_method,note"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("problems.csv"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
        "submission,case_id,task,problem"
    );
    assert_eq!(read_csv(&out.join("leaderboard.csv"))[0]["rank"], "1");

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let failed = Command::new(podium)
        .args(["score", "--challenge"])
        .arg(&challenge.root)
        .args(["--phase", "test", "--predictions"])
        .arg(&empty)
        .arg("--out")
        .arg(dir.path().join("out2"))
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("nothing in") && stderr.contains("no predictions.csv"),
        "{stderr}"
    );
}

#[test]
fn score_on_one_thread_writes_what_it_writes_on_every_core() {
    let (dir, challenge) = small_challenge(12);
    let preds = dir.path().join("perfect");
    perfect_predictions(&challenge, "test", &preds);
    // Every bootstrap interval and the ranking bootstrap are drawn in parallel by default.
    let podium = env!("CARGO_BIN_EXE_podium");
    let score = |out: &str, jobs: &[&str]| {
        Command::new(podium)
            .args(["score", "--challenge"])
            .arg(&challenge.root)
            .args(["--phase", "test", "--predictions"])
            .arg(&preds)
            .arg("--out")
            .arg(dir.path().join(out))
            .args(jobs)
            .output()
            .unwrap()
    };
    for (out, jobs) in [("default", &[][..]), ("one", &["--jobs", "1"][..])] {
        let done = score(out, jobs);
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    for file in [
        "scores.csv",
        "metrics.csv",
        "metrics_by_subgroup.csv",
        "ranking/rank_intervals.csv",
    ] {
        let read = |out: &str| std::fs::read_to_string(dir.path().join(out).join(file)).unwrap();
        assert_eq!(read("default"), read("one"), "{file}");
        assert!(read("one").lines().count() > 1, "{file} has rows");
    }
    let refused = score("zero", &["--jobs", "0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--jobs"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn a_class_absent_from_the_truth_is_left_out_of_macro_auc_and_reported() {
    let (dir, challenge) = small_challenge(9);
    let preds = dir.path().join("perfect");
    perfect_predictions(&challenge, "test", &preds);
    let labels = challenge.root.join("phases/test/truth/labels.csv");
    let text = std::fs::read_to_string(&labels)
        .unwrap()
        .replace(",normal,", ",covid,");
    std::fs::write(&labels, text).unwrap();
    let phase = challenge.phase_paths("test", None).unwrap();
    let round = score_folder(&challenge, &phase, &preds, "perfect").unwrap();
    let note = round
        .truth_findings
        .iter()
        .find(|f| f.case_id == "*" && f.task == "differential")
        .expect("the exclusion is reported to the organizer");
    assert!(
        note.finding.contains("class normal has no case"),
        "{}",
        note.finding
    );
    assert!(round.problems.is_empty(), "{:?}", round.problems);
    // The remaining one-vs-rest AUCs are still computed over every case.
    assert!(metric(&round, "perfect", "differential", "macro_auc").is_some());
    assert_eq!(
        round
            .aggregate("perfect", "differential", "macro_auc")
            .unwrap()
            .n,
        9
    );
}
