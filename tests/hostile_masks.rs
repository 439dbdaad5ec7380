//! Masks written to hurt podium: a team controls every byte of its NIfTI files. Each hostile
//! mask must cost little, count as an invalid case with the worst value and a problem naming
//! the case, and leave the other cases and the other submissions of the round as they were.
//! The files are generated here, small on disk whatever they claim or expand to.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use podium::challenge::split::CaseSelection;
use podium::challenge::Challenge;
use podium::results::{CaseStatus, RoundScores};
use podium::scoring::{score_folder, score_round, CaseBound, ScoringInput};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The 352 bytes (header and extension flag) of a mask podium wrote, claiming `shape` of NIfTI
/// datatype `code` instead.
fn forged_header(model: &Path, shape: [u16; 3], code: i16, bits: i16) -> Vec<u8> {
    let mut header = vec![0u8; 352];
    flate2::read::GzDecoder::new(std::fs::File::open(model).unwrap())
        .read_exact(&mut header)
        .unwrap();
    for (i, n) in shape.iter().enumerate() {
        header[42 + 2 * i..44 + 2 * i].copy_from_slice(&n.to_le_bytes());
    }
    header[70..72].copy_from_slice(&code.to_le_bytes());
    header[72..74].copy_from_slice(&bits.to_le_bytes());
    header
}

/// The truth masks of the test phase: (case id, path, voxels of label 1).
fn truth_masks(challenge: &Challenge) -> Vec<(String, std::path::PathBuf, u64)> {
    let phase = challenge.phase_paths("test", None).unwrap();
    truth_rows(challenge, "test")
        .into_iter()
        .map(|(id, ..)| {
            let path = phase.truth_mask("masks", &id);
            let lesion = podium::io::nifti::read_sparse_labels(&path)
                .unwrap()
                .count(1);
            (id, path, lesion)
        })
        .collect()
}

/// Every per-case score and aggregate of one submission, as comparable text.
fn scores_of(round: &RoundScores, submission: &str) -> Vec<String> {
    let cases = round
        .case_scores
        .iter()
        .filter(|c| c.submission == submission)
        .map(|c| {
            format!(
                "{} {} {} {:?} {:?}",
                c.task, c.case_id, c.metric, c.value, c.status
            )
        });
    let aggregates = round
        .aggregates
        .iter()
        .filter(|a| a.submission == submission)
        .map(|a| {
            format!(
                "{} {} {:?} {:?} {:?} {}",
                a.task, a.metric, a.value, a.ci_lower, a.ci_upper, a.n
            )
        });
    cases.chain(aggregates).collect()
}

fn segmentation_score(
    round: &RoundScores,
    submission: &str,
    case_id: &str,
    metric: &str,
) -> (Option<f64>, CaseStatus) {
    let c = round
        .case_scores
        .iter()
        .find(|c| {
            c.submission == submission
                && c.task == "segmentation"
                && c.case_id == case_id
                && c.metric == metric
        })
        .unwrap_or_else(|| panic!("no {metric} for {submission}/{case_id}"));
    (c.value, c.status)
}

/// Asserts that `case_id` of `submission` is invalid, with the worst segmentation values and a
/// problem containing `needle` that names the mask. `truth` is the case's truth mask, on the
/// image's grid.
fn assert_hostile(
    round: &RoundScores,
    submission: &str,
    case_id: &str,
    truth: &Path,
    needle: &str,
) {
    let geometry = podium::io::nifti::read_geometry(truth).unwrap();
    // No worst_distance_mm in the template: the image diagonal.
    let diagonal = (0..3)
        .map(|i| (geometry.shape[i] as f64 * geometry.spacing_mm[i]).powi(2))
        .sum::<f64>()
        .sqrt();
    for (metric, worst) in [
        ("dice", 0.0),
        ("iou", 0.0),
        ("nsd", 0.0),
        ("hd95", diagonal),
        ("assd", diagonal),
    ] {
        assert_eq!(
            segmentation_score(round, submission, case_id, metric),
            (Some(worst), CaseStatus::Invalid),
            "{case_id}: {metric}"
        );
    }
    let problems: Vec<&str> = round
        .problems
        .iter()
        .filter(|p| p.submission == submission && p.case_id == case_id)
        .map(|p| p.problem.as_str())
        .collect();
    let mask = format!("masks/{case_id}.nii.gz");
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&mask) && p.contains(needle)),
        "{case_id}: no problem naming {mask} with {needle:?} in {problems:?}"
    );
}

fn input<'a>(name: &str, dir: &'a Path) -> ScoringInput<'a> {
    ScoringInput {
        name: name.to_string(),
        team: name.to_string(),
        baseline: false,
        predictions_dir: dir,
        runs: None,
    }
}

/// A checkerboard of label 1 on the grid of `truth`: every voxel of it is a surface voxel.
fn checkerboard(truth: &Path, out: &Path) {
    let [nx, ny, nz] = podium::io::nifti::read_geometry(truth).unwrap().shape;
    let volume = ndarray::Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| ((x + y + z) % 2) as u8);
    podium::io::nifti::write_volume(out, volume.view(), [1.0; 3], 6).unwrap();
}

