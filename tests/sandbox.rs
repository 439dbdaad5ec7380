//! The sandbox backend (bubblewrap + cgroups) against the faulty submissions of
//! `tests/fixtures/faulty/`, run in one round with a good submission alongside: each fault gets
//! its status, the good submission is unaffected, and nothing leaks out of or into the sandbox.
//!
//! These tests need `bwrap` and writable cgroups. Under `CI=true` (`tests/run.sh`) they fail
//! without them, with the reason; under plain `cargo test` each prints a SKIPPED line naming
//! bubblewrap.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use podium::challenge::Challenge;
use podium::pipeline::run_and_score;
use podium::results::CaseStatus;
use podium::runner::sandbox::SandboxBackend;
use podium::runner::{Backend, RoundOptions};
use podium::submission::Submission;

const SECRET: &str = "TOP-SECRET-TRUTH-3f9a1c";

/// The sandbox backend, or `None` after a SKIPPED line where bubblewrap is missing (never
/// under `CI=true`).
fn backend() -> Option<SandboxBackend> {
    match SandboxBackend::probe() {
        Ok(b) => Some(b),
        Err(e) => {
            component_missing("bubblewrap", &e);
            None
        }
    }
}

/// Runs every submission of `subs` on the test phase in the sandbox, with `jobs` slots.
fn sandboxed_round(
    backend: &SandboxBackend,
    challenge: &podium::challenge::Challenge,
    subs: &Path,
    out: &Path,
    jobs: usize,
) -> podium::pipeline::RoundOutcome {
    let phase = challenge.phase_paths("test", None).unwrap();
    let options = RoundOptions {
        jobs,
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

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faulty")
}

/// Copies the named fixtures into `subs/`.
fn copy_fixtures(names: &[&str], subs: &Path) {
    for name in names {
        let from = fixtures().join(name);
        let to = subs.join(name);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Every file under `dir`, as (path, bytes).
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            found.extend(all_files(&path));
        } else if meta.is_file() {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

/// Per-case cgroups this test process left behind (named `podium-<pid>-<n>`). Other tests of
/// this binary run cases meanwhile: their groups hold processes, or are gone a moment later,
/// so only groups that stay empty of processes count.
fn leftover_cgroups() -> Vec<PathBuf> {
    let empty = |dir: &Path| {
        std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|t| t.trim().is_empty())
    };
    let first: Vec<PathBuf> = own_case_groups().into_iter().filter(|d| empty(d)).collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    first.into_iter().filter(|d| empty(d)).collect()
}

fn own_case_groups() -> Vec<PathBuf> {
    let prefix = format!("podium-{}-", std::process::id());
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut left = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let roots: Vec<PathBuf> = if controllers.is_empty() {
            vec!["/sys/fs/cgroup/unified".into(), "/sys/fs/cgroup".into()]
        } else {
            controllers
                .split(',')
                .map(|c| Path::new("/sys/fs/cgroup").join(c.trim_start_matches("name=")))
                .collect()
        };
        for root in roots {
            let dir = root.join(path.trim_start_matches('/'));
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    left.push(entry.path());
                }
            }
        }
    }
    left
}

#[test]
fn probe_reports_a_sandbox_with_every_limit() {
    let Some(b) = backend() else {
        return;
    };
    assert_eq!(b.name(), "sandbox");
    assert!(b.cgroup_problem().is_none());
    assert!(b.cgroup_version().is_some());
    for key in [
        "wall_time_per_case_s",
        "memory_mb",
        "cpus",
        "output_mb",
        "log_kb",
        "network",
    ] {
        assert!(b.enforced_limits().contains(&key), "{key}");
    }
}

