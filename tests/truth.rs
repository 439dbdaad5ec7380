//! Organizer errors are never blamed on teams: `run`, `score` and `rescore` check the phase's
//! truth before anything runs or is scored, refuse on findings unless told to leave the bad
//! cases out, and a truth problem never reaches a team's files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use podium::challenge::Challenge;

fn podium(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

/// The first case of the test phase, with its image's shape.
fn first_case(challenge: &Challenge) -> (String, [usize; 3]) {
    let phase = challenge.phase_paths("test", None).unwrap();
    let case_id = podium::scoring::truth::read_case_ids(&phase).unwrap()[0].clone();
    let shape = podium::io::nifti::read_geometry(&phase.image(&case_id))
        .unwrap()
        .shape;
    (case_id, shape)
}

/// Replaces the truth mask of `case_id` with an empty one a few slices short of the image.
fn shorten_truth_mask(challenge: &Challenge, case_id: &str) -> [usize; 3] {
    let phase = challenge.phase_paths("test", None).unwrap();
    let path = phase.truth_mask("masks", case_id);
    let geometry = podium::io::nifti::read_geometry(&path).unwrap();
    let [nx, ny, nz] = geometry.shape;
    let short = [nx, ny, nz - 8];
    podium::io::nifti::write_volume(
        &path,
        ndarray::Array3::<u8>::zeros((short[2], short[1], short[0])).view(),
        geometry.spacing_mm,
        6,
    )
    .unwrap();
    short
}

/// A submission that copies each case's answer from `oracle` (a copy of the intact truth):
/// correct on every case, whatever happens to the challenge's truth afterwards.
fn oracle_submission(parent: &Path, name: &str, oracle: &Path) -> PathBuf {
    let o = oracle.display();
    script_submission(
        parent,
        name,
        &format!(
            r#"mkdir -p "$OUT/masks"
cp "{o}/masks/$CASE.nii.gz" "$OUT/masks/"
ROW=$(grep "^$CASE," "{o}/labels.csv")
echo "case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage" > "$OUT/predictions.csv"
echo "$ROW" | awk -F, '{{ printf "%s,%d,%d,%d,%s,%s\n", $1, $2=="covid", $2=="other_pneumonia", $2=="normal", $3, $4 }}' >> "$OUT/predictions.csv""#
        ),
    )
}

/// A challenge of `cases` test cases, two oracle submissions and the intact truth kept aside.
fn round_fixture(cases: usize) -> (tempfile::TempDir, Challenge, PathBuf) {
    let (dir, challenge) = small_challenge(cases);
    let oracle = dir.path().join("oracle");
    copy_dir(&challenge.root.join("phases/test/truth"), &oracle);
    let subs = dir.path().join("subs");
    oracle_submission(&subs, "alpha", &oracle);
    oracle_submission(&subs, "beta", &oracle);
    (dir, challenge, subs)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn run_round(challenge: &Challenge, subs: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let mut args: Vec<&std::ffi::OsStr> = args![
        "run",
        "--challenge",
        &challenge.root,
        "--phase",
        "test",
        "--submissions",
        subs,
        "--backend",
        "process",
        "--allow-unisolated",
        "--jobs",
        "2",
        "--out",
        out,
    ]
    .to_vec();
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    podium(&args)
}

#[test]
fn run_refuses_a_truth_mask_of_the_wrong_shape_before_any_submission_runs() {
    let (dir, challenge, subs) = round_fixture(3);
    let (case_id, image_shape) = first_case(&challenge);
    let short = shorten_truth_mask(&challenge, &case_id);
    let out = dir.path().join("round");
    let (code, text) = run_round(&challenge, &subs, &out, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(&format!("case {case_id}:"))
            && text.contains(&format!(
                "has shape {short:?} but the image has {image_shape:?}"
            )),
        "{text}"
    );
    assert!(
        text.contains("podium validate") && text.contains("--leave-out-bad-truth"),
        "{text}"
    );
    assert!(
        !out.join("runs.csv").exists() && !out.join("predictions").exists(),
        "a submission ran"
    );
}

#[test]
fn run_refuses_a_truth_table_missing_a_case() {
    let (dir, challenge, subs) = round_fixture(3);
    let labels = challenge.root.join("phases/test/truth/labels.csv");
    let text = std::fs::read_to_string(&labels).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let dropped = lines.remove(2);
    let dropped_id = dropped.split(',').next().unwrap();
    std::fs::write(&labels, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("round");
    let (code, text) = run_round(&challenge, &subs, &out, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(&format!("case {dropped_id}:")) && text.contains("no truth row"),
        "{text}"
    );
    assert!(!out.join("runs.csv").exists(), "a submission ran");
}

#[test]
fn with_leave_out_bad_truth_the_case_is_left_out_for_everyone_and_the_counts_say_so() {
    let (dir, challenge, subs) = round_fixture(4);
    let (case_id, _) = first_case(&challenge);
    shorten_truth_mask(&challenge, &case_id);
    let out = dir.path().join("round");
    let (code, text) = run_round(&challenge, &subs, &out, &["--leave-out-bad-truth"]);
    assert_eq!(code, 0, "{text}");
    let phase_cases = first_case_count(&challenge);
    assert!(
        text.contains(&format!(
            "({} cases; 1 case left out for every submission",
            phase_cases - 1
        )),
        "{text}"
    );
    let scores = read_csv(&out.join("scores.csv"));
    assert!(!scores.is_empty());
    assert!(
        scores.iter().all(|r| r["case_id"] != case_id),
        "the left-out case was scored"
    );
    for name in ["alpha", "beta"] {
        assert!(
            scores
                .iter()
                .any(|r| r["submission"] == name && r["status"] == "ok"),
            "{name} was not scored"
        );
    }
    let receipt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(receipt["cases_scored"], phase_cases - 1);
    assert_eq!(receipt["phase_cases"], phase_cases);
    assert_eq!(receipt["cases_left_out"][0]["case_id"], case_id.as_str());
    assert!(receipt["cases_left_out"][0]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("but the image has"));
    let findings = read_csv(&out.join("truth-findings.csv"));
    assert!(
        findings
            .iter()
            .any(|f| f["case_id"] == case_id && f["effect"] == "left out"),
        "{findings:?}"
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains(&format!("{} cases scored", phase_cases - 1))
            && report.contains("1 case left out for every submission"),
        "the report does not say what was left out"
    );
    assert_no_truth_for_teams(&out, &case_id);

    // Rescoring the round needs no flag again: the round recorded the organizer's choice.
    let (code, text) = podium(args!["rescore", &out, "--replace-official"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 case left out"), "{text}");
}

fn first_case_count(challenge: &Challenge) -> usize {
    let phase = challenge.phase_paths("test", None).unwrap();
    podium::scoring::truth::read_case_ids(&phase).unwrap().len()
}

/// Nothing about the truth in what the teams get: their problems.csv, nor the round's.
fn assert_no_truth_for_teams(out: &Path, case_id: &str) {
    for name in ["alpha", "beta"] {
        let problems =
            std::fs::read_to_string(out.join("teams").join(name).join("problems.csv")).unwrap();
        assert!(
            !problems.contains(case_id) && !problems.contains("truth"),
            "{name} was told about the truth: {problems}"
        );
    }
    let problems = read_csv(&out.join("problems.csv"));
    assert!(
        problems.iter().all(|p| p["submission"] != "(truth)"),
        "{problems:?}"
    );
    let team_report = out.join("team-view.html");
    let (code, text) = podium(args![
        "report",
        out,
        "--view",
        "team",
        "--out",
        &team_report
    ]);
    assert_eq!(code, 0, "{text}");
    let html = std::fs::read_to_string(&team_report).unwrap();
    // The team view may list the case's run, never why it was not scored.
    assert!(
        !html.contains("left out")
            && !html.contains("truth-findings")
            && !html.contains("but the image has"),
        "the team view tells of the truth"
    );
}

#[test]
fn score_and_rescore_refuse_a_broken_truth_unless_told_to_leave_it_out() {
    let (dir, challenge, subs) = round_fixture(3);
    let out = dir.path().join("round");
    let (code, text) = run_round(&challenge, &subs, &out, &[]);
    assert_eq!(code, 0, "{text}");
    let (case_id, image_shape) = first_case(&challenge);
    let short = shorten_truth_mask(&challenge, &case_id);
    let finding = format!("has shape {short:?} but the image has {image_shape:?}");

    let before = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let (code, text) = podium(args!["rescore", &out, "--replace-official"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(&format!("case {case_id}:")) && text.contains(&finding),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("scores.csv")).unwrap(),
        before,
        "a refused rescore rewrote the scores"
    );
    let (code, text) = podium(args![
        "rescore",
        &out,
        "--replace-official",
        "--leave-out-bad-truth"
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 case left out"), "{text}");
    assert_no_truth_for_teams(&out, &case_id);

    let predictions = out.join("predictions").join("alpha");
    let scored = dir.path().join("scored");
    let score = |extra: &str| {
        let mut args: Vec<&std::ffi::OsStr> = args![
            "score",
            "--challenge",
            &challenge.root,
            "--phase",
            "test",
            "--predictions",
            &predictions,
            "--out",
            &scored,
        ]
        .to_vec();
        if !extra.is_empty() {
            args.push(std::ffi::OsStr::new(extra));
        }
        podium(&args)
    };
    let (code, text) = score("");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains(&finding), "{text}");
    assert!(!scored.exists(), "a refused score wrote results");
    let (code, text) = score("--leave-out-bad-truth");
    assert_eq!(code, 0, "{text}");
    let receipt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scored.join("run.json")).unwrap()).unwrap();
    assert_eq!(receipt["cases_left_out"][0]["case_id"], case_id.as_str());
}

#[test]
fn a_truth_on_another_grid_than_the_image_is_the_organizers_finding_not_the_teams() {
    // Scoring without the check first (as a library caller may): the team's mask, on the
    // image's grid, is not called invalid, and the mismatch goes to the truth findings.
    let (dir, challenge) = small_challenge(3);
    let preds = dir.path().join("perfect");
    perfect_predictions(&challenge, "test", &preds);
    let (case_id, image_shape) = first_case(&challenge);
    let short = shorten_truth_mask(&challenge, &case_id);
    let phase = challenge.phase_paths("test", None).unwrap();
    let round = podium::scoring::score_folder(&challenge, &phase, &preds, "perfect").unwrap();
    assert!(
        round.problems.iter().all(|p| p.case_id != case_id),
        "{:?}",
        round.problems
    );
    let finding = round
        .truth_findings
        .iter()
        .find(|f| f.case_id == case_id && f.task == "segmentation")
        .expect("the mismatch is a truth finding");
    assert!(
        finding.finding.contains(&format!(
            "has shape {short:?} but the image has {image_shape:?}"
        )),
        "{}",
        finding.finding
    );
}

#[test]
fn a_prediction_of_the_wrong_shape_is_compared_with_the_image() {
    let (dir, challenge) = small_challenge(3);
    let preds = dir.path().join("perfect");
    perfect_predictions(&challenge, "test", &preds);
    let (case_id, image_shape) = first_case(&challenge);
    let [nx, ny, nz] = image_shape;
    let wrong = [nx, ny, nz + 4];
    podium::io::nifti::write_volume(
        &preds.join("masks").join(format!("{case_id}.nii.gz")),
        ndarray::Array3::<u8>::zeros((wrong[2], wrong[1], wrong[0])).view(),
        [1.0; 3],
        6,
    )
    .unwrap();
    let phase = challenge.phase_paths("test", None).unwrap();
    let round = podium::scoring::score_folder(&challenge, &phase, &preds, "perfect").unwrap();
    let problem = round
        .problems
        .iter()
        .find(|p| p.case_id == case_id)
        .expect("the team is told");
    assert!(
        problem.problem.contains(&format!(
            "has shape {wrong:?}, the image has {image_shape:?}"
        )),
        "{}",
        problem.problem
    );
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// An official rescore keeps how the round ran (its receipt's backend, isolation and start)
/// and how it was ranked (a `--ranking-method` given to `run`), and the organizer's
/// `--leave-out-bad-truth` even when the truth was sound then.
#[test]
fn an_official_rescore_keeps_how_the_round_ran_and_was_ranked() {
    let (dir, challenge, subs) = round_fixture(3);
    let out = dir.path().join("round");
    let extra = [
        "--ranking-method",
        "test-then-rank",
        "--leave-out-bad-truth",
    ];
    let (code, text) = run_round(&challenge, &subs, &out, &extra);
    assert_eq!(code, 0, "{text}");
    let plan = json(&out.join("round.json"));
    assert_eq!(plan["ranking_method"], "test-then-rank", "{plan}");
    assert_eq!(plan["leave_out_bad_truth"], true, "{plan}");
    let ran = json(&out.join("run.json"));
    assert_eq!(ran["backend"], "process");

    let (code, text) = podium(args!["rescore", &out, "--replace-official"]);
    assert_eq!(code, 0, "{text}");
    let rescored = json(&out.join("run.json"));
    assert_eq!(rescored["ranking"]["method"], "test-then-rank");
    for kept in ["backend", "isolation", "started_utc", "limits_enforced"] {
        assert_eq!(rescored[kept], ran[kept], "{kept}");
    }
    let (code, text) = podium(args![
        "rescore",
        &out,
        "--replace-official",
        "--ranking-method",
        "test-then-rank"
    ]);
    assert_eq!(code, 0, "the round's own method is its own setting: {text}");
    let (code, text) = podium(args![
        "rescore",
        &out,
        "--replace-official",
        "--ranking-method",
        "mean-then-rank"
    ]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("it was ranked test-then-rank"), "{text}");
}

/// A rescore refused for a problem of the whole phase changes nothing: the official result,
/// round.json and the folder given to `--out` are as they were, and the same command can be
/// given again once the truth is fixed.
#[test]
fn a_refused_rescore_leaves_the_round_and_its_out_folder_as_they_were() {
    let (dir, challenge, subs) = round_fixture(3);
    let out = dir.path().join("round");
    let (code, text) = run_round(&challenge, &subs, &out, &[]);
    assert_eq!(code, 0, "{text}");
    let plan = std::fs::read(out.join("round.json")).unwrap();
    let scores = std::fs::read(out.join("scores.csv")).unwrap();
    let labels = challenge.root.join("phases/test/truth/labels.csv");
    let kept_labels = dir.path().join("labels.csv");
    std::fs::rename(&labels, &kept_labels).unwrap();

    let (code, text) = podium(args![
        "rescore",
        &out,
        "--replace-official",
        "--leave-out-bad-truth"
    ]);
    assert_ne!(code, 0, "{text}");
    assert_eq!(std::fs::read(out.join("round.json")).unwrap(), plan);
    assert_eq!(std::fs::read(out.join("scores.csv")).unwrap(), scores);
    let replaced = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("replaced-"))
        .count();
    assert_eq!(replaced, 0, "a failed replacement keeps no folder");

    let compared = dir.path().join("compared");
    let (code, text) = podium(args!["rescore", &out, "--out", &compared]);
    assert_ne!(code, 0, "{text}");
    assert!(
        !compared.exists(),
        "the refused rescore left {}",
        compared.display()
    );
    std::fs::rename(&kept_labels, &labels).unwrap();
    let (code, text) = podium(args!["rescore", &out, "--out", &compared]);
    assert_eq!(code, 0, "{text}");
}
