//! The flows behind the commands, shared by the CLI and the tests: run a round, score it,
//! rank it and write its files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::challenge::split::CaseSelection;
use crate::challenge::{Challenge, PhasePaths};
use crate::error::{Error, Result};
use crate::ranking::analysis::RankingMethod;
use crate::ranking::{self, LeaderboardRow};
pub use crate::results::Receipt;
use crate::results::{Host, ReceiptSubmission, RoundScores};
use crate::runner::gpus::GpuPool;
use crate::runner::{self, Backend, RoundOptions, RunEvent, SubmissionRun};
use crate::scoring::{self, ScoringInput};
use crate::submission::Submission;

/// What a finished round leaves behind.
pub struct RoundOutcome {
    pub out_dir: PathBuf,
    pub scores: RoundScores,
    pub leaderboard: Vec<LeaderboardRow>,
    pub analysis: ranking::analysis::RankingAnalysis,
    pub files: Vec<PathBuf>,
}

/// `reports/<challenge>-<phase>-<UTC time>`: a new folder per round, so no round overwrites
/// another's results.
pub fn default_out_dir(challenge: &str, phase: &str) -> PathBuf {
    PathBuf::from("reports").join(format!("{challenge}-{phase}-{}", utc_stamp(now_unix())))
}

/// Runs the submissions, then scores, ranks and writes everything into `options.out_dir`.
pub fn run_and_score(
    challenge: &Challenge,
    phase: &PhasePaths,
    submissions: &[Submission],
    backend: &dyn Backend,
    options: &RoundOptions,
    on_event: &mut dyn FnMut(&RunEvent),
) -> Result<RoundOutcome> {
    let started = now_unix();
    if !options.resume {
        RoundPlan::new(challenge, phase, submissions, backend, options)?.write(&options.out_dir)?;
    }
    let runs: Vec<SubmissionRun> =
        runner::run_round(challenge, phase, submissions, backend, options, on_event)?;
    let inputs: Vec<ScoringInput> = runs
        .iter()
        .map(|r| ScoringInput {
            name: r.submission.name.clone(),
            team: r.submission.team.clone(),
            baseline: r.submission.baseline,
            predictions_dir: &r.predictions_dir,
            runs: Some(&r.cases),
        })
        .collect();
    let scores = scoring::score_round(challenge, phase, &inputs, CaseSelection::Public)?;
    let receipt = Receipt::new(challenge, phase, started, Some(backend), submissions);
    finish(challenge, &options.out_dir, scores, &receipt)
}

/// What a round was asked to do, written as `round.json` when it starts, so that
/// `podium run --resume` and `podium rescore` can pick it up from the folder alone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoundPlan {
    pub challenge_dir: PathBuf,
    pub phase: String,
    pub truth_dir: PathBuf,
    pub submission_dirs: Vec<PathBuf>,
    /// Who each submission of `submission_dirs` belongs to, as the organizer decided when the
    /// round started: a resumed round keeps it, whatever the folders claim.
    #[serde(default)]
    pub identities: Vec<crate::submission::Identity>,
    pub backend: String,
    pub jobs: usize,
    /// The GPUs the round's slots share out (`--gpus`, or every GPU of the machine): a
    /// resumed round runs on the same. Absent where the round had none to share out (no
    /// `[limits] gpus`, or Slurm's, which gives each job its own), and from the plans of a
    /// podium that did not record them, whose rounds resume on every GPU of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Vec<u32>>,
    /// The organizer accepted leaving cases with a broken truth or image out of scoring
    /// (`--leave-out-bad-truth`): a resumed round and `podium leaderboard --final` do the same.
    #[serde(default)]
    pub leave_out_bad_truth: bool,
    /// The `--ranking-method` the round was started with, where it differs from the
    /// challenge's: its resumption, official rescores and final leaderboard rank the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking_method: Option<RankingMethod>,
}