#[test]
fn each_faulty_submission_gets_its_status_and_the_good_one_is_unaffected() {
    let Some(backend) = backend() else {
        return;
    };
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(
        &challenge,
        "wall_time_per_case_s = 3\ngrace_period_s = 1\nmemory_mb = 64\noutput_mb = 1\n",
    );
    let phase = challenge.phase_paths("test", None).unwrap();
    std::fs::write(phase.truth.join("secret.txt"), SECRET).unwrap();
    let truth_header = std::fs::read_to_string(phase.labels_csv())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();

    let subs = dir.path().join("subs");
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
    copy_fixtures(&names, &subs);
    perfect_predictions(&challenge, "test", &subs.join("good/answers"));
    for fixture in ["truth-reader", "output-linker"] {
        std::fs::write(
            subs.join(fixture).join("truth_path.txt"),
            phase.truth.display().to_string(),
        )
        .unwrap();
    }
    let out = dir.path().join("out");
    // As if it had read the round's host path somewhere: the good team's collected masks.
    std::fs::write(
        subs.join("team-linker/victim_path.txt"),
        out.join("predictions/good/masks").display().to_string(),
    )
    .unwrap();
    let truth_masks_before = all_files(&phase.truth.join("masks"));
    assert!(!truth_masks_before.is_empty());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::write(subs.join("net-client/port.txt"), port.to_string()).unwrap();

    let options = RoundOptions {
        jobs: 2,
        out_dir: out.clone(),
        resume: false,
        gpus: None,
    };
    let submissions = Submission::discover(&subs).unwrap();
    assert_eq!(submissions.len(), names.len());
    let started = Instant::now();
    let outcome = run_and_score(
        &challenge,
        &phase,
        &submissions,
        &backend,
        &options,
        &mut |_| {},
    )
    .unwrap();
    let elapsed = started.elapsed().as_secs_f64();

    let runs = read_csv(&out.join("runs.csv"));
    let n_cases = truth_rows(&challenge, "test").len();
    assert_eq!(runs.len(), names.len() * n_cases, "{runs:#?}");
    let mut by_sub: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for r in runs {
        by_sub.entry(r["submission"].clone()).or_default().push(r);
    }
    let cases = |name: &str| by_sub[name].clone();
    let stderr_of = |name: &str| -> String {
        all_files(&out.join("logs").join(name))
            .into_iter()
            .filter(|(p, _)| p.to_string_lossy().ends_with(".stderr.log"))
            .map(|(_, b)| String::from_utf8_lossy(&b).to_string())
            .collect()
    };
    let report: Vec<String> = by_sub
        .values()
        .flatten()
        .map(|r| {
            format!(
                "{} {} {} wall={} cpu={} mem={} exit={} :: {}",
                r["submission"],
                r["case_id"],
                r["status"],
                r["wall_s"],
                r["cpu_s"],
                r["peak_memory_mib"],
                r["exit_code"],
                r["message"]
            )
        })
        .collect();
    eprintln!("round took {elapsed:.1} s\n{}", report.join("\n"));
    let report = report.join("\n");

    // The good submission: every case ok, measured, and a perfect score.
    for r in cases("good") {
        assert_eq!(r["status"], "ok", "{report}");
        assert!(!r["cpu_s"].is_empty(), "cpu_s is measured: {report}");
        let peak: f64 = r["peak_memory_mib"].parse().expect("peak memory measured");
        assert!(peak > 0.0 && peak <= 64.5, "{report}");
    }

    for r in cases("sleeper") {
        assert_eq!(r["status"], "timeout", "{report}");
        assert!(
            r["message"].contains("wall-time limit of 3.0 s"),
            "{report}"
        );
        let wall: f64 = r["wall_s"].parse().unwrap();
        assert!(
            (2.9..3.9).contains(&wall),
            "SIGTERM ends it at once: {report}"
        );
    }

    for r in cases("term-ignorer") {
        assert_eq!(r["status"], "timeout", "{report}");
        assert!(r["message"].contains("killed"), "{report}");
        let wall: f64 = r["wall_s"].parse().unwrap();
        assert!(
            (3.9..6.0).contains(&wall),
            "killed after the 1 s grace period: {report}"
        );
    }

    for r in cases("memory-hog") {
        assert_eq!(r["status"], "oom", "{report}");
        assert!(r["message"].contains("memory limit of 64 MB"), "{report}");
        let peak: f64 = r["peak_memory_mib"].parse().unwrap();
        assert!(peak > 32.0 && peak <= 64.5, "{report}");
    }

    for r in cases("fork-bomb") {
        assert!(
            r["status"] == "failed" || r["status"] == "timeout",
            "{report}"
        );
        let wall: f64 = r["wall_s"].parse().unwrap();
        assert!(wall < 6.0, "{report}");
    }
    assert!(
        stderr_of("fork-bomb").contains("fork")
            || stderr_of("fork-bomb").contains("Resource temporarily unavailable"),
        "the process limit stopped the forks: {}",
        stderr_of("fork-bomb")
    );
    assert_eq!(processes_running("sleep 4321"), 0, "no fork-bomb leftover");
    assert_eq!(processes_running("sleep 100000"), 0, "no sleeper leftover");

    for r in cases("huge-file") {
        assert_eq!(r["status"], "output_limit", "{report}");
    }

    for r in cases("truth-reader") {
        assert_eq!(r["status"], "failed", "{report}");
    }
    let seen = stderr_of("truth-reader");
    assert!(seen.contains("No such file or directory"), "{seen}");
    assert!(seen.contains("root holds: "), "{seen}");
    let root_line = seen
        .lines()
        .find(|l| l.starts_with("root holds: "))
        .unwrap();
    for entry in root_line["root holds: ".len()..].split_whitespace() {
        assert!(
            [
                "bin",
                "dev",
                "etc",
                "input",
                "lib",
                "lib32",
                "lib64",
                "libx32",
                "output",
                "proc",
                "sbin",
                "submission",
                "tmp",
                "usr"
            ]
            .contains(&entry),
            "unexpected /{entry} in the sandbox: {seen}"
        );
    }
    for (path, bytes) in all_files(&out) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(SECRET),
            "the truth leaked into {}",
            path.display()
        );
        if path.to_string_lossy().contains("truth-reader") {
            assert!(
                !text.contains(&truth_header),
                "the truth leaked into {}",
                path.display()
            );
        }
    }

    for r in cases("net-client") {
        assert_eq!(r["status"], "failed", "{report}");
        assert!(r["message"].contains("connection failed"), "{report}");
    }
    let seen = stderr_of("net-client");
    assert!(!seen.contains("CONNECTED"), "{seen}");
    let interfaces: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("interface "))
        .collect();
    assert!(
        !interfaces.is_empty() && interfaces.iter().all(|i| *i == "lo"),
        "only lo in the sandbox: {seen}"
    );
    assert!(
        listener.accept().is_err(),
        "nothing reached the host's listener"
    );

    for r in cases("symlinker") {
        assert!(
            r["status"] == "missing" || r["status"] == "invalid",
            "{report}"
        );
        assert!(r["message"].contains("symbolic link"), "{report}");
    }

    for r in cases("crasher") {
        assert_eq!(r["status"], "failed", "{report}");
        assert!(
            r["message"].contains("exit code 1") && r["message"].contains("model crashed"),
            "{report}"
        );
    }

    for r in cases("garbage-csv") {
        assert_eq!(r["status"], "invalid", "{report}");
    }

    // A masks folder linked to the truth or to another team's masks: refused, never followed;
    // the truth and the victim's masks are untouched, and nothing of them was scored.
    for name in ["output-linker", "team-linker"] {
        for r in cases(name) {
            assert_eq!(r["status"], "missing", "{report}");
            assert!(
                r["message"].contains("masks is a symbolic link"),
                "{report}"
            );
        }
        let dice = common::metric(&outcome.scores, name, "segmentation", "dice");
        assert!(dice.is_some_and(|d| d < 0.5), "{name} scored {dice:?}");
        assert!(!out.join("predictions").join(name).join("masks").exists());
    }
    assert_eq!(
        all_files(&phase.truth.join("masks")),
        truth_masks_before,
        "the truth's masks are unchanged"
    );
    assert_eq!(
        std::fs::read_dir(out.join("predictions/good/masks"))
            .unwrap()
            .count(),
        n_cases,
        "the good team's masks are still there"
    );

    // Many files each under the per-file limit: the folder's total is capped while it runs.
    for r in cases("output-flood") {
        assert_eq!(r["status"], "output_limit", "{report}");
    }
    for line in stderr_of("output-flood")
        .lines()
        .filter(|l| l.starts_with("output holds"))
    {
        let bytes: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(bytes <= 1 << 20, "the output folder reached {bytes} bytes");
    }

    // The mount table names no folder of the round or of the challenge, and the program holds
    // no descriptor beyond its standard streams (and the one `ls` opens to list them).
    let mounts = stderr_of("mount-reader");
    assert!(mounts.contains(" /input "), "{mounts}");
    for host in [&out, &challenge.root] {
        let host = std::fs::canonicalize(host).unwrap().display().to_string();
        assert!(!mounts.contains(&host), "{host} shows inside: {mounts}");
    }
    let fds: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(" -> "))
        .filter_map(|l| l.split(" -> ").next()?.split_whitespace().last())
        .collect();
    assert!(
        fds.iter().all(|fd| ["0", "1", "2", "3"].contains(fd)),
        "descriptors beyond the standard streams: {fds:?}\n{mounts}"
    );

    // The good submission's scores are those of a perfect submission, whatever ran beside it.
    for (task, metric) in [("detection", "auc"), ("segmentation", "dice")] {
        assert_eq!(
            common::metric(&outcome.scores, "good", task, metric),
            Some(1.0),
            "{task} {metric}"
        );
    }

    let left = leftover_cgroups();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");

    let receipt = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(receipt.contains("\"sandbox\""), "{receipt}");
}

