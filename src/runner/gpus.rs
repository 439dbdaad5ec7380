//! Which GPUs a round may use, and which of them each slot gets.
//!
//! `[limits] gpus = N` gives every case N GPUs of its own: slot k gets the k-th group of N
//! devices, so two cases that run at the same time never share one, and `--jobs` is capped at
//! the number of whole groups the machine has. The devices are NVIDIA's `/dev/nvidia<K>` nodes
//! (or `--gpus 0,2,…`); a test can point podium at a device root of its own
//! (`PODIUM_DEVICE_ROOT`), since CI has no GPU.
//!
//! podium names a GPU by the minor number K of its node, but CUDA and the NVIDIA container
//! toolkit number GPUs as NVML does, in PCI bus order, and nothing binds the two orders to
//! agree. So a program is told its GPUs by UUID where NVML knows them ([`device_names`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::gpu_monitor;

/// The control nodes a CUDA program opens beside its GPUs' own nodes, bound where present.
const CONTROL_NODES: [&str; 4] = [
    "nvidiactl",
    "nvidia-uvm",
    "nvidia-uvm-tools",
    "nvidia-modeset",
];

/// The round's GPUs and how many each case gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuPool {
    devices: Vec<u32>,
    per_case: usize,
    dev_root: PathBuf,
}

