//! The docker backend against a real engine: the faulty fixtures of `tests/fixtures/faulty/`
//! packaged as images get the statuses they get in the sandbox, the baseline image scores
//! exactly as the native binary, archives load and their image ids are recorded, `podium
//! check` works on images, and no container or mount survives a round, a timeout or an
//! interrupted podium.
//!
//! These tests need a Docker engine (`tests/run.sh` starts one). Under `CI=true` they fail without
//! it; elsewhere they print `SKIPPED: ...` and return.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::docker_images::*;
use common::*;
use podium::pipeline::run_and_score;
use podium::runner::docker::DockerBackend;
use podium::runner::process::ProcessBackend;
use podium::runner::sandbox::SandboxBackend;
use podium::runner::{Backend, RoundBackends, RoundOptions};
use podium::submission::Submission;

const SECRET: &str = "TOP-SECRET-TRUTH-3f9a1c";

fn engine() -> DockerBackend {
    DockerBackend::connect()
        .unwrap_or_else(|e| panic!("docker answers the CLI but not the API: {e}"))
}

/// The tag of a test image. Images are kept after the tests (they are small, and a rerun
/// retags them): removing one could pull it from under another test running the same image
/// by id, since the same context builds the same image.
fn tag(name: &str) -> String {
    format!("podium-test/{name}:latest")
}

fn docker_submission(parent: &Path, name: &str, image_line: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        format!(
            "team = \"docker tests\"\nname = \"{name}\"\n[run]\nkind = \"docker\"\n{image_line}\n"
        ),
    )
    .unwrap();
    dir
}

fn round(
    challenge: &podium::challenge::Challenge,
    subs: &Path,
    out: &Path,
    backend: &dyn Backend,
) -> podium::pipeline::RoundOutcome {
    let phase = challenge.phase_paths("test", None).unwrap();
    let options = RoundOptions {
        jobs: 2,
        out_dir: out.to_path_buf(),
        resume: false,
        gpus: None,
    };
    let submissions = Submission::discover(subs).unwrap();
    run_and_score(
        challenge,
        &phase,
        &submissions,
        backend,
        &options,
        &mut |_| {},
    )
    .unwrap()
}

/// Containers labelled with the round held in `out` (the label podium gives them).
fn containers_of_round(out: &Path) -> Vec<String> {
    let id = podium::runner::run_id(&std::fs::canonicalize(out).unwrap());
    let listed = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=podium.run={id}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn all_volumes() -> usize {
    let listed = Command::new("docker")
        .args(["volume", "ls", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&listed.stdout).lines().count()
}

/// Mounts under `dir` (the tmpfs outputs of running cases).
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&*dir.to_string_lossy()))
        .map(str::to_string)
        .collect()
}

fn statuses(out: &Path) -> BTreeMap<(String, String), String> {
    read_csv(&out.join("runs.csv"))
        .into_iter()
        .map(|r| {
            (
                (r["submission"].clone(), r["case_id"].clone()),
                r["status"].clone(),
            )
        })
        .collect()
}

/// Every file under `dir`, as text.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            text += &all_text(&path);
        } else if meta.is_file() {
            text += &String::from_utf8_lossy(&std::fs::read(&path).unwrap());
        }
    }
    text
}