/// The environment and the paths a program sees: the same clean environment as the process
/// backend, with /input and /output, an unprivileged identity and no capabilities.
#[test]
fn the_program_sees_input_output_and_a_clean_environment() {
    let Some(backend) = backend() else {
        return;
    };
    let (dir, challenge) = small_challenge(3);
    let subs = dir.path().join("subs");
    script_submission(
        &subs,
        "inspector",
        r#"{ echo "args $IN $OUT"; env | sort; id -u; id -g; pwd; grep CapEff /proc/self/status; ls /input /input/images; touch /input/x 2>&1; touch /submission/x 2>&1; touch /usr/x 2>&1; touch /x 2>&1; echo "tmp ok" > /tmp/t && cat /tmp/t; } >&2
exit 1"#,
    );
    let out = dir.path().join("out");
    sandboxed_round(&backend, &challenge, &subs, &out, 1);
    let seen: String = all_files(&out.join("logs/inspector"))
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(".stderr.log"))
        .map(|(_, b)| String::from_utf8_lossy(&b).to_string())
        .collect();
    for expected in [
        "args /input /output",
        "PODIUM_INPUT=/input",
        "PODIUM_OUTPUT=/output",
        "HOME=/output",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "PODIUM_CPUS=1",
        // No GPU in this challenge: none named, and no device node of one inside.
        "PODIUM_GPUS=\n",
        "NVIDIA_VISIBLE_DEVICES=void",
        "\n65534\n65534\n/submission\n",
        "CapEff:\t0000000000000000",
        "cases.csv",
        "touch: cannot touch '/input/x': Read-only file system",
        "touch: cannot touch '/submission/x': Read-only file system",
        "touch: cannot touch '/usr/x': Read-only file system",
        "touch: cannot touch '/x': Read-only file system",
        "tmp ok",
    ] {
        assert!(seen.contains(expected), "{expected:?} not in:\n{seen}");
    }
    let vars: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    for var in vars {
        assert!(
            [
                "PATH",
                "HOME",
                "LANG",
                "PODIUM_INPUT",
                "PODIUM_OUTPUT",
                "PODIUM_CASE_ID",
                "PODIUM_CPUS",
                "PODIUM_GPUS",
                "NVIDIA_VISIBLE_DEVICES",
                "OMP_NUM_THREADS",
                "PWD",
                "SHLVL",
                "_",
                "OLDPWD"
            ]
            .contains(&var),
            "unexpected variable {var} in:\n{seen}"
        );
    }
}

/// `podium run` of the test phase with `backend` and `jobs`, as an organizer types it.
fn podium_run(
    challenge: &Path,
    subs: &Path,
    out: &Path,
    backend: &str,
    jobs: usize,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_podium"));
    cmd.args(["run", "--phase", "test", "--allow-unisolated"])
        .args(["--jobs", &jobs.to_string(), "--backend", backend])
        .arg("--challenge")
        .arg(challenge)
        .arg("--submissions")
        .arg(subs)
        .arg("--out")
        .arg(out);
    cmd
}

fn write_submission(parent: &Path, name: &str, run: &str, script: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        format!("team = \"fixtures\"\nname = \"{name}\"\n[run]\nkind = \"process\"\n{run}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("predict.sh"),
        format!("#!/bin/bash\nset -u\nIN=\"$1\"; OUT=\"$2\"\n{script}\n"),
    )
    .unwrap();
    dir
}

/// A build runs in the sandbox with the submission folder writable; a program given by an
/// absolute host path outside the system folders cannot exist inside and fails at once; and
/// `cpus = 1` holds two busy processes to one CPU's worth of time.
#[test]
fn builds_run_inside_absolute_programs_are_refused_and_cpus_are_capped() {
    let Some(backend) = backend() else {
        return;
    };
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(&challenge, "wall_time_per_case_s = 20\ncpus = 1\n");
    let subs = dir.path().join("subs");
    write_submission(
        &subs,
        "builder",
        r#"command = ["/bin/bash", "./predict.sh", "{input}", "{output}"]
build = ["/bin/bash", "-c", "echo built as $(id -u) > built.txt; touch /usr/x 2>&1 || true"]"#,
        "cat built.txt >&2\nexit 1",
    );
    let host_program = dir.path().join("host-program.sh");
    std::fs::write(&host_program, "#!/bin/bash\nexit 0\n").unwrap();
    write_submission(
        &subs,
        "outsider",
        &format!(
            "command = [\"{}\", \"{{input}}\", \"{{output}}\"]",
            host_program.display()
        ),
        "",
    );
    write_submission(
        &subs,
        "spinner",
        r#"command = ["/bin/bash", "./predict.sh", "{input}", "{output}"]"#,
        "timeout 2 bash -c 'while :; do :; done' &\ntimeout 2 bash -c 'while :; do :; done' &\nwait\nexit 1",
    );
    let out = dir.path().join("out");
    sandboxed_round(&backend, &challenge, &subs, &out, 1);
    assert_eq!(
        std::fs::read_to_string(subs.join("builder/built.txt")).unwrap(),
        "built as 65534\n"
    );
    let runs = read_csv(&out.join("runs.csv"));
    let of = |name: &str| -> Vec<BTreeMap<String, String>> {
        runs.iter()
            .filter(|r| r["submission"] == name)
            .cloned()
            .collect()
    };
    for r in of("builder") {
        assert_eq!(r["status"], "failed");
        assert!(r["message"].contains("built as 65534"), "{r:?}");
    }
    for r in of("outsider") {
        assert_eq!(r["status"], "failed");
        assert!(
            r["message"].contains("does not exist in the sandbox"),
            "{r:?}"
        );
    }
    for r in of("spinner") {
        let wall: f64 = r["wall_s"].parse().unwrap();
        let cpu: f64 = r["cpu_s"].parse().unwrap();
        assert!(wall >= 1.9, "{r:?}");
        assert!(
            cpu < 1.3 * wall,
            "two busy processes get one CPU's worth: {r:?}"
        );
    }
}

