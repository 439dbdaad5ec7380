//! Subgroups (`[analysis] subgroups`, truth/metadata.csv): every aggregate per level, checked
//! against a direct computation on a hand-made round, with the honesty rules.

mod common;

use std::path::Path;

use common::read_csv;
use podium::challenge::Challenge;
use podium::metrics::classification::{macro_auc_ovr, roc_auc};
use podium::results::subgroups::SubgroupAggregate;
use podium::results::RoundScores;
use podium::scoring::score_folder;

const CLASSES: [&str; 3] = ["x", "y", "z"];

/// One case of the hand-made round.
struct Case {
    id: String,
    site: &'static str,
    scanner: &'static str,
    positive: bool,
    p_positive: f64,
    class: usize,
    class_scores: [f64; 3],
    volume: f64,
    predicted_volume: f64,
}

/// 28 cases on three sites. Site a: 12 cases, 6 positive, classes x and y only (z absent).
/// Site b: 12 cases, 2 positive (under min_class_support = 5), one case of class z.
/// Site c: 4 cases (under min_cases = 10).
fn cases() -> Vec<Case> {
    (0..28usize)
        .map(|i| {
            let (site, positive, class) = match i {
                0..12 => ("a", i % 2 == 0, i % 2),
                12..24 => ("b", i < 14, if i == 23 { 2 } else { i % 2 }),
                _ => ("c", i % 2 == 0, i % 3),
            };
            let noise = ((i * 37) % 100) as f64 / 100.0;
            let mut class_scores = [0.2 * noise, 0.3 * (1.0 - noise), 0.1];
            class_scores[class] += 0.4 * ((i * 11) % 5) as f64 / 4.0;
            Case {
                id: format!("case{i:02}"),
                site,
                // 14 cases and 5 positives on each scanner.
                scanner: if i % 4 == 0 || i % 4 == 3 { "s1" } else { "s2" },
                positive,
                p_positive: 0.3 * f64::from(u8::from(positive)) + 0.7 * noise,
                class,
                class_scores,
                volume: i as f64,
                predicted_volume: i as f64 + ((i * 13) % 7) as f64 - 3.0,
            }
        })
        .collect()
}

/// Writes the challenge, its test phase and a predictions folder; returns (challenge, preds).
fn hand_made_round(dir: &Path) -> (Challenge, std::path::PathBuf) {
    let root = dir.join("challenge");
    let phase = root.join("phases/test");
    std::fs::create_dir_all(phase.join("input/images")).unwrap();
    std::fs::create_dir_all(phase.join("truth")).unwrap();
    std::fs::write(
        root.join("challenge.toml"),
        r#"name = "sites"
[scoring]
bootstrap_resamples = 200
[analysis]
subgroups = ["site", "scanner"]
min_cases = 10
min_class_support = 5
[[phases]]
name = "test"
visibility = "hidden"
[[tasks]]
name = "detection"
kind = "binary-classification"
prediction = "p_covid"
truth = "diagnosis"
positive_class = "covid"
metrics = ["auc", "sensitivity"]
primary = "auc"
[[tasks]]
name = "differential"
kind = "multiclass-classification"
truth = "kind"
classes = ["x", "y", "z"]
class_predictions = ["p_x", "p_y", "p_z"]
metrics = ["macro_auc"]
primary = "macro_auc"
[[tasks]]
name = "quantification"
kind = "regression"
prediction = "volume"
truth = "volume"
value_range = [-10, 100]
metrics = ["mae"]
primary = "mae"
"#,
    )
    .unwrap();
    let cases = cases();
    let mut ids = String::from("case_id\n");
    let mut labels = String::from("case_id,diagnosis,kind,volume\n");
    let mut metadata = String::from("case_id,site,scanner\n");
    let mut predictions = String::from("case_id,p_covid,p_x,p_y,p_z,volume\n");
    for c in &cases {
        ids += &format!("{}\n", c.id);
        podium::io::nifti::write_volume(
            &phase.join(format!("input/images/{}.nii.gz", c.id)),
            ndarray::Array3::<u8>::zeros((2, 2, 2)).view(),
            [1.0; 3],
            6,
        )
        .unwrap();
        let diagnosis = if c.positive { "covid" } else { "normal" };
        labels += &format!("{},{diagnosis},{},{}\n", c.id, CLASSES[c.class], c.volume);
        metadata += &format!("{},{},{}\n", c.id, c.site, c.scanner);
        let [px, py, pz] = c.class_scores;
        predictions += &format!(
            "{},{},{px},{py},{pz},{}\n",
            c.id, c.p_positive, c.predicted_volume
        );
    }
    std::fs::write(phase.join("input/cases.csv"), ids).unwrap();
    std::fs::write(phase.join("truth/labels.csv"), labels).unwrap();
    std::fs::write(phase.join("truth/metadata.csv"), metadata).unwrap();
    let preds = dir.join("predictions");
    std::fs::create_dir_all(&preds).unwrap();
    std::fs::write(preds.join("predictions.csv"), predictions).unwrap();
    (Challenge::load(&root).unwrap(), preds)
}