#[test]
fn hostile_masks_are_invalid_cases_and_leave_the_round_and_the_other_submission_alone() {
    let (dir, challenge) = small_challenge(8);
    let phase = challenge.phase_paths("test", None).unwrap();
    let truth = truth_masks(&challenge);
    // The checkerboard needs a lesion in the truth: against an empty truth the distances are
    // the worst without being computed.
    let lesion = truth
        .iter()
        .position(|t| t.2 > 0)
        .expect("a case with a lesion");
    let others: Vec<usize> = (0..truth.len()).filter(|&i| i != lesion).collect();
    let [bomb, plane, tail] = [others[0], others[1], others[2]];

    let good = dir.path().join("good");
    perfect_predictions(&challenge, "test", &good);
    let hostile = dir.path().join("hostile");
    perfect_predictions(&challenge, "test", &hostile);
    let mask = |i: usize| hostile.join("masks").join(format!("{}.nii.gz", truth[i].0));
    let model = &truth[bomb].1;
    // 65535^3 float64 voxels (2.25e15 bytes) claimed by a file of about a hundred bytes.
    std::fs::write(mask(bomb), gzip(&forged_header(model, [65535; 3], 64, 64))).unwrap();
    // One 65535 x 32768 plane of uint8 (2 GiB) over a stream of 2 MiB of zeros.
    let mut bytes = forged_header(model, [65535, 32768, 1], 2, 8);
    bytes.resize(bytes.len() + (2 << 20), 0);
    std::fs::write(mask(plane), gzip(&bytes)).unwrap();
    // The truth's own mask followed by 64 MiB of zeros, as 64 more gzip members of 1 MiB (what
    // `cat` of two .gz files makes; 64 KiB on disk).
    let mut padded = std::fs::read(&truth[tail].1).unwrap();
    let zeros = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..64 {
        padded.extend_from_slice(&zeros);
    }
    std::fs::write(mask(tail), padded).unwrap();
    checkerboard(&truth[lesion].1, &mask(lesion));

    let alone = score_folder(&challenge, &phase, &good, "good").unwrap();
    let round = score_round(
        &challenge,
        &phase,
        &[input("good", &good), input("hostile", &hostile)],
        CaseSelection::All,
    )
    .unwrap();

    assert_eq!(scores_of(&round, "good"), scores_of(&alone, "good"));
    assert!(round.problems.iter().all(|p| p.submission == "hostile"));
    for (case, problem) in [
        (bomb, "has shape [65535, 65535, 65535], the image has"),
        (plane, "has shape [65535, 32768, 1], the image has"),
        (tail, "holds more voxel data than its header declares"),
        (lesion, "exceeded podium's per-case bound: label 1 has"),
    ] {
        assert_hostile(&round, "hostile", &truth[case].0, &truth[case].1, problem);
    }
    // The team's other cases score as the truth does.
    for &i in &others[3..] {
        assert_eq!(
            segmentation_score(&round, "hostile", &truth[i].0, "dice"),
            (Some(1.0), CaseStatus::Ok)
        );
    }
    assert_eq!(
        round
            .problems
            .iter()
            .filter(|p| p.submission == "hostile")
            .count(),
        4,
        "{:?}",
        round.problems
    );
}

#[test]
fn a_header_bomb_fails_from_its_header_alone() {
    let (dir, challenge) = small_challenge(3);
    let truth = truth_masks(&challenge);
    let bomb = dir.path().join("bomb.nii.gz");
    std::fs::write(&bomb, gzip(&forged_header(&truth[0].1, [65535; 3], 64, 64))).unwrap();
    let shape = podium::io::nifti::read_geometry(&truth[0].1).unwrap().shape;
    let start = Instant::now();
    let err = podium::io::nifti::read_sparse_labels_expecting(&bomb, shape).unwrap_err();
    // Reading 150 bytes of header: milliseconds, with a wide margin for a loaded machine.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.to_string()
            .contains("write the mask on the image's grid"),
        "{err}"
    );
}

#[test]
fn a_case_over_the_step_bound_is_invalid_and_the_bound_leaves_real_masks_alone() {
    let (dir, mut challenge) = small_challenge(6);
    let phase = challenge.phase_paths("test", None).unwrap();
    let truth = truth_masks(&challenge);
    let lesion = truth
        .iter()
        .position(|t| t.2 > 0)
        .expect("a case with a lesion");
    let good = dir.path().join("good");
    perfect_predictions(&challenge, "test", &good);
    let alone = score_folder(&challenge, &phase, &good, "good").unwrap();

    // Sparse voxel noise, far below the surface bound but far from the truth's lesion, where
    // distances are the most work.
    let noisy = dir.path().join("noisy");
    perfect_predictions(&challenge, "test", &noisy);
    let [nx, ny, nz] = podium::io::nifti::read_geometry(&truth[lesion].1)
        .unwrap()
        .shape;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise = ndarray::Array3::from_shape_fn((nz, ny, nx), |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        u8::from(state % 100 < 3)
    });
    let mask = noisy
        .join("masks")
        .join(format!("{}.nii.gz", truth[lesion].0));
    podium::io::nifti::write_volume(&mask, noise.view(), [1.0; 3], 6).unwrap();

    // The default bound lets the noise be scored: it is a bad mask, not an expensive one.
    let round = score_folder(&challenge, &phase, &noisy, "noisy").unwrap();
    assert_eq!(
        segmentation_score(&round, "noisy", &truth[lesion].0, "dice").1,
        CaseStatus::Ok
    );

    // 200000 steps per label, about a hundredth of the default on this grid, binds on the noise
    // (which takes more than that) and still not on the truth's own masks (a few thousand).
    challenge.scoring.case_bound = CaseBound {
        steps_per_voxel: 0,
        min_steps: 200_000,
        ..CaseBound::default()
    };
    let round = score_round(
        &challenge,
        &phase,
        &[input("good", &good), input("noisy", &noisy)],
        CaseSelection::All,
    )
    .unwrap();
    assert_eq!(scores_of(&round, "good"), scores_of(&alone, "good"));
    assert_hostile(
        &round,
        "noisy",
        &truth[lesion].0,
        &truth[lesion].1,
        "steps podium allows on this image",
    );
}