impl RoundPlan {
    fn new(
        challenge: &Challenge,
        phase: &PhasePaths,
        submissions: &[Submission],
        backend: &dyn Backend,
        options: &RoundOptions,
    ) -> Result<RoundPlan> {
        let absolute = |p: &Path| std::fs::canonicalize(p).map_err(|e| Error::io("resolve", p, e));
        Ok(RoundPlan {
            challenge_dir: absolute(&challenge.root)?,
            phase: phase.name.clone(),
            truth_dir: absolute(&phase.truth).unwrap_or_else(|_| phase.truth.clone()),
            submission_dirs: submissions.iter().map(|s| s.dir.clone()).collect(),
            identities: submissions.iter().map(Submission::identity).collect(),
            backend: backend.name().to_string(),
            jobs: options.jobs,
            gpus: options
                .gpus
                .as_ref()
                .filter(|_| challenge.limits.gpus > 0)
                .map(|pool| pool.devices().to_vec()),
            leave_out_bad_truth: phase.leave_out_bad_truth || !phase.left_out.is_empty(),
            // Read anew, since `challenge` carries the command line's override.
            ranking_method: Challenge::load(&challenge.root)
                .ok()
                .filter(|declared| declared.ranking.method != challenge.ranking.method)
                .map(|_| challenge.ranking.method),
        })
    }

    pub fn write(&self, out_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io("create", out_dir, e))?;
        let path = out_dir.join("round.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::msg(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))
    }

    pub fn read(run_dir: &Path) -> Result<RoundPlan> {
        let path = run_dir.join("round.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::msg(format!(
                "cannot read {}: {e}. Pass the folder of a round that `podium run` started.",
                path.display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
    }

    /// The challenge and phase of the plan, loaded anew.
    pub fn load_challenge(&self) -> Result<(Challenge, PhasePaths)> {
        let challenge = Challenge::load(&self.challenge_dir)?;
        let phase = challenge.phase_paths(&self.phase, Some(&self.truth_dir))?;
        Ok((challenge, phase))
    }

    /// The challenge, phase and submissions of the plan, loaded anew.
    pub fn load(&self) -> Result<(Challenge, PhasePaths, Vec<Submission>)> {
        let (challenge, phase) = self.load_challenge()?;
        let mut submissions = self
            .submission_dirs
            .iter()
            .map(|d| Submission::load(d))
            .collect::<Result<Vec<_>>>()?;
        for (submission, identity) in submissions.iter_mut().zip(&self.identities) {
            submission.apply(identity);
        }
        Ok((challenge, phase, submissions))
    }
}

/// `podium run --resume <run-dir>`: finishes the cases a round has not recorded yet, keeping
/// the recorded ones, then scores everything as an uninterrupted round would. `gpu_list`
/// (`--gpus`) replaces the GPUs the round started with, in its plan too. The truth is checked
/// again first; cases with a broken truth are left out when the round started with
/// `--leave-out-bad-truth` or `leave_out_bad_truth` says so now.
pub fn resume(
    run_dir: &Path,
    backend: &dyn Backend,
    jobs: Option<usize>,
    gpu_list: Option<&str>,
    ranking_method: Option<RankingMethod>,
    leave_out_bad_truth: bool,
    on_event: &mut dyn FnMut(&RunEvent),
) -> Result<RoundOutcome> {
    let mut plan = RoundPlan::read(run_dir)?;
    let (mut challenge, phase, submissions) = plan.load()?;
    let phase = crate::challenge::validate::check_before_scoring(
        &challenge,
        &phase,
        leave_out_bad_truth || plan.leave_out_bad_truth,
    )?;
    if let Some(method) = ranking_method.or(plan.ranking_method) {
        challenge.ranking.method = method;
    }
    if leave_out_bad_truth && !plan.leave_out_bad_truth {
        plan.leave_out_bad_truth = true;
        plan.write(run_dir)?;
    }
    let gpus = resumed_gpus(&plan, challenge.limits.gpus, gpu_list)?;
    if gpu_list.is_some() {
        if let Some(pool) = &gpus {
            plan.gpus = Some(pool.devices().to_vec());
            plan.write(run_dir)?;
        }
    }
    let options = RoundOptions {
        jobs: jobs.unwrap_or(plan.jobs),
        out_dir: run_dir.to_path_buf(),
        resume: true,
        gpus,
    };
    run_and_score(
        &challenge,
        &phase,
        &submissions,
        backend,
        &options,
        on_event,
    )
}

/// The GPUs a resumed round shares out: those it started with, as its plan lists them.
fn resumed_gpus(
    plan: &RoundPlan,
    per_case: u32,
    gpu_list: Option<&str>,
) -> Result<Option<GpuPool>> {
    // Slurm gives each job its GPUs on its node; the organizer's machine may have none.
    if per_case == 0 || plan.backend == "slurm" {
        return Ok(None);
    }
    let root = GpuPool::device_root();
    let devices = match (gpu_list, &plan.gpus) {
        (Some(list), _) => GpuPool::parse_list(list, &root).map_err(Error::msg)?,
        (None, Some(devices)) => {
            let gone = |k: &&u32| !root.join(format!("nvidia{k}")).exists();
            if let Some(k) = devices.iter().find(gone) {
                let list = devices.iter().map(u32::to_string).collect::<Vec<_>>();
                return Err(Error::msg(format!(
                    "the round started on GPU(s) {} (round.json), but GPU {k} has no device node {} now. Resume where it is back, or pass --gpus with the GPUs to use instead",
                    list.join(","),
                    root.join(format!("nvidia{k}")).display()
                )));
            }
            devices.clone()
        }
        (None, None) => GpuPool::discover(&root),
    };
    GpuPool::new(devices, per_case, root)
        .map(Some)
        .map_err(Error::msg)
}

/// Where `podium rescore` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RescoreTarget {
    /// A new or empty folder outside the round's: the round's official result stays as it was.
    NewFolder(PathBuf),
    /// The round's own folder, as its new official result, with the same settings only; the
    /// files it replaces are kept in `replaced-<UTC time>/` inside it.
    ReplaceOfficial,
}

