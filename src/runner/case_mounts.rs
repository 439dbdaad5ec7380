//! The folders a case's program sees, as podium prepares them on the host, shared by the
//! sandbox and docker backends.
//!
//! As root, each case gets two fresh tmpfs mounts: its input (staged straight from the
//! challenge's image, so the round makes no other copy of it) and its output (`output_mb` in size, so the kernel caps the whole folder
//! while the case runs, not only each file). A fresh filesystem also has no host path: in the
//! program's `/proc/self/mountinfo` the two folders show as `tmpfs`, never as a folder of the
//! round. After the case, the output is copied (links as links, for the output check to
//! refuse) into the case's output folder and both mounts go.
//!
//! Without root nothing can be mounted: the program gets the case's folders themselves, and
//! [`OutputWatch`] polls the output folder's size while the case runs.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{CaseJob, ExecStatus, Execution};
use crate::challenge::Limits;

/// The host folders bound at `/input` and `/output`.
pub(super) struct CaseFolders {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Tmpfs mounts that podium made for the case (root only); unmounted on drop.
    mounts: Vec<PathBuf>,
}

impl CaseFolders {
    /// The case's folders: fresh tmpfs mounts owned by `uid` when `as_root` (the backend then
    /// says so in [`super::Backend::copies_input`], and the round stages nothing), else the
    /// job's own input and output folders.
    pub fn create(
        job: &CaseJob,
        limits: &Limits,
        uid: u32,
        as_root: bool,
    ) -> Result<CaseFolders, String> {
        let mut folders = CaseFolders {
            input: job.input_dir.clone(),
            output: job.output_dir.clone(),
            mounts: Vec::new(),
        };
        if !as_root {
            return Ok(folders);
        }
        let beside = |suffix: &str| {
            let mut name = job.output_dir.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        let input = beside(".in");
        let image_bytes = std::fs::metadata(&job.image)
            .map_err(|e| format!("cannot read the case's image: {e}"))?
            .len();
        // Room for the image's pages, cases.csv and the folders' inodes.
        let size_kb = image_bytes / 1024 + 1024;
        let options = format!("size={size_kb}k,mode=0755");
        // Huge pages, where the kernel has them, copy a CT image in and free it again about
        // four times faster than 4 KiB pages (docs/benchmarks.md): without them the tmpfs
        // would cost a case more than a copy to disk.
        if folders
            .mount(&input, &format!("{options},huge=within_size"))
            .is_err()
        {
            folders.mount(&input, &options)?;
        }
        super::staging::stage_case(&job.image, &job.case_id, &input)
            .map_err(|e| format!("cannot copy the case's input into its tmpfs: {e}"))?;
        folders.input = input;
        let output = beside(".out");
        folders.mount(
            &output,
            &format!(
                "size={}m,mode=0700,uid={uid},gid={uid}",
                limits.output_mb.max(1)
            ),
        )?;
        folders.output = output;
        Ok(folders)
    }

    fn mount(&mut self, point: &Path, options: &str) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(point);
        std::fs::create_dir_all(point)
            .map_err(|e| format!("cannot create {}: {e}", point.display()))?;
        mount_tmpfs(point, options)
            .map_err(|e| format!("cannot mount a tmpfs at {}: {e}", point.display()))?;
        self.mounts.push(point.to_path_buf());
        Ok(())
    }

    /// After the program: copies the output tmpfs into the case's output folder, and names a
    /// full tmpfs as the output limit.
    pub fn collect(&self, job: &CaseJob, limits: &Limits, mut execution: Execution) -> Execution {
        if self.output == job.output_dir {
            return execution;
        }
        if let Err(e) = copy_tree(&self.output, &job.output_dir) {
            execution.status = ExecStatus::Failed;
            execution.message = format!("podium could not collect /output: {e}");
            return execution;
        }
        if is_full(&self.output) && matches!(execution.status, ExecStatus::Ok | ExecStatus::Failed)
        {
            execution.status = ExecStatus::OutputLimit;
            execution.message = format!(
                "filled /output, which holds at most the output limit of {} MB",
                limits.output_mb
            );
        }
        execution
    }
}

