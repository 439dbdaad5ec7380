//! Per-case control groups for the sandbox backend: memory, process-count and CPU limits, the
//! OOM-kill counter, peak memory and CPU time, and killing every process of a case.
//!
//! A case's group is created *under* the group podium itself runs in (read from
//! `/proc/self/cgroup`), never at a hierarchy's root, and removed when the case ends. Two
//! layouts are supported:
//!
//! - **cgroup v2**: a unified hierarchy whose `cgroup.controllers` offers `memory`, `pids` and
//!   `cpu`. They are enabled in podium's group `cgroup.subtree_control`; when podium's group
//!   holds processes (the "no internal processes" rule refuses that), podium moves itself into
//!   a leaf `podium-supervisor` child first. Limits: `memory.max`, `memory.swap.max = 0`,
//!   `pids.max`, `cpu.max`; OOM kills from `memory.events`, peak from `memory.peak`, CPU time
//!   from `cpu.stat`; `cgroup.kill` ends a case.
//! - **cgroup v1**: one hierarchy per controller (`memory`, `pids`, `cpu`, and `cpuacct` for
//!   CPU time, mounted separately or together). Limits: `memory.limit_in_bytes` (and
//!   `memory.memsw.limit_in_bytes` when swap accounting exists), `pids.max`,
//!   `cpu.cfs_quota_us`; OOM kills from `memory.oom_control`, peak from
//!   `memory.max_usage_in_bytes`, CPU time from `cpuacct.usage`; a case ends by SIGKILL to each
//!   process in `cgroup.procs` until none is left.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::challenge::Limits;

/// CFS period for the CPU quota (`cpus` × period of CPU time per period).
const CPU_PERIOD_US: u64 = 100_000;

/// Where podium's own groups are, per controller; per-case groups are created below them.
#[derive(Clone, Debug)]
pub(super) enum Hierarchy {
    V2 {
        parent: PathBuf,
    },
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
        /// Absent when the kernel has no cpuacct controller mounted: CPU time is then unknown.
        cpuacct: Option<PathBuf>,
        /// Absent without a cpuset controller: slots are then not pinned to CPUs.
        cpuset: Option<PathBuf>,
    },
}

static NEXT_CASE: AtomicU64 = AtomicU64::new(0);

impl Hierarchy {
    /// Finds a usable hierarchy (v2 with the controllers, else v1) and checks that a group can
    /// be created and given limits. The error says what is missing.
    pub(super) fn detect() -> Result<Hierarchy, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mounts = parse_mounts(&mountinfo);
        let memberships = parse_memberships(&own);