/// What `podium rescore` is asked to do.
#[derive(Clone, Debug)]
pub struct RescoreOptions {
    pub target: RescoreTarget,
    /// Overrides the challenge's declared method.
    pub ranking_method: Option<RankingMethod>,
    /// Score an interrupted round on the cases every submission ran, marked INCOMPLETE.
    pub allow_incomplete: bool,
    /// Leave out the cases whose truth or image is broken, instead of refusing.
    pub leave_out_bad_truth: bool,
}

/// The files and folders of a round's result, as [`finish`] writes them: what
/// `--replace-official` moves aside before writing the new result.
pub const OFFICIAL_RESULT: [&str; 21] = [
    "scores.csv",
    "metrics.csv",
    "problems.csv",
    "truth-findings.csv",
    "metrics_by_subgroup.csv",
    "subgroup_summary.csv",
    "curves.csv",
    "confusion.csv",
    "values.csv",
    "leaderboard.csv",
    "scores.parquet",
    "metrics.parquet",
    "ranking",
    "teams",
    "run.json",
    "report-data.json",
    "report.html",
    "report.md",
    // Written later from the result (`podium report --view team`, `podium leaderboard
    // --final`): stale once it is replaced.
    "report-team.html",
    "report-team.md",
    "final",
];

/// `podium rescore <run-dir>`: scores a finished round again from its stored outputs (after a
/// metric or truth fix), without running anything. The round's official result is never
/// overwritten in passing: a rescore with other settings writes to a new folder, and one that
/// replaces the official result keeps the files it replaces. The truth is checked first:
/// findings refuse the rescore unless `leave_out_bad_truth`, which leaves their cases out (and,
/// for the official result, is recorded in round.json, for `podium leaderboard --final`).
pub fn rescore(run_dir: &Path, options: &RescoreOptions) -> Result<RoundOutcome> {
    match &options.target {
        RescoreTarget::NewFolder(out) => {
            check_new_folder(run_dir, out)?;
            let existed = out.exists();
            std::fs::create_dir_all(out).map_err(|e| Error::io("create", out, e))?;
            // The journal travels along: the team files and the report's run counts read it.
            let journal = run_dir.join("runs.csv");
            let scored = std::fs::copy(&journal, out.join("runs.csv"))
                .map_err(|e| Error::io("copy", &journal, e))
                .and_then(|_| {
                    score_stored(
                        run_dir,
                        out,
                        CaseSelection::Public,
                        options.ranking_method,
                        options.allow_incomplete,
                        options.leave_out_bad_truth,
                    )
                });
            // A refused rescore leaves the folder as it found it (new, or empty), so the same
            // command can be given again once the cause is fixed.
            scored.inspect_err(|_| {
                let _ = std::fs::remove_dir_all(out);
                if existed {
                    let _ = std::fs::create_dir(out);
                }
            })
        }
        RescoreTarget::ReplaceOfficial => {
            let plan = RoundPlan::read(run_dir)?;
            let (challenge, phase, submissions) = plan.load()?;
            let official = plan.ranking_method.unwrap_or(challenge.ranking.method);
            let other_method = options.ranking_method.filter(|m| *m != official);
            if other_method.is_some() || options.allow_incomplete {
                return Err(Error::msg(format!(
                    "--replace-official takes the round's own settings only (it was ranked {}): a rescore with another --ranking-method or with --allow-incomplete is a comparison, not the official result of {}. Write it to a new folder with --out DIR",
                    official.name(),
                    run_dir.display()
                )));
            }
            // Refuse an incomplete round before anything is moved.
            check_complete(
                run_dir,
                &phase,
                &submissions,
                &read_journal(run_dir)?,
                false,
            )?;
            let kept = new_replaced_folder(run_dir)?;
            // The plan as it was, beside the result it produced.
            let plan_file = run_dir.join("round.json");
            std::fs::copy(&plan_file, kept.join("round.json"))
                .map_err(|e| Error::io("copy", &plan_file, e))?;
            let moved = move_official_result(run_dir, &kept)?;
            // How the round ran stays in the new receipt ([`keep_how_it_ran`]).
            let _ = std::fs::copy(kept.join("run.json"), run_dir.join("run.json"));
            let rescored = score_stored(
                run_dir,
                run_dir,
                CaseSelection::Public,
                None,
                false,
                options.leave_out_bad_truth,
            )
            .and_then(|outcome| {
                if options.leave_out_bad_truth && !plan.leave_out_bad_truth {
                    let mut plan = plan.clone();
                    plan.leave_out_bad_truth = true;
                    plan.write(run_dir)?;
                }
                Ok(outcome)
            });
            rescored.inspect_err(|_| put_back(run_dir, &kept, &moved))
        }
    }
}

