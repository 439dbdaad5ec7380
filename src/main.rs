//! The `podium` command line: a thin layer over the library's pipeline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use podium::challenge::{validate, Challenge};
use podium::challenge::{BackendKind, Visibility};
use podium::demo::{self, GenerationStamp, Size};
use podium::pipeline::{self, RoundOutcome};
use podium::ranking::analysis::RankingMethod;
use podium::runner::{
    process::ProcessBackend, select_backend, Backend, RoundOptions, TerminalReporter,
};
use podium::submission::RunSpec;
use podium::submission::Submission;
use podium::{Error, Result};

/// podium runs, scores and ranks the submissions of a medical-imaging AI challenge.
///
/// Organizers define a challenge (challenge.toml and phase data), run every team's submission
/// on a hidden test phase case by case under resource limits, and get per-case scores,
/// aggregates with 95% confidence intervals, validation findings and a leaderboard. Teams run
/// the very same command on the public dev phase before they submit.
///
/// Quick start: `podium demo` generates the synthetic COVID-19 chest-CT challenge and runs the
/// two example submissions on it. Files are described in docs/contract.md, metrics in
/// docs/metrics.md.
#[derive(Parser)]
#[command(name = "podium", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--ranking-method`: an option of the commands that rank, and of no other.
#[derive(clap::Args)]
struct RankingArg {
    /// Rank with this method instead of the challenge's `[ranking] method`, to compare:
    /// mean-then-rank, median-then-rank, rank-then-mean or test-then-rank (docs/ranking.md).
    /// Every method's ranks are in ranking/methods.csv either way.
    #[arg(long, value_enum, value_name = "METHOD")]
    ranking_method: Option<RankingMethod>,
}

/// `--jobs` of the commands that only score.
#[derive(clap::Args, Clone, Copy, Debug)]
struct ScoringJobsArg {
    /// Threads for scoring: masks are compared, and bootstrap resamples drawn, N at a time
    /// (default: one per core). `--jobs 1` keeps scoring to one core, beside other work.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
}

impl Command {
    fn scoring_jobs(&self) -> Option<u16> {
        match self {
            Command::Rescore { scoring, .. } | Command::Score { scoring, .. } => scoring.jobs,
            _ => None,
        }
    }

    fn ranking_method(&self) -> Option<RankingMethod> {
        match self {
            Command::Demo { ranking, .. }
            | Command::Run { ranking, .. }
            | Command::Rescore { ranking, .. }
            | Command::Leaderboard { ranking, .. }
            | Command::Score { ranking, .. } => ranking.ranking_method,
            _ => None,
        }
    }
}

/// `--ranking-method`, for every command that ranks.
static RANKING_METHOD: std::sync::OnceLock<Option<RankingMethod>> = std::sync::OnceLock::new();

/// Loads a challenge with the command line's ranking method, if any.
fn load_challenge(dir: &Path) -> Result<Challenge> {
    let mut challenge = Challenge::load(dir)?;
    if let Some(method) = RANKING_METHOD.get().copied().flatten() {
        challenge.ranking.method = method;
    }
    Ok(challenge)
}