fn level<'a>(
    round: &'a RoundScores,
    task: &str,
    metric: &str,
    subgroup: &str,
    level: &str,
) -> &'a SubgroupAggregate {
    round
        .subgroups
        .iter()
        .find(|a| {
            a.task == task && a.metric == metric && a.subgroup == subgroup && a.level == level
        })
        .unwrap_or_else(|| panic!("no row for {task}/{metric}/{subgroup}={level}"))
}

fn score(dir: &Path) -> (Challenge, RoundScores) {
    let (challenge, preds) = hand_made_round(dir);
    let phase = challenge.phase_paths("test", None).unwrap();
    let round = score_folder(&challenge, &phase, &preds, "team").unwrap();
    (challenge, round)
}

#[test]
fn each_level_value_equals_the_metric_computed_on_that_levels_cases() {
    let dir = tempfile::tempdir().unwrap();
    let (_, round) = score(dir.path());
    let cases = cases();
    let on =
        |keep: &dyn Fn(&Case) -> bool| -> Vec<&Case> { cases.iter().filter(|c| keep(c)).collect() };

    let site_a = on(&|c| c.site == "a");
    let truth: Vec<bool> = site_a.iter().map(|c| c.positive).collect();
    let scores: Vec<f64> = site_a.iter().map(|c| c.p_positive).collect();
    let auc = level(&round, "detection", "auc", "site", "a");
    assert_eq!(auc.value, roc_auc(&truth, &scores));
    assert_eq!(auc.n, site_a.len());
    assert!(
        auc.ci_lower.unwrap() <= auc.value.unwrap() && auc.value.unwrap() <= auc.ci_upper.unwrap()
    );
    assert_eq!(
        auc.class_support,
        vec![("covid".to_string(), 6), ("not covid".to_string(), 6)]
    );

    // Regression: the mean absolute error over the level's cases, on each scanner.
    for scanner in ["s1", "s2"] {
        let of_scanner = on(&|c| c.scanner == scanner);
        let mae = of_scanner
            .iter()
            .map(|c| (c.predicted_volume - c.volume).abs())
            .sum::<f64>()
            / of_scanner.len() as f64;
        let row = level(&round, "quantification", "mae", "scanner", scanner);
        assert!((row.value.unwrap() - mae).abs() < 1e-12, "{scanner}");
        assert_eq!(row.n, of_scanner.len());
    }

    // Multiclass on a level without class z: the macro average over the classes present, and
    // the note says which.
    let truth: Vec<usize> = site_a.iter().map(|c| c.class).collect();
    let scores: Vec<Vec<f64>> = site_a.iter().map(|c| c.class_scores.to_vec()).collect();
    let macro_auc = level(&round, "differential", "macro_auc", "site", "a");
    assert_eq!(macro_auc.value, macro_auc_ovr(&truth, &scores, 3).macro_auc);
    assert_eq!(macro_auc.note(), "classes present: x, y; absent: z");
}

#[test]
fn a_level_under_the_minimum_cases_or_class_support_gives_no_number() {
    let dir = tempfile::tempdir().unwrap();
    let (_, round) = score(dir.path());
    // Site c: 4 cases, every metric withheld.
    for (task, metric) in [("detection", "auc"), ("quantification", "mae")] {
        let row = level(&round, task, metric, "site", "c");
        assert_eq!((row.value, row.ci_lower, row.ci_upper), (None, None, None));
        assert_eq!(row.n, 4);
        assert!(
            row.note().contains("too few cases: n = 4 < min_cases = 10"),
            "{}",
            row.note()
        );
    }
    // Site b: 12 cases but 2 positives: its AUC would rank it by its split, so none is given;
    // its regression value, which needs no class, is.
    let auc = level(&round, "detection", "auc", "site", "b");
    assert_eq!(auc.value, None);
    assert!(
        auc.note().contains("covid has 2 < min_class_support = 5"),
        "{}",
        auc.note()
    );
    assert!(level(&round, "quantification", "mae", "site", "b")
        .value
        .is_some());
    // One case of class z is too few for the macro average; a class with none is not.
    let macro_b = level(&round, "differential", "macro_auc", "site", "b");
    assert_eq!(macro_b.value, None);
    assert!(macro_b.note().contains("z has 1"), "{}", macro_b.note());
}

