use std::path::{Path, PathBuf};

use super::*;

fn parse(text: &str) -> Result<Challenge> {
    Challenge::parse(text, Path::new("ch/challenge.toml"), PathBuf::from("ch"))
}

const MINIMAL: &str = r#"
name = "mini"
[[phases]]
name = "dev"
[[tasks]]
name = "detection"
kind = "binary-classification"
prediction = "p"
truth = "diagnosis"
positive_class = "covid"
metrics = ["auc"]
primary = "auc"
"#;

#[test]
fn the_committed_demo_challenge_parses_with_its_five_tasks() {
    let c = parse(crate::demo::COVID19_CT_TOML).unwrap();
    let names: Vec<&str> = c.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "detection",
            "differential",
            "segmentation",
            "quantification",
            "staging"
        ]
    );
    assert_eq!(c.scoring.threshold, 0.5);
    assert_eq!(
        c.prediction_columns(),
        [
            "p_covid",
            "p_other_pneumonia",
            "p_normal",
            "involvement_pct",
            "stage"
        ]
    );
    assert_eq!(c.truth_columns(), ["diagnosis", "involvement_pct", "stage"]);
    assert_eq!(c.phase("test").unwrap().visibility, Visibility::Hidden);
}

#[test]
fn unknown_keys_are_rejected_with_the_file_line_and_key() {
    let text = MINIMAL.replace("primary = \"auc\"", "primary = \"auc\"\nprimery = \"auc\"");
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("ch/challenge.toml") && err.contains("primery") && err.contains("line 13"),
        "{err}"
    );
}

