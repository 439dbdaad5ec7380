//! GPU time and peak GPU memory of a case, read from the NVIDIA driver (NVML) while it runs,
//! and what `podium check` concludes from them.
//!
//! The figures are the device's, not a process's: a slot's GPUs are its own while its case
//! runs ([`super::gpus`]), so what they hold beyond what they held when the case started, and
//! the time their kernels ran, belong to that case. Per-process accounting would need the
//! case's processes as the host numbers them, which the sandbox's and Docker's PID namespaces
//! hide, and would miss a program that forks its GPU work.
//!
//! NVML is loaded at run time (`libnvidia-ml.so.1`, which comes with the driver), so podium
//! builds and runs where there is no driver; the figures are then empty. The few C functions
//! are bound here rather than through the `nvml-wrapper` crate: on a clean debug build that
//! crate brings 9 crates podium does not otherwise build (a proc-macro stack of darling,
//! wrapcenum-derive and thiserror 1, and the generated bindings of nvml-wrapper-sys), about
//! 6 s of CPU, 4 s of it one after another after `syn`, for seven functions of NVML's stable
//! C interface.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{CaseJob, Execution};
use crate::results::{CaseRecord, GpuUsage};

/// How often a running case's GPUs are read: NVML's utilization covers the last 1/6 s to 1 s
/// (by product), so reading more often adds little, and less often misses short peaks of
/// memory.
const INTERVAL: Duration = Duration::from_millis(100);

/// Memory a GPU must gain over its start to count as used by the case: a CUDA context alone
/// takes hundreds of MiB, so this only keeps out the driver's own small movements.
const HELD_BYTES: u64 = 1 << 20;

const MIB: f64 = 1024.0 * 1024.0;

/// One reading of one GPU, each figure `None` where the driver cannot give it (utilization on
/// a MIG-partitioned GPU, for one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    pub memory_used_bytes: Option<u64>,
    /// The share of the last sample period during which a kernel ran, in percent.
    pub busy_percent: Option<u32>,
}

/// Where readings come from: NVML, or a test's script.
pub trait GpuSource: Sync {
    /// The GPU whose device node is `/dev/nvidia<minor>`.
    fn read(&self, minor: u32) -> Reading;
}

/// The running sums of one case's readings.
#[derive(Debug)]
struct Tally {
    /// Memory in use per GPU when the case started; `None` for all when one could not be read,
    /// since a total over part of the case's GPUs would pass for the whole.
    baseline: Option<Vec<u64>>,
    busy_s: Option<f64>,
    peak_bytes: u64,
    held: Vec<bool>,
}

impl Tally {
    fn start(first: &[Reading]) -> Tally {
        Tally {
            baseline: first.iter().map(|r| r.memory_used_bytes).collect(),
            busy_s: first
                .iter()
                .all(|r| r.busy_percent.is_some())
                .then_some(0.0),
            peak_bytes: 0,
            held: vec![false; first.len()],
        }
    }

    /// Readings taken `interval_s` after the previous ones. A GPU that fails one reading adds
    /// nothing to it.
    fn add(&mut self, interval_s: f64, readings: &[Reading]) {
        if let Some(baseline) = &self.baseline {
            let mut total = 0;
            for (k, (reading, base)) in readings.iter().zip(baseline).enumerate() {
                let above = reading
                    .memory_used_bytes
                    .map_or(0, |used| used.saturating_sub(*base));
                self.held[k] |= above >= HELD_BYTES;
                total += above;
            }
            self.peak_bytes = self.peak_bytes.max(total);
        }
        if let Some(busy_s) = &mut self.busy_s {
            *busy_s += readings
                .iter()
                .filter_map(|r| r.busy_percent)
                .map(|p| f64::from(p.min(100)) / 100.0 * interval_s)
                .sum::<f64>();
        }
    }