/// Undoes [`move_official_result`] after a failed rescore: whatever the rescore wrote goes,
/// and the official result comes back as it was.
fn put_back(run_dir: &Path, kept: &Path, moved: &[&str]) {
    for name in OFFICIAL_RESULT {
        let _ = std::fs::remove_dir_all(run_dir.join(name));
        let _ = std::fs::remove_file(run_dir.join(name));
    }
    move_back(run_dir, kept, moved);
}

/// The files `moved` from `kept` back into the round's folder, and `kept` removed.
fn move_back(run_dir: &Path, kept: &Path, moved: &[&str]) {
    for name in moved {
        let _ = std::fs::rename(kept.join(name), run_dir.join(name));
    }
    let _ = std::fs::remove_file(kept.join("round.json"));
    let _ = std::fs::remove_dir(kept);
}

/// A rescore's folder must be new or empty, and outside the round's folder, whose files are
/// the round's official record.
fn check_new_folder(run_dir: &Path, out: &Path) -> Result<()> {
    let round = std::fs::canonicalize(run_dir).map_err(|e| Error::io("resolve", run_dir, e))?;
    // The nearest existing ancestor says where a folder that does not exist yet would be.
    let mut existing = out.to_path_buf();
    let mut below = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name() else {
            break;
        };
        below.push(name.to_os_string());
        existing.pop();
    }
    let base = if existing.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        existing.clone()
    };
    let mut resolved = std::fs::canonicalize(&base).map_err(|e| Error::io("resolve", &base, e))?;
    resolved.extend(below.iter().rev());
    if resolved.starts_with(&round) {
        return Err(Error::msg(format!(
            "--out {} is inside the round's folder {}, which holds its official result; pass a folder outside it",
            out.display(),
            run_dir.display()
        )));
    }
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| Error::io("list", out, e))?;
        if entries.next().is_some() {
            return Err(Error::msg(format!(
                "--out {} exists and is not empty; pass a new or empty folder, so that no earlier result is overwritten",
                out.display()
            )));
        }
    }
    Ok(())
}

