//! The docker backend: each case in a fresh container of the team's image, through the Docker
//! Engine API (bollard), never the CLI's text.
//!
//! The contract is the one of the other backends: the case's folder read-only at `/input`, an
//! empty writable `/output`, and the challenge's `[limits]`, enforced by the engine:
//!
//! | limit | how |
//! |---|---|
//! | `wall_time_per_case_s`, `wall_time_per_submission_s` | wait with a deadline, then `stop` with `grace_period_s` (SIGTERM, then SIGKILL) |
//! | `memory_mb` | memory = memory + swap (no swap); `oom` from the engine's `OOMKilled` |
//! | `cpus` | CPU quota (`NanoCpus`) |
//! | processes | pids limit [`MAX_PROCESSES`], as the sandbox |
//! | `output_mb` | `/output` is a tmpfs of `output_mb` on the host when podium runs as root (else a bind checked after the case), and RLIMIT_FSIZE per file |
//! | `log_kb` | the engine keeps at most 4 × `log_kb` KiB per case; podium keeps the first and last `log_kb / 2` KiB of each stream |
//! | `network` | `--network none` unless `network = true` |
//! | `shm_mb`, `gpus` | `ShmSize`; a device request for `gpus` GPUs |
//!
//! and always: an init process as PID 1 (so SIGTERM reaches the program as in the other
//! backends), a read-only root filesystem, a private tmpfs `/tmp`, all capabilities dropped,
//! `no-new-privileges`, an unprivileged user (the slot's uid as in the sandbox), no core dumps.
//!
//! Every container carries the label `podium.run=<run id>` (a hash of the run folder), so a
//! resumed round removes what an interrupted one left, and an interrupted podium removes its
//! containers before it exits ([`DockerBackend::remove_containers_on_interrupt`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, HostConfigLogConfig, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateImageOptions, ImportImageOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use serde::Serialize;

use super::case_mounts::CaseFolders;
use super::process::{describe_exit, CappedLog, ExitContext};
use super::sandbox::{MAX_PROCESSES, SLOT_ID_BASE};
use super::{wrong_kind, Backend, CaseJob, Execution};
use crate::challenge::Limits;
use crate::submission::{RunSpec, Submission};

/// The label that ties a container to its round.
pub const RUN_LABEL: &str = "podium.run";

/// The image a submission ran, as resolved by the engine before its first case. Every case
/// runs this exact image (by id), even if its tag moves during the round.
#[derive(Clone, Debug, Serialize)]
pub struct ImageRecord {
    /// What `submission.toml` named (or what `docker load` reported for an archive).
    pub reference: String,
    /// The image id (`sha256:…` of its configuration): what changes when a tag moves.
    pub id: String,
    /// Registry digests the engine knows for the image (empty for a loaded archive).
    pub repo_digests: Vec<String>,
    /// The `image_archive` it was loaded from, if any.
    pub archive: Option<PathBuf>,
    /// The image's `VOLUME`s: each becomes a tmpfs bounded by `memory_mb` (and counted in it),
    /// never an anonymous volume on the host's disk.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
}

pub struct DockerBackend {
    docker: Docker,
    runtime: tokio::runtime::Runtime,
    engine: String,
    images: Mutex<BTreeMap<String, ImageRecord>>,
    round: Arc<RoundState>,
    as_root: bool,
    /// Images this podium loaded from archives and the engine did not have before: removed
    /// when the round ends.
    loaded: Mutex<Vec<String>>,
}

/// What an interrupt handler needs to clean up after the round.
#[derive(Default)]
struct RoundState {
    run_id: Mutex<String>,
    /// Held while a container is created; set to true by the interrupt handler, after which no
    /// container is created, so the handler's removal misses none.
    interrupted: Mutex<bool>,
}