#[test]
fn the_summary_names_the_worst_eligible_level_and_the_spread_between_levels() {
    let dir = tempfile::tempdir().unwrap();
    let (_, round) = score(dir.path());
    let summary = round
        .subgroup_summaries
        .iter()
        .find(|s| s.task == "quantification" && s.subgroup == "site")
        .unwrap();
    let a = level(&round, "quantification", "mae", "site", "a")
        .value
        .unwrap();
    let b = level(&round, "quantification", "mae", "site", "b")
        .value
        .unwrap();
    // Lower is better for an error: the worst level has the higher MAE; c is not eligible.
    let (worst, best) = if a > b { ("a", "b") } else { ("b", "a") };
    assert_eq!(summary.worst_level.as_deref(), Some(worst));
    assert_eq!(summary.best_level.as_deref(), Some(best));
    assert_eq!((summary.levels, summary.eligible_levels), (3, 2));
    assert!((summary.spread.unwrap() - (a - b).abs()).abs() < 1e-12);
    assert!(summary.spread_ci_lower.unwrap() <= summary.spread_ci_upper.unwrap());
    // Per-case errors: Kruskal–Wallis on the two eligible sites.
    assert_eq!(summary.test, "kruskal-wallis");
    assert_eq!(summary.df, Some(1));
    let p = summary.p_value.unwrap();
    assert!((0.0..=1.0).contains(&p));
    // A whole-set metric (AUC) is tested with Cochran's Q on the scanners' intervals.
    let auc = round
        .subgroup_summaries
        .iter()
        .find(|s| s.task == "detection" && s.subgroup == "scanner")
        .unwrap();
    assert_eq!(auc.test, "cochran-q");
    // Site a alone has enough of both classes: a worst level, but no spread and no test.
    let one_site = round
        .subgroup_summaries
        .iter()
        .find(|s| s.task == "detection" && s.subgroup == "site")
        .unwrap();
    assert_eq!(one_site.worst_level.as_deref(), Some("a"));
    assert_eq!((one_site.eligible_levels, one_site.spread), (1, None));
    assert_eq!((one_site.test.as_str(), one_site.p_value), ("", None));
}

#[test]
fn score_writes_metrics_by_subgroup_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (challenge, preds) = hand_made_round(dir.path());
    let out = dir.path().join("out");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["score", "--challenge"])
        .arg(&challenge.root)
        .args(["--phase", "test", "--predictions"])
        .arg(&preds)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let header = std::fs::read_to_string(out.join("metrics_by_subgroup.csv")).unwrap();
    assert_eq!(
        header.lines().next().unwrap(),
        "submission,task,metric,subgroup,level,value,ci_lower,ci_upper,n,class_support,note"
    );
    let rows = read_csv(&out.join("metrics_by_subgroup.csv"));
    let site_b_auc = rows
        .iter()
        .find(|r| r["task"] == "detection" && r["metric"] == "auc" && r["level"] == "b")
        .unwrap();
    assert_eq!(site_b_auc["value"], "");
    assert_eq!(site_b_auc["class_support"], "covid=2;not covid=10");
    let summary = read_csv(&out.join("subgroup_summary.csv"));
    assert_eq!(summary.len(), 3 * 2, "one row per task and subgroup");
    // The terminal names the worst site of each task, as the summary has it.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mae = summary
        .iter()
        .find(|r| r["task"] == "quantification" && r["subgroup"] == "site")
        .unwrap();
    let expected = format!("quantification at {} (mae", mae["worst_level"]);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("worst site: predictions: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(&expected), "{line}");
}

#[test]
fn validate_names_the_metadata_file_for_missing_cases_and_absent_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (challenge, _) = hand_made_round(dir.path());
    let metadata = challenge.root.join("phases/test/truth/metadata.csv");
    let text = std::fs::read_to_string(&metadata).unwrap();
    let without_last: Vec<&str> = text.lines().take(text.lines().count() - 1).collect();
    std::fs::write(&metadata, without_last.join("\n") + "\n").unwrap();
    let report = podium::challenge::validate::validate(&challenge, Some("test"), None);
    let errors = report.errors.join("\n");
    assert!(
        errors.contains("metadata.csv") && errors.contains("case27"),
        "{errors}"
    );

    std::fs::write(&metadata, "case_id,site\ncase00,a\n").unwrap();
    let report = podium::challenge::validate::validate(&challenge, Some("test"), None);
    let errors = report.errors.join("\n");
    assert!(
        errors.contains("metadata.csv:1") && errors.contains("scanner"),
        "{errors}"
    );
}