#[derive(Subcommand)]
enum Command {
    /// Generate the demo challenge, run the example submissions on its test phase, print the leaderboard.
    ///
    /// The data is generated once per (cases, size, seed) under reports/demo-data/ and reused.
    Demo {
        /// Cases per phase.
        #[arg(long, default_value_t = 40)]
        cases: usize,
        /// Volume size: `small` (64x64x48) or `ct` (512x512x200, clinical resolution).
        #[arg(long, value_enum, default_value_t = Size::Small)]
        size: Size,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Folder of submissions (default: ./submissions).
        #[arg(long)]
        submissions: Option<PathBuf>,
        /// How submissions are executed: `auto` (the sandbox when bubblewrap works here),
        /// `sandbox` or `process` (no isolation).
        #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
        backend: BackendKind,
        /// Also build threshold-baseline as a Docker image (submissions/threshold-baseline/
        /// Dockerfile) and run it beside the native binary: the two must score identically.
        /// Needs a running Docker engine.
        #[arg(long)]
        docker: bool,

        /// Cases run at once (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Output folder (default: reports/covid19-ct-test-<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        ranking: RankingArg,
    },
    /// Create a challenge from a template, with generated data.
    ///
    /// Writes <DIR>/challenge.toml (kept if present) and generates phases/dev and phases/test:
    /// input/cases.csv, input/images/*.nii.gz, truth/labels.csv, truth/masks/*.nii.gz and
    /// truth/metadata.csv (each case's simulated hospital and scanner: 4 sites whose scanners
    /// differ in noise, HU calibration, slice thickness and field of view).
    Init {
        /// Template name; available: covid19-ct.
        #[arg(long, default_value = "covid19-ct")]
        template: String,
        /// Folder to create the challenge in.
        dir: PathBuf,
        /// The challenge's name, in challenge.toml and its report folders' names (default:
        /// the folder's name). A challenge.toml already in DIR is kept as it is.
        #[arg(long)]
        name: Option<String>,
        /// Cases per phase.
        #[arg(long, default_value_t = 40)]
        cases: usize,
        #[arg(long, value_enum, default_value_t = Size::Small)]
        size: Size,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Check a challenge definition and its phase data; every finding names the file and line.
    ///
    /// With `[analysis] subgroups`, each phase's truth/metadata.csv is checked too: the file,
    /// the declared columns, and a row with a level for every case.
    Validate {
        /// The challenge folder (holding challenge.toml).
        #[arg(value_name = "DIR")]
        challenge: PathBuf,
        /// Check only this phase.
        #[arg(long)]
        phase: Option<String>,
        /// Truth folder to use instead of phases/<phase>/truth.
        #[arg(long)]
        truth: Option<PathBuf>,
    },
    /// Run submissions on a phase, case by case, then score and rank them.
    ///
    /// Each case runs in its own process (or, for a `kind = "docker"` submission, its own
    /// container, through the Docker engine) with only that case's image in its input folder;
    /// a failed, timed-out or invalid case is recorded and the round goes on. Results go to the
    /// output folder: runs.csv, scores.csv, metrics.csv, problems.csv, truth-findings.csv,
    /// leaderboard.csv, run.json, predictions/ and logs/ (with `[analysis] subgroups`, also
    /// metrics_by_subgroup.csv and subgroup_summary.csv). The phase's data is checked first, as
    /// `podium validate` does: see --leave-out-bad-truth. A terminal shows each submission's
    /// cases done, failures and ETA; a log gets a PROGRESS line every tenth of its cases (or
    /// minute). Ctrl-C or SIGTERM stops the round's programs (and removes a Docker round's
    /// containers), keeps the finished cases, prints the `--resume` command and exits with 130
    /// or 143.
    Run {
        /// The challenge folder (holding challenge.toml).
        #[arg(long, value_name = "DIR", required_unless_present = "resume")]
        challenge: Option<PathBuf>,
        /// The phase to run on, for example `dev` (public) or `test` (hidden).
        #[arg(long, required_unless_present = "resume")]
        phase: Option<String>,
        /// One submission folder (holding submission.toml) or a folder of them; repeat it to
        /// run several (`--submissions a --submissions b`). A folder whose submission.toml is
        /// invalid, or whose name an earlier folder took, is refused alone (listed in the
        /// round's refused.csv); the others run.
        #[arg(long, value_name = "DIR", required_unless_present = "resume")]
        submissions: Vec<PathBuf>,
        /// The organizer's registry of who sent what (default: teams.toml beside
        /// challenge.toml). It maps each submission folder to its team and lists the baselines;
        /// a folder it does not list is its own team, named after the folder. A team's own
        /// submission.toml never decides its team or makes it a baseline.
        #[arg(long, value_name = "FILE", conflicts_with = "resume")]
        teams: Option<PathBuf>,
        /// GPU indices the round may use when the challenge gives cases GPUs (`[limits] gpus`),
        /// for example `0,1` (default: every NVIDIA GPU of the machine). Each of the round's
        /// slots gets its own `gpus` of them, and `--jobs` is capped so that no two running
        /// cases share a GPU. With `--resume`: instead of the GPUs the round started with.
        #[arg(long, value_name = "LIST")]
        gpus: Option<String>,
        /// Truth folder to use instead of phases/<phase>/truth.
        #[arg(long, value_name = "DIR")]
        truth: Option<PathBuf>,
        #[command(flatten)]
        bad_truth: BadTruthArg,
        /// Cases run at once (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Output folder (default: reports/<challenge>-<phase>-<UTC time>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The folder of this phase's rounds: the round goes into a new subfolder of it, and
        /// the challenge's `[leaderboard] quota` is enforced against the earlier rounds there
        /// (a team over quota is refused, with when its next slot opens). `podium leaderboard
        /// DIR` then ranks every team's best, latest or final submission.
        #[arg(long, value_name = "DIR", conflicts_with = "out")]
        rounds: Option<PathBuf>,
        /// Finish an interrupted round: the cases recorded in <DIR>/runs.csv are kept, the
        /// others run, and everything is scored as if the round had never stopped.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["challenge", "phase", "submissions", "truth", "out"])]
        resume: Option<PathBuf>,
        /// How submissions are executed: `auto` (the challenge's `[cluster]` when it has one,
        /// else the sandbox when bubblewrap works here), `sandbox`, `process` (no isolation) or
        /// `slurm` (each case a Slurm job on the cluster, in the node's sandbox: docs/slurm.md).
        #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
        backend: BackendKind,
        /// Run a hidden phase even when the submissions cannot be isolated (rlimits only).
        #[arg(long)]
        allow_unisolated: bool,
        /// Also print a line for every case that went well.
        #[arg(long)]
        verbose: bool,
        #[command(flatten)]
        ranking: RankingArg,
    },
    /// Score a finished round again from its stored outputs, without running anything.
    ///
    /// Reads <RUN_DIR>/round.json, runs.csv and predictions/. The round's official result is
    /// never overwritten in passing: `--out DIR` writes the rescore to a new folder (for
    /// another --ranking-method, or to see what a metric or truth fix or a podium upgrade
    /// changes), and `--replace-official` makes a rescore with the round's own settings its
    /// official result, keeping the files it replaces in RUN_DIR/replaced-<UTC time>/.
    /// An interrupted round is refused: finish it with `podium run --resume RUN_DIR`. The truth
    /// is checked first, as for `run`.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["out", "replace_official"])))]
    Rescore {
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
        #[command(flatten)]
        ranking: RankingArg,
        /// Write the rescore into DIR (new or empty, outside RUN_DIR); RUN_DIR is left as it is.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Replace the round's official result, with the round's own settings (no
        /// --ranking-method, no --allow-incomplete); the replaced files are kept in
        /// RUN_DIR/replaced-<UTC time>/.
        #[arg(long)]
        replace_official: bool,
        /// Score an interrupted round anyway, on the cases every submission ran (with --out):
        /// the result is marked INCOMPLETE everywhere, names no winner, and blames no team for
        /// the cases that did not run.
        #[arg(long)]
        allow_incomplete: bool,
        #[command(flatten)]
        bad_truth: BadTruthArg,
        #[command(flatten)]
        scoring: ScoringJobsArg,
    },
    /// Run a batch of cases on a cluster node (what a Slurm job of `podium run --backend slurm`
    /// runs; not for direct use).
    #[command(hide = true)]
    ExecCase {
        /// The batch file the organizer's podium wrote.
        #[arg(value_name = "BATCH_JSON")]
        batch: PathBuf,
    },
    /// Write a finished round's report again: report.html, report.md and, with --plots, every
    /// chart as SVG and PNG and the segmentation slices as PNG.
    ///
    /// Reads RUN_DIR/report-data.json, runs.csv and logs/ (as `run`, `score`, `check` and
    /// `rescore` leave them); it needs neither the challenge nor the truth, so a judge can
    /// redraw the report from the folder alone, except the segmentation slices: those are drawn
    /// from the challenge's images and truth, found where run.json says, and without them the
    /// section says what is missing. The file is self-contained: inline CSS, SVG and PNG, a few
    /// lines of JavaScript to sort tables, no request to any file or host.
    Report {
        /// The folder of a finished round.
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
        /// Where to write the HTML file, with its Markdown summary beside it (same name, .md).
        /// Default: RUN_DIR/report.html, or RUN_DIR/report-team.html for `--view team`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also write every chart into DIR as <name>.svg and <name>.png (for slides), and each
        /// segmentation slice as <task>-slice-<submission>-<worst|median|best>-<case>.png, with
        /// -truth.png for the truth alone.
        #[arg(long, value_name = "DIR")]
        plots: Option<PathBuf>,
        /// `organizer`: messages with the program's last stderr lines and log excerpts of failed
        /// cases. `team`: on a hidden phase, podium's team-safe messages only and no per-case
        /// value (worst cases, per-case charts), since those would reveal the hidden truth.
        #[arg(long, value_enum, default_value_t = podium::report::View::Organizer)]
        view: podium::report::View,
    },
    /// Print or export a finished round's leaderboard (nothing is recomputed).
    ///
    /// Reads RUN_DIR/leaderboard.csv, as `podium run`, `score` or `rescore` wrote it with the
    /// declared ranking method. Team names are escaped for every format. To rank with another
    /// method, `podium rescore RUN_DIR --ranking-method METHOD` first; `--ranking-method` here
    /// applies where this command ranks: with `--final`, and for a folder of rounds.
    Leaderboard {
        /// The folder of a finished round.
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = podium::report::leaderboard::Format::Table)]
        format: podium::report::leaderboard::Format,
        /// Reveal the final leaderboard: score and rank the round on the private split of its
        /// phase (the cases its live leaderboard never showed), into RUN_DIR/final/.
        #[arg(long = "final")]
        final_split: bool,
        #[command(flatten)]
        ranking: RankingArg,
        #[command(flatten)]
        bad_truth: BadTruthArg,
    },
    /// For teams: run your submission on the public phase with the challenge's limits and say
    /// what the server would find.
    ///
    /// Runs exactly as `podium run` does on the organizers' server (same limits, same
    /// environment), validates the outputs, scores them, and lists the problems by kind, with
    /// how many cases each concerns and the first of them (problems.csv has every case). A
    /// case with a problem is scored, not refused: with the worst value of each metric of the
    /// tasks concerned (or left out, under `[scoring] missing = "exclude"`). Only a
    /// submission.toml the server cannot read gets a submission refused. A Docker submission
    /// (`kind = "docker"`, with `image` or `image_archive`) is loaded and run in containers
    /// exactly as on the server. Exits with status 1 when any case has a problem, 2 when the
    /// submission would be refused.
    Check {
        /// Your submission folder (holding submission.toml).
        #[arg(value_name = "SUBMISSION_DIR")]
        submission: PathBuf,
        /// The challenge folder (holding challenge.toml), from the team kit.
        #[arg(long, value_name = "DIR")]
        challenge: PathBuf,
        /// The phase to check on (default: the first public phase).
        #[arg(long)]
        phase: Option<String>,
        /// How submissions are executed: `auto` (the sandbox when bubblewrap works here),
        /// `sandbox` or `process` (no isolation).
        #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
        backend: BackendKind,
        /// GPU indices the round may use when the challenge gives cases GPUs (`[limits] gpus`),
        /// for example `0,1` (default: every NVIDIA GPU of the machine). Each of the round's
        /// slots gets its own `gpus` of them, and `--jobs` is capped so that no two running
        /// cases share a GPU.
        #[arg(long, value_name = "LIST")]
        gpus: Option<String>,

        /// Cases run at once (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Output folder (default: reports/<challenge>-<phase>-<UTC time>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Score a folder of predictions without running anything.
    ///
    /// The folder holds predictions.csv and the mask folders (docs/contract.md). Fails only
    /// when nothing in it can be scored; every other finding goes to problems.csv.
    Score {
        /// The challenge folder (holding challenge.toml).
        #[arg(long, value_name = "DIR")]
        challenge: PathBuf,
        /// The phase whose truth to score against.
        #[arg(long)]
        phase: String,
        /// Folder holding predictions.csv and the mask folders.
        #[arg(long, value_name = "DIR")]
        predictions: PathBuf,
        /// Truth folder to use instead of phases/<phase>/truth.
        #[arg(long, value_name = "DIR")]
        truth: Option<PathBuf>,
        #[command(flatten)]
        bad_truth: BadTruthArg,
        /// The name shown for these predictions (default: the folder's name).
        #[arg(long)]
        name: Option<String>,
        /// Output folder for scores.csv, metrics.csv, problems.csv, leaderboard.csv, run.json.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        ranking: RankingArg,
        #[command(flatten)]
        scoring: ScoringJobsArg,
    },
    /// Manage the teams of a `podium serve` data folder and their tokens.
    ///
    /// `podium teams add "Team A" --data DIR` prints the team's token once: give it to the
    /// team, who passes it to `podium submit --token`. Only a SHA-256 hash of it is kept, so a
    /// lost token cannot be shown again: add the team under another name. `--organizer` makes
    /// a token for the organizers' pages and actions instead (not a team on the leaderboard).
    /// Works while the server runs.
    Teams {
        #[command(subcommand)]
        action: TeamsAction,
    },
    /// Take teams' submissions over HTTP, evaluate them in a queue and show a live leaderboard.
    ///
    /// One process holds everything: the teams and the queue in <DATA>/podium.sqlite3, each
    /// accepted submission in <DATA>/submissions/, each one's round in <DATA>/rounds/ (a
    /// folder of rounds: `podium leaderboard <DATA>/rounds` ranks it the same way), and what
    /// each round printed in <DATA>/logs/. Each submission runs as `podium run` with the
    /// options below, under the challenge's limits and quota. A server stopped at any point
    /// (Ctrl-C, or even kill -9) loses nothing: started again, it resumes the round that was
    /// running and runs what was queued. Add teams with `podium teams add`; teams send with
    /// `podium submit`. Pages: / (leaderboard), /team, /organizer; the JSON API is in
    /// docs/serve.md. Plain HTTP: put it behind a TLS reverse proxy (docs/serve.md).
    Serve {
        /// The challenge folder (holding challenge.toml).
        #[arg(long, value_name = "DIR")]
        challenge: PathBuf,
        /// The phase to take submissions for.
        #[arg(long)]
        phase: String,
        /// The server's data folder (created if needed).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Submissions evaluated at once.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Cases each round runs at once (podium run --jobs).
        #[arg(long)]
        jobs: Option<usize>,
        /// How rounds run their submissions (podium run --backend).
        #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
        backend: BackendKind,
        /// Rank the leaderboard on the private split (the end of a hidden phase).
        #[arg(long = "final")]
        final_split: bool,
        /// The largest upload accepted, compressed, in MiB.
        #[arg(long, default_value_t = 2048, value_name = "MIB")]
        max_upload_mib: u64,
        /// The most an upload may unpack to, in MiB (a gzip bomb stops there).
        #[arg(long, default_value_t = 4096, value_name = "MIB")]
        max_unpacked_mib: u64,
        /// The most files, folders and links an upload may hold.
        #[arg(long, default_value_t = 100_000)]
        max_entries: u64,
    },
    /// Send a submission folder to a `podium serve`, or pack it for sending by other means.
    ///
    /// Packs DIR (holding submission.toml) as a gzip-compressed tar, checking what the server
    /// would refuse (links leaving the folder, special files), and uploads it with the team's
    /// token. Prints the submission's number, or the server's reason for refusing it.
    Submit {
        /// The submission folder.
        dir: PathBuf,
        /// The server, as http://host:port.
        #[arg(long, required_unless_present = "pack_only")]
        server: Option<String>,
        /// The team's token (default: the PODIUM_TOKEN environment variable, which other
        /// users of the machine cannot read in the process list).
        #[arg(
            long,
            env = "PODIUM_TOKEN",
            hide_env_values = true,
            required_unless_present = "pack_only"
        )]
        token: Option<String>,
        /// Only write the archive to FILE (to send it with curl through TLS).
        #[arg(long, value_name = "FILE")]
        pack_only: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TeamsAction {
    /// Add a team (or, with --organizer, an organizer) and print its token once.
    Add {
        /// The team's name as the leaderboard shows it (1 to 64 characters).
        name: String,
        /// The server's data folder (`podium serve --data`).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// An organizer's token: opens the organizer's page and actions.
        #[arg(long)]
        organizer: bool,
    },
    /// List the teams (never their tokens).
    List {
        /// The server's data folder (`podium serve --data`).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
    },
}