/// With a cpuset controller (as here, and in CI), each slot keeps its own CPUs: every case
/// sees exactly `cpus` allowed CPUs, taken from the machine's own.
#[test]
fn each_slot_is_pinned_to_its_own_cpus() {
    let Some(backend) = backend() else {
        return;
    };
    let (dir, challenge) = small_challenge(4);
    let challenge = with_limits(&challenge, "cpus = 1\n");
    let subs = dir.path().join("subs");
    write_submission(
        &subs,
        "affinity",
        r#"command = ["/bin/bash", "./predict.sh", "{input}", "{output}"]"#,
        "grep Cpus_allowed_list /proc/self/status >&2\nexit 1",
    );
    let out = dir.path().join("out");
    sandboxed_round(&backend, &challenge, &subs, &out, 2);
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_list = host
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list"))
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let runs = read_csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 4);
    for r in &runs {
        // The program's tab comes back as the visible escape `\t` (docs/contract.md).
        let list = r["message"]
            .rsplit(':')
            .next()
            .unwrap()
            .replace("\\t", " ")
            .trim()
            .to_string();
        let cpu: usize = list.parse().unwrap_or_else(|_| {
            panic!("pinned to one CPU, got {list:?}; host has {host_list}: {r:?}")
        });
        let allowed_by_host = host_list.split(',').any(|part| match part.split_once('-') {
            Some((a, b)) => {
                (a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()).contains(&cpu)
            }
            None => part.parse::<usize>().unwrap() == cpu,
        });
        assert!(
            allowed_by_host,
            "CPU {cpu} is not one of the host's {host_list}"
        );
    }
}

/// Run as root (as here and in CI), podium gives each slot its own unprivileged host user:
/// seen from the host while the cases run, every process of a case belongs to
/// `SLOT_ID_BASE + slot`, never to root. (From inside, `/proc/self/uid_map` cannot tell:
/// bubblewrap nests a namespace of its own.)
#[test]
fn each_slot_runs_as_its_own_unprivileged_host_user() {
    let Some(backend) = backend() else {
        return;
    };
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root, as CI runs"
    );
    let (dir, challenge) = small_challenge(4);
    let subs = dir.path().join("subs");
    write_submission(
        &subs,
        "whoami",
        r#"command = ["/bin/bash", "./predict.sh", "{input}", "{output}"]"#,
        "sleep 2.4321\nexit 1",
    );
    let out = dir.path().join("out");
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                        continue;
                    };
                    if !String::from_utf8_lossy(&cmdline).contains("2.4321") {
                        continue;
                    }
                    let status =
                        std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
                    if let Some(uid) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|l| l.split_whitespace().next())
                        .and_then(|u| u.parse::<u32>().ok())
                    {
                        seen.lock().unwrap().insert(uid);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        sandboxed_round(&backend, &challenge, &subs, &out, 2);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let slots = podium::runner::sandbox::SLOT_ID_BASE..podium::runner::sandbox::SLOT_ID_BASE + 2;
    let owners = seen.into_inner().unwrap();
    assert!(!owners.is_empty(), "the cases' processes were seen");
    for uid in &owners {
        assert!(
            slots.contains(uid),
            "a case ran as host uid {uid}: {owners:?}"
        );
    }
}

/// A build that leaves a setuid copy of bash behind: it ran as an unprivileged user (so the
/// copy was never root's), the submission is refused with the file named, the bit is cleared,
/// and the folder is given back to its owner. A build's own time limit stops a hanging one.
#[test]
fn a_build_runs_unprivileged_and_setuid_files_are_refused() {
    use std::os::unix::fs::MetadataExt;
    let Some(backend) = backend() else {
        return;
    };
    let (dir, challenge) = small_challenge(3);
    let challenge = with_limits(&challenge, "build_time_s = 2\ngrace_period_s = 1\n");
    let subs = dir.path().join("subs");
    write_submission(
        &subs,
        "setuid-builder",
        r#"command = ["/bin/bash", "./predict.sh", "{input}", "{output}"]
build = ["/bin/bash", "-c", "cp /bin/bash rootshell && chmod 4755 rootshell && mkdir -p lib && cp rootshell lib/again && chmod 6755 lib/again"]"#,
        "exit 0",
    );
    write_submission(
        &subs,
        "slow-builder",
        r#"command = ["/bin/bash", "./predict.sh", "{input}", "{output}"]
build = ["/bin/bash", "-c", "sleep 60"]"#,
        "exit 0",
    );
    let owner = std::fs::metadata(subs.join("setuid-builder"))
        .unwrap()
        .uid();
    let out = dir.path().join("out");
    let started = Instant::now();
    sandboxed_round(&backend, &challenge, &subs, &out, 1);
    assert!(started.elapsed().as_secs_f64() < 30.0);
    let runs = read_csv(&out.join("runs.csv"));
    for r in runs.iter().filter(|r| r["submission"] == "setuid-builder") {
        assert_eq!(r["status"], "failed", "{r:?}");
        assert!(
            r["message"].contains("rootshell is setuid")
                && r["message"].contains("lib/again is setuid"),
            "{r:?}"
        );
    }
    for r in runs.iter().filter(|r| r["submission"] == "slow-builder") {
        assert_eq!(r["status"], "failed", "{r:?}");
        assert!(r["message"].contains("build_time_s = 2"), "{r:?}");
    }
    for file in ["rootshell", "lib/again", "predict.sh"] {
        let meta = std::fs::metadata(subs.join("setuid-builder").join(file)).unwrap();
        assert_eq!(meta.mode() & 0o6000, 0, "{file} keeps no setuid/setgid bit");
        assert_eq!(
            meta.uid(),
            owner,
            "{file} is given back to the folder's owner"
        );
    }
}

