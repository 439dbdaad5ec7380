//! Docker images for the tests, built on this machine without a registry: the example
//! threshold-baseline as a static binary `FROM scratch` (its Dockerfile is the one teams read),
//! and the faulty fixtures of `tests/fixtures/faulty/` on a minimal root filesystem made of this
//! machine's own bash, coreutils and shared libraries.
//!
//! Everything here shells out to the `docker` CLI, which must reach an engine (`docker info`);
//! podium itself talks to the Engine API. The legacy builder (`DOCKER_BUILDKIT=0`) is used
//! because it needs no buildx plugin and works with any engine.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// The repository root (the `podium` package).
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `docker info` answers: the CLI is installed and reaches an engine.
pub fn docker_available() -> Result<(), String> {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`docker info` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether a test that needs Docker can go on (see [`super::components`]).
pub fn require_docker() -> bool {
    match docker_available() {
        Ok(()) => true,
        Err(e) => super::components::component_missing("a Docker engine", &e),
    }
}

/// Runs `docker args…`; panics with its output when it fails.
fn docker(args: &[&str]) -> Output {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `docker {}`: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`docker {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The full id (`sha256:…`) of a local image.
fn image_id(image: &str) -> String {
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", image]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker build -t tag context` with the classic builder; returns the image id.
fn build(context: &Path, tag: &str) -> String {
    docker(&["build", "-t", tag, &context.display().to_string()]);
    image_id(tag)
}

/// The workspace's threshold-baseline as a fully static executable (glibc linked in), built
/// once per test process into `target/static` (cargo keeps it incremental across processes).
pub fn static_baseline_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let target = "x86_64-unknown-linux-gnu";
            let target_dir = repo().join("target/static");
            let started = Instant::now();
            // An explicit --target: RUSTFLAGS then applies to the binary only, not to build
            // scripts and proc-macros (which cannot be static).
            let out = Command::new(option_env!("CARGO").unwrap_or("cargo"))
                .current_dir(repo())
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .args([
                    "build",
                    "--release",
                    "-p",
                    "threshold-baseline",
                    "--target",
                    target,
                ])
                .arg("--target-dir")
                .arg(&target_dir)
                .output()
                .expect("cannot run cargo");
            assert!(
                out.status.success(),
                "the static build of threshold-baseline failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let binary = target_dir.join(target).join("release/threshold-baseline");
            match elf_interpreter(&binary) {
                Ok(None) => {}
                Ok(Some(interp)) => panic!(
                    "{} is dynamically linked (interpreter {interp}): it cannot run FROM scratch",
                    binary.display()
                ),
                Err(e) => panic!("{}: {e}", binary.display()),
            }
            eprintln!(
                "static threshold-baseline built in {:.1} s: {}",
                started.elapsed().as_secs_f64(),
                binary.display()
            );
            binary
        })
        .clone()
}

/// The program interpreter (PT_INTERP, the dynamic loader) an x86-64 ELF executable asks for;
/// `None` for a static one (static-pie included), which runs on an empty root filesystem.
fn elf_interpreter(path: &Path) -> Result<Option<String>, String> {
    let b = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if ph + 56 > b.len() {
            return Err("truncated program header table".into());
        }
        const PT_INTERP: u32 = 3;
        if u32_at(ph) == PT_INTERP {
            let (offset, size) = (u64_at(ph + 8), u64_at(ph + 32));
            let name = b.get(offset..offset + size).unwrap_or_default();
            return Ok(Some(
                String::from_utf8_lossy(name)
                    .trim_end_matches('\0')
                    .to_string(),
            ));
        }
    }
    Ok(None)
}

/// Builds the threshold-baseline image with `submissions/threshold-baseline/Dockerfile`
/// (`FROM scratch` + the static binary), as a team would; returns the image id.
pub fn build_baseline_image(tag: &str) -> String {
    let binary = static_baseline_binary();
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("submissions/threshold-baseline/Dockerfile"),
        context.path().join("Dockerfile"),
    )
    .unwrap();
    std::fs::copy(&binary, context.path().join("threshold-baseline")).unwrap();
    build(context.path(), tag)
}