impl GpuPool {
    /// The device root: `/dev`, or `PODIUM_DEVICE_ROOT` for tests.
    pub fn device_root() -> PathBuf {
        std::env::var_os("PODIUM_DEVICE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/dev"))
    }

    /// The GPU indices K of the `nvidia<K>` nodes under `dev_root`, sorted.
    pub fn discover(dev_root: &Path) -> Vec<u32> {
        let mut found: Vec<u32> = std::fs::read_dir(dev_root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let index = name.strip_prefix("nvidia")?;
                (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| index.parse().ok())
                    .flatten()
            })
            .collect();
        found.sort_unstable();
        found
    }

    /// `--gpus 0,2,3`: the indices, each with its node under `dev_root`.
    pub fn parse_list(list: &str, dev_root: &Path) -> Result<Vec<u32>, String> {
        let mut devices = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let index: u32 = part.parse().map_err(|_| {
                format!("--gpus {list:?}: {part:?} is not a GPU index; give indices such as 0,1")
            })?;
            let node = dev_root.join(format!("nvidia{index}"));
            if !node.exists() {
                return Err(format!(
                    "--gpus {list:?}: GPU {index} has no device node {}",
                    node.display()
                ));
            }
            if !devices.contains(&index) {
                devices.push(index);
            }
        }
        Ok(devices)
    }

    /// A pool giving each case `per_case` of `devices`; an error, said once before the round,
    /// when the machine has fewer than one case needs.
    pub fn new(devices: Vec<u32>, per_case: u32, dev_root: PathBuf) -> Result<GpuPool, String> {
        let per_case = per_case as usize;
        if per_case == 0 {
            return Err("internal error: a GPU pool for cases that need no GPU".into());
        }
        if devices.len() < per_case {
            let have = if devices.is_empty() {
                format!(
                    "no NVIDIA GPU was found ({} has no nvidia<N> node)",
                    dev_root.display()
                )
            } else {
                format!(
                    "only {} GPU(s) are available ({:?})",
                    devices.len(),
                    devices
                )
            };
            return Err(format!(
                "the challenge gives each case {per_case} GPU(s) ([limits] gpus = {per_case}), but {have}. Run on a machine with GPUs, or pass --gpus with the indices to use"
            ));
        }
        // Without NVML, the minor numbers stand in for the GPUs (see `names_from`); with it, a GPU
        // it cannot open has no UUID, and its number could name another slot's GPU to CUDA.
        if let Ok(uuids) = gpu_monitor::uuids(&dev_root) {
            known_to_the_driver(&devices, uuids, &dev_root)?;
        }
        Ok(GpuPool {
            devices,
            per_case,
            dev_root,
        })
    }

    /// Every GPU of the round, in the order the slots take them.
    pub fn devices(&self) -> &[u32] {
        &self.devices
    }

    /// Where the GPUs' device nodes are: `/dev`, or a test's root.
    pub fn dev_root(&self) -> &Path {
        &self.dev_root
    }

    /// How many cases can run at once, each on GPUs of its own.
    pub fn max_slots(&self) -> usize {
        self.devices.len() / self.per_case
    }

    /// The GPUs of slot `slot` (slots past [`Self::max_slots`] wrap around, which the round
    /// prevents by capping `--jobs`).
    pub fn for_slot(&self, slot: usize) -> &[u32] {
        let start = (slot % self.max_slots()) * self.per_case;
        &self.devices[start..start + self.per_case]
    }

    /// The device nodes a case of `slot` needs: its GPUs' and the control nodes present.
    pub fn nodes_for_slot(&self, slot: usize) -> Vec<PathBuf> {
        let mut nodes: Vec<PathBuf> = self
            .for_slot(slot)
            .iter()
            .map(|k| self.dev_root.join(format!("nvidia{k}")))
            .collect();
        nodes.extend(
            CONTROL_NODES
                .iter()
                .map(|n| self.dev_root.join(n))
                .filter(|p| p.exists()),
        );
        nodes
    }

    /// `0,2` for the slot's GPUs, as `PODIUM_GPUS` and `runs.csv` list them.
    pub fn list_for_slot(&self, slot: usize) -> String {
        self.for_slot(slot)
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How to name the GPUs `gpus`, whose nodes are `gpu_nodes` (a case's or worker's), to CUDA
/// (`CUDA_VISIBLE_DEVICES`) and to the NVIDIA container toolkit (`NVIDIA_VISIBLE_DEVICES`,
/// Docker's device ids): their UUIDs, which NVML reads once per podium process.
pub fn device_names(gpus: &[u32], gpu_nodes: &[PathBuf]) -> Vec<String> {
    let dev_root = gpu_nodes.first().and_then(|node| node.parent());
    names_from(
        gpus,
        dev_root.and_then(|root| gpu_monitor::uuids(root).ok()),
    )
}

/// `uuids` by minor number, from NVML. A GPU it does not give (no driver, a test's device
/// root) is named by its minor number, which CUDA and the toolkit read as their own index:
/// right where the minor numbers follow the PCI bus order, as they do on most machines, but
/// nothing guarantees it.
pub(crate) fn names_from(gpus: &[u32], uuids: Option<&HashMap<u32, String>>) -> Vec<String> {
    gpus.iter()
        .map(|k| match uuids.and_then(|u| u.get(k)) {
            Some(uuid) => uuid.clone(),
            None => k.to_string(),
        })
        .collect()
}

fn known_to_the_driver(
    devices: &[u32],
    uuids: &HashMap<u32, String>,
    dev_root: &Path,
) -> Result<(), String> {
    match devices.iter().find(|k| !uuids.contains_key(k)) {
        None => Ok(()),
        Some(k) => Err(format!(
            "GPU {k} has a device node {}, but the NVIDIA management library cannot open it (or read its UUID), so podium cannot tell CUDA which GPU it is. Leave it out of the round's GPUs (--gpus)",
            dev_root.join(format!("nvidia{k}")).display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(nodes: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for n in nodes {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        dir
    }

    #[test]
    fn slots_get_disjoint_groups_and_the_control_nodes() {
        let root = fake_root(&[
            "nvidia0",
            "nvidia1",
            "nvidia2",
            "nvidia10",
            "nvidiactl",
            "nvidia-uvm",
            "nvidia-caps",
            "nvidiax",
        ]);
        let devices = GpuPool::discover(root.path());
        assert_eq!(devices, vec![0, 1, 2, 10]);
        let pool = GpuPool::new(devices, 2, root.path().to_path_buf()).unwrap();
        assert_eq!(pool.max_slots(), 2);
        assert_eq!(pool.for_slot(0), &[0, 1]);
        assert_eq!(pool.for_slot(1), &[2, 10]);
        assert_eq!(pool.list_for_slot(1), "2,10");
        let names: Vec<String> = pool
            .nodes_for_slot(1)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["nvidia2", "nvidia10", "nvidiactl", "nvidia-uvm"]);
    }

    #[test]
    fn too_few_gpus_is_one_clear_error_and_lists_are_checked() {
        let root = fake_root(&["nvidia0"]);
        let err = GpuPool::new(vec![], 1, root.path().to_path_buf()).unwrap_err();
        assert!(err.contains("no NVIDIA GPU was found"), "{err}");
        let err = GpuPool::new(vec![0], 2, root.path().to_path_buf()).unwrap_err();
        assert!(err.contains("only 1 GPU(s)"), "{err}");
        assert_eq!(GpuPool::parse_list("0, 0", root.path()).unwrap(), vec![0]);
        assert!(GpuPool::parse_list("1", root.path())
            .unwrap_err()
            .contains("no device node"));
        assert!(GpuPool::parse_list("x", root.path())
            .unwrap_err()
            .contains("not a GPU index"));
    }

    /// NVML's UUIDs where it gives them; the minor numbers, as CUDA's indices, where it does
    /// not. (Reading the UUIDs from NVML is tested in `gpu_monitor` against a stand-in
    /// library whose PCI order differs from its minor numbers.)
    #[test]
    fn gpus_are_named_by_uuid_where_nvml_knows_them_else_by_minor_number() {
        let uuids = HashMap::from([(0, "GPU-b".to_string()), (2, "GPU-a".to_string())]);
        assert_eq!(names_from(&[2, 0], Some(&uuids)), ["GPU-a", "GPU-b"]);
        assert_eq!(names_from(&[2, 0], None), ["2", "0"]);
        let root = fake_root(&["nvidia0", "nvidia1"]);
        let nodes = GpuPool::new(vec![0, 1], 1, root.path().to_path_buf())
            .unwrap()
            .nodes_for_slot(1);
        assert_eq!(
            device_names(&[1], &nodes),
            ["1"],
            "a test's device root: no NVML"
        );
        // A GPU NVML could not open stops the pool before the round.
        let err = known_to_the_driver(&[0, 1, 2], &uuids, Path::new("/dev")).unwrap_err();
        assert!(
            err.starts_with("GPU 1 has a device node /dev/nvidia1"),
            "{err}"
        );
        assert!(known_to_the_driver(&[2, 0], &uuids, Path::new("/dev")).is_ok());
    }
}