/// podium started with open descriptors (a wrapper's, or `40<truth/labels.csv 41<truth/
/// 45>>organizer-file` in a shell): no case reads or writes through them, in the sandbox or
/// the process backend.
#[test]
fn descriptors_podium_inherits_never_reach_a_case() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    if backend().is_none() {
        return;
    }
    let (dir, challenge) = small_challenge(3);
    let phase = challenge.phase_paths("test", None).unwrap();
    let subs = dir.path().join("subs");
    write_submission(
        &subs,
        "fd-reader",
        r#"command = ["/bin/bash", "./predict.sh", "{input}", "{output}"]"#,
        "for fd in 40 41 45; do\n  if { true <&$fd; } 2>/dev/null || { true >&$fd; } 2>/dev/null; then echo \"fd $fd OPEN\" >&2; fi\ndone\ncat <&40 >&2 2>/dev/null\necho pwned >&45 2>/dev/null\nls /proc/self/fd | tr '\\n' ' ' >&2\nexit 1",
    );
    let organizer_file = dir.path().join("organizer.log");
    std::fs::write(&organizer_file, "organizer\n").unwrap();
    let labels = std::fs::File::open(phase.labels_csv()).unwrap();
    let truth = std::fs::File::open(&phase.truth).unwrap();
    let writable = std::fs::OpenOptions::new()
        .append(true)
        .open(&organizer_file)
        .unwrap();
    let fds = [
        (labels.as_raw_fd(), 40),
        (truth.as_raw_fd(), 41),
        (writable.as_raw_fd(), 45),
    ];
    for backend in ["sandbox", "process"] {
        let out = dir.path().join(format!("out-{backend}"));
        let mut cmd = podium_run(&challenge.root, &subs, &out, backend, 1);
        // SAFETY: dup2 only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for (from, to) in fds {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let done = cmd.output().unwrap();
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let logs: String = all_files(&out.join("logs/fd-reader"))
            .into_iter()
            .map(|(_, b)| String::from_utf8_lossy(&b).to_string())
            .collect();
        assert!(!logs.contains("OPEN"), "{backend}: {logs}");
        let header = std::fs::read_to_string(phase.labels_csv()).unwrap();
        assert!(
            !logs.contains(header.lines().next().unwrap()),
            "{backend}: {logs}"
        );
        assert!(logs.contains("0 1 2"), "{backend}: {logs}");
    }
    assert_eq!(
        std::fs::read_to_string(&organizer_file).unwrap(),
        "organizer\n"
    );
}