#[test]
fn a_metric_of_another_kind_names_the_task_and_the_allowed_metrics() {
    let err = parse(&MINIMAL.replace("[\"auc\"]", "[\"auc\", \"dice\"]"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("task #1 (\"detection\")")
            && err.contains("\"dice\" does not apply")
            && err.contains("allows: auc, sensitivity, specificity"),
        "{err}"
    );
    let err = parse(&MINIMAL.replace("primary = \"auc\"", "primary = \"sensitivity\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("must also be listed in `metrics`"), "{err}");
}

#[test]
fn missing_and_stray_keys_of_a_kind_are_reported_together() {
    let text = MINIMAL.replace("positive_class = \"covid\"", "levels = [\"0\", \"1\"]");
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("needs `positive_class`") && err.contains("`levels` does not apply"),
        "{err}"
    );
    assert!(err.starts_with("2 problems"), "{err}");
}

#[test]
fn settings_out_of_range_and_duplicate_names_are_errors() {
    let text = format!("{MINIMAL}\n[[tasks]]\nname = \"detection\"\nkind = \"regression\"\nprediction = \"x\"\ntruth = \"y\"\nvalue_range = [5.0, 1.0]\nmetrics = [\"mae\"]\nprimary = \"mae\"\n");
    let text = text.replace(
        "name = \"mini\"",
        "name = \"mini\"\n[scoring]\nthreshold = 1.5",
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("threshold = 1.5 must lie in [0, 1]"), "{err}");
    assert!(err.contains("the name is used by an earlier task"), "{err}");
    assert!(err.contains("low < high"), "{err}");
}

#[test]
fn a_missing_file_says_what_to_pass() {
    let err = Challenge::load(Path::new("/nonexistent/challenge"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/challenge/challenge.toml")
            || err.contains("/nonexistent/challenge"),
        "{err}"
    );
    assert!(err.contains("challenge folder"), "{err}");
}

#[test]
fn ranking_settings_are_checked_against_the_tasks() {
    let text = MINIMAL.replace(
        "name = \"mini\"",
        "name = \"mini\"\n[ranking]\nmethod = \"test-then-rank\"\nweights = { detection = 2, detecton = 1 }\nalpha = 1.5",
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains(
            "weights names task \"detecton\", which is not declared; the tasks are: detection"
        ),
        "{err}"
    );
    assert!(
        err.contains("alpha = 1.5 must lie strictly between 0 and 1"),
        "{err}"
    );
    let text = MINIMAL.replace(
        "name = \"mini\"",
        "name = \"mini\"\n[ranking]\nmethod = \"best\"",
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("mean-then-rank") && err.contains("method"),
        "{err}"
    );
    let c = parse(&MINIMAL.replace(
        "name = \"mini\"",
        "name = \"mini\"\n[ranking]\nmethod = \"rank-then-mean\"",
    ))
    .unwrap();
    assert_eq!(c.ranking.method, RankingMethod::RankThenMean);
    assert_eq!(c.ranking.bootstrap_resamples, 1000);
}

#[test]
fn a_split_needs_a_hidden_phase_and_a_fraction_between_0_and_1() {
    let text = MINIMAL.replace(
        "[[phases]]\nname = \"dev\"",
        "[[phases]]\nname = \"dev\"\nvisibility = \"public\"\npublic_fraction = 1.5",
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("public_fraction = 1.5 must lie strictly between 0 and 1"),
        "{err}"
    );
    assert!(err.contains("phase \"dev\" is public"), "{err}");
}

#[test]
fn a_cluster_table_configures_slurm_and_is_checked() {
    assert!(parse(MINIMAL).unwrap().cluster.is_none());
    let c = parse(&format!(
        "{MINIMAL}\n[cluster]\npartition = \"gpu\"\ncases_per_job = 4\nsbatch_args = [\"--qos=hackathon\"]\n"
    ))
    .unwrap();
    let cluster = c.cluster.unwrap();
    assert_eq!(cluster.scheduler, Scheduler::Slurm);
    assert_eq!(cluster.partition.as_deref(), Some("gpu"));
    assert_eq!((cluster.cases_per_job, cluster.resubmissions), (4, 3));
    let err = parse(&format!(
        "{MINIMAL}\n[cluster]\ncases_per_job = 0\nnode_backend = \"slurm\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("cases_per_job = 0") && err.contains("node_backend = \"slurm\""),
        "{err}"
    );
    let err = parse(&format!("{MINIMAL}\n[cluster]\nscheduler = \"pbs\"\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pbs"), "{err}");
}

/// A misspelt metric in one task is reported once: not also as its primary missing from
/// `metrics`, nor as `[ranking] weights` naming an undeclared task.
#[test]
fn an_unknown_metric_is_reported_once_without_the_errors_that_follow_from_it() {
    let text = MINIMAL.replace("[\"auc\"]", "[\"auk\"]").replace(
        "[[phases]]",
        "[ranking]\nweights = { detection = 1.0 }\n[[phases]]",
    );
    let err = parse(&text).unwrap_err();
    let Error::List(problems) = &err else {
        panic!("{err}");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("unknown metric \"auk\""),
        "{problems:?}"
    );
    // Also when `metrics` lists other, known names beside the misspelt one.
    let text = MINIMAL.replace("[\"auc\"]", "[\"auk\", \"sensitivity\"]");
    let err = parse(&text).unwrap_err().to_string();
    assert!(!err.contains("must also be listed"), "{err}");
}

#[test]
fn the_test_then_rank_rules_default_to_scipy_and_can_follow_challenger() {
    let default = parse(MINIMAL).unwrap();
    assert_eq!(default.ranking.significant_if, SignificanceRule::BelowAlpha);
    assert!(!default.ranking.wilcoxon_continuity_correction);
    let text = MINIMAL.replace(
        "name = \"mini\"",
        "name = \"mini\"\n[ranking]\nsignificant_if = \"p <= alpha\"\nwilcoxon_continuity_correction = true",
    );
    let challenger = parse(&text).unwrap();
    assert_eq!(
        challenger.ranking.significant_if,
        SignificanceRule::AtMostAlpha
    );
    assert!(challenger.ranking.wilcoxon_continuity_correction);
    // A p-value equal to alpha is a win under challengeR's rule only.
    assert!(SignificanceRule::AtMostAlpha.is_significant(0.05, 0.05));
    assert!(!SignificanceRule::BelowAlpha.is_significant(0.05, 0.05));
    let text = MINIMAL.replace(
        "name = \"mini\"",
        "name = \"mini\"\n[ranking]\nsignificant_if = \"p =< alpha\"",
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("p <= alpha"), "{err}");
}

#[test]
fn the_analysis_table_is_checked_with_the_file_named() {
    let c = parse(&format!(
        "{MINIMAL}[analysis]\nsubgroups = [\"site\"]\nmin_cases = 3\n"
    ))
    .unwrap();
    assert_eq!(c.analysis.subgroups, ["site"]);
    assert_eq!(
        (c.analysis.min_cases, c.analysis.min_class_support),
        (3, AnalysisSettings::default().min_class_support)
    );
    let error = parse(&format!(
        "{MINIMAL}[analysis]\nsubgroups = [\"site\", \"site\", \"case_id\"]\nmin_cases = 0\nmin_class_support = 0\n"
    ))
    .unwrap_err()
    .to_string();
    for expected in [
        "ch/challenge.toml: [analysis] subgroups names \"site\" twice",
        "\"case_id\"",
        "min_cases = 0",
        "min_class_support = 0",
    ] {
        assert!(error.contains(expected), "{expected}: {error}");
    }
    let typo = parse(&format!("{MINIMAL}[analysis]\nsubgroup = [\"site\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(typo.contains("unknown field `subgroup`"), "{typo}");
}
