//! `podium validate` and `podium init` through the command line, as an organizer uses them.

mod common;

use std::process::Command;

use common::*;

fn podium(args: &[&str]) -> (i32, String) {
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

#[test]
fn init_generates_a_challenge_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("c");
    let (code, text) = podium(&[
        "init",
        "--template",
        "covid19-ct",
        root.to_str().unwrap(),
        "--cases",
        "4",
        "--seed",
        "3",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("checked phase test: 4 cases, inputs and truth") && text.contains("valid"),
        "{text}"
    );
    let labels = std::fs::read_to_string(root.join("phases/dev/truth/labels.csv")).unwrap();
    assert!(
        labels.starts_with("case_id,diagnosis,involvement_pct,stage\n"),
        "{labels}"
    );
    let (code, text) = podium(&["init", "--template", "covid19-mri", root.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        text.contains("unknown template \"covid19-mri\"; available: covid19-ct"),
        "{text}"
    );
}

#[test]
fn validate_names_the_file_line_and_case_of_every_finding() {
    let (_dir, challenge) = small_challenge(5);
    let test = challenge.root.join("phases/test");
    let labels = test.join("truth/labels.csv");
    let text = std::fs::read_to_string(&labels).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let dropped = lines.remove(5); // the last case loses its truth
    let dropped_id = dropped.split(',').next().unwrap().to_string();
    lines[1] = lines[1]
        .replacen(",covid,", ",flu,", 1)
        .replacen(",normal,", ",flu,", 1)
        .replacen(",other_pneumonia,", ",flu,", 1);
    std::fs::write(&labels, lines.join("\n") + "\n").unwrap();
    let first_id = lines[1].split(',').next().unwrap().to_string();
    let second_id = lines[2].split(',').next().unwrap().to_string();
    std::fs::write(
        test.join(format!("input/images/{second_id}.nii.gz")),
        b"not a volume",
    )
    .unwrap();
    podium::io::nifti::write_volume(
        &test.join(format!("truth/masks/{first_id}.nii.gz")),
        ndarray::Array3::<u8>::zeros((2, 2, 2)).view(),
        [1.0; 3],
        6,
    )
    .unwrap();

    let (code, text) = podium(&[
        "validate",
        challenge.root.to_str().unwrap(),
        "--phase",
        "test",
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("labels.csv:2: diagnosis = \"flu\" for case {first_id}: expected one of covid, other_pneumonia, normal")), "{text}");
    assert!(
        text.contains(&format!("no truth for 1 case of cases.csv: {dropped_id}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("case {second_id}: image:"))
            && text.contains("not a readable NIfTI-1 header"),
        "{text}"
    );
    assert!(
        text.contains(&format!("case {first_id}: truth mask"))
            && text.contains("has shape [2, 2, 2] but the image has [64, 64, 48]"),
        "{text}"
    );

    std::fs::write(
        test.join("input/cases.csv"),
        format!("case_id\n{first_id}\n../etc\n{first_id}\n"),
    )
    .unwrap();
    let (code, text) = podium(&[
        "validate",
        challenge.root.to_str().unwrap(),
        "--phase",
        "test",
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("cases.csv:3: case id \"../etc\" must be")
            && text.contains(&format!(
                "cases.csv:4: case id \"{first_id}\" repeats line 2"
            )),
        "{text}"
    );
}

#[test]
fn a_hidden_phase_without_its_truth_is_a_note_and_the_truth_can_come_from_elsewhere() {
    let (dir, challenge) = small_challenge(3);
    let elsewhere = dir.path().join("vault");
    std::fs::rename(challenge.root.join("phases/test/truth"), &elsewhere).unwrap();
    let (code, text) = podium(&["validate", challenge.root.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("note: phase \"test\": no truth folder") && text.contains("pass --truth DIR"),
        "{text}"
    );
    let (code, text) = podium(&[
        "validate",
        challenge.root.to_str().unwrap(),
        "--phase",
        "test",
        "--truth",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("checked phase test: 3 cases, inputs and truth"),
        "{text}"
    );
}

/// On a fresh clone the demo challenge has no generated data: `validate` says what to run for
/// each phase, not only that a file cannot be read.
#[test]
fn validate_before_any_data_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let challenge = dir.path().join("fresh");
    std::fs::create_dir_all(&challenge).unwrap();
    std::fs::write(
        challenge.join("challenge.toml"),
        podium::demo::COVID19_CT_TOML,
    )
    .unwrap();
    let (code, out) = podium(&["validate", challenge.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for phase in ["dev", "test"] {
        assert!(
            out.contains(&format!("phase \"{phase}\" has no data yet"))
                && out.contains(&format!(
                    "podium init --template covid19-ct {}",
                    challenge.display()
                )),
            "{out}"
        );
    }
}

/// `podium init` names the new challenge after its folder, or `--name`, and its comments point
/// at that folder, not at the demo's.
#[test]
fn init_names_the_challenge_after_its_folder_or_name() {
    let dir = tempfile::tempdir().unwrap();
    let by_folder = dir.path().join("lung-study");
    let (code, out) = podium(&["init", by_folder.to_str().unwrap(), "--cases", "3"]);
    assert_eq!(code, 0, "{out}");
    let toml = std::fs::read_to_string(by_folder.join("challenge.toml")).unwrap();
    assert!(toml.contains("name = \"lung-study\""), "{toml}");
    assert!(!toml.contains("challenges/covid19-ct"), "{toml}");
    assert!(toml.contains(&by_folder.display().to_string()), "{toml}");
    let challenge = podium::challenge::Challenge::load(&by_folder).unwrap();
    assert_eq!(challenge.name, "lung-study");

    let named = dir.path().join("other");
    let (code, out) = podium(&[
        "init",
        named.to_str().unwrap(),
        "--cases",
        "3",
        "--name",
        "ct-2027",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        podium::challenge::Challenge::load(&named).unwrap().name,
        "ct-2027"
    );
}
