//! The paired tests against a reference computation: scipy's Wilcoxon signed-rank test and
//! statsmodels' Holm correction, made once into tests/fixtures/ranking/wilcoxon_holm.json by
//! make_fixtures.py beside it (every branch of scipy's `method="auto"`).

use podium::ranking::significance::{holm, wilcoxon_greater, wilcoxon_greater_with_correction};

#[test]
fn wilcoxon_and_holm_match_scipy_and_statsmodels() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ranking/wilcoxon_holm.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let mut checked = 0;
    for group in fixture["groups"].as_array().unwrap() {
        let name = group["name"].as_str().unwrap();
        let mut p = Vec::new();
        for (k, pair) in group["pairs"].as_array().unwrap().iter().enumerate() {
            let (a, b) = (numbers(&pair[0]), numbers(&pair[1]));
            let (w, pk) = wilcoxon_greater(&a, &b).unwrap();
            let (w_ref, p_ref) = (
                group["statistic"][k].as_f64().unwrap(),
                group["p"][k].as_f64().unwrap(),
            );
            assert!(
                (w - w_ref).abs() < 1e-9,
                "{name} #{k}: W+ {w} vs scipy {w_ref}"
            );
            assert!(
                (pk - p_ref).abs() <= 1e-12 + 1e-9 * p_ref,
                "{name} #{k}: p {pk} vs scipy {p_ref}"
            );
            let (_, p_corrected) = wilcoxon_greater_with_correction(&a, &b, true).unwrap();
            let p_corrected_ref = group["p_continuity_corrected"][k].as_f64().unwrap();
            assert!(
                (p_corrected - p_corrected_ref).abs() <= 1e-12 + 1e-9 * p_corrected_ref,
                "{name} #{k}: continuity-corrected p {p_corrected} vs scipy {p_corrected_ref}"
            );
            p.push(pk);
            checked += 1;
        }
        for (k, (ours, reference)) in holm(&p).iter().zip(numbers(&group["holm"])).enumerate() {
            assert!(
                (ours - reference).abs() <= 1e-9 * reference.max(1e-12),
                "{name} holm #{k}: {ours} vs {reference}"
            );
        }
    }
    assert_eq!(checked, 28);
}

mod common;

use common::*;

