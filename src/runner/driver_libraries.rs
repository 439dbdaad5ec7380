//! The NVIDIA driver's user-space libraries a CUDA program loads (`libcuda.so.1`,
//! `libnvidia-ml.so.1`, ...), found the way the NVIDIA container toolkit finds them: by name in
//! the dynamic linker's cache (`ldconfig -p`). They belong to the driver, not to the team, and
//! must match the kernel module, so a submission cannot ship its own.
//!
//! The sandbox already binds `/usr` and `/lib*` read-only, where distributions install them;
//! only a driver installed elsewhere (`/opt/nvidia/...`, `/usr/local/nvidia` is under `/usr`)
//! needs binds of its own, at the same paths, so that the host's `ld.so.cache` (bound too)
//! still names them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The driver's libraries a compute program may load, as the container toolkit lists them for
/// the `compute` and `utility` capabilities (without the graphics ones).
const DRIVER_LIBRARIES: &[&str] = &[
    "libcuda.so",
    "libcudadebugger.so",
    "libnvidia-ml.so",
    "libnvidia-ptxjitcompiler.so",
    "libnvidia-nvvm.so",
    "libnvidia-gpucomp.so",
    "libnvidia-allocator.so",
    "libnvidia-cfg.so",
    "libnvidia-opencl.so",
    "libnvidia-pkcs11.so",
    "libnvidia-pkcs11-openssl3.so",
];

/// The driver's libraries named in `ldconfig -p`'s output, in its order.
pub fn parse_ldconfig(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let (left, path) = line.split_once(" => ")?;
            let name = left.split_whitespace().next()?;
            let wanted = DRIVER_LIBRARIES.iter().any(|lib| {
                name.strip_prefix(lib)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            });
            wanted.then(|| PathBuf::from(path.trim()))
        })
        .collect()
}

/// The host's driver libraries, read once per process (empty without a driver, or without
/// `ldconfig`).
pub fn host_libraries() -> &'static [PathBuf] {
    static FOUND: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FOUND.get_or_init(|| {
        ["/sbin/ldconfig", "/usr/sbin/ldconfig"]
            .iter()
            .find(|p| Path::new(p).is_file())
            .and_then(|ldconfig| std::process::Command::new(ldconfig).arg("-p").output().ok())
            .map(|out| parse_ldconfig(&String::from_utf8_lossy(&out.stdout)))
            .unwrap_or_default()
    })
}

/// Of `libraries`, the paths a sandbox must bind itself: those `visible` does not cover, each
/// with the file a link leads to, since the linker opens the link and then its target.
pub fn paths_to_bind(libraries: &[PathBuf], visible: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for library in libraries {
        let target = std::fs::canonicalize(library).ok();
        for path in std::iter::once(library.clone()).chain(target) {
            if !visible(&path) && path.exists() && !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_driver_libraries_by_name_in_the_linker_cache() {
        let text = "\
1234 libs found in cache `/etc/ld.so.cache'
\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
\tlibnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
\tlibnvidia-mlx.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-mlx.so.2
\tlibcuda.so.1 (libc6,x86-64) => /opt/nvidia/driver/lib64/libcuda.so.1
\tlibcuda.so (libc6,x86-64) => /opt/nvidia/driver/lib64/libcuda.so
\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12
";
        assert_eq!(
            parse_ldconfig(text),
            [
                "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
                "/opt/nvidia/driver/lib64/libcuda.so.1",
                "/opt/nvidia/driver/lib64/libcuda.so",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn binds_what_the_sandbox_does_not_show_already_with_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("libcuda.so.550.54");
        std::fs::write(&real, "").unwrap();
        let link = dir.path().join("libcuda.so.1");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let system = PathBuf::from("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1");
        let gone = dir.path().join("libnvidia-cfg.so.1");
        let binds = paths_to_bind(&[system.clone(), link.clone(), gone], |p| {
            p.starts_with("/usr")
        });
        let real = std::fs::canonicalize(real).unwrap();
        assert_eq!(binds, vec![link, real]);
    }
}