impl DockerBackend {
    /// Connects to the engine (`DOCKER_HOST`, or the local socket) and agrees on an API version.
    pub fn connect() -> Result<DockerBackend, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("podium-docker")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Docker client's runtime: {e}"))?;
        let where_ = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        let unreachable = |e: bollard::errors::Error| {
            format!(
                "the Docker engine does not answer at {where_} ({e}). Start it (`sudo systemctl start docker`, or `sudo dockerd &`), or point DOCKER_HOST at it"
            )
        };
        let (docker, engine) = runtime.block_on(async {
            let docker = Docker::connect_with_local_defaults().map_err(unreachable)?;
            let docker = docker.negotiate_version().await.map_err(unreachable)?;
            let version = docker.version().await.map_err(unreachable)?;
            let engine = format!(
                "Docker Engine {} (API {})",
                version.version.unwrap_or_default(),
                version.api_version.unwrap_or_default()
            );
            Ok::<_, String>((docker, engine))
        })?;
        Ok(DockerBackend {
            docker,
            runtime,
            engine,
            images: Mutex::new(BTreeMap::new()),
            round: Arc::new(RoundState::default()),
            as_root: unsafe { libc::geteuid() } == 0,
            loaded: Mutex::new(Vec::new()),
        })
    }

    /// The engine's version, for messages and the receipt.
    pub fn engine(&self) -> &str {
        &self.engine
    }

    /// The images resolved so far, by submission name.
    pub fn images(&self) -> BTreeMap<String, ImageRecord> {
        self.images.lock().unwrap().clone()
    }

    /// On SIGINT, SIGTERM or SIGHUP: removes the round's containers, as part of the round's
    /// interrupt handler ([`super::interrupt`]), which then unmounts the cases' folders, says
    /// how to resume and exits with 128 + the signal. Without this, an interrupted podium would
    /// leave its containers running: the engine, not podium, is their parent.
    pub fn remove_containers_on_interrupt(&self) -> Result<(), String> {
        let docker = self.docker.clone();
        let handle = self.runtime.handle().clone();
        let round = Arc::clone(&self.round);
        super::interrupt::on_interrupt(Box::new(move || {
            *round.interrupted.lock().unwrap() = true;
            let run_id = round.run_id.lock().unwrap().clone();
            eprintln!("podium: removing the round's containers");
            let removed = handle.block_on(remove_round_containers(&docker, &run_id));
            match removed {
                Ok(n) => eprintln!("podium: removed {n} container(s)"),
                Err(e) => eprintln!(
                    "podium: could not remove the containers labelled {RUN_LABEL}={run_id}: {e}"
                ),
            }
        }));
        super::interrupt::install()
    }

    /// Builds an image from a folder holding a Dockerfile (the legacy builder, which every
    /// engine has) and tags it `tag`; returns the image id. For podium's own examples: teams
    /// build their images themselves.
    pub fn build_image(&self, context_dir: &Path, tag: &str) -> Result<String, String> {
        let mut context = tar::Builder::new(Vec::new());
        context.follow_symlinks(false);
        context
            .append_dir_all(".", context_dir)
            .and_then(|_| context.finish())
            .map_err(|e| format!("cannot pack {} for the engine: {e}", context_dir.display()))?;
        let context = context
            .into_inner()
            .map_err(|e| format!("cannot pack {}: {e}", context_dir.display()))?;
        self.runtime.block_on(async {
            let mut build = self.docker.build_image(
                bollard::query_parameters::BuildImageOptions {
                    dockerfile: "Dockerfile".into(),
                    t: Some(tag.to_string()),
                    rm: true,
                    forcerm: true,
                    ..Default::default()
                },
                None,
                Some(bollard::body_full(context.into())),
            );
            while let Some(step) = build.next().await {
                step.map_err(|e| format!("building image {tag} failed: {e}"))?;
            }
            self.resolve(tag).await.map(|(id, _, _)| id)
        })
    }

    /// Loads `archive` (the output of `docker save`, gzipped or not) without any of its names
    /// ([`super::image_archive`]), and returns the image id its manifest names and the name
    /// it claimed.
    async fn load_archive(&self, archive: &Path) -> Result<(String, Option<String>), String> {
        let untagged = super::image_archive::untag(archive)?;
        let known_before = self.docker.inspect_image(&untagged.image_id).await.is_ok();
        let mut file = untagged.tar; // A blocking read per chunk on the client's one worker thread: the engine is the
                                     // bottleneck, and the archive may be larger than memory.
        let chunks = std::iter::from_fn(move || {
            let mut buf = vec![0u8; 1 << 20];
            match file.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some(Ok::<_, std::io::Error>(bytes::Bytes::from(buf)))
                }
                Err(e) => Some(Err(e)),
            }
        });
        let mut stream = self.docker.import_image_stream(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            futures_util::stream::iter(chunks),
            None,
        );
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| {
                format!(
                    "the engine could not load {} ({e}); it must be the output of `docker save` (gzip allowed)",
                    archive.display()
                )
            })?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(format!(
                    "the engine could not load {}: {error}",
                    archive.display()
                ));
            }
        }
        self.docker
            .inspect_image(&untagged.image_id)
            .await
            .map_err(|e| {
                format!(
                    "{} loaded, but the engine has no image {} (the id its manifest names): {e}",
                    archive.display(),
                    untagged.image_id
                )
            })?;
        if !known_before {
            self.loaded.lock().unwrap().push(untagged.image_id.clone());
        }
        Ok((untagged.image_id, untagged.claimed_name))
    }

    /// The engine's id, digests and declared volumes of `reference`, pulling it only when the
    /// engine lacks it.
    async fn resolve(&self, reference: &str) -> Result<(String, Vec<String>, Vec<String>), String> {
        let inspect = match self.docker.inspect_image(reference).await {
            Ok(i) => i,
            Err(local) => {
                let mut pull = self.docker.create_image(
                    Some(CreateImageOptions {
                        from_image: Some(reference.to_string()),
                        ..Default::default()
                    }),
                    None,
                    None,
                );
                while let Some(step) = pull.next().await {
                    step.map_err(|e| {
                        format!(
                            "the engine has no image {reference:?} ({local}) and could not pull it ({e}). Load it first (`docker load -i model.tar.gz`), or give `image_archive` in submission.toml"
                        )
                    })?;
                }
                self.docker
                    .inspect_image(reference)
                    .await
                    .map_err(|e| format!("image {reference:?} pulled but not found: {e}"))?
            }
        };
        let id = inspect
            .id
            .ok_or_else(|| format!("the engine reported no id for image {reference:?}"))?;
        let volumes = inspect.config.and_then(|c| c.volumes).unwrap_or_default();
        Ok((id, inspect.repo_digests.unwrap_or_default(), volumes))
    }

    // The interrupt lock is held across the create call on purpose (see there).
    #[allow(clippy::await_holding_lock)]
    async fn run_container(
        &self,
        job: &CaseJob<'_>,
        limits: &Limits,
        image: &ImageRecord,
        command: &[String],
    ) -> Execution {
        let uid = if self.as_root {
            SLOT_ID_BASE + job.slot as u32
        } else {
            unsafe { libc::getuid() }
        };
        let folders = match CaseFolders::create(job, limits, uid, self.as_root) {
            Ok(m) => m,
            Err(e) => {
                // Refused because an interrupt is unmounting the round: not the case's fault.
                self.stop_here_if_interrupted();
                return Execution::not_started(e);
            }
        };
        let run_id = self.round.run_id.lock().unwrap().clone();
        let config = container_config(job, limits, image, command, uid, &folders, &run_id);
        let created = {
            // Held while creating, so the interrupt handler, which sets the flag under this
            // lock before it lists the round's containers, cannot miss one being created. It
            // blocks this slot's thread only: the client's connections run on the runtime's
            // worker.
            let interrupted = self.round.interrupted.lock().unwrap();
            if *interrupted {
                drop(interrupted);
                self.stop_here_if_interrupted();
            }
            self.docker
                .create_container(
                    None::<bollard::query_parameters::CreateContainerOptions>,
                    config,
                )
                .await
        };
        let execution = match created {
            Ok(c) => {
                let execution = self.execute(&c.id, job, limits).await;
                self.remove(&c.id).await;
                execution
            }
            Err(e) => Execution::not_started(format!(
                "the engine could not create a container of image {} ({}): {e}",
                image.reference, image.id
            )),
        };
        let execution = folders.collect(job, limits, execution);
        drop(folders);
        self.stop_here_if_interrupted();
        execution
    }

    /// After an interrupt, a case whose container the handler removed must not be recorded
    /// as failed: its slot waits here until the handler ends the process.
    fn stop_here_if_interrupted(&self) {
        if *self.round.interrupted.lock().unwrap() {
            loop {
                std::thread::park();
            }
        }
    }

    /// Starts the created container, waits for it within the limits and reads its ending.
    async fn execute(&self, id: &str, job: &CaseJob<'_>, limits: &Limits) -> Execution {
        let wall = Duration::from_secs_f64(
            limits
                .wall_time_per_case_s
                .min(job.remaining_budget_s.max(0.0)),
        );
        let started = Instant::now();
        if let Err(e) = self.docker.start_container(id, None).await {
            return Execution::not_started(format!(
                "the engine could not start the container: {e}"
            ));
        }
        let mut wait = self.docker.wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        // The stream ends with the exit (an error item for a non-zero code); its value is not
        // used, since inspect tells the whole story, OOM included.
        let timed_out = tokio::time::timeout(wall, wait.next()).await.is_err();
        let mut wall_s = started.elapsed().as_secs_f64();
        let mut killed_after_grace = false;
        if timed_out {
            let grace = limits.grace_period_s.ceil() as i32;
            let stopping = Instant::now();
            // The engine sends the image's stop signal (SIGTERM), then SIGKILL after `grace`.
            let _ = self
                .docker
                .stop_container(
                    id,
                    Some(StopContainerOptions {
                        t: Some(grace),
                        signal: None,
                    }),
                )
                .await;
            killed_after_grace = stopping.elapsed().as_secs_f64() >= limits.grace_period_s;
            wall_s = started.elapsed().as_secs_f64();
        }
        let state = match self.docker.inspect_container(id, None).await {
            Ok(info) => info.state.unwrap_or_default(),
            Err(e) => {
                let mut e =
                    Execution::not_started(format!("the engine lost track of the container: {e}"));
                e.wall_s = wall_s;
                return e;
            }
        };
        let code = state.exit_code.unwrap_or(-1) as i32;
        let oom = state.oom_killed.unwrap_or(false);
        let (status, message) = describe_exit(
            std::process::ExitStatus::from_raw((code & 0xff) << 8),
            ExitContext {
                timed_out,
                killed_after_grace: killed_after_grace && code == 128 + libc::SIGKILL,
                output_full: false,
                oom_kills: u64::from(oom),
                wall,
                limits,
            },
        );
        let program_said = self.save_logs(id, job, limits).await;
        Execution {
            status,
            exit_code: Some(code),
            signal: (129..=192).contains(&code).then_some(code - 128),
            wall_s,
            cpu_s: None,
            peak_memory_mib: None,
            message,
            program_said,
            gpu: Default::default(),
        }
    }

    /// Writes the container's stdout and stderr to the case's logs, each capped as the other
    /// backends cap them; returns the last line of stderr.
    async fn save_logs(&self, id: &str, job: &CaseJob<'_>, limits: &Limits) -> String {
        let cap = limits.log_kb.saturating_mul(1024);
        let mut stdout = CappedLog::new(cap);
        let mut stderr = CappedLog::new(cap);
        let mut logs = self.docker.logs(
            id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        while let Some(Ok(chunk)) = logs.next().await {
            match chunk {
                bollard::container::LogOutput::StdErr { message } => stderr.push(&message),
                other => stdout.push(&other.into_bytes()),
            }
        }
        stdout.finish(&job.stdout_log);
        stderr.finish(&job.stderr_log)
    }

    async fn remove(&self, id: &str) {
        let _ = self.docker.remove_container(id, Some(force_remove())).await;
    }
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    /// As root, the case's input is a tmpfs of its own ([`CaseFolders`]).
    fn copies_input(&self, _submission: &Submission) -> bool {
        self.as_root
    }

    fn enforced_limits(&self) -> &'static [&'static str] {
        &[
            "wall_time_per_case_s",
            "wall_time_per_submission_s",
            "memory_mb",
            "cpus",
            "output_mb",
            "log_kb",
            "network",
            "shm_mb",
            "gpus",
        ]
    }

    fn isolation(&self) -> String {
        let output = if self.as_root {
            "/output a tmpfs of output_mb"
        } else {
            "/output a bind checked after the case (podium is not root, so no tmpfs)"
        };
        format!(
            "docker ({}): a fresh container per case, read-only root, /input read-only, {output}, private /tmp, no capabilities, no-new-privileges, unprivileged user, pids limit {MAX_PROCESSES}, memory without swap, CPU quota",
            self.engine
        )
    }

    fn finish_round(&self) {
        let loaded: Vec<String> = self.loaded.lock().unwrap().drain(..).collect();
        self.runtime.block_on(async {
            for id in loaded {
                let _ = self
                    .docker
                    .remove_image(
                        &id,
                        Some(bollard::query_parameters::RemoveImageOptions {
                            force: true,
                            ..Default::default()
                        }),
                        None,
                    )
                    .await;
            }
        });
    }

    fn start_round(&self, run_id: &str, _out: &Path) -> Result<(), String> {
        *self.round.run_id.lock().unwrap() = run_id.to_string();
        // Leftovers of an interrupted podium of this round (a `kill -9` cannot clean up).
        self.runtime
            .block_on(remove_round_containers(&self.docker, run_id))
            .map(|_| ())
    }

    fn prepare(&self, submission: &Submission, log: &Path, _limits: &Limits) -> Result<(), String> {
        let RunSpec::Docker {
            image,
            image_archive,
            ..
        } = &submission.run
        else {
            return Err(wrong_kind(submission));
        };
        let archive = image_archive.as_ref().map(|a| submission.dir.join(a));
        let record = self.runtime.block_on(async {
            // An archive's image is named by its id alone: a tag could be moved by another
            // team's archive loaded into the same engine.
            let (lookup, reference) = match (&archive, image) {
                (Some(archive), _) => {
                    let (id, claimed) = self.load_archive(archive).await?;
                    let reference = claimed.unwrap_or_else(|| id.clone());
                    (id, reference)
                }
                (None, Some(image)) => (image.clone(), image.clone()),
                (None, None) => return Err(wrong_kind(submission)),
            };
            let (id, repo_digests, volumes) = self.resolve(&lookup).await?;
            Ok(ImageRecord {
                reference,
                id,
                repo_digests,
                archive: archive.clone(),
                volumes,
            })
        });
        let text = match &record {
            Ok(r) => format!(
                "{}\nimage {} resolved to {}{}\n",
                self.engine,
                r.reference,
                r.id,
                r.repo_digests
                    .iter()
                    .map(|d| format!("\nrepo digest {d}"))
                    .collect::<String>()
            ),
            Err(e) => format!("{}\n{e}\n", self.engine),
        };
        let _ = std::fs::write(log, text);
        let record = record?;
        self.images
            .lock()
            .unwrap()
            .insert(submission.name.clone(), record);
        Ok(())
    }

    fn run_case(&self, job: &CaseJob, limits: &Limits) -> Execution {
        let RunSpec::Docker { command, .. } = &job.submission.run else {
            return Execution::not_started(wrong_kind(job.submission));
        };
        let Some(image) = self.images().get(&job.submission.name).cloned() else {
            return Execution::not_started(format!(
                "internal error: the image of {} was not prepared",
                job.submission.name
            ));
        };
        let command: Vec<String> = command
            .iter()
            .map(|a| {
                a.replace("{input}", "/input")
                    .replace("{output}", "/output")
            })
            .collect();
        self.runtime
            .block_on(self.run_container(job, limits, &image, &command))
    }

    fn submission_details(&self, submission: &str) -> Option<serde_json::Value> {
        let image = self.images.lock().unwrap().get(submission).cloned()?;
        serde_json::to_value(image).ok()
    }
}