/// A real round writes the analysis, its leaderboard follows the declared method, and
/// `--ranking-method` re-ranks a finished round without running anything.
#[test]
fn a_round_writes_its_ranking_analysis_and_the_method_can_be_overridden() {
    let (dir, challenge) = small_challenge(12);
    let subs = dir.path().join("subs");
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    let out = dir.path().join("out");
    let outcome = process_round(&challenge, &subs, &out);
    for file in [
        "methods",
        "significance",
        "rank_intervals",
        "bootstrap_ranks",
        "kendall_tau",
    ] {
        let rows = read_csv(&out.join(format!("ranking/{file}.csv")));
        assert!(!rows.is_empty(), "{file}.csv is empty");
    }
    let methods = read_csv(&out.join("ranking/methods.csv"));
    // (4 methods + a worst-level ranking per declared subgroup) x (5 tasks + consensus) x 2
    // submissions.
    let subgroups = challenge.analysis.subgroups.len();
    assert_eq!(subgroups, 2, "the template declares site and scanner");
    assert_eq!(methods.len(), (4 + subgroups) * 6 * 2);
    let kendall = read_csv(&out.join("ranking/kendall_tau.csv"));
    assert_eq!(kendall.len(), 1000 * 6, "one tau per resample and scope");
    let winner = &outcome.leaderboard[0];
    assert_eq!(winner.submission, "threshold-baseline");
    assert_eq!(
        outcome.analysis.rank(
            podium::ranking::analysis::RankingMethod::MeanThenRank,
            "consensus",
            "threshold-baseline"
        ),
        Some(1)
    );
    let significance = read_csv(&out.join("ranking/significance.csv"));
    let dice = significance
        .iter()
        .find(|r| r["task"] == "segmentation" && r["submission"] == "threshold-baseline")
        .unwrap();
    assert_eq!(dice["test"], "wilcoxon");
    assert_eq!(dice["significant"], "true", "{dice:?}");

    let official = std::fs::read(out.join("leaderboard.csv")).unwrap();
    let podium = || std::process::Command::new(env!("CARGO_BIN_EXE_podium"));
    // Another method is a comparison: never into the round's folder, never over its result.
    for target in [vec!["--replace-official".to_string()], vec![]] {
        let refused = podium()
            .args(["rescore", "--ranking-method", "test-then-rank"])
            .args(&target)
            .arg(&out)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && said.contains("--out"),
            "{target:?}: {said}"
        );
    }
    let compared = dir.path().join("compared");
    let rescored = podium()
        .args(["rescore", "--ranking-method", "test-then-rank", "--out"])
        .arg(&compared)
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&rescored.stdout);
    assert!(
        rescored.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&rescored.stderr)
    );
    assert!(text.contains("each task ranked test-then-rank"), "{text}");
    let method = |d: &std::path::Path| {
        let receipt: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("run.json")).unwrap()).unwrap();
        receipt["ranking"]["method"].clone()
    };
    assert_eq!(method(&compared), "test-then-rank");
    assert_eq!(method(&out), challenge.ranking.method.name());
    assert_eq!(
        std::fs::read(out.join("leaderboard.csv")).unwrap(),
        official
    );

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .args([
            "rescore",
            "--replace-official",
            "--ranking-method",
            "best-guess",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && said.contains("mean-then-rank"),
        "{said}"
    );
}

/// Under median-then-rank the leaderboard shows what it ranks: the median of each per-case
/// metric (labelled so, with its order-statistic CI), not the mean; a whole-set metric (AUC)
/// stays as it is.
#[test]
fn median_then_rank_shows_the_medians_it_ranks() {
    let (dir, challenge) = small_challenge(12);
    let subs = dir.path().join("subs");
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    let out = dir.path().join("out");
    process_round(&challenge, &subs, &out);
    let compared = dir.path().join("median");
    let rescored = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["rescore", "--ranking-method", "median-then-rank", "--out"])
        .arg(&compared)
        .arg(&out)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&rescored.stdout);
    assert!(rescored.status.success(), "{printed}");
    assert!(
        printed.contains("segmentation median dice") && printed.contains("detection auc"),
        "{printed}"
    );
    let board = read_csv(&compared.join("leaderboard.csv"));
    let scores = read_csv(&compared.join("scores.csv"));
    let metrics = read_csv(&compared.join("metrics.csv"));
    let mut differs = false;
    for row in &board {
        let name = &row["submission"];
        let mut dice: Vec<f64> = scores
            .iter()
            .filter(|r| {
                &r["submission"] == name && r["task"] == "segmentation" && r["metric"] == "dice"
            })
            .map(|r| r["value"].parse().unwrap())
            .collect();
        dice.sort_by(f64::total_cmp);
        let n = dice.len();
        assert_eq!(n, 12);
        let median = (dice[n / 2 - 1] + dice[n / 2]) / 2.0;
        let shown: f64 = row["segmentation.median_dice"].parse().unwrap();
        // leaderboard.csv rounds to six decimals, and a mean of two values may need a seventh
        // (the demo data with sites gives random-guess a median of 0.0357575).
        assert!((shown - median).abs() < 1e-6, "{name}: {shown} vs {median}");
        // n = 12: the 3rd and 10th order statistics (P(B <= 2) = 1.9 %).
        let low: f64 = row["segmentation.median_dice_ci_lower"].parse().unwrap();
        let high: f64 = row["segmentation.median_dice_ci_upper"].parse().unwrap();
        assert_eq!((low, high), (dice[2], dice[9]), "{name}");
        let mean = metrics
            .iter()
            .find(|m| {
                &m["submission"] == name && m["task"] == "segmentation" && m["metric"] == "dice"
            })
            .unwrap()["value"]
            .parse::<f64>()
            .unwrap();
        differs |= (mean - median).abs() > 1e-6;
        // AUC is a whole-set metric: the same under either method.
        let auc = metrics
            .iter()
            .find(|m| &m["submission"] == name && m["task"] == "detection" && m["metric"] == "auc")
            .unwrap()["value"]
            .clone();
        assert_eq!(row["detection.auc"], auc);
    }
    assert!(
        differs,
        "a round where mean and median coincide tests nothing"
    );
    let markdown = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["leaderboard", "--format", "markdown"])
        .arg(&compared)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&markdown.stdout).contains("segmentation median dice"),
        "{}",
        String::from_utf8_lossy(&markdown.stdout)
    );
}