/// A team's Python environment: a virtualenv made with the system's `/usr/bin/python3` inside
/// the submission folder, with a package pip installed into it (from a wheel, offline), runs in
/// the sandbox as `venv/bin/python predict.py` and imports its package from the venv.
#[test]
fn a_virtualenv_inside_the_submission_runs_in_the_sandbox() {
    let Some(backend) = backend() else {
        return;
    };
    let python = Path::new("/usr/bin/python3");
    assert!(
        python.is_file(),
        "/usr/bin/python3 is missing: install python3 and python3-venv (tests/run.sh does)"
    );
    let (dir, challenge) = small_challenge(3);
    let subs = dir.path().join("subs");
    let sub = subs.join("python-venv");
    std::fs::create_dir_all(&sub).unwrap();
    let run = |args: &[&str], cwd: &Path| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .current_dir(cwd)
            .env_remove("PYTHONPATH")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["/usr/bin/python3", "-m", "venv", "venv"], &sub);
    // A one-module wheel, built by the standard library alone, so the install needs no index.
    let wheel = dir.path().join("podium_probe-1.0-py3-none-any.whl");
    let make_wheel = format!(
        r#"import zipfile, hashlib, base64
files = {{
    "podium_probe/__init__.py": "VERSION = '1.0'\ndef greet(case):\n    return 'probe 1.0 saw ' + case\n",
    "podium_probe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: podium-probe\nVersion: 1.0\n",
    "podium_probe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: podium-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}}
record = []
with zipfile.ZipFile({wheel:?}, "w") as z:
    for name, text in files.items():
        data = text.encode()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{name}},sha256={{digest}},{{len(data)}}")
    record.append("podium_probe-1.0.dist-info/RECORD,,")
    z.writestr("podium_probe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
"#,
        wheel = wheel.display().to_string()
    );
    run(&["/usr/bin/python3", "-c", &make_wheel], dir.path());
    run(
        &[
            "venv/bin/python",
            "-m",
            "pip",
            "install",
            "--no-index",
            "--quiet",
            wheel.to_str().unwrap(),
        ],
        &sub,
    );
    std::fs::write(
        sub.join("predict.py"),
        "import sys, podium_probe\ncase = open(sys.argv[1] + '/cases.csv').read().split()[-1]\nprint(podium_probe.greet(case), 'prefix', sys.prefix, 'from', podium_probe.__file__, file=sys.stderr)\nsys.exit(1)\n",
    )
    .unwrap();
    std::fs::write(
        sub.join("submission.toml"),
        "name = \"python-venv\"\n[run]\nkind = \"process\"\ncommand = [\"venv/bin/python\", \"predict.py\", \"{input}\", \"{output}\"]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    sandboxed_round(&backend, &challenge, &subs, &out, 1);
    let runs = read_csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 3);
    for r in &runs {
        let said = &r["message"];
        assert!(
            said.contains(&format!("probe 1.0 saw {}", r["case_id"])),
            "{said}"
        );
        assert!(said.contains("prefix /submission/venv"), "{said}");
        assert!(said.contains("from /submission/venv/lib/python3"), "{said}");
    }
}

/// `[limits] gpus = 1` on a machine of three GPUs (a fake device root, since CI has none):
/// `--jobs 5` is capped at 3 with a message, and each case's `/dev` holds its slot's one
/// `nvidia<K>` node and the driver's control nodes, nothing of the other GPUs. The process
/// backend selects the same GPU through `CUDA_VISIBLE_DEVICES`, named by its minor number since
/// a fake device root has no NVML to give UUIDs. With no GPU at all the round stops before it
/// starts, with one message.
#[test]
fn each_slot_sees_only_its_own_gpus() {
    use std::os::unix::fs::PermissionsExt;
    if backend().is_none() {
        return;
    }
    let (dir, challenge) = small_challenge(6);
    let challenge = with_limits(&challenge, "gpus = 1\n");
    let devices = dir.path().join("fake-dev");
    std::fs::create_dir_all(&devices).unwrap();
    for node in ["nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm"] {
        std::fs::write(devices.join(node), "").unwrap();
        std::fs::set_permissions(devices.join(node), std::fs::Permissions::from_mode(0o666))
            .unwrap();
    }
    // Reachable by the slots' users, as /dev is.
    for folder in [dir.path(), devices.as_path()] {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let subs = dir.path().join("subs");
    write_submission(
        &subs,
        "gpu-probe",
        r#"command = ["/bin/bash", "./predict.sh", "{input}", "{output}"]"#,
        "sleep 0.3\necho \"gpus=$PODIUM_GPUS cuda=${CUDA_VISIBLE_DEVICES-unset} nvidia=$NVIDIA_VISIBLE_DEVICES dev=$(ls /dev | grep nvidia | tr '\\n' ' ')\" >&2\nexit 1",
    );
    let podium = |backend: &str, out: &Path, device_root: &Path| {
        podium_run(&challenge.root, &subs, out, backend, 5)
            .env("PODIUM_DEVICE_ROOT", device_root)
            .output()
            .unwrap()
    };
    for backend in ["sandbox", "process"] {
        let out = dir.path().join(format!("out-{backend}"));
        let done = podium(backend, &out, &devices);
        let said = String::from_utf8_lossy(&done.stderr).to_string();
        assert!(done.status.success(), "{said}");
        assert!(
            said.contains("5 jobs asked, but 3 GPU(s) give only 3 slot(s) of 1 GPU(s) each"),
            "{said}"
        );
        let runs = read_csv(&out.join("runs.csv"));
        assert_eq!(runs.len(), 6);
        for r in &runs {
            let line = r["message"].rsplit(": ").next().unwrap().to_string();
            let gpu = line
                .strip_prefix("gpus=")
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_else(|| panic!("{line}"));
            assert!(["0", "1", "2"].contains(&gpu), "{line}");
            assert_eq!(r["gpus"], gpu, "runs.csv names the slot's GPU: {r:?}");
            // No NVML for a fake device root: the toolkit gets the minor number, not a UUID.
            assert!(line.contains(&format!("nvidia={gpu} ")), "{line}");
            if backend == "sandbox" {
                assert!(line.contains("cuda=unset"), "{line}");
                let dev = line.split("dev=").nth(1).unwrap().trim();
                let mut seen: Vec<&str> = dev.split_whitespace().collect();
                seen.sort();
                let own = format!("nvidia{gpu}");
                let mut expected = vec![own.as_str(), "nvidia-uvm", "nvidiactl"];
                expected.sort();
                assert_eq!(seen, expected, "{line}");
            } else {
                assert!(line.contains(&format!("cuda={gpu} ")), "{line}");
            }
        }
    }
    let none = dir.path().join("no-dev");
    std::fs::create_dir_all(&none).unwrap();
    let done = podium("sandbox", &dir.path().join("out-none"), &none);
    let said = String::from_utf8_lossy(&done.stderr).to_string();
    assert!(!done.status.success(), "{said}");
    assert!(said.contains("no NVIDIA GPU was found"), "{said}");
    assert!(!dir.path().join("out-none/runs.csv").exists());
}

/// A worker-mode submission in bash: reports what it sees once, then serves cases from
/// `answers/`, doing `special` first (which may stop the worker).
fn sandboxed_worker(challenge: &Challenge, parent: &Path, name: &str, special: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        format!("team = \"fixtures\"\nname = \"{name}\"\n[run]\nkind = \"process\"\nmode = \"worker\"\ncommand = [\"/bin/bash\", \"./worker.sh\", \"{{input}}\", \"{{output}}\"]\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("worker.sh"),
        format!(
            r#"#!/bin/bash
set -u
IN="$1"; OUT="$2"
echo "gpus=$PODIUM_GPUS mode=$PODIUM_MODE in=$IN dev=$(ls /dev | grep nvidia | tr '\n' ' ')" >&2
echo ready
while read -r CASE; do
{special}
  mkdir -p "$OUT/masks"
  head -n 1 answers/predictions.csv > "$OUT/predictions.csv"
  grep "^$CASE," answers/predictions.csv >> "$OUT/predictions.csv"
  cp "answers/masks/$CASE.nii.gz" "$OUT/masks/"
  echo "done $CASE"
done
"#
        ),
    )
    .unwrap();
    perfect_predictions(challenge, "test", &dir.join("answers"));
    dir
}

#[test]
fn a_worker_in_the_sandbox_keeps_the_limits_and_its_slots_gpus_and_leaves_nothing_behind() {
    use std::os::unix::fs::PermissionsExt;
    let Some(backend) = backend() else {
        return;
    };
    let (dir, challenge) = small_challenge(8);
    let challenge = with_limits(
        &challenge,
        "wall_time_per_case_s = 3\ngrace_period_s = 1\nmemory_mb = 200\ngpus = 1\n",
    );
    let ids: Vec<String> = truth_rows(&challenge, "test")
        .into_iter()
        .map(|r| r.0)
        .collect();
    let devices = dir.path().join("fake-dev");
    std::fs::create_dir_all(&devices).unwrap();
    for node in ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"] {
        std::fs::write(devices.join(node), "").unwrap();
        std::fs::set_permissions(devices.join(node), std::fs::Permissions::from_mode(0o666))
            .unwrap();
    }
    for folder in [dir.path(), devices.as_path()] {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let pool = podium::runner::gpus::GpuPool::new(vec![0, 1], 1, devices.clone()).unwrap();
    let subs = dir.path().join("subs");
    // `exec` makes the hog the worker itself, so the kernel's OOM kill ends the worker.
    let special = format!(
        r#"  case "$CASE" in
    {slow}) sleep 3017 & wait ;;
    {hog}) exec dd if=/dev/zero of=/dev/null bs=400M count=1 ;;
  esac"#,
        slow = ids[1],
        hog = ids[4]
    );
    sandboxed_worker(&challenge, &subs, "served", &special);
    let out = dir.path().join("out");
    let phase = challenge.phase_paths("test", None).unwrap();
    let options = RoundOptions {
        jobs: 2,
        out_dir: out.clone(),
        resume: false,
        gpus: Some(pool),
    };
    let mut starts = 0;
    run_and_score(
        &challenge,
        &phase,
        &Submission::discover(&subs).unwrap(),
        &backend,
        &options,
        &mut |e| {
            if matches!(e, podium::runner::RunEvent::WorkerStarted { .. }) {
                starts += 1;
            }
        },
    )
    .unwrap();
    let runs = read_csv(&out.join("runs.csv"));
    let status = |id: &str| {
        let r = runs.iter().find(|r| r["case_id"] == id).unwrap();
        (r["status"].clone(), r["message"].clone())
    };
    assert_eq!(status(&ids[1]).0, "timeout", "{:?}", status(&ids[1]));
    assert_eq!(status(&ids[4]).0, "oom", "{:?}", status(&ids[4]));
    assert!(status(&ids[4]).1.contains("memory limit of 200 MB"));
    for (k, id) in ids.iter().enumerate() {
        if k != 1 && k != 4 {
            assert_eq!(status(id).0, "ok", "{id}: {:?}", status(id));
        }
    }
    // One worker per slot, and one more after each of the two cases that ended one, unless
    // that case was its slot's last: never one per case.
    assert!((3..=4).contains(&starts), "{starts} starts");
    assert_eq!(processes_running("sleep 3017"), 0);
    assert!(leftover_cgroups().is_empty(), "{:?}", leftover_cgroups());
    // Each slot's worker saw its own GPU and the control nodes, nothing else of /dev; and the
    // worker's folders are /input and /output as in per-case mode.
    // The line each worker prints as it starts; a log may end with other lines (a worker the
    // round stopped), or hold none when the slot's last worker was stopped before printing.
    let mut checked = 0;
    for slot in 0..2 {
        let log =
            std::fs::read_to_string(out.join(format!("logs/served/worker-{slot}.stderr.log")))
                .unwrap_or_default();
        let Some(line) = log.lines().rfind(|l| l.contains("mode=worker")) else {
            continue;
        };
        checked += 1;
        let gpu = line
            .split_whitespace()
            .next()
            .unwrap()
            .trim_start_matches("gpus=");
        assert!(["0", "1"].contains(&gpu), "{line}");
        assert!(line.contains("mode=worker in=/input"), "{line}");
        let mut seen: Vec<&str> = line
            .split("dev=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect();
        seen.sort();
        let own = format!("nvidia{gpu}");
        let mut expected = vec![own.as_str(), "nvidia-uvm", "nvidiactl"];
        expected.sort();
        assert_eq!(seen, expected, "{line}");
    }
    assert!(checked >= 1, "no worker said what it saw");
    // No tmpfs of the round is left mounted, and its work folder is gone.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&*out.to_string_lossy()), "{mounts}");
    assert!(!out.join("work").join("served").exists());
}

/// While podium checks and empties a worker's output folder, the worker is still running: a
/// hostile one keeps swapping names for links to the truth and to a host folder. podium reads
/// and empties through descriptors without following links, so it collects no truth and
/// changes nothing outside the folder.
#[test]
fn a_worker_racing_podium_with_links_reaches_nothing_of_the_host() {
    use std::os::unix::fs::PermissionsExt;
    let Some(backend) = backend() else {
        return;
    };
    let (dir, challenge) = small_challenge(6);
    let truth_masks = challenge
        .phase_paths("test", None)
        .unwrap()
        .truth_mask("masks", "x")
        .parent()
        .unwrap()
        .to_path_buf();
    let victim = dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "host file").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let subs = dir.path().join("subs");
    let special = format!(
        r#"  if [ ! -e /tmp/racing ]; then
    touch /tmp/racing
    ( while true; do
        ln -sfn {truth} "$OUT/masks"; rm -f "$OUT/masks"; mkdir -p "$OUT/masks"; rmdir "$OUT/masks"
        ln -sfn {victim} "$OUT/v"; rm -f "$OUT/v"; mkdir -p "$OUT/v/w"; rm -rf "$OUT/v"
      done ) 2>/dev/null &
  fi
  head -n 1 answers/predictions.csv > "$OUT/predictions.csv"
  grep "^$CASE," answers/predictions.csv >> "$OUT/predictions.csv"
  echo "done $CASE"
  continue"#,
        truth = truth_masks.display(),
        victim = victim.display()
    );
    sandboxed_worker(&challenge, &subs, "racer", &special);
    let out = dir.path().join("out");
    let outcome = sandboxed_round(&backend, &challenge, &subs, &out, 1);
    let runs = read_csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 6);
    assert!(
        runs.iter()
            .all(|r| ["missing", "failed"].contains(&r["status"].as_str())),
        "{runs:?}"
    );
    let collected = out.join("predictions/racer/masks");
    let masks = std::fs::read_dir(&collected)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(masks, 0, "a truth mask was collected through a link");
    // Every segmentation score is a missing mask's or a failed case's (the worst value), as
    // its run ended; none a truth mask's. The race may make a case fail: then its check or
    // emptying met a link mid-swap and refused it.
    let statuses: Vec<_> = outcome
        .scores
        .case_scores
        .iter()
        .filter(|c| c.task == "segmentation")
        .map(|c| c.status)
        .collect();
    assert!(
        statuses
            .iter()
            .all(|s| [CaseStatus::Missing, CaseStatus::Failed].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("keep.txt")).unwrap(),
        "host file"
    );
    let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 1);
    assert!(std::fs::read_dir(&truth_masks).unwrap().count() >= 6);
}