    fn finish(self, gpus: &[u32]) -> GpuUsage {
        let measured = self.baseline.is_some();
        GpuUsage {
            gpus: gpus.to_vec(),
            time_s: self.busy_s,
            peak_memory_mib: measured.then(|| self.peak_bytes as f64 / MIB),
            used: if measured {
                gpus.iter()
                    .zip(&self.held)
                    .filter(|(_, held)| **held)
                    .map(|(g, _)| *g)
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// Runs `run` on this thread while another reads `gpus` from `source` every `interval`: once
/// before (the baseline), then until `run` returns, then once more, since a utilization
/// reading covers the period before it.
///
/// With `resident`, memory is counted from zero rather than from the baseline: a worker's
/// model stays on its GPUs between cases, and the slot's GPUs are the worker's alone, so what
/// they hold is the case's program's (the baseline then only says whether they can be read).
pub fn watch<T>(
    source: &dyn GpuSource,
    gpus: &[u32],
    interval: Duration,
    resident: bool,
    run: impl FnOnce() -> T,
) -> (T, GpuUsage) {
    let read_all = || gpus.iter().map(|&g| source.read(g)).collect::<Vec<_>>();
    let mut tally = Tally::start(&read_all());
    if resident {
        if let Some(baseline) = &mut tally.baseline {
            baseline.iter_mut().for_each(|b| *b = 0);
        }
    }
    let mut last = Instant::now();
    let stop = Stop::default();
    let result = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| loop {
            let stopped = stop.wait(interval);
            let readings = read_all();
            let now = Instant::now();
            tally.add(now.duration_since(last).as_secs_f64(), &readings);
            last = now;
            if stopped {
                break;
            }
        });
        // Stops the sampler even if `run` panics, or the scope would wait for it forever.
        let stopping = StopOnDrop(&stop);
        let result = run();
        drop(stopping);
        // A reader that panicked only loses the figures, not the case.
        let joined = sampler.join().is_ok();
        (result, joined)
    });
    let (result, joined) = result;
    let usage = if joined {
        tally.finish(gpus)
    } else {
        GpuUsage {
            gpus: gpus.to_vec(),
            ..GpuUsage::default()
        }
    };
    (result, usage)
}

/// The sampler's stop signal.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl Stop {
    /// Waits `interval` or until stopped, and says whether stopped.
    fn wait(&self, interval: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, interval, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

struct StopOnDrop<'a>(&'a Stop);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        *self.0.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.changed.notify_all();
    }
}

/// Runs `job` (`run`, a backend's `run_case`), recording in its execution what its GPUs did,
/// or only which they were where NVML cannot say. Without GPUs the execution is left as it
/// is: a Slurm case's, measured on its node, arrives with its figures.
///
/// `resident`: the program runs in worker mode and holds its model on the GPUs between cases
/// (see [`watch`]).
pub fn run_watched(job: &CaseJob, resident: bool, run: impl FnOnce() -> Execution) -> Execution {
    let gpus = &job.gpus;
    if gpus.is_empty() {
        return run();
    }
    let dev_root = job.gpu_nodes.first().and_then(|node| node.parent());
    let (mut execution, usage) = match dev_root.map(source) {
        Some(Ok(source)) => watch(source, gpus, INTERVAL, resident, run),
        _ => (
            run(),
            GpuUsage {
                gpus: gpus.to_vec(),
                ..GpuUsage::default()
            },
        ),
    };
    execution.gpu = usage;
    execution
}

/// NVML (loaded on first use) for the GPUs whose nodes are in `dev_root`, or why podium
/// cannot read them.
pub fn source(dev_root: &Path) -> Result<&'static dyn GpuSource, &'static str> {
    driver(dev_root).map(|n| n as &dyn GpuSource)
}

/// The UUID of each GPU NVML could open, by minor number, read once when NVML is loaded; or
/// why there are none (as [`source`]).
pub fn uuids(dev_root: &Path) -> Result<&'static HashMap<u32, String>, &'static str> {
    driver(dev_root).map(|n| &n.uuids)
}

fn driver(dev_root: &Path) -> Result<&'static nvml::Nvml, &'static str> {
    // A test's fake `nvidia<K>` files are not the driver's GPUs of the same numbers.
    if dev_root != Path::new("/dev") {
        return Err("its GPUs are in a test device root (PODIUM_DEVICE_ROOT), of which the NVIDIA management library knows nothing");
    }
    static NVML: OnceLock<Result<nvml::Nvml, String>> = OnceLock::new();
    NVML.get_or_init(|| nvml::Nvml::load(c"libnvidia-ml.so.1"))
        .as_ref()
        .map_err(String::as_str)
}