/// `podium leaderboard` exports a stored leaderboard in every format, with hostile team names
/// kept as text.
#[test]
fn the_leaderboard_exports_in_every_format_and_escapes_team_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leaderboard.csv"),
        "rank,submission,team,baseline,mean_task_rank,detection.auc,detection.auc_ci_lower,detection.auc_ci_upper,detection.rank,cases_ok,cases_not_ok\n\
         1,good,\"<script>alert(1)</script> | *x*\",false,1,0.9,0.8,0.95,1,10,0\n\
         2,floor,Examples,true,2,,,,2,8,2\n",
    )
    .unwrap();
    let export = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
            .args(["leaderboard", "--format", format])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let markdown = export("markdown");
    assert!(markdown.contains("| 1 | good | &lt;script&gt;alert\\(1\\)&lt;/script&gt; \\| \\*x\\* | 0.900 [0.800, 0.950] | 1.00 |"), "{markdown}");
    assert!(
        markdown.contains("| 2 | floor (baseline) | Examples | undefined | 2.00 |"),
        "{markdown}"
    );
    let json: serde_json::Value = serde_json::from_str(&export("json")).unwrap();
    assert_eq!(
        json[0]["team"], "<script>alert(1)</script> | *x*",
        "JSON keeps the text, escaped by JSON itself"
    );
    assert_eq!(json[0]["tasks"][0]["ci"][1], 0.95);
    assert_eq!(json[1]["cases_not_ok"], 2);
    assert!(json[1]["tasks"][0]["value"].is_null());
    let table = export("table");
    assert!(
        table.lines().nth(2).unwrap().starts_with("1     good"),
        "{table}"
    );
    // The same table, written again by podium's CSV writer (which quotes only where needed).
    let cells = |text: &str| {
        let t = podium::io::table::Table::parse(text.as_bytes(), dir.path()).unwrap();
        let mut rows = vec![t.headers];
        rows.extend(t.rows.into_iter().map(|r| r.fields));
        rows
    };
    assert_eq!(
        cells(&export("csv")),
        cells(&std::fs::read_to_string(dir.path().join("leaderboard.csv")).unwrap())
    );
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["leaderboard", "/nonexistent/run"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && said.contains("pass the folder of a finished"),
        "{said}"
    );
}

/// Baselines are shown beside the teams but never take a rank number, so an example cannot
/// push a team down; the team ranks first even when a baseline scores better (where the
/// baseline then stands is the next test's).
#[test]
fn baselines_are_shown_but_not_ranked_beside_team_submissions() {
    let (dir, challenge) = small_challenge(6);
    let subs = dir.path().join("subs");
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    let team = binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    make_team_submission(&team);
    let out = dir.path().join("out");
    let outcome = process_round(&challenge, &subs, &out);
    let board = &outcome.leaderboard;
    let find = |name: &str| board.iter().find(|r| r.submission == name).unwrap();
    assert_eq!(find("random-guess").rank, Some(1));
    assert_eq!(find("threshold-baseline").rank, None);
    assert!(find("threshold-baseline")
        .tasks
        .iter()
        .all(|t| t.rank.is_none() && t.value.is_some()));
    assert_eq!(
        outcome.analysis.submissions,
        vec!["random-guess".to_string()]
    );
    let rows = read_csv(&out.join("leaderboard.csv"));
    let baseline = rows
        .iter()
        .find(|r| r["submission"] == "threshold-baseline")
        .unwrap();
    assert_eq!(
        (baseline["rank"].as_str(), baseline["baseline"].as_str()),
        ("", "true")
    );
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["leaderboard"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("-     threshold-baseline (baseline)")),
        "{text}"
    );
}

