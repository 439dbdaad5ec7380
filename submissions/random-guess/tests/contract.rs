//! The submission honours the data contract (docs/contract.md): run on a generated phase as a
//! batch, its output scores without a single problem. Building this test also builds the
//! binary into the workspace's target folder, where podium's own demo test finds it.

use podium::challenge::Challenge;
use podium::demo::{GenerationStamp, Size};

#[test]
fn the_output_of_a_whole_phase_scores_without_problems() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("challenge");
    podium::demo::init_covid19_ct(&root, &GenerationStamp::new(4, Size::Small, 5), &|_| {})
        .unwrap();
    let challenge = Challenge::load(&root).unwrap();
    let phase = challenge.phase_paths("dev", None).unwrap();
    let output = dir.path().join("output");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_random-guess"))
        .arg(&phase.input)
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success());
    let round = podium::scoring::score_folder(&challenge, &phase, &output, "random-guess").unwrap();
    assert!(round.problems.is_empty(), "{:#?}", round.problems);
    let scored: std::collections::BTreeSet<(&str, &str)> = round
        .case_scores
        .iter()
        .map(|c| (c.task.as_str(), c.case_id.as_str()))
        .collect();
    assert_eq!(
        scored.len(),
        4 * challenge.tasks.len(),
        "every case scored on every task"
    );
}
