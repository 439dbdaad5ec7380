//! What the runner benches share: a challenge of tiny cases, so that a round's time is the
//! runner's and the program's, not the images'.

use std::path::Path;

use podium::challenge::{Challenge, PhasePaths};

/// One binary-classification task on the `test` phase: the smallest valid challenge.
const CHALLENGE: &str = r#"
name = "bench-runner"
[[phases]]
name = "test"
[[tasks]]
name = "detection"
kind = "binary-classification"
prediction = "p"
truth = "label"
positive_class = "yes"
metrics = ["auc"]
primary = "auc"
"#;

/// A challenge of `cases` tiny cases (2×2×2 volumes, ids `case-0000`, ...) at `root`.
pub fn tiny_challenge(root: &Path, cases: usize) -> (Challenge, PhasePaths) {
    let input = root.join("phases/test/input");
    std::fs::create_dir_all(input.join("images")).unwrap();
    std::fs::write(root.join("challenge.toml"), CHALLENGE).unwrap();
    let mut csv = String::from("case_id\n");
    let tiny = ndarray::Array3::<i16>::zeros((2, 2, 2));
    for i in 0..cases {
        let id = format!("case-{i:04}");
        let image = input.join(format!("images/{id}.nii.gz"));
        podium::io::nifti::write_volume(&image, tiny.view(), [1.0; 3], 6).unwrap();
        csv += &format!("{id}\n");
    }
    std::fs::write(input.join("cases.csv"), csv).unwrap();
    let challenge = Challenge::load(root).unwrap();
    let paths = challenge.phase_paths("test", None).unwrap();
    (challenge, paths)
}