/// Moves the round's current result into `kept`, returning the names moved.
/// `replaced-<UTC time>/` in the round's folder, created now: `-2`, `-3`… after the time when
/// an earlier replacement of the same second holds the name.
fn new_replaced_folder(run_dir: &Path) -> Result<PathBuf> {
    let stamp = utc_stamp(now_unix());
    for attempt in 1.. {
        let name = if attempt == 1 {
            format!("replaced-{stamp}")
        } else {
            format!("replaced-{stamp}-{attempt}")
        };
        let kept = run_dir.join(name);
        match std::fs::create_dir(&kept) {
            Ok(()) => return Ok(kept),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", &kept, e)),
        }
    }
    unreachable!("an unbounded range")
}

fn move_official_result(run_dir: &Path, kept: &Path) -> Result<Vec<&'static str>> {
    let mut moved = Vec::new();
    for name in OFFICIAL_RESULT {
        let from = run_dir.join(name);
        if from.symlink_metadata().is_ok() {
            if let Err(e) = std::fs::rename(&from, kept.join(name)) {
                // Half moved is no state to leave an official result in.
                move_back(run_dir, kept, &moved);
                return Err(Error::io("move", &from, e));
            }
            moved.push(name);
        }
    }
    Ok(moved)
}

fn read_journal(run_dir: &Path) -> Result<Vec<crate::results::CaseRecord>> {
    crate::results::RunsCsv::read(&run_dir.join("runs.csv"))
}

/// Whether `runs.csv` records every case of every submission of the round. An interrupted
/// round is refused unless `allow_incomplete`; then the result says how much it stands on.
fn check_complete(
    run_dir: &Path,
    phase: &PhasePaths,
    submissions: &[Submission],
    records: &[crate::results::CaseRecord],
    allow_incomplete: bool,
) -> Result<
    Option<(
        crate::results::Incomplete,
        std::collections::BTreeSet<String>,
    )>,
> {
    let cases = crate::challenge::read_case_ids(phase)?;
    let submissions: Vec<&str> = submissions.iter().map(|s| s.name.as_str()).collect();
    let recorded: std::collections::BTreeSet<(&str, &str)> = records
        .iter()
        .map(|r| (r.submission.as_str(), r.case_id.as_str()))
        .collect();
    let ran_by_all: std::collections::BTreeSet<String> = cases
        .iter()
        .filter(|c| {
            submissions
                .iter()
                .all(|s| recorded.contains(&(*s, c.as_str())))
        })
        .cloned()
        .collect();
    let expected = submissions.len() * cases.len();
    let runs_recorded = submissions
        .iter()
        .flat_map(|s| cases.iter().map(move |c| (*s, c.as_str())))
        .filter(|pair| recorded.contains(pair))
        .count();
    if runs_recorded == expected {
        return Ok(None);
    }
    if !allow_incomplete {
        return Err(Error::msg(format!(
            "the round in {} is incomplete: runs.csv records {runs_recorded} of {expected} case runs ({} submissions × {} cases). Finish it with `podium run --resume {}`; to look at a partial result meanwhile, `podium rescore {} --allow-incomplete --out DIR`",
            run_dir.display(),
            submissions.len(),
            cases.len(),
            run_dir.display(),
            run_dir.display()
        )));
    }
    if ran_by_all.is_empty() {
        return Err(Error::msg(format!(
            "the round in {} is incomplete (runs.csv records {runs_recorded} of {expected} case runs) and no case ran for every submission, so even a partial result would compare nothing. Finish it with `podium run --resume {}`",
            run_dir.display(),
            run_dir.display()
        )));
    }
    let incomplete = crate::results::Incomplete {
        runs_recorded,
        runs_expected: expected,
        cases_not_run: cases
            .iter()
            .filter(|c| !ran_by_all.contains(*c))
            .cloned()
            .collect(),
    };
    Ok(Some((incomplete, ran_by_all)))
}