/// Kaggle-style splits: a round's live leaderboard scores the public cases only, and
/// `podium leaderboard --final` scores the others, so together they cover the phase once.
#[test]
fn the_live_leaderboard_shows_the_public_split_and_final_reveals_the_private_one() {
    let (dir, challenge) = small_challenge(10);
    let toml = challenge.root.join("challenge.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert_eq!(text.matches("visibility = \"hidden\"").count(), 1);
    std::fs::write(
        &toml,
        text.replace(
            "visibility = \"hidden\"",
            "visibility = \"hidden\"\npublic_fraction = 0.3",
        ),
    )
    .unwrap();
    let challenge = podium::challenge::Challenge::load(&challenge.root).unwrap();
    let subs = dir.path().join("subs");
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    let out = dir.path().join("out");
    let outcome = process_round(&challenge, &subs, &out);
    let all_cases = truth_rows(&challenge, "test").len();
    assert_eq!(all_cases, 10);
    assert_eq!(
        (outcome.scores.cases, outcome.scores.phase_cases),
        (3, 10),
        "30% of 10 cases"
    );
    let case_ids = |file: &std::path::Path| -> std::collections::BTreeSet<String> {
        read_csv(file)
            .into_iter()
            .map(|r| r["case_id"].clone())
            .collect()
    };
    let public = case_ids(&out.join("scores.csv"));
    assert_eq!(public.len(), 3);
    assert_eq!(read_csv(&out.join("runs.csv")).len(), 10, "every case ran");
    let receipt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        (
            receipt["selection"].as_str(),
            receipt["cases_scored"].as_u64()
        ),
        (Some("public"), Some(3))
    );

    let reveal = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["leaderboard", "--final"])
        .arg(&out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&reveal.stdout);
    assert!(
        reveal.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&reveal.stderr)
    );
    assert!(
        said.contains("FINAL, private split: 7 of 10 cases"),
        "{said}"
    );
    let private = case_ids(&out.join("final/scores.csv"));
    assert_eq!(private.len(), 7);
    assert!(public.is_disjoint(&private));
    assert!(
        out.join("final/leaderboard.csv").is_file()
            && out.join("final/ranking/methods.csv").is_file()
    );

    // The same seed gives the same split; a splits.csv in the truth folder overrides it.
    let replace = podium::pipeline::RescoreOptions {
        target: podium::pipeline::RescoreTarget::ReplaceOfficial,
        ranking_method: None,
        allow_incomplete: false,
        leave_out_bad_truth: false,
    };
    let rescored = podium::pipeline::rescore(&out, &replace).unwrap();
    // What --replace-official moves aside is everything a result writes.
    for file in &rescored.files {
        let first = file
            .strip_prefix(&out)
            .unwrap()
            .components()
            .next()
            .unwrap();
        let name = first.as_os_str().to_str().unwrap();
        assert!(
            podium::pipeline::OFFICIAL_RESULT.contains(&name),
            "{name} is not in OFFICIAL_RESULT"
        );
    }
    assert_eq!(case_ids(&out.join("scores.csv")), public);
    let chosen: Vec<String> = truth_rows(&challenge, "test")
        .iter()
        .take(4)
        .map(|r| r.0.clone())
        .collect();
    let mut splits = String::from("case_id,split\n");
    for (i, (case, ..)) in truth_rows(&challenge, "test").iter().enumerate() {
        splits += &format!("{case},{}\n", if i < 4 { "public" } else { "private" });
    }
    std::fs::write(
        challenge
            .phase_paths("test", None)
            .unwrap()
            .truth
            .join("splits.csv"),
        splits,
    )
    .unwrap();
    podium::pipeline::rescore(&out, &replace).unwrap();
    assert_eq!(
        case_ids(&out.join("scores.csv")),
        chosen.into_iter().collect()
    );
}