/// Programs the fixtures' predict.sh scripts run (bash builtins such as echo, printf, trap and
/// wait aside), plus rm and env for tests that script a container. Keep in step with
/// `tests/fixtures/faulty/*/predict.sh`.
pub const FIXTURE_PROGRAMS: &[&str] = &[
    "bash", "awk", "cat", "cp", "env", "grep", "head", "ln", "ls", "mkdir", "rm", "seq", "sleep",
    "tail", "tr",
];

/// One node of a root filesystem, by path relative to its root.
enum Node {
    Dir,
    File { bytes: Vec<u8>, mode: u32 },
    Symlink(PathBuf),
}

/// The fixtures' base root filesystem, from this machine's own files: /bin/bash, the programs
/// of [`FIXTURE_PROGRAMS`] and their shared libraries with the dynamic loader, at the paths the
/// host has them (symbolic links such as /bin -> usr/bin reproduced). Collected once per
/// process, kept in memory.
fn base_rootfs() -> &'static BTreeMap<PathBuf, Node> {
    static ROOTFS: OnceLock<BTreeMap<PathBuf, Node>> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let mut nodes = BTreeMap::new();
        let mut programs = vec![PathBuf::from("/bin/bash")];
        for name in FIXTURE_PROGRAMS {
            let found = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("{name} is not installed on this machine"));
            programs.push(found);
        }
        for program in &programs {
            add_host_path(&mut nodes, program);
            for lib in shared_libraries(program) {
                add_host_path(&mut nodes, &lib);
            }
        }
        nodes
    })
}

/// The shared libraries `ldd` lists for a program, the dynamic loader included.
fn shared_libraries(program: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(program).output().expect("run ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = match line.split_once("=>") {
            Some((name, target)) => {
                let target = target.split_whitespace().next().unwrap_or("");
                assert!(
                    target.starts_with('/'),
                    "{}: library {} not found: {line}",
                    program.display(),
                    name.trim()
                );
                target
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    libs
}

/// Adds a host file to `nodes` at its own absolute path, reproducing every symbolic link met on
/// the way (in a directory component or the file itself) so that the path resolves the same
/// way inside the image.
fn add_host_path(nodes: &mut BTreeMap<PathBuf, Node>, path: &Path) {
    // Components still to resolve, the next one last; "/" resets to the root.
    let mut pending: Vec<OsString> = Vec::new();
    let push = |pending: &mut Vec<OsString>, p: &Path| {
        pending.extend(p.components().rev().map(|c| match c {
            Component::RootDir => OsString::from("/"),
            c => c.as_os_str().to_os_string(),
        }))
    };
    push(&mut pending, path);
    let mut current = PathBuf::from("/");
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.to_str() {
            Some("/") => {
                current = PathBuf::from("/");
                continue;
            }
            Some(".") => continue,
            Some("..") => {
                current.pop();
                continue;
            }
            _ => {}
        }
        let host = current.join(&component);
        let rel = host.strip_prefix("/").unwrap().to_path_buf();
        let meta = std::fs::symlink_metadata(&host)
            .unwrap_or_else(|e| panic!("{} (for {}): {e}", host.display(), path.display()));
        if meta.file_type().is_symlink() {
            hops += 1;
            assert!(hops < 40, "too many symbolic links in {}", path.display());
            let target = std::fs::read_link(&host).unwrap();
            // A relative target resolves from `current`, the link's folder.
            push(&mut pending, &target);
            nodes.entry(rel).or_insert(Node::Symlink(target));
        } else if meta.is_dir() {
            nodes.entry(rel).or_insert(Node::Dir);
            current = host;
        } else {
            assert!(pending.is_empty(), "{} is not a directory", host.display());
            nodes.entry(rel).or_insert_with(|| Node::File {
                bytes: std::fs::read(&host).unwrap(),
                mode: meta.permissions().mode() & 0o7777,
            });
        }
    }
}

/// Writes `nodes` under `root` (parents sort before their children).
fn write_rootfs(nodes: &BTreeMap<PathBuf, Node>, root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (rel, node) in nodes {
        let path = root.join(rel);
        match node {
            Node::Dir => {
                std::fs::create_dir_all(&path).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            Node::File { bytes, mode } => {
                std::fs::write(&path, bytes).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode | 0o444))
                    .unwrap();
            }
            Node::Symlink(target) => {
                std::os::unix::fs::symlink(target, &path).unwrap_or_else(|e| {
                    panic!("symlink {} -> {}: {e}", path.display(), target.display())
                })
            }
        }
    }
}