/// The container of one case: the contract's mounts and every limit.
fn container_config(
    job: &CaseJob,
    limits: &Limits,
    image: &ImageRecord,
    command: &[String],
    uid: u32,
    folders: &CaseFolders,
    run_id: &str,
) -> ContainerCreateBody {
    const MIB: i64 = 1 << 20;
    let memory = (limits.memory_mb as i64).saturating_mul(MIB);
    let output_bytes = (limits.output_mb as i64).saturating_mul(MIB);
    let labels = HashMap::from([
        (RUN_LABEL.to_string(), run_id.to_string()),
        ("podium.submission".to_string(), job.submission.name.clone()),
        ("podium.case".to_string(), job.case_id.clone()),
    ]);
    let ulimit = |name: &str, value: i64| ResourcesUlimits {
        name: Some(name.into()),
        soft: Some(value),
        hard: Some(value),
    };
    // The slot's own GPUs by id when the round has a pool, so that two containers of the round
    // never land on one GPU; a count only without one (a library caller's round). The ids are
    // UUIDs where NVML gives them: the toolkit's indices are NVML's, not the minor numbers.
    let device_requests = (limits.gpus > 0).then(|| {
        let (count, device_ids) = if job.gpus.is_empty() {
            (Some(i64::from(limits.gpus)), None)
        } else {
            (
                None,
                Some(super::gpus::device_names(&job.gpus, &job.gpu_nodes)),
            )
        };
        vec![DeviceRequest {
            count,
            device_ids,
            capabilities: Some(vec![vec!["gpu".to_string()]]),
            ..Default::default()
        }]
    });
    ContainerCreateBody {
        image: Some(image.id.clone()),
        cmd: (!command.is_empty()).then(|| command.to_vec()),
        user: Some(format!("{uid}:{uid}")),
        env: Some(vec![
            "PODIUM_INPUT=/input".into(),
            "PODIUM_OUTPUT=/output".into(),
            format!("PODIUM_CASE_ID={}", job.case_id),
            format!("PODIUM_CPUS={}", limits.cpus),
            format!("OMP_NUM_THREADS={}", limits.cpus),
            "HOME=/tmp".into(),
        ]),
        labels: Some(labels),
        network_disabled: Some(!limits.network),
        host_config: Some(HostConfig {
            binds: Some(vec![
                format!("{}:/input:ro", folders.input.display()),
                format!("{}:/output:rw", folders.output.display()),
            ]),
            network_mode: (!limits.network).then(|| "none".to_string()),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some(i64::from(limits.cpus) * 1_000_000_000),
            pids_limit: Some(MAX_PROCESSES as i64),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            tmpfs: Some(tmpfs_mounts(image, limits)),
            shm_size: Some((limits.shm_mb as i64).saturating_mul(MIB)),
            ulimits: Some(vec![ulimit("fsize", output_bytes), ulimit("core", 0)]),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    (
                        "max-size".to_string(),
                        format!("{}k", limits.log_kb.max(1) * 4),
                    ),
                    ("max-file".to_string(), "1".to_string()),
                ])),
            }),
            device_requests,
            // A small init as PID 1 (the engine's docker-init) forwards SIGTERM to the program
            // and reaps its children: a program that is PID 1 itself would ignore SIGTERM,
            // unlike in the other backends.
            init: Some(true),
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container's tmpfs mounts: a private `/tmp`, and one in place of each `VOLUME` of the
/// image (which the engine would otherwise create on the host's disk, outside every limit).
/// Each holds at most `memory_mb`, and what it holds counts in the container's memory.
fn tmpfs_mounts(image: &ImageRecord, limits: &Limits) -> HashMap<String, String> {
    let options = format!("rw,nosuid,nodev,size={}m,mode=1777", limits.memory_mb);
    let mut mounts = HashMap::from([("/tmp".to_string(), options.clone())]);
    for volume in &image.volumes {
        let path = volume.trim_end_matches('/');
        let contract = ["/input", "/output"]
            .iter()
            .any(|c| path == *c || path.starts_with(&format!("{c}/")));
        if path.starts_with('/') && path.len() > 1 && !contract {
            mounts.insert(path.to_string(), options.clone());
        }
    }
    mounts
}

