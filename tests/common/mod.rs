//! Shared fixtures: a small generated challenge, predictions derived from its truth, and
//! submissions written as shell scripts.
#![allow(dead_code)]

pub mod components;
pub mod docker_images;
pub mod server;

#[allow(unused_imports)]
pub use components::*;

use std::path::{Path, PathBuf};

use podium::challenge::Challenge;
use podium::demo::{GenerationStamp, Size};
use podium::io::table::Table;

/// A small demo challenge (`cases` per phase) in a fresh temporary folder.
pub fn small_challenge(cases: usize) -> (tempfile::TempDir, Challenge) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("covid19-ct");
    podium::demo::init_covid19_ct(
        &root,
        &GenerationStamp::new(cases, Size::Small, 11),
        &|_| {},
    )
    .unwrap();
    let challenge = Challenge::load(&root).unwrap();
    (dir, challenge)
}

/// Replaces the `[limits]` table of a challenge and reloads it.
pub fn with_limits(challenge: &Challenge, limits: &str) -> Challenge {
    let toml = challenge.root.join("challenge.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let start = text.find("[limits]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    std::fs::write(
        &toml,
        format!("{}[limits]\n{limits}{}", &text[..start], &text[end..]),
    )
    .unwrap();
    Challenge::load(&challenge.root).unwrap()
}

/// The truth rows of a phase: (case_id, diagnosis, involvement_pct, stage).
pub fn truth_rows(challenge: &Challenge, phase: &str) -> Vec<(String, String, String, String)> {
    let paths = challenge.phase_paths(phase, None).unwrap();
    let t = Table::read(&paths.labels_csv()).unwrap();
    t.rows
        .iter()
        .map(|r| {
            (
                r.fields[0].clone(),
                r.fields[1].clone(),
                r.fields[2].clone(),
                r.fields[3].clone(),
            )
        })
        .collect()
}

/// A predictions folder that repeats the truth: one-hot probabilities, exact involvement and
/// stage, and the truth masks.
pub fn perfect_predictions(challenge: &Challenge, phase: &str, dir: &Path) {
    let paths = challenge.phase_paths(phase, None).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    let mut csv =
        String::from("case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage\n");
    for (id, diagnosis, involvement, stage) in truth_rows(challenge, phase) {
        let p = |d: &str| if diagnosis == d { "1" } else { "0" };
        csv += &format!(
            "{id},{},{},{},{involvement},{stage}\n",
            p("covid"),
            p("other_pneumonia"),
            p("normal")
        );
        std::fs::copy(
            paths.truth_mask("masks", &id),
            dir.join("masks").join(format!("{id}.nii.gz")),
        )
        .unwrap();
    }
    std::fs::write(dir.join("predictions.csv"), csv).unwrap();
}

/// Writes a submission whose program is the given bash script body. The script gets the input
/// and output folders as $1 and $2.
pub fn script_submission(parent: &Path, name: &str, body: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("predict.sh");
    std::fs::write(&script, format!("#!/bin/bash\nset -u\nIN=\"$1\"; OUT=\"$2\"\nCASE=$(tail -n 1 \"$IN/cases.csv\")\n{body}\n")).unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        format!("team = \"fixtures\"\nname = \"{name}\"\n[run]\nkind = \"process\"\ncommand = [\"/bin/bash\", \"./predict.sh\", \"{{input}}\", \"{{output}}\"]\n"),
    )
    .unwrap();
    dir
}

/// The debug build of an example submission, built by `cargo test --workspace`.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds the example submissions",
        path.display()
    );
    path
}

/// A submission folder holding a copy of an already built program, as a team would ship it
/// (so it also runs in the sandbox, where only the submission folder is visible).
pub fn binary_submission(parent: &Path, name: &str, program: &Path) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(program, dir.join(name)).unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        format!(
            "team = \"examples\"\nname = \"{name}\"\nbaseline = true\n[run]\nkind = \"process\"\ncommand = [\"./{name}\", \"{{input}}\", \"{{output}}\"]\n"
        ),
    )
    .unwrap();
    dir
}

pub fn read_csv(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let t = Table::read(path).unwrap();
    t.rows
        .iter()
        .map(|r| {
            t.headers
                .iter()
                .cloned()
                .zip(r.fields.iter().cloned())
                .collect()
        })
        .collect()
}