/// Copies a folder as it is now (files a test wrote into it included), readable by any user.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&src, &dst);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            std::fs::copy(&src, &dst).unwrap();
            let mode = std::fs::metadata(&dst).unwrap().permissions().mode();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode | 0o444)).unwrap();
        }
    }
}

/// Packages a faulty fixture (`tests/fixtures/faulty/<name>/`, or a copy of one) into an image:
/// the base root filesystem of [`base_rootfs`] plus the folder as it is now at `/submission`,
/// run as `bash /submission/predict.sh /input /output` from `/submission`, with the lines of the
/// folder's `Dockerfile.extra` appended when it has one. Returns the image id.
pub fn build_fixture_image(fixture_dir: &Path, tag: &str) -> String {
    assert!(
        fixture_dir.join("predict.sh").is_file(),
        "{} has no predict.sh",
        fixture_dir.display()
    );
    let context = tempfile::tempdir().unwrap();
    let rootfs = context.path().join("rootfs");
    write_rootfs(base_rootfs(), &rootfs);
    copy_tree(fixture_dir, &rootfs.join("submission"));
    std::fs::write(
        context.path().join("Dockerfile"),
        r#"FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /submission
ENTRYPOINT ["/bin/bash", "/submission/predict.sh"]
CMD ["/input", "/output"]
"#
        .to_string()
            // A fixture's own Dockerfile lines (a VOLUME, say), when it has any.
            + &std::fs::read_to_string(fixture_dir.join("Dockerfile.extra")).unwrap_or_default(),
    )
    .unwrap();
    build(context.path(), tag)
}

/// `docker save image | gzip > path`: the archive a team hands in.
pub fn save_image(image: &str, path: &Path) {
    let mut save = Command::new("docker")
        .args(["save", image])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run docker save");
    let gzip = Command::new("gzip")
        .arg("-c")
        .stdin(save.stdout.take().unwrap())
        .stdout(File::create(path).unwrap())
        .status()
        .expect("run gzip");
    let saved = save.wait_with_output().unwrap();
    assert!(
        saved.status.success(),
        "`docker save {image}` failed ({}): {}",
        saved.status,
        String::from_utf8_lossy(&saved.stderr)
    );
    assert!(gzip.success(), "gzip failed ({gzip})");
}

/// Containers (running or not) that podium labelled `podium.run`.
pub fn podium_containers() -> Vec<String> {
    lines(&docker(&[
        "ps",
        "-a",
        "--filter",
        "label=podium.run",
        "--format",
        "{{.ID}}",
    ]))
}

/// Volumes that podium labelled `podium.run`.
pub fn podium_volumes() -> Vec<String> {
    lines(&docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=podium.run",
    ]))
}

/// Removes an image (by tag or id) if it exists.
pub fn remove_image(tag: &str) {
    let out = Command::new("docker")
        .args(["image", "rm", "--force", tag])
        .output()
        .expect("run docker image rm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("No such image"),
        "`docker image rm --force {tag}` failed ({}): {stderr}",
        out.status
    );
}