/// `podium leaderboard RUN_DIR --final`: the round scored and ranked on the private split of
/// its phase, written to `RUN_DIR/final/`. Fails when the phase has no split, since the
/// round's own leaderboard is then already final.
pub fn final_leaderboard(
    run_dir: &Path,
    ranking_method: Option<RankingMethod>,
    leave_out_bad_truth: bool,
) -> Result<RoundOutcome> {
    let outcome = score_stored(
        run_dir,
        &run_dir.join("final"),
        CaseSelection::Private,
        ranking_method,
        false,
        leave_out_bad_truth,
    )?;
    if outcome.scores.selection != CaseSelection::Private {
        let _ = std::fs::remove_dir_all(run_dir.join("final"));
        return Err(Error::msg(format!(
            "phase {:?} has no private split (no public_fraction in challenge.toml, no splits.csv in its truth folder): the round's leaderboard is already final",
            outcome.scores.phase
        )));
    }
    Ok(outcome)
}

/// Scores the stored outputs of the round in `run_dir` on `selection` and writes the results
/// to `out_dir`, after checking the truth (cases with findings are left out when
/// `leave_out_bad_truth` or the round's plan says so, else the findings refuse). An
/// interrupted round is refused, unless `allow_incomplete`.
fn score_stored(
    run_dir: &Path,
    out_dir: &Path,
    selection: CaseSelection,
    ranking_method: Option<RankingMethod>,
    allow_incomplete: bool,
    leave_out_bad_truth: bool,
) -> Result<RoundOutcome> {
    let plan = RoundPlan::read(run_dir)?;
    let (mut challenge, phase, submissions) = plan.load()?;
    let phase = crate::challenge::validate::check_before_scoring(
        &challenge,
        &phase,
        leave_out_bad_truth || plan.leave_out_bad_truth,
    )?;
    if let Some(method) = ranking_method.or(plan.ranking_method) {
        challenge.ranking.method = method;
    }
    let records = read_journal(run_dir)?;
    let partial = check_complete(run_dir, &phase, &submissions, &records, allow_incomplete)?;
    let by_submission = records_by_submission(records);
    let dirs: Vec<PathBuf> = submissions
        .iter()
        .map(|s| run_dir.join("predictions").join(&s.name))
        .collect();
    let empty = Default::default();
    let inputs: Vec<ScoringInput> = submissions
        .iter()
        .zip(&dirs)
        .map(|(s, dir)| ScoringInput {
            name: s.name.clone(),
            team: s.team.clone(),
            baseline: s.baseline,
            predictions_dir: dir,
            runs: Some(by_submission.get(&s.name).unwrap_or(&empty)),
        })
        .collect();
    let started = now_unix();
    let mut scores = scoring::score_round_on(
        &challenge,
        &phase,
        &inputs,
        selection,
        partial.as_ref().map(|(_, ran)| ran),
    )?;
    scores.incomplete = partial.map(|(incomplete, _)| incomplete);
    let mut receipt = Receipt::new(&challenge, &phase, started, None, &submissions);
    keep_how_it_ran(&mut receipt, run_dir);
    finish(&challenge, out_dir, scores, &receipt)
}

/// A journal's records by submission, then by case: what scoring a stored round reads.
pub type RecordsBySubmission = std::collections::BTreeMap<
    String,
    std::collections::BTreeMap<String, crate::results::CaseRecord>,
>;

/// Groups a journal's records ([`RecordsBySubmission`]); a case recorded twice keeps its last
/// record, as a resumed round's journal means.
pub fn records_by_submission(records: Vec<crate::results::CaseRecord>) -> RecordsBySubmission {
    let mut by_submission = RecordsBySubmission::default();
    for record in records {
        by_submission
            .entry(record.submission.clone())
            .or_default()
            .insert(record.case_id.clone(), record);
    }
    by_submission
}