/// A baseline stands at its place among the teams, without a rank number, and a team below it
/// is never announced as a plain winner; a team above it is.
#[test]
fn baselines_stand_at_their_place_and_a_team_below_the_best_baseline_is_no_plain_winner() {
    let (dir, challenge) = small_challenge(12);
    let mut team_first_seen = Vec::new();
    for (team, baseline) in [
        ("random-guess", "threshold-baseline"),
        ("threshold-baseline", "random-guess"),
    ] {
        let subs = dir.path().join(format!("subs-{team}"));
        binary_submission(&subs, team, &workspace_binary(team));
        make_team_submission(&subs.join(team));
        binary_submission(&subs, baseline, &workspace_binary(baseline));
        let out = dir.path().join(format!("out-{team}"));
        let outcome = process_round(&challenge, &subs, &out);
        let team_place = outcome.analysis.place("consensus", team).unwrap();
        let baseline_place = outcome.analysis.place("consensus", baseline).unwrap();
        let team_first = team_place <= baseline_place;
        team_first_seen.push(team_first);
        let order: Vec<(&str, Option<usize>)> = outcome
            .leaderboard
            .iter()
            .map(|r| (r.submission.as_str(), r.rank))
            .collect();
        let expected = if team_first {
            [(team, Some(1)), (baseline, None)]
        } else {
            [(baseline, None), (team, Some(1))]
        };
        assert_eq!(order, expected, "{team} against {baseline}");
        let csv: Vec<(String, String)> = read_csv(&out.join("leaderboard.csv"))
            .into_iter()
            .map(|r| (r["submission"].clone(), r["rank"].clone()))
            .collect();
        let shown: Vec<(String, String)> = expected
            .iter()
            .map(|(s, r)| (s.to_string(), r.map_or(String::new(), |k| k.to_string())))
            .collect();
        assert_eq!(csv, shown);
        let report = std::fs::read_to_string(out.join("report.html")).unwrap();
        let summary = std::fs::read_to_string(out.join("report.md")).unwrap();
        let caveats = podium::report::terminal::ranking_caveats(&outcome.analysis).join("\n");
        if team_first {
            assert!(report.contains(&format!("Winner: <strong>{team}</strong>")));
            assert!(!caveats.contains("NO TEAM BEATS"), "{caveats}");
        } else {
            let sentence = format!("NO TEAM BEATS THE BEST BASELINE, {baseline}");
            assert!(caveats.contains(&sentence), "{caveats}");
            assert!(report.contains(&sentence) && summary.contains(&sentence));
            assert!(report.contains("No winner above the baseline"));
            assert!(!report.contains("Winner:") && !summary.contains("Winner:"));
        }
        // The tasks the sentence names are exactly those where no team places above it.
        let verdict = outcome.analysis.baseline_verdict();
        for task in &outcome.analysis.tasks {
            let beaten =
                outcome.analysis.place(task, team) < outcome.analysis.place(task, baseline);
            let named = verdict
                .as_ref()
                .is_some_and(|v| v.unbeaten_tasks.contains(task));
            assert_eq!(named, !beaten, "{task}");
        }
    }
    assert!(
        team_first_seen.contains(&true) && team_first_seen.contains(&false),
        "one round has the team above the baseline and the other below it"
    );
}