/// What `podium check` tells the team about the GPUs its program was given: per GPU, whether
/// the program held memory on it during its cases. Empty without GPUs.
pub fn check_lines(records: &[CaseRecord], unavailable: Option<&str>) -> Vec<String> {
    let mut by_gpu: BTreeMap<u32, Vec<&CaseRecord>> = BTreeMap::new();
    for r in records {
        for &g in &r.gpu.gpus {
            by_gpu.entry(g).or_default().push(r);
        }
    }
    let mut lines = Vec::new();
    let mut unknown = Vec::new();
    for (gpu, cases) in &by_gpu {
        let measured: Vec<&CaseRecord> = cases
            .iter()
            .copied()
            .filter(|r| r.gpu.peak_memory_mib.is_some())
            .collect();
        if measured.is_empty() {
            unknown.push(gpu.to_string());
            continue;
        }
        let using: Vec<&CaseRecord> = measured
            .iter()
            .copied()
            .filter(|r| r.gpu.used.contains(gpu))
            .collect();
        let peak = |r: &CaseRecord| r.gpu.peak_memory_mib.unwrap_or(0.0);
        let Some(top) = using.iter().max_by(|a, b| peak(a).total_cmp(&peak(b))) else {
            lines.push(format!(
                "the program ran on GPU {gpu} in {} case{} but never allocated memory on it: is CUDA available where it runs (its libraries, and PyTorch or TensorFlow built for CUDA)? podium gave it /dev/nvidia{gpu}, named in PODIUM_GPUS; see \"Does the program see its GPU?\" in docs/sandbox.md",
                measured.len(),
                plural(measured.len())
            ));
            continue;
        };
        let peak = size(peak(top));
        let peak = if top.gpu.gpus.len() > 1 {
            format!("{peak} over its {} GPUs together", top.gpu.gpus.len())
        } else {
            peak
        };
        lines.push(format!(
            "the program used GPU {gpu} in {} of {} case{} (peak {peak})",
            using.len(),
            measured.len(),
            plural(measured.len())
        ));
    }
    if !unknown.is_empty() {
        lines.push(format!(
            "podium cannot tell whether the program used GPU{} {}: {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            unavailable.unwrap_or("the driver reported no figures for it")
        ));
    }
    lines
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn size(mib: f64) -> String {
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

/// The NVML functions podium calls, bound with `dlopen`.
mod nvml {
    use std::collections::HashMap;
    use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr};

    use super::{GpuSource, Reading};

    type Return = c_int;
    type Device = *mut c_void;
    const SUCCESS: Return = 0;

    #[repr(C)]
    #[derive(Default)]
    struct Memory {
        total: c_ulonglong,
        free: c_ulonglong,
        used: c_ulonglong,
    }

    #[repr(C)]
    #[derive(Default)]
    struct Utilization {
        gpu: c_uint,
        memory: c_uint,
    }

    pub(super) struct Nvml {
        memory_info: unsafe extern "C" fn(Device, *mut Memory) -> Return,
        utilization: unsafe extern "C" fn(Device, *mut Utilization) -> Return,
        /// By minor number, since podium names GPUs by their `/dev/nvidia<K>` node, while
        /// NVML numbers them in PCI bus order.
        devices: HashMap<u32, Device>,
        /// `GPU-…` by minor number: how CUDA and the NVIDIA container toolkit can be told of
        /// a GPU whatever their numbering ([`super::super::gpus::device_names`]).
        pub(super) uuids: HashMap<u32, String>,
    }

    /// NVML_DEVICE_UUID_V2_BUFFER_SIZE of nvml.h.
    const UUID_BUFFER: usize = 96;

    // NVML is thread-safe ("it is safe to make simultaneous NVML calls from multiple
    // threads", its reference says), and a device handle stays valid until nvmlShutdown,
    // which podium never calls: the library is initialised once and lives as long as podium.
    unsafe impl Send for Nvml {}
    unsafe impl Sync for Nvml {}

    fn last_dl_error() -> String {
        // SAFETY: dlerror returns null or a NUL-terminated string owned by the loader.
        let e = unsafe { libc::dlerror() };
        if e.is_null() {
            "unknown error".into()
        } else {
            unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
        }
    }

    /// # Safety
    /// `T` must be the function pointer type of the C symbol `name`.
    unsafe fn symbol<T: Copy>(lib: *mut c_void, name: &CStr) -> Result<T, String> {
        let f = libc::dlsym(lib, name.as_ptr());
        if f.is_null() {
            return Err(format!(
                "the NVIDIA management library lacks {}: {}",
                name.to_string_lossy(),
                last_dl_error()
            ));
        }
        debug_assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
        Ok(std::mem::transmute_copy::<*mut c_void, T>(&f))
    }

    impl Nvml {
        /// `library`: the driver's `libnvidia-ml.so.1`, or a test's stand-in.
        pub(super) fn load(library: &CStr) -> Result<Nvml, String> {
            // SAFETY: the names and signatures are those of nvml.h.
            unsafe {
                let lib = libc::dlopen(library.as_ptr(), libc::RTLD_NOW);
                if lib.is_null() {
                    return Err(format!(
                        "the NVIDIA management library is not available ({})",
                        last_dl_error()
                    ));
                }
                let init: unsafe extern "C" fn() -> Return = symbol(lib, c"nvmlInit_v2")?;
                let error_string: unsafe extern "C" fn(Return) -> *const c_char =
                    symbol(lib, c"nvmlErrorString")?;
                let count: unsafe extern "C" fn(*mut c_uint) -> Return =
                    symbol(lib, c"nvmlDeviceGetCount_v2")?;
                let by_index: unsafe extern "C" fn(c_uint, *mut Device) -> Return =
                    symbol(lib, c"nvmlDeviceGetHandleByIndex_v2")?;
                let minor: unsafe extern "C" fn(Device, *mut c_uint) -> Return =
                    symbol(lib, c"nvmlDeviceGetMinorNumber")?;
                let uuid: unsafe extern "C" fn(Device, *mut c_char, c_uint) -> Return =
                    symbol(lib, c"nvmlDeviceGetUUID")?;
                let failed = |what: &str, code: Return| {
                    let text = error_string(code);
                    let text = if text.is_null() {
                        format!("error {code}")
                    } else {
                        CStr::from_ptr(text).to_string_lossy().into_owned()
                    };
                    format!("the NVIDIA management library could not {what}: {text}")
                };
                let code = init();
                if code != SUCCESS {
                    return Err(failed("start", code));
                }
                let mut n: c_uint = 0;
                let code = count(&mut n);
                if code != SUCCESS {
                    return Err(failed("count the GPUs", code));
                }
                // A GPU NVML cannot open (lost, or not this user's) is left out: podium can
                // neither measure it nor name it to CUDA, and `GpuPool::new` refuses it
                // before the round.
                let mut devices = HashMap::new();
                let mut uuids = HashMap::new();
                for index in 0..n {
                    let mut device: Device = std::ptr::null_mut();
                    let mut k: c_uint = 0;
                    if by_index(index, &mut device) == SUCCESS && minor(device, &mut k) == SUCCESS {
                        devices.insert(k, device);
                        // One byte beyond what NVML is told it may write, so that the text
                        // ends within the buffer whatever the library does.
                        let mut text = [0 as c_char; UUID_BUFFER + 1];
                        if uuid(device, text.as_mut_ptr(), UUID_BUFFER as c_uint) == SUCCESS {
                            let text = CStr::from_ptr(text.as_ptr()).to_string_lossy();
                            uuids.insert(k, text.into_owned());
                        }
                    }
                }
                Ok(Nvml {
                    memory_info: symbol(lib, c"nvmlDeviceGetMemoryInfo")?,
                    utilization: symbol(lib, c"nvmlDeviceGetUtilizationRates")?,
                    devices,
                    uuids,
                })
            }
        }
    }

    impl GpuSource for Nvml {
        fn read(&self, minor: u32) -> Reading {
            let Some(&device) = self.devices.get(&minor) else {
                return Reading::default();
            };
            let mut memory = Memory::default();
            let mut busy = Utilization::default();
            // SAFETY: a handle of this initialised library, and out-structs of nvml.h's layout.
            let (memory_ok, busy_ok) = unsafe {
                (
                    (self.memory_info)(device, &mut memory) == SUCCESS,
                    (self.utilization)(device, &mut busy) == SUCCESS,
                )
            };
            Reading {
                memory_used_bytes: memory_ok.then_some(memory.used),
                busy_percent: busy_ok.then_some(busy.gpu),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::CaseStatus;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Replays one scripted reading per GPU per call, then repeats the last.
    struct Script {
        readings: Vec<Vec<Reading>>,
        calls: Vec<AtomicUsize>,
        gpus: Vec<u32>,
    }

    impl Script {
        fn new(gpus: &[u32], readings: Vec<Vec<Reading>>) -> Script {
            Script {
                calls: gpus.iter().map(|_| AtomicUsize::new(0)).collect(),
                gpus: gpus.to_vec(),
                readings,
            }
        }
    }

    impl GpuSource for Script {
        fn read(&self, minor: u32) -> Reading {
            let k = self.gpus.iter().position(|&g| g == minor).unwrap();
            let n = self.calls[k].fetch_add(1, Ordering::SeqCst);
            self.readings[n.min(self.readings.len() - 1)][k]
        }
    }

    fn reading(mib: u64, busy: u32) -> Reading {
        Reading {
            memory_used_bytes: Some(mib << 20),
            busy_percent: Some(busy),
        }
    }

    #[test]
    fn the_tally_counts_memory_above_the_start_and_busy_time_per_interval() {
        let base = [reading(300, 0), reading(40, 0)];
        let mut tally = Tally::start(&base);
        let steps: [(f64, [Reading; 2]); 3] = [
            (0.1, [reading(1300, 50), reading(40, 0)]),
            (0.2, [reading(2300, 100), reading(40, 20)]),
            (0.1, [reading(300, 0), reading(40, 0)]),
        ];
        for (dt, readings) in &steps {
            tally.add(*dt, readings);
        }
        let usage = tally.finish(&[2, 3]);
        let peak_mib = steps
            .iter()
            .map(|(_, rs)| {
                rs.iter()
                    .zip(&base)
                    .map(|(r, b)| {
                        (r.memory_used_bytes.unwrap() - b.memory_used_bytes.unwrap()) >> 20
                    })
                    .sum::<u64>()
            })
            .max()
            .unwrap();
        assert_eq!(usage.peak_memory_mib, Some(peak_mib as f64));
        let busy: f64 = steps
            .iter()
            .flat_map(|(dt, rs)| {
                rs.iter()
                    .map(move |r| f64::from(r.busy_percent.unwrap()) / 100.0 * dt)
            })
            .sum();
        assert!((usage.time_s.unwrap() - busy).abs() < 1e-9, "{usage:?}");
        assert_eq!(usage.used, vec![2], "GPU 3 never rose above its start");
        assert_eq!(usage.gpus, vec![2, 3]);
    }

    #[test]
    fn a_gpu_unreadable_at_the_start_leaves_the_figures_empty() {
        let unreadable = Reading::default();
        let mut tally = Tally::start(&[reading(300, 10), unreadable]);
        tally.add(0.1, &[reading(5000, 90), reading(900, 90)]);
        let usage = tally.finish(&[0, 1]);
        assert_eq!(usage.peak_memory_mib, None);
        assert_eq!(usage.time_s, None);
        assert!(usage.used.is_empty());
        // Memory below the start (a previous case's memory being freed) counts as none.
        let mut tally = Tally::start(&[reading(3000, 0)]);
        tally.add(0.1, &[reading(1000, 0)]);
        assert_eq!(tally.finish(&[0]).peak_memory_mib, Some(0.0));
    }

    #[test]
    fn a_case_that_panics_stops_its_sampler() {
        let source = Script::new(&[0], vec![vec![reading(0, 0)]]);
        let panicked = std::panic::catch_unwind(|| {
            watch(&source, &[0], Duration::from_millis(5), false, || {
                panic!("the backend failed");
            })
        });
        assert!(
            panicked.is_err(),
            "the panic reaches the caller instead of a hang"
        );
    }

    #[test]
    fn watch_samples_while_the_case_runs_and_stops_with_it() {
        let (base, busy, held) = (500, 40, 2048);
        let source = Script::new(
            &[7],
            vec![vec![reading(base, 0)], vec![reading(base + held, busy)]],
        );
        let interval = Duration::from_millis(10);
        let started = Instant::now();
        let (value, usage) = watch(&source, &[7], interval, false, || {
            std::thread::sleep(interval * 5);
            "done"
        });
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(value, "done");
        assert_eq!(usage.peak_memory_mib, Some(held as f64));
        assert_eq!(usage.used, vec![7]);
        let time = usage.time_s.unwrap();
        assert!(
            time > 0.0 && time <= f64::from(busy) / 100.0 * elapsed,
            "{time} s busy in {elapsed} s at {busy}%"
        );
        assert!(
            source.calls[0].load(Ordering::SeqCst) >= 3,
            "a baseline, readings while it ran, and one after"
        );
        // A worker's model, on the GPU before the case began, counts in its peak.
        let source = Script::new(
            &[7],
            vec![vec![reading(base, 0)], vec![reading(base + held, busy)]],
        );
        let (_, usage) = watch(&source, &[7], interval, true, || {
            std::thread::sleep(interval * 3)
        });
        assert_eq!(usage.peak_memory_mib, Some((base + held) as f64));
    }

    fn job<'a>(
        submission: &'a crate::submission::Submission,
        gpus: &[u32],
        root: &Path,
    ) -> CaseJob<'a> {
        CaseJob {
            submission,
            case_id: "case-1".into(),
            input_dir: "/run/in".into(),
            image: "/phase/images/case-1.nii.gz".into(),
            output_dir: "/run/out".into(),
            stdout_log: "/run/o.log".into(),
            stderr_log: "/run/e.log".into(),
            remaining_budget_s: 10.0,
            slot: 0,
            gpus: gpus.to_vec(),
            gpu_nodes: gpus
                .iter()
                .map(|k| root.join(format!("nvidia{k}")))
                .collect(),
        }
    }

    #[test]
    fn run_watched_names_the_gpus_and_keeps_what_a_node_measured() {
        let submission = crate::submission::Submission {
            dir: "/subs/a".into(),
            team: "t".into(),
            name: "a".into(),
            description: String::new(),
            baseline: false,
            final_selection: false,
            run: crate::submission::RunSpec::Process {
                command: vec!["true".into()],
                build: vec![],
                mode: Default::default(),
            },
        };
        let fake_root = Path::new("/tmp/fake-dev");
        let execution = run_watched(&job(&submission, &[1, 4], fake_root), false, || {
            Execution::not_started("ran".into())
        });
        assert_eq!(execution.message, "ran");
        assert_eq!(
            execution.gpu,
            GpuUsage {
                gpus: vec![1, 4],
                ..GpuUsage::default()
            }
        );
        // A Slurm case: no GPUs here, the node's figures come with its execution.
        let from_node = GpuUsage {
            gpus: vec![0],
            time_s: Some(1.5),
            peak_memory_mib: Some(512.0),
            used: vec![0],
        };
        let execution = run_watched(&job(&submission, &[], fake_root), false, || Execution {
            gpu: from_node.clone(),
            ..Execution::not_started(String::new())
        });
        assert_eq!(execution.gpu, from_node);
        assert!(source(fake_root).is_err_and(|why| why.contains("test device root")));
    }

    /// NVML through the real driver where there is one: every GPU of `/dev` is found by its
    /// minor number, its memory read and its UUID known. Elsewhere, the reason names the
    /// library.
    #[test]
    fn the_driver_reads_every_gpu_of_dev_or_says_why_not() {
        let dev = Path::new("/dev");
        match source(dev) {
            Err(why) => assert!(why.contains("NVIDIA management library"), "{why}"),
            Ok(nvml) => {
                let uuids = uuids(dev).unwrap();
                for minor in super::super::gpus::GpuPool::discover(dev) {
                    let reading = nvml.read(minor);
                    assert!(
                        reading.memory_used_bytes.is_some(),
                        "GPU {minor}: {reading:?}"
                    );
                    assert!(
                        uuids.get(&minor).is_some_and(|u| u.starts_with("GPU-")),
                        "GPU {minor}: {:?}",
                        uuids.get(&minor)
                    );
                }
            }
        }
    }

    /// The C side of the binding against a stand-in library of nvml.h's signatures, built
    /// with the C compiler Rust links with: NVML numbers its GPUs in PCI order, here the
    /// reverse of their minor numbers, and podium must find each by its minor number, and
    /// name it to CUDA by the UUID of that GPU, not of NVML's GPU of the same number.
    #[test]
    fn the_binding_finds_gpus_by_minor_number_and_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let (c, lib) = (
            dir.path().join("nvml.c"),
            dir.path().join("libnvml-standin.so"),
        );
        let (gpus, gib, busy) = (3u32, 1u64 << 30, 7u32);
        let uuid_prefix = "8b3c0d2e-standin-index";
        let uuid_of_index = |index: u32| format!("GPU-{uuid_prefix}-{index}");
        std::fs::write(
            &c,
            format!(
                r#"
#include <stdio.h>
typedef struct {{ unsigned long long total, free, used; }} mem_t;
typedef struct {{ unsigned int gpu, memory; }} util_t;
int nvmlInit_v2(void) {{ return 0; }}
const char *nvmlErrorString(int code) {{ return "stand-in error"; }}
int nvmlDeviceGetCount_v2(unsigned int *n) {{ *n = {gpus}; return 0; }}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **d) {{ *d = (void *)(unsigned long)(i + 1); return 0; }}
static unsigned int minor_of(void *d) {{ return {gpus} - (unsigned int)(unsigned long)d; }}
int nvmlDeviceGetMinorNumber(void *d, unsigned int *m) {{ *m = minor_of(d); return 0; }}
int nvmlDeviceGetMemoryInfo(void *d, mem_t *m) {{
  m->total = 100ULL * {gib}ULL; m->used = (minor_of(d) + 1) * {gib}ULL; m->free = m->total - m->used; return 0; }}
int nvmlDeviceGetUtilizationRates(void *d, util_t *u) {{ u->gpu = {busy} * (minor_of(d) + 1); u->memory = 1; return 0; }}
int nvmlDeviceGetUUID(void *d, char *uuid, unsigned int length) {{
  return snprintf(uuid, length, "GPU-{uuid_prefix}-%lu", (unsigned long)d - 1) < (int)length ? 0 : 7; }}
"#
            ),
        )
        .unwrap();
        let built = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&c)
            .output()
            .expect("cc, the C compiler Rust links with");
        assert!(built.status.success(), "{built:?}");
        let path = std::ffi::CString::new(lib.as_os_str().as_encoded_bytes()).unwrap();
        let nvml = nvml::Nvml::load(&path).unwrap();
        for minor in 0..gpus {
            assert_eq!(
                nvml.read(minor),
                Reading {
                    memory_used_bytes: Some(u64::from(minor + 1) * gib),
                    busy_percent: Some(busy * (minor + 1)),
                },
                "GPU {minor}"
            );
        }
        assert_eq!(nvml.read(gpus), Reading::default(), "no such GPU");
        let by_minor: Vec<String> = (0..gpus)
            .map(|minor| uuid_of_index(gpus - 1 - minor))
            .collect();
        let named = crate::runner::gpus::names_from(&[0, 1, 2], Some(&nvml.uuids));
        assert_eq!(named, by_minor, "/dev/nvidia0 is NVML's GPU 2, and so on");
        let missing = nvml::Nvml::load(c"libnvml-that-is-not-there.so.1")
            .err()
            .unwrap();
        assert!(missing.contains("not available"), "{missing}");
    }

    fn record(gpus: &[u32], peak: Option<f64>, used: &[u32]) -> CaseRecord {
        CaseRecord {
            submission: "s".into(),
            case_id: format!("case-{}", peak.unwrap_or(-1.0)),
            status: CaseStatus::Ok,
            exit_code: Some(0),
            signal: None,
            wall_s: 1.0,
            cpu_s: None,
            peak_memory_mib: None,
            message: String::new(),
            team_message: String::new(),
            gpu: GpuUsage {
                gpus: gpus.to_vec(),
                time_s: peak.map(|_| 0.5),
                peak_memory_mib: peak,
                used: used.to_vec(),
            },
        }
    }

    #[test]
    fn check_says_per_gpu_whether_the_program_used_it() {
        let small = 300.0;
        let large = 2150.0;
        let records = [
            record(&[0], Some(large), &[0]),
            record(&[0], Some(small), &[0]),
            record(&[1], Some(0.0), &[]),
            record(&[2, 3], Some(small), &[2]),
        ];
        let lines = check_lines(&records, None);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines[0].starts_with("the program used GPU 0 in 2 of 2 cases")
                && lines[0].contains(&size(large)),
            "{lines:?}"
        );
        assert!(
            lines[1]
                .starts_with("the program ran on GPU 1 in 1 case but never allocated memory on it"),
            "{lines:?}"
        );
        assert!(
            lines[2].contains("used GPU 2") && lines[2].contains("over its 2 GPUs together"),
            "{lines:?}"
        );
        assert!(lines[3].contains("ran on GPU 3"), "{lines:?}");
        assert!(check_lines(&[record(&[], None, &[])], None).is_empty());
    }

    #[test]
    fn without_figures_check_says_it_cannot_tell_and_why() {
        let why = "the NVIDIA management library is not available";
        let lines = check_lines(
            &[record(&[0], None, &[]), record(&[1], None, &[])],
            Some(why),
        );
        assert_eq!(
            lines,
            [format!(
                "podium cannot tell whether the program used GPUs 0, 1: {why}"
            )]
        );
    }
}