impl Drop for CaseFolders {
    fn drop(&mut self) {
        for point in self.mounts.drain(..) {
            unmount(&point);
            let _ = std::fs::remove_dir(&point);
        }
    }
}

/// Watches a case's output folder while it runs, where no tmpfs caps it: the program is
/// stopped once the folder holds `output_mb`. Checked every [`OutputWatch::INTERVAL`], so the
/// folder can pass the limit by what the program writes in that time (each file is still held
/// to the limit by RLIMIT_FSIZE).
pub(super) struct OutputWatch {
    dir: std::fs::File,
    limit: u64,
}

impl OutputWatch {
    pub const INTERVAL: Duration = Duration::from_millis(100);

    pub fn new(dir: &Path, limits: &Limits) -> Option<OutputWatch> {
        Some(OutputWatch {
            dir: super::nofollow::open_root(dir).ok()?,
            limit: limits.output_mb.saturating_mul(1 << 20),
        })
    }

    pub fn exceeded(&self) -> bool {
        let (bytes, entries) = super::nofollow::tree_size(&self.dir, 100_000);
        bytes >= self.limit || entries > 100_000
    }
}

/// Copies a folder without following links: files are copied, folders recreated, links kept
/// as links; anything else (FIFOs, sockets, devices) is left out.
pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Every tmpfs podium has mounted and not yet unmounted, and whether an interrupt has closed
/// the list. Mounting and unmounting hold its lock, so an interrupt handler that closes it
/// ([`unmount_all_and_refuse_more`]) unmounts every mount made before, and none is made after:
/// a mount made between a slot's `mount` and its own bookkeeping could otherwise outlive
/// podium's exit.
static MOUNTED: std::sync::Mutex<(bool, Vec<PathBuf>)> = std::sync::Mutex::new((false, Vec::new()));

fn mounted() -> std::sync::MutexGuard<'static, (bool, Vec<PathBuf>)> {
    MOUNTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn mount_tmpfs(target: &Path, options: &str) -> std::io::Result<()> {
    let mut mounted = mounted();
    if mounted.0 {
        return Err(std::io::Error::other("podium is stopping"));
    }
    let target_c = CString::new(target.as_os_str().as_bytes())?;
    let options = CString::new(options)?;
    let fs = c"tmpfs";
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let rc = unsafe {
        libc::mount(
            fs.as_ptr(),
            target_c.as_ptr(),
            fs.as_ptr(),
            flags,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    mounted.1.push(target.to_path_buf());
    Ok(())
}

pub(super) fn unmount(target: &Path) {
    let mut mounted = mounted();
    detach(target);
    mounted.1.retain(|m| m != target);
}

/// For an interrupt handler about to exit: unmounts every tmpfs podium holds, and refuses any
/// later mount. Returns how many it unmounted.
pub(super) fn unmount_all_and_refuse_more() -> usize {
    let mut mounted = mounted();
    mounted.0 = true;
    let points = std::mem::take(&mut mounted.1);
    for point in &points {
        detach(point);
    }
    points.len()
}

fn detach(target: &Path) {
    if let Ok(target) = CString::new(target.as_os_str().as_bytes()) {
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Whether less than a page is left on the filesystem of `path`.
pub(super) fn is_full(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    stat.f_bavail == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_tree_keeps_symlinks_as_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join("masks")).unwrap();
        std::fs::write(from.join("predictions.csv"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", from.join("masks/a.nii.gz")).unwrap();
        let to = dir.path().join("to");
        copy_tree(&from, &to).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.join("predictions.csv")).unwrap(),
            "x"
        );
        let link = to.join("masks/a.nii.gz");
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_link(link).unwrap(), Path::new("/etc/passwd"));
    }
}