/// Removes a container even if it runs, with its anonymous volumes.
fn force_remove() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    }
}

/// Removes every container of the round; returns how many there were.
async fn remove_round_containers(docker: &Docker, run_id: &str) -> Result<usize, String> {
    if run_id.is_empty() {
        return Ok(0);
    }
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{RUN_LABEL}={run_id}")],
            )])),
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("cannot list the round's containers: {e}"))?;
    let mut removed = 0;
    for container in containers {
        let Some(id) = container.id else { continue };
        docker
            .remove_container(&id, Some(force_remove()))
            .await
            .map_err(|e| format!("cannot remove container {id}: {e}"))?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(submission: &'a Submission) -> CaseJob<'a> {
        CaseJob {
            submission,
            case_id: "case_007".into(),
            input_dir: "/run/in".into(),
            image: "/challenge/images/case_007.nii.gz".into(),
            output_dir: "/run/out".into(),
            stdout_log: "/run/o.log".into(),
            stderr_log: "/run/e.log".into(),
            remaining_budget_s: 100.0,
            slot: 1,
            gpus: vec![],
            gpu_nodes: vec![],
        }
    }

    fn submission() -> Submission {
        Submission {
            dir: "/subs/a".into(),
            team: "t".into(),
            name: "a".into(),
            description: String::new(),
            baseline: false,
            final_selection: false,
            run: RunSpec::Docker {
                image: Some("team/model:1".into()),
                image_archive: None,
                command: vec![],
            },
        }
    }

    fn image() -> ImageRecord {
        ImageRecord {
            reference: "team/model:1".into(),
            id: "sha256:abc".into(),
            repo_digests: vec![],
            archive: None,
            volumes: vec!["/data".into(), "/output".into()],
        }
    }

    #[test]
    fn the_container_gets_every_limit_of_the_challenge() {
        let limits = Limits {
            memory_mb: 512,
            cpus: 2,
            output_mb: 8,
            log_kb: 16,
            shm_mb: 256,
            ..Limits::default()
        };
        let s = submission();
        let job = job(&s);
        let folders = CaseFolders::create(&job, &limits, 64001, false).unwrap();
        let c = container_config(&job, &limits, &image(), &[], 64001, &folders, "r1");
        let h = c.host_config.unwrap();
        assert_eq!(
            c.image.as_deref(),
            Some("sha256:abc"),
            "runs the resolved id, not the tag"
        );
        assert_eq!(
            c.cmd, None,
            "the image's own CMD when submission.toml gives none"
        );
        assert_eq!(c.user.as_deref(), Some("64001:64001"));
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        assert_eq!(c.network_disabled, Some(true));
        assert_eq!(h.memory, Some(512 << 20));
        assert_eq!(h.memory_swap, h.memory, "no swap beyond the memory limit");
        assert_eq!(h.nano_cpus, Some(2_000_000_000));
        assert_eq!(h.pids_limit, Some(MAX_PROCESSES as i64));
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(h.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(h.shm_size, Some(256 << 20));
        assert_eq!(
            h.binds.unwrap(),
            vec![
                "/run/in:/input:ro".to_string(),
                "/run/out:/output:rw".to_string()
            ]
        );
        let tmpfs = h.tmpfs.unwrap();
        assert!(tmpfs["/tmp"].contains("size=512m"));
        assert!(
            tmpfs["/data"].contains("size=512m"),
            "a VOLUME is a bounded tmpfs"
        );
        assert!(!tmpfs.contains_key("/output"), "the contract's mounts stay");
        let ulimits = h.ulimits.unwrap();
        assert!(ulimits
            .iter()
            .any(|u| u.name.as_deref() == Some("fsize") && u.hard == Some(8 << 20)));
        assert!(ulimits
            .iter()
            .any(|u| u.name.as_deref() == Some("core") && u.hard == Some(0)));
        assert_eq!(h.log_config.unwrap().config.unwrap()["max-size"], "64k");
        assert_eq!(h.device_requests, None, "no GPU unless the challenge asks");
        assert_eq!(c.labels.unwrap()[RUN_LABEL], "r1");
    }

    #[test]
    fn gpus_become_a_device_request_and_network_can_be_allowed() {
        let limits = Limits {
            gpus: 1,
            network: true,
            ..Limits::default()
        };
        let s = submission();
        let command = vec!["--in".to_string(), "/input".to_string()];
        let mut job = job(&s);
        let folders = CaseFolders::create(&job, &limits, 1000, false).unwrap();
        let c = container_config(&job, &limits, &image(), &command, 1000, &folders, "r");
        let h = c.host_config.unwrap();
        let request = &h.device_requests.unwrap()[0];
        assert_eq!(
            request.count,
            Some(1),
            "a count without the round's GPU pool"
        );
        assert_eq!(request.capabilities, Some(vec![vec!["gpu".to_string()]]));
        assert_eq!(
            request.driver, None,
            "any GPU driver, as `docker run --gpus 1`"
        );
        assert_eq!(h.network_mode, None);
        assert_eq!(c.network_disabled, Some(false));
        assert_eq!(c.cmd, Some(command.clone()));
        // With the round's pool: the slot's own GPUs by id, never a count the engine places.
        job.gpus = vec![2, 3];
        let c = container_config(&job, &limits, &image(), &command, 1000, &folders, "r");
        let request = &c.host_config.unwrap().device_requests.unwrap()[0];
        assert_eq!(request.count, None);
        assert_eq!(
            request.device_ids,
            Some(vec!["2".to_string(), "3".to_string()])
        );
    }
}