#[test]
fn each_faulty_image_gets_the_status_it_gets_in_the_sandbox() {
    if !require_docker() {
        return;
    }
    let docker = engine();
    let sandbox =
        SandboxBackend::probe().unwrap_or_else(|e| panic!("the sandbox is needed to compare: {e}"));
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(
        &challenge,
        "wall_time_per_case_s = 3\ngrace_period_s = 1\nmemory_mb = 64\noutput_mb = 1\n",
    );
    let phase = challenge.phase_paths("test", None).unwrap();
    std::fs::write(phase.truth.join("secret.txt"), SECRET).unwrap();

    let names = [
        "good",
        "sleeper",
        "term-ignorer",
        "memory-hog",
        "fork-bomb",
        "huge-file",
        "truth-reader",
        "net-client",
        "symlinker",
        "crasher",
        "garbage-csv",
        "output-linker",
        "team-linker",
        "output-flood",
        "mount-reader",
    ];
    let native = dir.path().join("native");
    let images = dir.path().join("images");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faulty");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for name in names {
        let to = native.join(name);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(fixtures.join(name)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    perfect_predictions(&challenge, "test", &native.join("good/answers"));
    for fixture in ["truth-reader", "output-linker"] {
        std::fs::write(
            native.join(fixture).join("truth_path.txt"),
            phase.truth.display().to_string(),
        )
        .unwrap();
    }
    let in_sandbox = dir.path().join("out-sandbox");
    let in_docker = dir.path().join("out-docker");
    std::fs::write(native.join("net-client/port.txt"), port.to_string()).unwrap();
    let truth_masks_before = all_text(&phase.truth.join("masks"));
    // In each round, the good team's own collected masks.
    std::fs::write(
        native.join("team-linker/victim_path.txt"),
        in_docker
            .join("predictions/good/masks")
            .display()
            .to_string(),
    )
    .unwrap();
    for name in names {
        let tag = tag(&format!("faulty-{name}"));
        build_fixture_image(&native.join(name), &tag);
        docker_submission(&images, name, &format!("image = {tag:?}"));
    }
    std::fs::write(
        native.join("team-linker/victim_path.txt"),
        in_sandbox
            .join("predictions/good/masks")
            .display()
            .to_string(),
    )
    .unwrap();

    let volumes_before = all_volumes();
    round(&challenge, &native, &in_sandbox, &sandbox);
    let outcome = round(&challenge, &images, &in_docker, &docker);

    let runs = read_csv(&in_docker.join("runs.csv"));
    let report: String = runs
        .iter()
        .map(|r| {
            format!(
                "{} {} {} wall={} exit={} :: {}\n",
                r["submission"],
                r["case_id"],
                r["status"],
                r["wall_s"],
                r["exit_code"],
                r["message"]
            )
        })
        .collect();
    eprintln!("{report}");
    let (sandboxed, dockerized) = (statuses(&in_sandbox), statuses(&in_docker));
    assert_eq!(dockerized.len(), names.len() * 3, "{report}");
    // The fork bomb may end either way in both (the process limit makes bash fail, or the
    // survivors sleep until the deadline); every other fixture must match exactly.
    for ((submission, case), status) in &dockerized {
        let other = &sandboxed[&(submission.clone(), case.clone())];
        if submission == "fork-bomb" {
            assert!(["failed", "timeout"].contains(&status.as_str()), "{report}");
        } else {
            assert_eq!(
                status, other,
                "{submission} {case}: docker vs sandbox\n{report}"
            );
        }
    }
    let expected = [
        ("good", "ok"),
        ("sleeper", "timeout"),
        ("term-ignorer", "timeout"),
        ("memory-hog", "oom"),
        ("huge-file", "output_limit"),
        ("truth-reader", "failed"),
        ("net-client", "failed"),
        // The mask is refused for being a symlink; the case counts as missing a mask.
        ("symlinker", "missing"),
        ("crasher", "failed"),
        ("garbage-csv", "invalid"),
        // A masks folder linked to the truth or to another team's masks is never followed.
        ("output-linker", "missing"),
        ("team-linker", "missing"),
        ("output-flood", "output_limit"),
        ("mount-reader", "failed"),
    ];
    for (name, status) in expected {
        for r in runs.iter().filter(|r| r["submission"] == name) {
            assert_eq!(r["status"], status, "{name}\n{report}");
        }
    }
    for r in runs.iter().filter(|r| r["submission"] == "term-ignorer") {
        assert!(r["message"].contains("killed"), "{report}");
        let wall: f64 = r["wall_s"].parse().unwrap();
        assert!(
            (3.9..8.0).contains(&wall),
            "stopped after the 1 s grace: {report}"
        );
    }
    for r in runs.iter().filter(|r| r["submission"] == "memory-hog") {
        assert!(r["message"].contains("memory limit of 64 MB"), "{report}");
    }
    // The good image scored perfectly: the outputs came back through the tmpfs, and nothing
    // beside it changed that.
    for (task, metric) in [("detection", "auc"), ("segmentation", "dice")] {
        let good = common::metric(&outcome.scores, "good", task, metric);
        assert_eq!(good, Some(1.0), "{task} {metric}");
    }
    for name in ["output-linker", "team-linker"] {
        let dice = common::metric(&outcome.scores, name, "segmentation", "dice");
        assert!(dice.is_some_and(|d| d < 0.5), "{name} scored {dice:?}");
    }
    assert_eq!(all_text(&phase.truth.join("masks")), truth_masks_before);
    let mounts = all_text(&in_docker.join("logs/mount-reader"));
    assert!(mounts.contains(" /input "), "{mounts}");
    for host in [&in_docker, &challenge.root] {
        let host = std::fs::canonicalize(host).unwrap().display().to_string();
        assert!(!mounts.contains(&host), "{host} shows inside: {mounts}");
    }
    // Nothing of the truth reached the outputs or the logs; the network was not reachable.
    let leaked = all_text(&in_docker.join("predictions")) + &all_text(&in_docker.join("logs"));
    assert!(!leaked.contains(SECRET), "the truth leaked");
    let logs = all_text(&in_docker.join("logs/net-client"));
    assert!(
        logs.contains("connection failed") && !logs.contains("CONNECTED"),
        "{logs}"
    );
    assert!(
        !logs.contains("interface eth"),
        "only loopback inside: {logs}"
    );
    // Nothing left behind: containers, volumes, tmpfs mounts.
    assert_eq!(containers_of_round(&in_docker), Vec::<String>::new());
    assert_eq!(all_volumes(), volumes_before);
    assert_eq!(mounts_under(dir.path()), Vec::<String>::new());
}

#[test]
fn the_baseline_image_scores_exactly_as_the_native_binary() {
    if !require_docker() {
        return;
    }
    let (dir, challenge) = small_challenge(6);
    let subs = dir.path().join("subs");
    let native = binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    // Both as team submissions, so both are ranked (a baseline beside teams is not).
    make_team_submission(&native);
    let image = tag("baseline");
    build_baseline_image(&image);
    docker_submission(
        &subs,
        "threshold-baseline-docker",
        &format!("image = {image:?}"),
    );
    let backends = RoundBackends {
        native: Some(Box::new(ProcessBackend)),
        docker: Some(engine()),
    };
    assert_eq!(backends.name(), "process+docker");
    let out = dir.path().join("out");
    let outcome = round(&challenge, &subs, &out, &backends);
    assert!(
        outcome.scores.problems.is_empty(),
        "{:#?}",
        outcome.scores.problems
    );
    let per_case = read_csv(&out.join("scores.csv"));
    let of = |name: &str| -> Vec<(String, String, String, String)> {
        per_case
            .iter()
            .filter(|r| r["submission"] == name)
            .map(|r| {
                (
                    r["case_id"].clone(),
                    r["task"].clone(),
                    r["metric"].clone(),
                    r["value"].clone(),
                )
            })
            .collect()
    };
    let native = of("threshold-baseline");
    assert!(!native.is_empty());
    assert_eq!(native, of("threshold-baseline-docker"));
    assert_eq!(
        outcome.leaderboard[0].rank, outcome.leaderboard[1].rank,
        "a tie"
    );
    let receipt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let resolved = receipt["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "threshold-baseline-docker")
        .unwrap()["resolved"]
        .clone();
    assert_eq!(resolved["reference"], image.as_str());
    assert!(resolved["id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(containers_of_round(&out), Vec::<String>::new());
}

#[test]
fn an_archive_is_loaded_and_a_moved_tag_shows_in_the_receipt() {
    if !require_docker() {
        return;
    }
    let (dir, challenge) = small_challenge(3);
    let baseline = tag("archived-baseline");
    let baseline_id = build_baseline_image(&baseline);
    let subs = dir.path().join("subs");
    let archived = docker_submission(&subs, "archived", "image_archive = \"model.tar.gz\"");
    save_image(&baseline, &archived.join("model.tar.gz"));
    let moving = tag("moving");
    let retag = |to: &str| {
        assert!(Command::new("docker")
            .args(["tag", to, &moving])
            .status()
            .unwrap()
            .success());
    };
    retag(&baseline_id);
    // Only the archive brings this tag back (other tests may hold the same image by id).
    remove_image(&baseline);
    docker_submission(&subs, "moving", &format!("image = {moving:?}"));
    let docker = engine();

    let resolved = |out: &Path, name: &str| -> serde_json::Value {
        let receipt: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
        receipt["submissions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["resolved"]
            .clone()
    };
    let first = dir.path().join("first");
    round(&challenge, &subs, &first, &docker);
    assert!(
        statuses(&first).values().all(|s| s == "ok"),
        "{:?}",
        statuses(&first)
    );
    let loaded = resolved(&first, "archived");
    assert_eq!(
        loaded["id"],
        baseline_id.as_str(),
        "the archive's image ran"
    );
    assert!(loaded["archive"]
        .as_str()
        .unwrap()
        .ends_with("model.tar.gz"));
    assert_eq!(resolved(&first, "moving")["id"], baseline_id.as_str());

    // The tag moves to another image between two rounds: the second receipt says so.
    let crasher_tag = tag("moved-to");
    let crasher_id = build_fixture_image(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faulty/crasher"),
        &crasher_tag,
    );
    retag(&crasher_id);
    let second = dir.path().join("second");
    round(&challenge, &subs, &second, &docker);
    let moved = resolved(&second, "moving");
    assert_eq!(moved["reference"], moving.as_str());
    assert_eq!(moved["id"], crasher_id.as_str());
    assert_ne!(moved["id"], resolved(&first, "moving")["id"]);
}

/// `podium check` on a Docker submission: a good image passes, a crashing one is rejected
/// with the case and the reason.
#[test]
fn podium_check_works_with_images() {
    if !require_docker() {
        return;
    }
    let (dir, challenge) = small_challenge(3);
    let good = tag("check-good");
    build_baseline_image(&good);
    let bad = tag("check-bad");
    build_fixture_image(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faulty/crasher"),
        &bad,
    );
    let subs = dir.path().join("subs");
    let check = |name: &str, image: &str| {
        let sub = docker_submission(&subs, name, &format!("image = {image:?}"));
        Command::new(env!("CARGO_BIN_EXE_podium"))
            .args(["check", &sub.display().to_string(), "--challenge"])
            .arg(&challenge.root)
            .arg("--out")
            .arg(dir.path().join(format!("check-{name}")))
            .output()
            .unwrap()
    };
    let passed = check("good", &good);
    let text = String::from_utf8_lossy(&passed.stdout);
    assert!(
        passed.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&passed.stderr)
    );
    assert!(text.contains("check passed"), "{text}");
    let failed = check("bad", &bad);
    let text = String::from_utf8_lossy(&failed.stdout);
    assert!(!failed.status.success(), "{text}");
    assert!(
        text.contains("check FAILED") && text.contains("exit code 1"),
        "{text}"
    );
}

/// Starts `podium run` on one sleeping image and waits until its containers run.
fn start_sleeping_round(
    dir: &Path,
    challenge_root: &Path,
    image: &str,
    out: &Path,
) -> std::process::Child {
    let subs = dir.join("subs");
    docker_submission(&subs, "sleeper", &format!("image = {image:?}"));
    let child = Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["run", "--phase", "test", "--jobs", "2", "--challenge"])
        .arg(challenge_root)
        .arg("--submissions")
        .arg(&subs)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !out.exists() || containers_of_round(out).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no container started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

#[test]
fn an_interrupted_podium_removes_its_containers() {
    if !require_docker() {
        return;
    }
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(
        &challenge,
        "wall_time_per_case_s = 60\ngrace_period_s = 1\n",
    );
    let image = tag("interrupt-sleeper");
    build_fixture_image(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faulty/sleeper"),
        &image,
    );
    let out = dir.path().join("out");
    let child = start_sleeping_round(dir.path(), &challenge.root, &image, &out);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let ended = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(ended.status.code(), Some(130), "{said}");
    assert!(
        said.contains("removed 2 container(s)") && said.contains("--resume"),
        "{said}"
    );
    assert_eq!(containers_of_round(&out), Vec::<String>::new());
    assert_eq!(mounts_under(&out), Vec::<String>::new());
}

/// `kill -9` cannot clean up: the containers outlive podium, and the resumed round removes
/// them before it goes on, then finishes with nothing left.
#[test]
fn a_resumed_round_removes_what_a_killed_podium_left() {
    if !require_docker() {
        return;
    }
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(&challenge, "wall_time_per_case_s = 4\ngrace_period_s = 1\n");
    let image = tag("killed-sleeper");
    build_fixture_image(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faulty/sleeper"),
        &image,
    );
    let out = dir.path().join("out");
    let mut child = start_sleeping_round(dir.path(), &challenge.root, &image, &out);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = containers_of_round(&out);
    assert_eq!(left.len(), 2, "the engine keeps them running after kill -9");
    let resumed = Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["run", "--resume"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(containers_of_round(&out), Vec::<String>::new());
    let statuses = statuses(&out);
    assert_eq!(statuses.len(), 3);
    assert!(statuses.values().all(|s| s == "timeout"), "{statuses:?}");
    // The kill left the tmpfs outputs of its two running cases mounted; the resumed round
    // unmounted them with the rest of the interrupted round's work folder.
    assert_eq!(mounts_under(&out), Vec::<String>::new());
}

/// An image the engine cannot find or load fails that submission's cases with a reason a team
/// can act on; the other submissions of the round are unaffected.
#[test]
fn an_unknown_image_or_a_broken_archive_fails_only_its_own_cases() {
    if !require_docker() {
        return;
    }
    let (dir, challenge) = small_challenge(3);
    let subs = dir.path().join("subs");
    docker_submission(
        &subs,
        "ghost",
        "image = \"podium-test/does-not-exist:never\"",
    );
    let broken = docker_submission(&subs, "broken", "image_archive = \"model.tar.gz\"");
    std::fs::write(
        broken.join("model.tar.gz"),
        b"this is not a docker save archive",
    )
    .unwrap();
    let good = tag("baseline-beside-broken");
    build_baseline_image(&good);
    docker_submission(&subs, "good", &format!("image = {good:?}"));
    let out = dir.path().join("out");
    round(&challenge, &subs, &out, &engine());
    let runs = read_csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 9);
    for r in &runs {
        let (name, status, message) = (&r["submission"], &r["status"], &r["message"]);
        match name.as_str() {
            "good" => assert_eq!(status, "ok", "{message}"),
            "ghost" => {
                assert_eq!(status, "failed");
                assert!(
                    message.contains("has no image \"podium-test/does-not-exist:never\"")
                        && message.contains("docker load"),
                    "{message}"
                );
            }
            "broken" => {
                assert_eq!(status, "failed");
                assert!(message.contains("docker save"), "{message}");
            }
            other => panic!("unexpected submission {other}"),
        }
    }
    assert_eq!(containers_of_round(&out), Vec::<String>::new());
}

/// An archive that also carries another team's tag cannot move it: archives are loaded without
/// their names and run by the id of their own manifest, so the victim (named by that tag) runs
/// its own image and the attacker its own. The image the round loaded is removed afterwards.
#[test]
fn an_archive_cannot_take_another_teams_tag_and_is_removed_after_the_round() {
    if !require_docker() {
        return;
    }
    let docker = engine();
    let (dir, challenge) = small_challenge(3);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faulty");
    let victim_tag = tag("hijacked-victim");
    // The attacker's image (a crasher), saved under the victim's tag, then gone from the engine.
    // A file of its own makes its id unique: the crasher image another test builds must not be
    // taken for it.
    let crasher = dir.path().join("crasher");
    std::fs::create_dir_all(&crasher).unwrap();
    for entry in std::fs::read_dir(fixtures.join("crasher")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), crasher.join(entry.file_name())).unwrap();
    }
    std::fs::write(crasher.join("nonce"), dir.path().display().to_string()).unwrap();
    let attacker_id = build_fixture_image(&crasher, &victim_tag);
    let subs = dir.path().join("subs");
    let attacker = docker_submission(&subs, "a-attacker", "image_archive = \"model.tar.gz\"");
    save_image(&victim_tag, &attacker.join("model.tar.gz"));
    remove_image(&victim_tag);
    // The victim's good image under its own tag.
    let good = dir.path().join("good");
    std::fs::create_dir_all(&good).unwrap();
    for entry in std::fs::read_dir(fixtures.join("good")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), good.join(entry.file_name())).unwrap();
    }
    perfect_predictions(&challenge, "test", &good.join("answers"));
    let victim_id = build_fixture_image(&good, &victim_tag);
    docker_submission(&subs, "victim", &format!("image = {victim_tag:?}"));

    let out = dir.path().join("out");
    let outcome = round(&challenge, &subs, &out, &docker);
    let runs = read_csv(&out.join("runs.csv"));
    for r in &runs {
        let expected = if r["submission"] == "victim" {
            "ok"
        } else {
            "failed"
        };
        assert_eq!(r["status"], expected, "{runs:#?}");
    }
    assert_eq!(
        common::metric(&outcome.scores, "victim", "detection", "auc"),
        Some(1.0)
    );
    let receipt = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(receipt.contains(&attacker_id), "{receipt}");
    let inspect = |what: &str| {
        Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", what])
            .output()
            .unwrap()
    };
    let tagged = inspect(&victim_tag);
    assert_eq!(
        String::from_utf8_lossy(&tagged.stdout).trim(),
        victim_id,
        "the victim's tag still names its own image"
    );
    assert!(
        !inspect(&attacker_id).status.success(),
        "the image the round loaded is removed"
    );
    remove_image(&victim_tag);
}