        let mut problems = Vec::new();
        match detect_v2(&mounts, &memberships) {
            Ok(h) => return h.check().map(|()| h),
            Err(p) => problems.push(format!("cgroup v2: {p}")),
        }
        match detect_v1(&mounts, &memberships) {
            Ok(h) => return h.check().map(|()| h),
            Err(p) => problems.push(format!("cgroup v1: {p}")),
        }
        Err(problems.join("; "))
    }

    /// The CPUs of slot `slot` when each case may use `count` of them: consecutive CPUs of
    /// podium's own cpuset, wrapping around, so that concurrent slots do not share CPUs while
    /// there are enough. None without a cpuset controller.
    pub(super) fn cpus_for_slot(&self, slot: usize, count: u32) -> Option<String> {
        let Hierarchy::V1 {
            cpuset: Some(dir), ..
        } = self
        else {
            return None;
        };
        let allowed = parse_cpu_list(
            std::fs::read_to_string(dir.join("cpuset.cpus"))
                .ok()?
                .trim(),
        );
        if allowed.is_empty() {
            return None;
        }
        let count = (count.max(1) as usize).min(allowed.len());
        let picked: Vec<String> = (0..count)
            .map(|k| allowed[(slot * count + k) % allowed.len()].to_string())
            .collect();
        Some(picked.join(","))
    }

    pub(super) fn version(&self) -> &'static str {
        match self {
            Hierarchy::V2 { .. } => "cgroup v2",
            Hierarchy::V1 { .. } => "cgroup v1",
        }
    }

    /// A trial group with limits, created and removed again.
    fn check(&self) -> Result<(), String> {
        let limits = Limits::default();
        let group = self
            .create_case(&limits, 16, None)
            .map_err(|e| format!("cannot create a group with limits: {e}"))?;
        drop(group);
        self.remove_stale();
        Ok(())
    }

    fn parents(&self) -> Vec<&Path> {
        match self {
            Hierarchy::V2 { parent } => vec![parent],
            Hierarchy::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
                cpuset,
            } => {
                let mut all: Vec<&Path> = vec![memory, pids, cpu];
                all.extend(cpuacct.as_deref());
                all.extend(cpuset.as_deref());
                all.sort();
                all.dedup();
                all
            }
        }
    }

    /// Removes the empty groups left by podium processes that no longer exist (killed before
    /// they could clean up).
    fn remove_stale(&self) {
        for parent in self.parents() {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Some(pid) = name
                    .strip_prefix("podium-")
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
    }

    /// Creates the group of one case with the limits. `max_processes` caps the process count.
    /// `cpus`, a cpuset list such as `"1"` or `"0,2"`, pins the case to those CPUs where a
    /// cpuset controller is available.
    pub(super) fn create_case(
        &self,
        limits: &Limits,
        max_processes: u64,
        cpus: Option<&str>,
    ) -> std::io::Result<CaseGroup> {
        let name = format!(
            "podium-{}-{}",
            std::process::id(),
            NEXT_CASE.fetch_add(1, Ordering::SeqCst)
        );
        let memory_bytes = limits.memory_mb.saturating_mul(1 << 20);
        let quota = u64::from(limits.cpus.max(1)) * CPU_PERIOD_US;
        let mut group = CaseGroup {
            kind: self.clone(),
            dirs: Vec::new(),
            procs: Vec::new(),
        };
        // Created one by one so that Drop removes whatever was made if a later step fails.
        for parent in self.parents() {
            let dir = parent.join(&name);
            std::fs::create_dir(&dir).map_err(|e| annotate(e, &dir))?;
            group.dirs.push(dir);
        }
        match self {
            Hierarchy::V2 { .. } => {
                let dir = group.dirs[0].clone();
                write(&dir.join("memory.max"), &memory_bytes.to_string())?;
                if dir.join("memory.swap.max").exists() {
                    write(&dir.join("memory.swap.max"), "0")?;
                }
                write(&dir.join("pids.max"), &max_processes.to_string())?;
                write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
            }
            Hierarchy::V1 {
                memory,
                pids,
                cpu,
                cpuset,
                ..
            } => {
                if let Some(cpuset) = cpuset {
                    // A v1 cpuset group accepts no task until both lists are set.
                    let g = cpuset.join(&name);
                    let mems =
                        std::fs::read_to_string(cpuset.join("cpuset.mems")).unwrap_or_default();
                    write(&g.join("cpuset.mems"), mems.trim())?;
                    let parent_cpus =
                        std::fs::read_to_string(cpuset.join("cpuset.cpus")).unwrap_or_default();
                    write(&g.join("cpuset.cpus"), cpus.unwrap_or(parent_cpus.trim()))?;
                }
                let m = memory.join(&name);
                write(&m.join("memory.limit_in_bytes"), &memory_bytes.to_string())?;
                if m.join("memory.memsw.limit_in_bytes").exists() {
                    write(
                        &m.join("memory.memsw.limit_in_bytes"),
                        &memory_bytes.to_string(),
                    )?;
                }
                write(
                    &pids.join(&name).join("pids.max"),
                    &max_processes.to_string(),
                )?;
                let c = cpu.join(&name);
                write(&c.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&c.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        for dir in &group.dirs {
            let path = dir.join("cgroup.procs");
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| annotate(e, &path))?;
            group.procs.push(file);
        }
        Ok(group)
    }
}

/// The group of one running case. Dropping it kills what is left in it and removes it.
pub(super) struct CaseGroup {
    kind: Hierarchy,
    /// One per distinct hierarchy (v1) or the one group (v2).
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, opened before the fork: the child writes "0" (itself) to each
    /// between fork and exec, with nothing but write(2).
    procs: Vec<File>,
}

impl CaseGroup {
    /// File descriptors for [`join_self`], to be called in the child before exec.
    pub(super) fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// The directory whose `cgroup.procs` lists every process of the case.
    fn members_dir(&self) -> PathBuf {
        match &self.kind {
            Hierarchy::V2 { .. } => self.dirs[0].clone(),
            Hierarchy::V1 { pids, .. } => pids.join(self.dirs[0].file_name().unwrap()),
        }
    }

    fn dir_of(&self, parent: &Path) -> PathBuf {
        parent.join(self.dirs[0].file_name().unwrap())
    }

    /// Host pids of the processes in the group.
    pub(super) fn pids(&self) -> Vec<libc::pid_t> {
        std::fs::read_to_string(self.members_dir().join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Sends `signal` to every process of the group except `spare` (the sandbox's supervisor,
    /// which would otherwise take the whole sandbox down at once).
    pub(super) fn signal_all(&self, signal: libc::c_int, spare: Option<libc::pid_t>) {
        for pid in self.pids() {
            if Some(pid) != spare && pid > 0 {
                unsafe {
                    libc::kill(pid, signal);
                }
            }
        }
    }

    /// Kills every process of the group and waits until none is left (at most `timeout`).
    /// Returns whether the group is empty.
    pub(super) fn kill_all(&self, timeout: Duration) -> bool {
        if let Hierarchy::V2 { .. } = self.kind {
            let kill = self.dirs[0].join("cgroup.kill");
            if kill.exists() {
                let _ = write(&kill, "1");
            }
        }
        let started = Instant::now();
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                return true;
            }
            if started.elapsed() > timeout {
                return false;
            }
            for pid in pids {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many processes the kernel's OOM killer ended in this group for its memory limit.
    pub(super) fn oom_kills(&self) -> u64 {
        let (file, key) = match &self.kind {
            Hierarchy::V2 { .. } => (self.dirs[0].join("memory.events"), "oom_kill"),
            Hierarchy::V1 { memory, .. } => {
                (self.dir_of(memory).join("memory.oom_control"), "oom_kill")
            }
        };
        keyed_value(&file, key).unwrap_or(0)
    }

    /// Peak memory of the group in bytes, where the kernel records it.
    pub(super) fn peak_memory_bytes(&self) -> Option<u64> {
        let file = match &self.kind {
            Hierarchy::V2 { .. } => self.dirs[0].join("memory.peak"),
            Hierarchy::V1 { memory, .. } => self.dir_of(memory).join("memory.max_usage_in_bytes"),
        };
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// CPU time (user + system) of the group in seconds.
    pub(super) fn cpu_seconds(&self) -> Option<f64> {
        match &self.kind {
            Hierarchy::V2 { .. } => {
                keyed_value(&self.dirs[0].join("cpu.stat"), "usage_usec").map(|us| us as f64 / 1e6)
            }
            Hierarchy::V1 { cpuacct, .. } => {
                let dir = self.dir_of(cpuacct.as_ref()?);
                let ns: u64 = std::fs::read_to_string(dir.join("cpuacct.usage"))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some(ns as f64 / 1e9)
            }
        }
    }
}

impl Drop for CaseGroup {
    fn drop(&mut self) {
        self.procs.clear();
        if !self.dirs.is_empty() {
            self.kill_all(Duration::from_secs(10));
        }
        for dir in self.dirs.iter().rev() {
            // A group whose last process just exited can take a moment to become removable.
            for _ in 0..200 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
    }
}

/// Moves the calling process into the groups whose `cgroup.procs` are `fds` ("0" names the
/// writer). Only write(2): safe between fork and exec.
pub(super) fn join_self(fds: &[RawFd]) -> std::io::Result<()> {
    for &fd in fds {
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

struct Mount {
    root: String,
    mount_point: PathBuf,
    fs_type: String,
    super_options: Vec<String>,
}

fn parse_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                root: unescape(fields.get(3)?),
                mount_point: PathBuf::from(unescape(fields.get(4)?)),
                fs_type: right.first()?.to_string(),
                super_options: right
                    .get(2)
                    .map(|o| o.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// mountinfo escapes spaces and a few others as octal `\040`.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&code, 8) {
                out.push(n as char);
                continue;
            }
            out.push(c);
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// `/proc/self/cgroup` lines: (controllers, path). v2 is the line with empty controllers.
fn parse_memberships(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((controllers, path.to_string()))
        })
        .collect()
}

/// The host directory of podium's own group in `mount`, given its path from /proc/self/cgroup.
fn own_dir(mount: &Mount, path: &str) -> PathBuf {
    let relative = if mount.root != "/" {
        path.strip_prefix(mount.root.as_str()).unwrap_or(path)
    } else {
        path
    };
    mount.mount_point.join(relative.trim_start_matches('/'))
}

fn detect_v2(mounts: &[Mount], memberships: &[(Vec<String>, String)]) -> Result<Hierarchy, String> {
    let mount = mounts
        .iter()
        .find(|m| m.fs_type == "cgroup2")
        .ok_or("no cgroup2 file system mounted")?;
    let path = memberships
        .iter()
        .find(|(c, _)| c.is_empty())
        .map(|(_, p)| p.clone())
        .ok_or("/proc/self/cgroup has no v2 line")?;
    let mut parent = own_dir(mount, &path);
    // A previous probe of this process may already have moved it into its supervisor leaf.
    if parent.file_name().is_some_and(|n| n == "podium-supervisor") {
        parent.pop();
    }
    let offered = std::fs::read_to_string(parent.join("cgroup.controllers")).map_err(|e| {
        format!(
            "cannot read {}: {e}",
            parent.join("cgroup.controllers").display()
        )
    })?;
    let offered: Vec<&str> = offered.split_whitespace().collect();
    let missing: Vec<&str> = ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|c| !offered.contains(c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} does not offer the controllers {} (delegate them to podium's group, for example run podium with `systemd-run --scope -p Delegate=yes`)",
            parent.display(),
            missing.join(", ")
        ));
    }
    let subtree = parent.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&subtree).unwrap_or_default();
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let all_enabled = ["memory", "pids", "cpu"]
        .iter()
        .all(|c| enabled.contains(c));
    if !all_enabled && write(&subtree, "+memory +pids +cpu").is_err() {
        // "No internal processes": the group must not hold processes to delegate
        // controllers to children. Move podium into a leaf of its own and try again.
        let leaf = parent.join("podium-supervisor");
        let _ = std::fs::create_dir(&leaf);
        write(&leaf.join("cgroup.procs"), &std::process::id().to_string())
            .map_err(|e| format!("cannot move podium into {}: {e}", leaf.display()))?;
        write(&subtree, "+memory +pids +cpu").map_err(|e| {
                format!(
                    "cannot enable memory, pids and cpu in {} (other processes share podium's group?): {e}",
                    subtree.display()
                )
            })?;
    }
    Ok(Hierarchy::V2 { parent })
}

fn detect_v1(mounts: &[Mount], memberships: &[(Vec<String>, String)]) -> Result<Hierarchy, String> {
    let find = |controller: &str| -> Option<PathBuf> {
        let mount = mounts
            .iter()
            .find(|m| m.fs_type == "cgroup" && m.super_options.iter().any(|o| o == controller))?;
        let (_, path) = memberships
            .iter()
            .find(|(c, _)| c.iter().any(|c| c == controller))?;
        Some(own_dir(mount, path))
    };
    let (memory, pids, cpu) = (find("memory"), find("pids"), find("cpu"));
    let missing: Vec<&str> = [("memory", &memory), ("pids", &pids), ("cpu", &cpu)]
        .into_iter()
        .filter(|(_, dir)| dir.as_ref().is_none_or(|d| !d.is_dir()))
        .map(|(name, _)| name)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the controllers {} are not mounted",
            missing.join(", ")
        ));
    }
    Ok(Hierarchy::V1 {
        memory: memory.unwrap(),
        pids: pids.unwrap(),
        cpu: cpu.unwrap(),
        cpuacct: find("cpuacct").filter(|d| d.is_dir()),
        cpuset: find("cpuset").filter(|d| d.join("cpuset.cpus").exists()),
    })
}

/// `"0-2,5"` → `[0, 1, 2, 5]`.
fn parse_cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.trim().parse::<usize>().ok()),
        }
    }
    cpus
}

fn keyed_value(file: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find_map(|line| {
            let (k, v) = line.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| annotate(e, path))
}

fn annotate(e: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_own_groups_in_v1_and_v2_layouts() {
        let mounts = parse_mounts(
            "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
             35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
             41 31 0:38 /sub /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
        );
        let own = parse_memberships("4:memory:/process_api/abc\n1:cpu:/\n0::/sub/podium\n");
        let memory = mounts
            .iter()
            .find(|m| m.super_options.contains(&"memory".into()));
        assert_eq!(
            own_dir(memory.unwrap(), &own[0].1),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
        let v2 = mounts.iter().find(|m| m.fs_type == "cgroup2").unwrap();
        assert_eq!(
            own_dir(v2, &own[2].1),
            PathBuf::from("/sys/fs/cgroup/unified/podium")
        );
        assert!(own[2].0.is_empty());
    }

    #[test]
    fn reads_keyed_counters() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.oom_control");
        std::fs::write(&file, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(keyed_value(&file, "oom_kill"), Some(3));
        assert_eq!(keyed_value(&file, "missing"), None);
    }
}
