//! The components some tests need beyond cargo: bubblewrap (the sandbox backend, and every
//! command-line round of a hidden phase), Chromium (the report in a browser), a Docker engine
//! and a Slurm cluster.
//!
//! `tests/run.sh`, the README's test command, installs and starts all four and sets `CI=true`:
//! there a missing component fails its tests. Plain `cargo test` may run without them: each
//! test that needs one then prints a SKIPPED line naming it, on the real stderr (the harness
//! hides `eprintln!` of passing tests), and passes without checking anything.

use std::io::Write;
use std::path::PathBuf;

/// Whether a test can go on without `component`, which is missing because of `problem`: never
/// under `CI=true`, where it panics; elsewhere it prints the SKIPPED line and returns false.
pub fn component_missing(component: &str, problem: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {component} is missing, which `tests/run.sh` provides: {problem}");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: needs {component} ({problem}); `sudo bash tests/run.sh` installs it and runs every test"
    );
    false
}

/// Whether the sandbox backend works here (bubblewrap and writable cgroups).
pub fn require_bubblewrap() -> bool {
    match podium::runner::sandbox::SandboxBackend::probe() {
        Ok(_) => true,
        Err(e) => component_missing("bubblewrap", &e.to_string()),
    }
}

/// The Chromium binary: `PODIUM_CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
pub fn require_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PODIUM_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "PODIUM_CHROMIUM={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    component_missing(
        "Chromium",
        "no chromium or chromium-browser on PATH, and PODIUM_CHROMIUM is not set",
    );
    None
}