#[test]
fn the_robustness_ranking_ranks_each_task_on_the_worst_site() {
    use podium::challenge::split::CaseSelection;
    use podium::ranking::analysis::{analyze, CONSENSUS};
    use podium::ranking::robustness::worst_subgroup_ranks;
    use podium::scoring::{score_round, ScoringInput};

    let dir = tempfile::tempdir().unwrap();
    let (challenge, preds) = hand_made_round(dir.path());
    // Same classification scores; volumes: "uneven" is exact on site a and 3 off elsewhere
    // (better on average, worse at its worst site), "steady" is 2 off everywhere.
    let text = std::fs::read_to_string(preds.join("predictions.csv")).unwrap();
    let with_volumes = |off: &dyn Fn(&Case) -> f64| -> String {
        let mut lines = text.lines();
        let mut out = lines.next().unwrap().to_string() + "\n";
        for (line, case) in lines.zip(cases()) {
            let (head, _) = line.rsplit_once(',').unwrap();
            out += &format!("{head},{}\n", case.volume + off(&case));
        }
        out
    };
    let folders: Vec<(String, std::path::PathBuf)> = [
        (
            "uneven",
            with_volumes(&|c| if c.site == "a" { 0.0 } else { 3.0 }),
        ),
        ("steady", with_volumes(&|_| 2.0)),
    ]
    .into_iter()
    .map(|(name, csv)| {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("predictions.csv"), csv).unwrap();
        (name.to_string(), folder)
    })
    .collect();
    let inputs: Vec<ScoringInput> = folders
        .iter()
        .map(|(name, folder)| ScoringInput {
            name: name.clone(),
            team: name.clone(),
            baseline: false,
            predictions_dir: folder,
            runs: None,
        })
        .collect();
    let phase = challenge.phase_paths("test", None).unwrap();
    let round = score_round(&challenge, &phase, &inputs, CaseSelection::All).unwrap();
    let names = vec!["uneven".to_string(), "steady".to_string()];
    let mut analysis = analyze(&challenge, &round.ranking, &names, None);
    let declared = analysis.method.unwrap();
    assert_eq!(analysis.rank(declared, "quantification", "uneven"), Some(1));
    analysis
        .methods
        .extend(worst_subgroup_ranks(&challenge, &round, &names));
    let rank = |method: &str, scope: &str, s: &str| {
        analysis
            .methods
            .iter()
            .find(|m| m.method == method && m.scope == scope && m.submission == s)
            .map(|m| m.rank)
    };
    assert_eq!(rank("worst-site", "quantification", "steady"), Some(1));
    assert_eq!(rank("worst-site", "quantification", "uneven"), Some(2));
    assert_eq!(rank("worst-site", CONSENSUS, "steady"), Some(1));
    let caveats = podium::report::terminal::ranking_caveats(&analysis).join("\n");
    assert!(
        caveats.contains("worst site (ranking/methods.csv, method worst-site): steady first; the declared method puts uneven first"),
        "{caveats}"
    );
}

#[test]
fn the_report_shows_the_subgroups_to_judges_and_no_metadata_in_the_team_view_of_a_hidden_phase() {
    let dir = tempfile::tempdir().unwrap();
    let (challenge, preds) = hand_made_round(dir.path());
    let out = dir.path().join("out");
    let podium = env!("CARGO_BIN_EXE_podium");
    let scored = std::process::Command::new(podium)
        .args(["score", "--challenge"])
        .arg(&challenge.root)
        .args(["--phase", "test", "--predictions"])
        .arg(&preds)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        scored.status.success(),
        "{}",
        String::from_utf8_lossy(&scored.stderr)
    );
    let judges = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(judges.contains("<h2 id=\"subgroups\">"));
    // A forest plot per submission and subgroup, and the withheld level in the table.
    assert!(judges.contains("predictions by site") && judges.contains("predictions by scanner"));
    assert!(judges.contains("too few cases: n = 4 &lt; min_cases = 10"));
    // The robustness ranking's line, in the summary's caveats and in the ranking analysis.
    let robustness = "method worst-site): predictions first";
    let ranking = &judges[judges.find("<h2 id=\"ranking\">").unwrap()..];
    assert!(ranking.contains(robustness));
    assert_eq!(judges.matches(robustness).count(), 2);

    let team = std::process::Command::new(podium)
        .arg("report")
        .arg(&out)
        .args(["--view", "team"])
        .output()
        .unwrap();
    assert!(
        team.status.success(),
        "{}",
        String::from_utf8_lossy(&team.stderr)
    );
    let html = std::fs::read_to_string(out.join("report-team.html")).unwrap();
    let summary = std::fs::read_to_string(out.join("report-team.md")).unwrap();
    for shown in [&html, &summary] {
        for metadata in [
            "id=\"subgroups\"",
            "by site",
            "by scanner",
            "min_class_support",
            "s1",
            "s2",
        ] {
            assert!(!shown.contains(metadata), "{metadata} in the team view");
        }
    }
}