/// The Python worker example, as a team gets it: `podium check` runs it in the sandbox out of
/// the box, in worker mode; and the same program run per case collects the same predictions.
#[test]
fn the_python_worker_example_passes_check_and_predicts_alike_in_both_modes() {
    let Some(backend) = backend() else {
        return;
    };
    let (dir, challenge) = small_challenge(6);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("submissions/python-worker");
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .current_dir(dir.path())
        .args(["check", "--backend", "sandbox", "--challenge"])
        .arg(&challenge.root)
        .arg(&example)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&checked.stderr).to_string()
        + &String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{said}");
    assert!(said.contains("worker on slot"), "{said}");
    assert!(said.contains("check passed"), "{said}");

    // The same folder, per case and as a worker, on the hidden phase.
    let subs = dir.path().join("subs");
    for mode in ["per-case", "worker"] {
        let copy = subs.join(mode);
        std::fs::create_dir_all(&copy).unwrap();
        for entry in std::fs::read_dir(&example).unwrap().flatten() {
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
            }
        }
        let toml = std::fs::read_to_string(copy.join("submission.toml")).unwrap();
        let toml = toml
            .replace("name = \"python-worker\"", &format!("name = \"{mode}\""))
            .replace("mode = \"worker\"", &format!("mode = \"{mode}\""));
        assert!(toml.contains(&format!("mode = \"{mode}\"")), "{toml}");
        std::fs::write(copy.join("submission.toml"), toml).unwrap();
    }
    let out = dir.path().join("out");
    let outcome = sandboxed_round(&backend, &challenge, &subs, &out, 2);
    assert!(
        outcome.scores.problems.is_empty(),
        "{:?}",
        outcome.scores.problems
    );
    let rows = |mode: &str| {
        let text =
            std::fs::read_to_string(out.join("predictions").join(mode).join("predictions.csv"))
                .unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines.sort();
        lines
    };
    assert_eq!(rows("per-case"), rows("worker"));
    assert_eq!(rows("worker").len(), 7);
    for (id, ..) in truth_rows(&challenge, "test") {
        // The header and voxels, not the gzip header's time stamp.
        let mask = |mode: &str| {
            use std::io::Read;
            let path = out
                .join("predictions")
                .join(mode)
                .join(format!("masks/{id}.nii.gz"));
            let mut bytes = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
                .read_to_end(&mut bytes)
                .unwrap();
            bytes
        };
        assert!(
            mask("per-case") == mask("worker"),
            "the masks of {id} differ"
        );
    }
    let dice = |mode: &str| metric(&outcome.scores, mode, "segmentation", "dice");
    assert_eq!(dice("per-case"), dice("worker"));
    assert!(dice("worker").unwrap() > 0.5);
}