pub fn metric(
    round: &podium::results::RoundScores,
    submission: &str,
    task: &str,
    metric: &str,
) -> Option<f64> {
    round
        .aggregate(submission, task, metric)
        .and_then(|a| a.value)
}

/// Runs every submission of `subs` on the test phase as plain processes (2 jobs), writing the
/// round into `out`.
pub fn process_round(
    challenge: &Challenge,
    subs: &Path,
    out: &Path,
) -> podium::pipeline::RoundOutcome {
    let options = podium::runner::RoundOptions {
        jobs: 2,
        out_dir: out.to_path_buf(),
        resume: false,
        gpus: None,
    };
    let phase = challenge.phase_paths("test", None).unwrap();
    let submissions = podium::submission::Submission::discover(subs).unwrap();
    podium::pipeline::run_and_score(
        challenge,
        &phase,
        &submissions,
        &podium::runner::process::ProcessBackend,
        &options,
        &mut |_| {},
    )
    .unwrap()
}

/// Turns a submission written by [`binary_submission`] into a team submission (not a
/// baseline), so that it is ranked beside baselines.
pub fn make_team_submission(dir: &Path) {
    let toml = dir.join("submission.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("baseline = true", "baseline = false");
    std::fs::write(&toml, text).unwrap();
}

/// Gives the submission in `dir` the team name `team`, any text at all (TOML-escaped here).
pub fn set_team(dir: &Path, team: &str) {
    let mut quoted = String::from("\"");
    for c in team.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    let toml = dir.join("submission.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("team = ") {
                format!("team = {quoted}")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&toml, text.join("\n") + "\n").unwrap();
}

/// A submission that answers the first case of the test phase at once and sleeps (as
/// `sleep <marker>`, to be found among the machine's processes) on the others, until
/// `resume-now` exists in its folder.
pub fn stalling_submission(
    parent: &std::path::Path,
    challenge: &podium::challenge::Challenge,
    marker: &str,
) -> std::path::PathBuf {
    let first = &truth_rows(challenge, "test")[0].0;
    let body = format!("if [ \"$CASE\" != \"{first}\" ] && [ ! -e resume-now ]; then exec sleep {marker}; fi\nmkdir -p \"$OUT/masks\"\nhead -n 1 answers/predictions.csv > \"$OUT/predictions.csv\"\ngrep \"^$CASE,\" answers/predictions.csv >> \"$OUT/predictions.csv\"\ncp \"answers/masks/$CASE.nii.gz\" \"$OUT/masks/\"");
    let sub = script_submission(parent, "stalling", &body);
    perfect_predictions(challenge, "test", &sub.join("answers"));
    sub
}

/// Processes of the machine whose command line contains `needle`.
pub fn processes_running(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            String::from_utf8_lossy(c)
                .replace('\0', " ")
                .contains(needle)
        })
        .count()
}

/// Waits until `ready` holds, for at most 20 s.
pub fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Starts a round of `backend` on 4 cases of a stalling submission, waits until its first case
/// is recorded and two others are running, and sends `signal` to podium alone (not to its
/// process group, as `kill` or a scheduler does). Returns podium's stderr and exit status.
pub fn interrupt_stalling_round(
    backend: &str,
    signal: libc::c_int,
    marker: &str,
) -> (tempfile::TempDir, std::path::PathBuf, String, Option<i32>) {
    let (dir, challenge) = small_challenge(4);
    let subs = dir.path().join("subs");
    stalling_submission(&subs, &challenge, marker);
    let out = dir.path().join("round");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .args([
            "run",
            "--jobs",
            "2",
            "--phase",
            "test",
            "--allow-unisolated",
        ])
        .args(["--backend", backend, "--challenge"])
        .arg(&challenge.root)
        .arg("--submissions")
        .arg(&subs)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("finished first case", || {
        std::fs::read_to_string(out.join("runs.csv")).is_ok_and(|t| t.lines().count() == 2)
    });
    wait_for("stalled cases", || processes_running(marker) == 2);
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let ended = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&ended.stderr).to_string();
    (dir, out, said, ended.status.code())
}