#[test]
fn a_segmentation_level_is_the_mean_of_its_cases_values() {
    let (dir, challenge) = common::small_challenge(6);
    let phase = challenge.phase_paths("test", None).unwrap();
    let ids = podium::challenge::read_case_ids(&phase).unwrap();
    let site = |i: usize| if i % 2 == 0 { "even" } else { "odd" };
    let mut metadata = String::from("case_id,site\n");
    for (i, id) in ids.iter().enumerate() {
        metadata += &format!("{id},{}\n", site(i));
    }
    std::fs::write(phase.metadata_csv(), metadata).unwrap();
    let toml = challenge.root.join("challenge.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    // The template's own [analysis] table makes way for this test's.
    let text = match text.find("\n[analysis]") {
        Some(start) => {
            let end = text[start + 1..]
                .find("\n[")
                .map_or(text.len(), |e| start + 1 + e);
            format!("{}{}", &text[..start], &text[end..])
        }
        None => text,
    };
    std::fs::write(
        &toml,
        text.replacen(
            "[limits]",
            "[analysis]\nsubgroups = [\"site\"]\nmin_cases = 1\nmin_class_support = 1\n\n[limits]",
            1,
        ),
    )
    .unwrap();
    let challenge = Challenge::load(&challenge.root).unwrap();
    // The truth's masks, but an empty mask for the first case: its Dice is 0.
    let preds = dir.path().join("preds");
    common::perfect_predictions(&challenge, "test", &preds);
    let first = preds.join("masks").join(format!("{}.nii.gz", ids[0]));
    let shape = podium::io::nifti::read_geometry(&first).unwrap().shape;
    podium::io::nifti::write_volume(
        &first,
        ndarray::Array3::<u8>::zeros((shape[0], shape[1], shape[2])).view(),
        [1.0; 3],
        6,
    )
    .unwrap();
    let round = score_folder(&challenge, &phase, &preds, "team").unwrap();
    for level_name in ["even", "odd"] {
        let values: Vec<f64> = round
            .case_scores
            .iter()
            .filter(|c| c.task == "segmentation" && c.metric == "dice")
            .filter(|c| site(ids.iter().position(|i| *i == c.case_id).unwrap()) == level_name)
            .filter_map(|c| c.value)
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let row = level(&round, "segmentation", "dice", "site", level_name);
        assert!((row.value.unwrap() - mean).abs() < 1e-12, "{level_name}");
        assert_eq!(row.n, values.len());
    }
    assert!(
        level(&round, "segmentation", "dice", "site", "even")
            .value
            .unwrap()
            < 1.0
    );
}

#[test]
fn a_phase_leaderboard_over_rounds_keeps_every_rounds_subgroups() {
    // A hidden phase from the command line runs sandboxed, or not at all.
    if !common::require_bubblewrap() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (challenge, _) = hand_made_round(dir.path());
    let rounds = dir.path().join("rounds");
    let podium = env!("CARGO_BIN_EXE_podium");
    for (round, team) in [("one", "north"), ("two", "south")] {
        let subs = dir.path().join(format!("subs-{round}"));
        let sub = common::script_submission(
            &subs,
            round,
            "printf 'case_id,p_covid,p_x,p_y,p_z,volume\\n%s,0.5,0.2,0.3,0.5,%s\\n' \"$CASE\" \"${CASE#case}\" > \"$OUT/predictions.csv\"",
        );
        common::set_team(&sub, team);
        let output = std::process::Command::new(podium)
            .args(["run", "--phase", "test", "--challenge"])
            .arg(&challenge.root)
            .arg("--rounds")
            .arg(&rounds)
            .arg("--submissions")
            .arg(&sub)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = std::process::Command::new(podium)
        .arg("leaderboard")
        .arg(&rounds)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = read_csv(&rounds.join("phase-leaderboard/metrics_by_subgroup.csv"));
    for submission in ["one", "two"] {
        assert!(
            rows.iter().any(|r| r["submission"].contains(submission)),
            "{submission} has no subgroup row"
        );
    }
}