/// As root, each slot's bubblewrap runs as the slot's own user and must pass through every
/// folder above the round's: a private one (mode 0700, as a home folder often is) stops the
/// round at once with one message naming it, rather than failing every case of every team.
#[test]
fn a_round_folder_the_slot_users_cannot_reach_stops_the_round_with_one_message() {
    let Some(backend) = backend() else {
        return;
    };
    if unsafe { libc::geteuid() } != 0 {
        // Without root the program runs as podium's own user, which reaches its own folders.
        return;
    }
    let (dir, challenge) = small_challenge(3);
    let subs = dir.path().join("subs");
    script_submission(&subs, "quiet", "exit 0");
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let phase = challenge.phase_paths("test", None).unwrap();
    let options = RoundOptions {
        jobs: 1,
        out_dir: private.join("round"),
        resume: false,
        gpus: None,
    };
    let submissions = Submission::discover(&subs).unwrap();
    let err = run_and_score(
        &challenge,
        &phase,
        &submissions,
        &backend,
        &options,
        &mut |_| {},
    )
    .err()
    .expect("the round must not start");
    let said = err.to_string();
    assert!(
        said.contains(&format!("{} has mode 0700", private.display()))
            && said.contains("chmod o+x"),
        "{said}"
    );
    let journal = private.join("round/runs.csv");
    assert!(
        !journal.exists() || read_csv(&journal).is_empty(),
        "no case ran"
    );
}

/// podium's own Rust examples, the README's team example among them, pass `podium check` in
/// the sandbox as they are: podium builds them on the host, since cargo is not in the sandbox.
#[test]
fn the_rust_examples_pass_check_in_the_sandbox() {
    if backend().is_none() {
        return;
    }
    let (dir, challenge) = small_challenge(3);
    for example in ["threshold-baseline", "random-guess"] {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("submissions")
            .join(example);
        let checked = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
            .args(["check", "--backend", "sandbox", "--challenge"])
            .arg(&challenge.root)
            .arg(&folder)
            .arg("--out")
            .arg(dir.path().join(example))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&checked.stderr).to_string()
            + &String::from_utf8_lossy(&checked.stdout);
        assert!(checked.status.success(), "{said}");
        assert!(
            said.contains(&format!(
                "BUILD {example} (on the host: podium's own example)"
            )) || said.contains(&format!(
                "FRESH {example} (podium's own example, built since its last change)"
            )),
            "{said}"
        );
    }
}

/// A failed build says why in its own words (the end of its stderr) and names both of its
/// logs; a build tool the sandbox lacks (a copy of an example, whose cargo is the host's) is
/// named as such, with what to do.
#[test]
fn a_failed_build_quotes_its_stderr_and_a_tool_missing_in_the_sandbox_is_named() {
    let Some(backend) = backend() else {
        return;
    };
    let (dir, challenge) = small_challenge(3);
    let subs = dir.path().join("subs");
    let run = r#"command = ["/bin/bash", "./predict.sh", "{input}", "{output}"]"#;
    write_submission(
        &subs,
        "broken",
        &format!("{run}\nbuild = [\"/bin/bash\", \"-c\", \"echo compiling >&2; echo 'error: cannot find model.h' >&2; exit 3\"]"),
        "exit 0",
    );
    write_submission(
        &subs,
        "rusty",
        &format!("{run}\nbuild = [\"cargo\", \"build\", \"--release\"]"),
        "exit 0",
    );
    let out = dir.path().join("out");
    sandboxed_round(&backend, &challenge, &subs, &out, 1);
    let runs = read_csv(&out.join("runs.csv"));
    let message =
        |name: &str| runs.iter().find(|r| r["submission"] == name).unwrap()["message"].clone();
    let logs = out.canonicalize().unwrap().join("logs");
    let broken = message("broken");
    assert!(
        broken
            .contains("exit code 3; its stderr ends with: compiling | error: cannot find model.h")
            && broken.contains(&format!(
                "{} (stderr) and {} (stdout)",
                logs.join("broken/prepare.err.log").display(),
                logs.join("broken/prepare.log").display()
            )),
        "{broken}"
    );
    let rusty = message("rusty");
    assert!(
        rusty.contains("`cargo` does not exist in the sandbox")
            && rusty.contains("prepare.err.log"),
        "{rusty}"
    );
}

/// SIGTERM to podium alone stops a sandboxed round as it stops a process round: its programs
/// are killed, the finished case is kept, and podium says how to resume.
#[test]
fn an_interrupted_sandboxed_round_kills_its_programs_and_says_how_to_resume() {
    if backend().is_none() {
        return;
    }
    // Unique to this test process, so a run beside another counts only its own programs.
    let marker = &format!("271.8283{}", std::process::id());
    let (_dir, out, said, code) = interrupt_stalling_round("sandbox", libc::SIGTERM, marker);
    assert_eq!(code, Some(143), "{said}");
    assert!(
        said.contains("1 of 4 case(s) finished and kept")
            && said.contains(&format!("`podium run --resume {}`", out.display())),
        "{said}"
    );
    wait_for("end of the sandboxed programs", || {
        processes_running(marker) == 0
    });
    assert_eq!(read_csv(&out.join("runs.csv")).len(), 1);
    // As root the stalled cases ran in tmpfs folders of their own: none outlives podium.
    let round = std::fs::canonicalize(&out).unwrap();
    let left: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(&round))
        .map(str::to_string)
        .collect();
    assert_eq!(left, Vec::<String>::new());
}