/// A rescore's receipt keeps what the round's own `run.json` recorded of how it ran (when,
/// where, the backend, its isolation and limits, the images it resolved): only the scoring is
/// new.
fn keep_how_it_ran(receipt: &mut Receipt, run_dir: &Path) {
    let Some(ran) = std::fs::read_to_string(run_dir.join("run.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Receipt>(&text).ok())
    else {
        return;
    };
    receipt.started_unix = ran.started_unix;
    receipt.started_utc = ran.started_utc;
    receipt.backend = ran.backend;
    receipt.isolation = ran.isolation;
    receipt.limits = ran.limits;
    receipt.limits_enforced = ran.limits_enforced;
    receipt.host = ran.host;
    for submission in &mut receipt.submissions {
        if let Some(earlier) = ran.submissions.iter().find(|s| s.name == submission.name) {
            submission.resolved.clone_from(&earlier.resolved);
        }
    }
}

/// What `podium check` found in a submission's round, grouped by kind; empty when every case
/// ran and scored without a finding. Scoring records each case's findings once, run failures
/// included, so this reads them there alone.
pub fn check_findings(
    outcome: &RoundOutcome,
    submission: &str,
) -> Vec<scoring::findings::FindingGroup> {
    scoring::findings::group(&outcome.scores.problems, submission)
}

/// Scores one predictions folder (`podium score`) and writes the results into `out_dir`.
pub fn score_only(
    challenge: &Challenge,
    phase: &PhasePaths,
    predictions: &Path,
    name: &str,
    out_dir: &Path,
) -> Result<RoundOutcome> {
    let started = now_unix();
    let scores = scoring::score_folder(challenge, phase, predictions, name)?;
    let receipt = Receipt::new(challenge, phase, started, None, &[]);
    finish(challenge, out_dir, scores, &receipt)
}

pub(crate) fn finish(
    challenge: &Challenge,
    out_dir: &Path,
    scores: RoundScores,
    receipt: &Receipt,
) -> Result<RoundOutcome> {
    let names = ranking::ranked_submissions(&scores);
    let mut analysis = ranking::analysis::analyze(challenge, &scores.ranking, &names, None);
    if names.len() < scores.submissions.len() {
        let everyone: Vec<String> = scores.submissions.iter().map(|s| s.name.clone()).collect();
        analysis.placement = ranking::analysis::placement(challenge, &scores.ranking, &everyone);
    }
    analysis
        .methods
        .extend(ranking::robustness::worst_subgroup_ranks(
            challenge, &scores, &names,
        ));
    let leaderboard = ranking::leaderboard(
        &scores,
        &challenge.tasks,
        &challenge.ranking.weights,
        &analysis,
    );
    let mut files = crate::report::csv_files::write_all(out_dir, &scores, &leaderboard)?;
    files.extend(crate::report::csv_files::write_ranking(out_dir, &analysis)?);
    files.extend(crate::report::csv_files::write_subgroups(out_dir, &scores)?);
    #[cfg(feature = "parquet")]
    files.extend(crate::report::parquet::write_all(
        out_dir, &scores, &analysis,
    )?);
    let journal = out_dir.join("runs.csv");
    if journal.exists() {
        let runs = crate::results::RunsCsv::read(&journal)?;
        files.extend(crate::report::csv_files::write_team_files(
            out_dir, &scores, &runs,
        )?);
    }
    let receipt_path = out_dir.join("run.json");
    let mut receipt = receipt.clone();
    receipt.finished_unix = now_unix();
    receipt.selection = scores.selection;
    receipt.cases_scored = scores.cases;
    receipt.phase_cases = scores.phase_cases;
    receipt.incomplete = scores.incomplete.clone();
    receipt.cases_left_out = scores.left_out.clone();
    let text = serde_json::to_string_pretty(&receipt).map_err(|e| Error::msg(e.to_string()))?;
    std::fs::write(&receipt_path, text).map_err(|e| Error::io("write", &receipt_path, e))?;
    files.push(receipt_path);
    files.push(crate::report::write_report_data(
        out_dir,
        &scores,
        &leaderboard,
        &analysis,
        &receipt,
    )?);
    let refs = crate::report::ReportDataRefs {
        scores: &scores,
        leaderboard: &leaderboard,
        analysis: &analysis,
        receipt: &receipt,
    };
    files.extend(crate::report::write_report(
        out_dir,
        &refs,
        &crate::report::ReportOptions {
            view: crate::report::View::Organizer,
            html: out_dir.join("report.html"),
            plots: None,
        },
    )?);
    Ok(RoundOutcome {
        out_dir: out_dir.to_path_buf(),
        scores,
        leaderboard,
        analysis,
        files,
    })
}

impl Receipt {
    pub(crate) fn new(
        challenge: &Challenge,
        phase: &PhasePaths,
        started: u64,
        backend: Option<&dyn Backend>,
        submissions: &[Submission],
    ) -> Receipt {
        Receipt {
            podium_version: env!("CARGO_PKG_VERSION").to_string(),
            challenge: challenge.name.clone(),
            // Absolute, so that `podium report` finds them from any folder.
            challenge_dir: std::fs::canonicalize(&challenge.root)
                .unwrap_or_else(|_| challenge.root.clone()),
            phase: phase.name.clone(),
            hidden: challenge.phase(&phase.name).map_or(true, |p| {
                p.visibility == crate::challenge::Visibility::Hidden
            }),
            truth_dir: std::fs::canonicalize(&phase.truth).unwrap_or_else(|_| phase.truth.clone()),
            started_unix: started,
            started_utc: utc_stamp(started),
            finished_unix: started,
            backend: backend.map(|b| b.name().to_string()),
            isolation: backend.map(|b| b.isolation()),
            limits: challenge.limits.clone(),
            limits_enforced: backend
                .map(|b| b.enforced_limits().iter().map(|l| l.to_string()).collect())
                .unwrap_or_default(),
            scoring: challenge.scoring.clone(),
            ranking: challenge.ranking.clone(),
            selection: CaseSelection::All,
            cases_scored: 0,
            phase_cases: 0,
            incomplete: None,
            cases_left_out: Vec::new(),
            confidence_intervals: CONFIDENCE_INTERVALS.to_string(),
            submissions: submissions
                .iter()
                .map(|s| ReceiptSubmission {
                    name: s.name.clone(),
                    team: s.team.clone(),
                    dir: s.dir.clone(),
                    run: format!("{:?}", s.run),
                    baseline: s.baseline,
                    final_selection: s.final_selection,
                    resolved: backend.and_then(|b| b.submission_details(&s.name)),
                })
                .collect(),
            host: Host {
                os: std::env::consts::OS.to_string(),
                arch: std::env::consts::ARCH.to_string(),
                cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
        }
    }
}

/// `refused.csv` of a round: the submission folders left out of it, and why.
pub fn write_refused(out_dir: &Path, refused: &[crate::submission::Refused]) -> Result<()> {
    let path = out_dir.join("refused.csv");
    let err = |e: csv::Error| Error::io("write", &path, e);
    let mut writer = csv::Writer::from_path(&path).map_err(err)?;
    writer.write_record(["folder", "reason"]).map_err(err)?;
    for r in refused {
        let folder = r.dir.to_string_lossy();
        writer
            .write_record([
                crate::text::csv_text(&folder),
                crate::text::csv_text(&r.reason),
            ])
            .map_err(err)?;
    }
    writer.flush().map_err(|e| Error::io("write", &path, e))
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYYMMDD-HHMMSS` in UTC (Howard Hinnant's civil-from-days), to avoid a date dependency.
pub fn utc_stamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// run.json's summary of how the intervals of metrics.csv are made; each method is named with
/// the `ci_method` value metrics.csv gives it, so a reader can match the two.
const CONFIDENCE_INTERVALS: &str = "95%: Wilson score (ci_method wilson) for sensitivity and specificity; DeLong (delong) for a binary AUC; Fisher z-transform (fisher-z) for Pearson's r; otherwise percentile bootstrap over cases (bootstrap), stratified by truth class for classification, with [scoring] bootstrap_resamples and seed";

#[cfg(test)]
mod tests {
    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(super::utc_stamp(0), "19700101-000000");
        // 2026-11-26 23:02:56 UTC
        assert_eq!(super::utc_stamp(1_795_734_176), "20261126-230256");
        assert_eq!(super::utc_stamp(951_782_400), "20000229-000000");
    }

    #[test]
    fn run_json_names_every_confidence_interval_method_of_metrics_csv() {
        use super::CONFIDENCE_INTERVALS;
        for ci_method in ["wilson", "delong", "fisher-z", "bootstrap"] {
            assert!(
                CONFIDENCE_INTERVALS.contains(&format!("{ci_method})")),
                "{ci_method} missing from {CONFIDENCE_INTERVALS:?}"
            );
        }
    }

    #[test]
    fn replacements_within_one_second_get_folders_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::new_replaced_folder(dir.path()).unwrap();
        let second = super::new_replaced_folder(dir.path()).unwrap();
        assert_ne!(first, second);
        assert!(first.is_dir() && second.is_dir());
    }
}