/// An image's `VOLUME` becomes a tmpfs bounded by `memory_mb` and counted in it, never a
/// volume on the host's disk.
#[test]
fn an_image_volume_is_a_bounded_tmpfs() {
    if !require_docker() {
        return;
    }
    let docker = engine();
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(&challenge, "memory_mb = 64\nwall_time_per_case_s = 20\n");
    let fixture = dir.path().join("volume-filler");
    std::fs::create_dir_all(&fixture).unwrap();
    std::fs::write(
        fixture.join("predict.sh"),
        "while read -r dev mnt fs rest; do [ \"$mnt\" = /data ] && echo \"data is $fs\" >&2; done < /proc/self/mounts\nhead -c 200000000 /dev/zero > /data/fill || { echo 'data is full' >&2; exit 3; }\nexit 0\n",
    )
    .unwrap();
    std::fs::write(fixture.join("Dockerfile.extra"), "VOLUME /data\n").unwrap();
    let image = tag("volume-filler");
    build_fixture_image(&fixture, &image);
    let subs = dir.path().join("subs");
    docker_submission(&subs, "volume-filler", &format!("image = {image:?}"));
    let volumes_before = all_volumes();
    let out = dir.path().join("out");
    round(&challenge, &subs, &out, &docker);
    let logs = all_text(&out.join("logs/volume-filler"));
    assert!(logs.contains("data is tmpfs"), "{logs}");
    for r in read_csv(&out.join("runs.csv")) {
        assert_ne!(r["status"], "ok", "200 MB do not fit in 64: {r:?}");
    }
    assert_eq!(all_volumes(), volumes_before);
    remove_image(&image);
}