/// `--leave-out-bad-truth`, shared by `run`, `score` and `rescore`.
#[derive(clap::Args)]
struct BadTruthArg {
    /// Score without the cases whose truth or image `podium validate` finds broken, for every
    /// submission alike, instead of refusing. The phase's data is checked before anything runs
    /// or is scored; without this flag any finding stops the command (exit status 2) with the
    /// findings by case. With it, the leaderboard, report and run.json say how many cases were
    /// scored and which were left out and why (truth-findings.csv); teams are never told. A
    /// problem of the whole phase (no labels.csv, say) still stops the command. A round started
    /// with it keeps it on `--resume`, `rescore` and `leaderboard --final`.
    #[arg(long = "leave-out-bad-truth")]
    leave_out: bool,
}

fn main() -> ExitCode {
    podium::serve::queue::keep_lock_to_this_process();
    let cli = Cli::parse();
    let _ = RANKING_METHOD.set(cli.command.ranking_method());
    if let Some(jobs) = cli.command.scoring_jobs() {
        // The global pool is what scoring's parallel loops run on; set before any of them.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(usize::from(jobs))
            .build_global();
    }
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            // An error may quote a team's file or name.
            eprintln!("error: {}", podium::text::shown_lines(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Teams { action } => teams(action),
        Command::Serve {
            challenge,
            phase,
            data,
            listen,
            workers,
            jobs,
            backend,
            final_split,
            max_upload_mib,
            max_unpacked_mib,
            max_entries,
        } => {
            let mut run_args = vec!["--backend".to_string(), backend_name(backend)];
            if let Some(jobs) = jobs {
                run_args.extend(["--jobs".to_string(), jobs.to_string()]);
            }
            let limits = podium::serve::intake::IntakeLimits {
                max_upload_bytes: max_upload_mib.saturating_mul(1 << 20),
                unpack: podium::serve::archive::UnpackLimits {
                    max_unpacked_bytes: max_unpacked_mib.saturating_mul(1 << 20),
                    max_entries,
                },
            };
            podium::serve::serve(podium::serve::ServeOptions {
                challenge_dir: challenge,
                phase,
                data,
                listen,
                workers,
                run_args,
                final_split,
                limits,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit {
            dir,
            server,
            token,
            pack_only,
        } => {
            if let Some(file) = pack_only {
                let size =
                    podium::serve::archive::pack(&dir, &file).map_err(|e| Error::msg(e.0))?;
                eprintln!(
                    "Packed {} into {} ({size} bytes).",
                    dir.display(),
                    file.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let (Some(server), Some(token)) = (server, token) else {
                return Err(Error::msg(
                    "submit needs --server and --token (or PODIUM_TOKEN)",
                ));
            };
            let answer = podium::serve::client::submit(&server, &token, &dir)?;
            if answer.status == 202 {
                println!(
                    "Submission {} ({}) of team {} is queued. Follow it at {server}/team or with GET /api/submissions/{}.",
                    answer.body["id"],
                    podium::text::shown(answer.body["name"].as_str().unwrap_or("")),
                    podium::text::shown(answer.body["team"].as_str().unwrap_or("")),
                    answer.body["id"]
                );
                Ok(ExitCode::SUCCESS)
            } else {
                Err(Error::msg(format!(
                    "the server refused the submission ({}): {}",
                    answer.status,
                    answer.body["error"].as_str().unwrap_or("no reason given")
                )))
            }
        }
        Command::Demo {
            cases,
            size,
            seed,
            submissions,
            backend,
            docker,
            jobs,
            out,
            ..
        } => {
            let data = PathBuf::from("reports")
                .join("demo-data")
                .join(format!("covid19-ct-{}-{cases}-{seed}", size_name(size)));
            let stamp = GenerationStamp::new(cases, size, seed);
            demo::refresh_challenge_toml(&data)?;
            if stamp.is_present(&data) {
                eprintln!("podium: reusing the demo data in {}", data.display());
            } else {
                generate(&data, &stamp)?;
            }
            let dir = submissions.unwrap_or_else(default_submissions_dir);
            // The examples are podium's own code: build them on the host, then run them like
            // any submission (isolated when the machine allows it).
            let mut submissions = Submission::discover(&dir)?;
            for submission in &mut submissions {
                prebuild_trusted(submission)?;
            }
            if docker {
                let engine = podium::runner::docker::DockerBackend::connect().map_err(|e| {
                    Error::msg(format!("`podium demo --docker` needs Docker, but {e}"))
                })?;
                let example = dir.join("threshold-baseline");
                submissions.push(podium::demo::docker_example::build_example_image(
                    &engine, &example,
                )?);
            }
            let round = RoundArgs {
                jobs,
                out,
                verbose: false,
                backend,
                allow_unisolated: true,
                cluster_default: false,
                refused: Vec::new(),
                gpus: None,
                leave_out_bad_truth: false,
            };
            run_command(&data, "test", submissions, None, round)
        }
        Command::Init {
            template,
            dir,
            name,
            cases,
            size,
            seed,
        } => {
            if template != "covid19-ct" {
                return Err(Error::msg(format!(
                    "unknown template {template:?}; available: {}",
                    demo::TEMPLATES.join(", ")
                )));
            }
            let name = name.unwrap_or_else(|| {
                dir.canonicalize()
                    .unwrap_or_else(|_| std::path::absolute(&dir).unwrap_or_else(|_| dir.clone()))
                    .file_name()
                    .map_or_else(|| template.clone(), |n| n.to_string_lossy().into_owned())
            });
            demo::write_template_toml(&dir, &name)?;
            generate(&dir, &GenerationStamp::new(cases, size, seed))?;
            let challenge = load_challenge(&dir)?;
            let report = validate::validate(&challenge, None, None);
            print_validation(&report);
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate {
            challenge,
            phase,
            truth,
        } => {
            let challenge = load_challenge(&challenge)?;
            if let Some(p) = &phase {
                challenge.phase(p)?;
            }
            let report = validate::validate(&challenge, phase.as_deref(), truth.as_deref());
            print_validation(&report);
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Run {
            resume: Some(run_dir),
            jobs,
            verbose,
            allow_unisolated,
            gpus,
            bad_truth,
            ..
        } => {
            let plan = pipeline::RoundPlan::read(&run_dir)?;
            let (challenge, _, mut submissions) = plan.load()?;
            prebuild_own_examples(&mut submissions)?;
            let hidden = challenge.phase(&plan.phase)?.visibility == Visibility::Hidden;
            // The same kind of backend as the interrupted round, which was allowed then.
            let selected = if plan.backend == "slurm" {
                podium::runner::select_slurm(challenge.cluster.as_ref(), hidden, allow_unisolated)?
            } else {
                let kind = if plan.backend.starts_with("process") {
                    BackendKind::Process
                } else {
                    BackendKind::Sandbox
                };
                select_backend(
                    kind,
                    hidden,
                    allow_unisolated || plan.backend.starts_with("process"),
                    &submissions,
                )?
            };
            warn(&selected.warning);
            let mut reporter = TerminalReporter::new(verbose);
            let outcome = pipeline::resume(
                &run_dir,
                selected.backend.as_ref(),
                jobs,
                gpus.as_deref(),
                RANKING_METHOD.get().copied().flatten(),
                bad_truth.leave_out,
                &mut |e| reporter.report(e),
            )?;
            print_outcome(&outcome);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            challenge,
            phase,
            submissions,
            truth,
            jobs,
            out,
            verbose,
            backend,
            allow_unisolated,
            rounds,
            teams,
            gpus,
            bad_truth,
            resume: None,
            ..
        } => {
            let (Some(challenge), Some(phase), false) = (challenge, phase, submissions.is_empty())
            else {
                return Err(Error::msg(
                    "run needs --challenge, --phase and --submissions (or --resume DIR)",
                ));
            };
            let (mut submissions, refused) = Submission::discover_all(&submissions)?;
            for r in &refused {
                eprintln!(
                    "{:>10} {}",
                    "REFUSED",
                    podium::runner::events::clean(&r.to_string())
                );
            }
            let registry = podium::submission::Registry::find(teams.as_deref(), &challenge)?;
            for note in registry.assign(&mut submissions) {
                eprintln!("{:>10} {}", "NOTE", podium::runner::events::clean(&note));
            }
            if submissions.is_empty() {
                return Err(Error::msg(
                    "every submission folder was refused (see the REFUSED lines); nothing to run",
                ));
            }
            prebuild_own_examples(&mut submissions)?;
            let (submissions, out) = match &rounds {
                Some(dir) => admit(dir, &challenge, &phase, submissions)?,
                None => (submissions, out),
            };
            let round = RoundArgs {
                jobs,
                out,
                verbose,
                backend,
                allow_unisolated,
                cluster_default: true,
                refused,
                gpus,
                leave_out_bad_truth: bad_truth.leave_out,
            };
            run_command(&challenge, &phase, submissions, truth.as_deref(), round)
        }
        Command::Leaderboard {
            run_dir,
            format,
            final_split,
            bad_truth,
            ..
        } => {
            let is_rounds_folder = run_dir.is_dir()
                && !run_dir.join("leaderboard.csv").exists()
                && !run_dir.join("round.json").exists();
            if is_rounds_folder {
                let selection = if final_split {
                    podium::challenge::split::CaseSelection::Private
                } else {
                    podium::challenge::split::CaseSelection::Public
                };
                let (outcome, entries) = podium::rounds::phase_leaderboard(
                    &run_dir,
                    selection,
                    RANKING_METHOD.get().copied().flatten(),
                )?;
                if format == podium::report::leaderboard::Format::Table {
                    println!(
                        "Phase leaderboard of {} rounds' {} submissions: each team once (its final selection, else its best or latest as the challenge declares; entries.csv says which)",
                        entries
                            .iter()
                            .map(|e| e.round.as_str())
                            .collect::<std::collections::BTreeSet<_>>()
                            .len(),
                        entries.len(),
                    );
                    print_outcome(&outcome);
                    return Ok(ExitCode::SUCCESS);
                }
                let rows = podium::report::leaderboard::read(&outcome.out_dir)?;
                print!(
                    "{}",
                    podium::report::leaderboard::render(&outcome.out_dir, &rows, format)?
                );
                return Ok(ExitCode::SUCCESS);
            }
            if !final_split && bad_truth.leave_out {
                return Err(Error::msg(
                    "--leave-out-bad-truth goes with --final, which scores the round anew; the round's own leaderboard is printed as it was scored",
                ));
            }
            if !final_split && RANKING_METHOD.get().copied().flatten().is_some() {
                return Err(Error::msg(format!(
                    "`podium leaderboard {0}` prints the ranking the round wrote, without ranking anew; to rank it with another method, run `podium rescore {0} --ranking-method METHOD` first",
                    run_dir.display()
                )));
            }
            let run_dir = if final_split {
                let outcome = pipeline::final_leaderboard(
                    &run_dir,
                    RANKING_METHOD.get().copied().flatten(),
                    bad_truth.leave_out,
                )?;
                if format == podium::report::leaderboard::Format::Table {
                    print_outcome(&outcome);
                    return Ok(ExitCode::SUCCESS);
                }
                outcome.out_dir
            } else {
                run_dir
            };
            let rows = podium::report::leaderboard::read(&run_dir)?;
            print!(
                "{}",
                podium::report::leaderboard::render(&run_dir, &rows, format)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ExecCase { batch } => {
            podium::runner::node::exec_batch(&batch)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            run_dir,
            out,
            plots,
            view,
        } => {
            let data = podium::report::ReportData::read(&run_dir)?;
            let html = out.unwrap_or_else(|| {
                run_dir.join(match view {
                    podium::report::View::Organizer => "report.html",
                    podium::report::View::Team => "report-team.html",
                })
            });
            let files = podium::report::write_report(
                &run_dir,
                &data.refs(),
                &podium::report::ReportOptions {
                    view,
                    html: html.clone(),
                    plots: plots.clone(),
                },
            )?;
            if let Some(dir) = &plots {
                let written = files.iter().filter(|f| f.starts_with(dir)).count();
                let charts = files
                    .iter()
                    .filter(|f| f.starts_with(dir) && f.extension().is_some_and(|e| e == "svg"))
                    .count();
                println!(
                    "{charts} charts as SVG and PNG, {} segmentation slices as PNG in {}",
                    written - 2 * charts,
                    dir.display()
                );
            }
            println!("Report for the judges: {}", html.display());
            println!(
                "Summary for e-mail: {}",
                html.with_extension("md").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Rescore {
            run_dir,
            out,
            replace_official: _,
            allow_incomplete,
            bad_truth,
            ..
        } => {
            let options = pipeline::RescoreOptions {
                // clap requires one of --out and --replace-official.
                target: out.map_or(
                    pipeline::RescoreTarget::ReplaceOfficial,
                    pipeline::RescoreTarget::NewFolder,
                ),
                ranking_method: RANKING_METHOD.get().copied().flatten(),
                allow_incomplete,
                leave_out_bad_truth: bad_truth.leave_out,
            };
            let outcome = pipeline::rescore(&run_dir, &options)?;
            print_outcome(&outcome);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            submission,
            challenge,
            phase,
            backend,
            gpus,
            jobs,
            out,
        } => check_command(
            &submission,
            &challenge,
            phase,
            backend,
            gpus.as_deref(),
            jobs,
            out,
        ),
        Command::Score {
            challenge,
            phase,
            predictions,
            truth,
            bad_truth,
            name,
            out,
            ..
        } => {
            let challenge = load_challenge(&challenge)?;
            let paths = challenge.phase_paths(&phase, truth.as_deref())?;
            let paths = validate::check_before_scoring(&challenge, &paths, bad_truth.leave_out)?;
            let name = name.unwrap_or_else(|| {
                predictions
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| "predictions".into())
            });
            let outcome = pipeline::score_only(&challenge, &paths, &predictions, &name, &out)?;
            print_outcome(&outcome);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How a round runs, as the command line says.
struct RoundArgs {
    jobs: Option<usize>,
    out: Option<PathBuf>,
    verbose: bool,
    backend: BackendKind,
    allow_unisolated: bool,
    /// `--backend auto` means the challenge's cluster when it has one (`podium run` only).
    cluster_default: bool,
    /// Submission folders left out, with why: written to the round's refused.csv.
    refused: Vec<podium::submission::Refused>,
    /// `--gpus`: the GPU indices the round may use.
    gpus: Option<String>,
    /// `--leave-out-bad-truth`.
    leave_out_bad_truth: bool,
}

/// Cases collected at once from a cluster: each slot waits for one case's job.
const SLURM_SLOTS: usize = 64;

fn run_command(
    challenge_dir: &Path,
    phase: &str,
    submissions: Vec<Submission>,
    truth: Option<&Path>,
    round: RoundArgs,
) -> Result<ExitCode> {
    let challenge = load_challenge(challenge_dir)?;
    let paths = challenge.phase_paths(phase, truth)?;
    // Before any submission runs: a broken truth must not cost a round, nor blame a team.
    let paths = validate::check_before_scoring(&challenge, &paths, round.leave_out_bad_truth)?;
    let hidden = challenge.phase(phase)?.visibility == Visibility::Hidden;
    // A challenge with a [cluster] table runs its rounds there unless told otherwise.
    let slurm = round.backend == BackendKind::Slurm
        || (round.backend == BackendKind::Auto
            && challenge.cluster.is_some()
            && round.cluster_default);
    let selected = if slurm {
        podium::runner::select_slurm(challenge.cluster.as_ref(), hidden, round.allow_unisolated)?
    } else {
        select_backend(round.backend, hidden, round.allow_unisolated, &submissions)?
    };
    warn(&selected.warning);
    // With Slurm, the cluster gives each job its GPUs (`--gres`).
    let gpus = if slurm {
        None
    } else {
        gpu_pool(&challenge, round.gpus.as_deref())?
    };
    // With Slurm a slot only waits for its case, while the cluster runs them all.
    let jobs = round
        .jobs
        .unwrap_or_else(|| if slurm { SLURM_SLOTS } else { default_jobs() });
    let options = RoundOptions {
        resume: false,
        jobs: capped_for_gpus(jobs, gpus.as_ref(), challenge.limits.gpus),
        gpus,
        out_dir: round
            .out
            .unwrap_or_else(|| pipeline::default_out_dir(&challenge.name, phase)),
    };
    let mut reporter = TerminalReporter::new(round.verbose);
    let outcome = pipeline::run_and_score(
        &challenge,
        &paths,
        &submissions,
        selected.backend.as_ref(),
        &options,
        &mut |e| reporter.report(e),
    )?;
    if !round.refused.is_empty() {
        pipeline::write_refused(&outcome.out_dir, &round.refused)?;
    }
    print_outcome(&outcome);
    warn(&selected.warning);
    Ok(ExitCode::SUCCESS)
}

/// The submissions within their team's quota, and a new round folder in `rounds_dir`.
fn admit(
    rounds_dir: &Path,
    challenge_dir: &Path,
    phase: &str,
    submissions: Vec<Submission>,
) -> Result<(Vec<Submission>, Option<PathBuf>)> {
    let challenge = load_challenge(challenge_dir)?;
    challenge.phase(phase)?;
    let now = pipeline::now_unix();
    let mut admitted = Vec::new();
    for submission in submissions {
        match podium::rounds::quota_refusal(rounds_dir, &challenge, phase, &submission.team, now)? {
            Some(reason) if !submission.baseline => eprintln!(
                "{:>10} {}: {}",
                "REFUSED",
                podium::text::shown(&submission.name),
                podium::text::shown(&reason)
            ),
            _ => admitted.push(submission),
        }
    }
    if admitted.is_empty() {
        return Err(Error::msg(
            "every submission is over its team's quota; nothing to run",
        ));
    }
    let stamp = pipeline::utc_stamp(now);
    let base = format!("{}-{phase}-{stamp}", challenge.name);
    let mut out = rounds_dir.join(&base);
    let mut n = 2;
    while out.exists() {
        out = rounds_dir.join(format!("{base}-{n}"));
        n += 1;
    }
    Ok((admitted, Some(out)))
}

/// The round's GPUs when the challenge gives cases some: `--gpus`, else every NVIDIA GPU of
/// the machine; one clear error before the round when there are too few.
fn gpu_pool(
    challenge: &podium::challenge::Challenge,
    list: Option<&str>,
) -> Result<Option<podium::runner::gpus::GpuPool>> {
    use podium::runner::gpus::GpuPool;
    if challenge.limits.gpus == 0 {
        return Ok(None);
    }
    let root = GpuPool::device_root();
    let devices = match list {
        Some(list) => GpuPool::parse_list(list, &root).map_err(Error::msg)?,
        None => GpuPool::discover(&root),
    };
    GpuPool::new(devices, challenge.limits.gpus, root)
        .map(Some)
        .map_err(Error::msg)
}

/// `jobs`, or fewer when the GPUs do not give that many slots a group of their own (said).
fn capped_for_gpus(
    jobs: usize,
    pool: Option<&podium::runner::gpus::GpuPool>,
    per_case: u32,
) -> usize {
    match pool {
        Some(pool) if jobs > pool.max_slots() => {
            eprintln!(
                "podium: {jobs} jobs asked, but {} GPU(s) give only {} slot(s) of {per_case} GPU(s) each; running {} case(s) at a time, so that no two share a GPU",
                pool.max_slots() * per_case as usize,
                pool.max_slots(),
                pool.max_slots()
            );
            pool.max_slots()
        }
        _ => jobs,
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Loud, and repeated after the leaderboard so it cannot scroll away.
fn warn(warning: &Option<String>) {
    if let Some(w) = warning {
        eprintln!("WARNING: {}", podium::text::shown(w));
    }
}

/// Runs a trusted submission's `build` on the host and removes it from the submission, so
/// that the round (perhaps sandboxed and offline) only runs the built program.
fn prebuild_trusted(submission: &mut Submission) -> Result<()> {
    let RunSpec::Process { build, .. } = &submission.run else {
        return Ok(());
    };
    if build.is_empty() {
        return Ok(());
    }
    if is_own_example(submission) && example_is_built(submission) {
        eprintln!(
            "{:>10} {} (podium's own example, built since its last change)",
            "FRESH", submission.name
        );
        if let RunSpec::Process { build, .. } = &mut submission.run {
            build.clear();
        }
        return Ok(());
    }
    eprintln!(
        "{:>10} {} (on the host: podium's own example)",
        "BUILD", submission.name
    );
    let log = std::env::temp_dir().join(format!("podium-build-{}.log", submission.name));
    let limits = podium::challenge::Limits::default();
    ProcessBackend
        .prepare(submission, &log, &limits)
        .map_err(|e| Error::msg(format!("building the example {}: {e}", submission.name)))?;
    if let RunSpec::Process { build, .. } = &mut submission.run {
        build.clear();
    }
    Ok(())
}

/// podium's own example crates, members of its cargo workspace (Cargo.toml).
const OWN_EXAMPLES: [&str; 2] = ["threshold-baseline", "random-guess"];

/// Builds podium's own examples on the host ([`prebuild_trusted`]): their toolchain, cargo,
/// is not in the sandbox. A submission is one of them when its folder is that example's folder
/// in the source tree podium was built from, whatever its submission.toml says; every other
/// submission's `build` runs where its cases run (in the sandbox), since it is a team's code.
fn prebuild_own_examples(submissions: &mut [Submission]) -> Result<()> {
    for submission in submissions {
        if is_own_example(submission) {
            prebuild_trusted(submission)?;
        }
    }
    Ok(())
}

/// A submission is one of podium's own examples when its folder is that example's folder in
/// the source tree podium was built from, whatever its submission.toml says.
fn is_own_example(submission: &Submission) -> bool {
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("submissions");
    let folder = submission.dir.canonicalize().ok();
    OWN_EXAMPLES
        .iter()
        .any(|name| folder.is_some() && own.join(name).canonicalize().ok() == folder)
}

/// Whether an example's program is newer than everything it is built from (its Cargo.toml,
/// its sources and the workspace's Cargo.lock), so that `cargo install --force`, which relinks
/// and copies the program every time (about 3 s and 173 MiB here), can be skipped.
fn example_is_built(submission: &Submission) -> bool {
    let RunSpec::Process { command, .. } = &submission.run else {
        return false;
    };
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(&submission.dir.join(&command[0])) else {
        return false;
    };
    let mut sources = vec![
        submission.dir.join("Cargo.toml"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"),
    ];
    let mut folders = vec![submission.dir.join("src")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            return false;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                sources.push(path);
            }
        }
    }
    sources
        .iter()
        .all(|source| modified(source).is_some_and(|changed| changed < built))
}

fn check_command(
    submission_dir: &Path,
    challenge_dir: &Path,
    phase: Option<String>,
    backend: BackendKind,
    gpu_list: Option<&str>,
    jobs: Option<usize>,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    let challenge = load_challenge(challenge_dir)?;
    let phase = match phase {
        Some(p) => p,
        None => challenge
            .phases
            .iter()
            .find(|p| p.visibility == podium::challenge::Visibility::Public)
            .map(|p| p.name.clone())
            .ok_or_else(|| {
                Error::msg(format!(
                    "challenge {:?} has no public phase to check on; pass --phase",
                    challenge.name
                ))
            })?,
    };
    let paths = challenge.phase_paths(&phase, None)?;
    // The one thing the server refuses a submission for before running it.
    let mut submission = Submission::load(submission_dir)
        .map_err(|e| Error::msg(format!("the server would refuse this submission: {e}")))?;
    prebuild_own_examples(std::slice::from_mut(&mut submission))?;
    let gpus = gpu_pool(&challenge, gpu_list)?;
    let options = RoundOptions {
        resume: false,
        jobs: capped_for_gpus(
            jobs.unwrap_or_else(default_jobs),
            gpus.as_ref(),
            challenge.limits.gpus,
        ),
        gpus,
        out_dir: out.unwrap_or_else(|| pipeline::default_out_dir(&challenge.name, &phase)),
    };
    let selected = select_backend(backend, false, true, std::slice::from_ref(&submission))?;
    warn(&selected.warning);
    let mut reporter = TerminalReporter::new(false);
    let outcome = pipeline::run_and_score(
        &challenge,
        &paths,
        std::slice::from_ref(&submission),
        selected.backend.as_ref(),
        &options,
        &mut |e| reporter.report(e),
    )?;
    print_outcome(&outcome);
    // Not a reason to reject: a program may run on the CPU within the limits, only slower.
    let runs = podium::results::RunsCsv::read(&outcome.out_dir.join("runs.csv"))?;
    let unavailable = options
        .gpus
        .as_ref()
        .and_then(|pool| podium::runner::gpu_monitor::source(pool.dev_root()).err());
    for line in podium::runner::gpu_monitor::check_lines(&runs, unavailable) {
        println!("GPU: {}", podium::text::shown(&line));
    }
    let findings = pipeline::check_findings(&outcome, &submission.name);
    if findings.is_empty() {
        println!("check passed: every case of phase {phase} ran and scored without a problem");
        return Ok(ExitCode::SUCCESS);
    }
    println!("check FAILED: what the server would find, by kind (every case in problems.csv):");
    for group in &findings {
        println!("  {}", podium::text::shown(&group.line()));
    }
    println!(
        "On the server, {}.",
        podium::scoring::findings::consequence(&findings, challenge.scoring.missing)
    );
    Ok(ExitCode::FAILURE)
}

fn generate(dir: &Path, stamp: &GenerationStamp) -> Result<()> {
    eprintln!(
        "podium: generating {} synthetic chest CTs per phase ({} size, seed {}) in {}",
        stamp.cases_per_phase,
        size_name(stamp.size),
        stamp.seed,
        dir.display()
    );
    let started = std::time::Instant::now();
    demo::init_covid19_ct(dir, stamp, &|_| {})?;
    eprintln!(
        "podium: generated in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn size_name(size: Size) -> &'static str {
    match size {
        Size::Small => "small",
        Size::Ct => "ct",
    }
}

/// `./submissions` when run from a checkout; otherwise the examples of the source tree podium
/// was built from.
fn default_submissions_dir() -> PathBuf {
    let local = PathBuf::from("submissions");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("submissions")
    }
}

fn print_validation(report: &validate::ValidationReport) {
    for line in &report.checked {
        println!("checked {line}");
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    for error in &report.errors {
        println!("error: {error}");
    }
    if report.errors.is_empty() {
        println!("valid");
    } else {
        println!(
            "{} error{}",
            report.errors.len(),
            if report.errors.len() == 1 { "" } else { "s" }
        );
    }
}

fn print_outcome(outcome: &RoundOutcome) {
    let scores = &outcome.scores;
    println!();
    let method = outcome
        .analysis
        .method
        .map_or("mean-then-rank", |m| m.name());
    let mut cases = match scores.selection {
        podium::challenge::split::CaseSelection::All => format!("{} cases", scores.cases),
        podium::challenge::split::CaseSelection::Public => format!(
            "PUBLIC split: {} of {} cases",
            scores.cases, scores.phase_cases
        ),
        podium::challenge::split::CaseSelection::Private => format!(
            "FINAL, private split: {} of {} cases",
            scores.cases, scores.phase_cases
        ),
    };
    if !scores.left_out.is_empty() {
        cases += &format!("; {}", podium::report::left_out_phrase(scores));
    }
    println!(
        "Leaderboard: {} / {} ({cases}); each task ranked {method}, then the mean of task ranks; 95% CIs in brackets",
        scores.challenge, scores.phase
    );
    let incomplete = scores.incomplete.as_ref().map(|i| i.summary(scores.cases));
    if let Some(line) = &incomplete {
        println!("{line}");
    }
    println!();
    print!(
        "{}",
        podium::report::terminal::leaderboard_table(&outcome.leaderboard)
    );
    println!();
    match &incomplete {
        Some(line) => println!("{line}"),
        None => {
            for line in podium::report::terminal::ranking_caveats(&outcome.analysis) {
                println!("{line}");
            }
        }
    }
    for line in podium::report::terminal::worst_subgroup_lines(scores) {
        println!("{line}");
    }
    println!();
    if !scores.problems.is_empty() {
        println!(
            "{} problem{} recorded in problems.csv",
            scores.problems.len(),
            if scores.problems.len() == 1 { "" } else { "s" }
        );
    }
    let truth_findings = scores
        .left_out
        .iter()
        .map(|c| c.reasons.len())
        .sum::<usize>()
        + scores.truth_findings.len();
    if truth_findings > 0 {
        println!(
            "{truth_findings} finding{} about the challenge's own truth or images in truth-findings.csv (never shown to teams)",
            if truth_findings == 1 { "" } else { "s" }
        );
    }
    println!("Results in {}", outcome.out_dir.display());
    println!(
        "Report for the judges: {}",
        outcome.out_dir.join("report.html").display()
    );
    if scores.selection == podium::challenge::split::CaseSelection::Public {
        println!(
            "The private split decides the final ranking: `podium leaderboard {} --final` reveals it",
            outcome.out_dir.display()
        );
    }
}

fn teams(action: TeamsAction) -> Result<ExitCode> {
    use podium::serve::store::Store;
    let now = pipeline::now_unix() as i64;
    match action {
        TeamsAction::Add {
            name,
            data,
            organizer,
        } => {
            let store = Store::open(&data)?;
            let token = store.add_team(&name, organizer, now)?;
            let what = if organizer { "organizer" } else { "team" };
            eprintln!(
                "Added {what} {}. Its token, shown this once (only a hash is kept):",
                podium::text::shown(&name)
            );
            println!("{token}");
        }
        TeamsAction::List { data } => {
            let store = Store::open(&data)?;
            for team in store.teams()? {
                let pending = store.pending(team.id)?;
                println!(
                    "{:>4}  {}{}  ({pending} queued or running)",
                    team.id,
                    podium::text::shown(&team.name),
                    if team.organizer { " [organizer]" } else { "" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--backend` value as `podium run` takes it.
fn backend_name(kind: BackendKind) -> String {
    use clap::ValueEnum;
    kind.to_possible_value()
        .map_or_else(|| "auto".to_string(), |v| v.get_name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An example built after its last change is not built again; a change to its sources
    /// after the build is.
    #[test]
    fn an_example_is_built_when_its_program_is_newer_than_its_sources() {
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = dir.path().join("example");
        std::fs::create_dir_all(crate_dir.join("src/nested")).unwrap();
        std::fs::create_dir_all(crate_dir.join(".build/bin")).unwrap();
        std::fs::write(
            crate_dir.join("Cargo.toml"),
            "[package]\nname = \"example\"\n",
        )
        .unwrap();
        std::fs::write(crate_dir.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(crate_dir.join("src/nested/util.rs"), "\n").unwrap();
        std::fs::write(crate_dir.join(".build/bin/example"), "program").unwrap();
        std::fs::write(
            crate_dir.join("submission.toml"),
            "name = \"example\"\n[run]\nkind = \"process\"\ncommand = [\".build/bin/example\"]\nbuild = [\"cargo\", \"install\"]\n",
        )
        .unwrap();
        let submission = Submission::load(&crate_dir).unwrap();
        let at = |path: &str, offset_s: u64| {
            let time = std::time::SystemTime::now() + std::time::Duration::from_secs(offset_s);
            std::fs::File::options()
                .write(true)
                .open(crate_dir.join(path))
                .unwrap()
                .set_modified(time)
                .unwrap();
        };
        at(".build/bin/example", 3600);
        assert!(example_is_built(&submission));
        at("src/nested/util.rs", 7200);
        assert!(!example_is_built(&submission));
        std::fs::remove_file(crate_dir.join(".build/bin/example")).unwrap();
        assert!(!example_is_built(&submission));
    }
}
