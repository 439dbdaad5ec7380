//! `podium demo --docker`: podium's own example submission packaged the way teams package
//! theirs (a static binary in a `FROM scratch` image, see submissions/threshold-baseline/
//! Dockerfile), so the demo can run it as a Docker submission beside the native one.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};
use crate::runner::docker::DockerBackend;
use crate::submission::{RunSpec, Submission};

/// Builds the image of the example in `example_dir` (a crate whose binary is named like the
/// folder, with a Dockerfile) and returns its Docker submission, `example_dir/docker/`.
pub fn build_example_image(docker: &DockerBackend, example_dir: &Path) -> Result<Submission> {
    // Absolute, since cargo runs in the example's folder.
    let example_dir = &std::fs::canonicalize(example_dir)
        .map_err(|e| Error::io("find the example", example_dir, e))?;
    let submission = Submission::load(&example_dir.join("docker"))?;
    let RunSpec::Docker {
        image: Some(tag), ..
    } = &submission.run
    else {
        return Err(Error::msg(format!(
            "{}: the demo's Docker example must name its `image`",
            example_dir.join("docker/submission.toml").display()
        )));
    };
    let binary_name = example_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let target_dir = example_dir.join("../../target/static");
    eprintln!(
        "{:>10} {binary_name} as a static binary, then image {tag}",
        "BUILD"
    );
    // An explicit --target keeps RUSTFLAGS off build scripts and proc-macros, which must stay
    // dynamically linked.
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--locked", "--target"])
        .arg(&target)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(example_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .map_err(|e| Error::msg(format!("cannot run cargo to build {binary_name}: {e}")))?;
    if !status.success() {
        return Err(Error::msg(format!(
            "the static build of {binary_name} failed ({status}); see cargo's messages above"
        )));
    }
    let binary = target_dir.join(&target).join("release").join(&binary_name);
    let context = tempfile::tempdir().map_err(|e| Error::msg(e.to_string()))?;
    for (from, name) in [
        (example_dir.join("Dockerfile"), "Dockerfile"),
        (binary, binary_name.as_str()),
    ] {
        std::fs::copy(&from, context.path().join(name))
            .map_err(|e| Error::io("copy into the image's build context", &from, e))?;
    }
    let id = docker
        .build_image(context.path(), tag)
        .map_err(Error::msg)?;
    eprintln!("{:>10} {tag} = {id}", "IMAGE");
    Ok(submission)
}
