//! A phase over time: a folder of rounds (`podium run --rounds DIR`), each evaluating some
//! submissions. This module counts each team's submissions against the challenge's quota and
//! builds the phase's leaderboard, on which each team appears once: with its final selection,
//! or its best or latest submission (docs/ranking.md, "Rounds").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::challenge::split::CaseSelection;
use crate::challenge::{Challenge, QuotaPeriod, SubmissionChoice};
use crate::error::{Error, Result};
use crate::pipeline::{self, RoundOutcome, RoundPlan};
use crate::ranking::analysis::{self, RankingMethod};
use crate::results::RoundScores;
use crate::results::RunsCsv;
use crate::scoring::{self, ScoringInput};

/// One submission of one round, as its receipt recorded it.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// The round's folder name.
    pub round: String,
    pub started_unix: u64,
    pub submission: String,
    pub team: String,
    pub baseline: bool,
    pub final_selection: bool,
    /// Whether it counts against the team's quota: it does unless none of its cases could
    /// start (a failure on the organizers' side, such as an unreachable engine).
    pub counts: bool,
}

impl Entry {
    /// The name it has on the phase leaderboard: `submission@round`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.submission, self.round)
    }
}

/// A round of the folder.
struct Round {
    dir: PathBuf,
    plan: RoundPlan,
    entries: Vec<Entry>,
}

/// The rounds of `dir` (its subfolders that hold a finished round), oldest first.
fn rounds(dir: &Path) -> Result<Vec<Round>> {
    let listing =
        std::fs::read_dir(dir).map_err(|e| Error::io("list the rounds folder", dir, e))?;
    let mut rounds = Vec::new();
    for path in listing.flatten().map(|e| e.path()) {
        if !(path.join("round.json").is_file() && path.join("run.json").is_file()) {
            continue;
        }
        let plan = RoundPlan::read(&path)?;
        let receipt_path = path.join("run.json");
        let receipt: serde_json::Value = std::fs::read_to_string(&receipt_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| {
                Error::msg(format!(
                    "{}: not a receipt podium wrote",
                    receipt_path.display()
                ))
            })?;
        let round = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let started_unix = receipt["started_unix"].as_u64().unwrap_or(0);
        let runs = RunsCsv::read(&path.join("runs.csv")).unwrap_or_default();
        let entries = receipt["submissions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let submission = s["name"].as_str().unwrap_or_default().to_string();
                let started_any = runs.iter().any(|r| {
                    r.submission == submission && (r.exit_code.is_some() || r.signal.is_some())
                });
                Entry {
                    round: round.clone(),
                    started_unix,
                    team: s["team"].as_str().unwrap_or_default().to_string(),
                    baseline: s["baseline"].as_bool().unwrap_or(false),
                    final_selection: s["final_selection"].as_bool().unwrap_or(false),
                    counts: started_any,
                    submission,
                }
            })
            .collect();
        rounds.push(Round {
            dir: path,
            plan,
            entries,
        });
    }
    rounds.sort_by(|a, b| {
        let start = |r: &Round| r.entries.first().map_or(0, |e| e.started_unix);
        start(a).cmp(&start(b)).then_with(|| a.dir.cmp(&b.dir))
    });
    Ok(rounds)
}

/// The start of the quota period holding `now` (unix seconds, UTC).
fn period_start(period: QuotaPeriod, now: u64) -> u64 {
    let day = now / 86_400;
    match period {
        QuotaPeriod::Day => day * 86_400,
        // 1970-01-01 was a Thursday: three days after a Monday.
        QuotaPeriod::Week => (day - (day + 3) % 7) * 86_400,
        QuotaPeriod::Phase => 0,
    }
}

/// Why `team` may not send another submission to `phase` now, or None when it may.
pub fn quota_refusal(
    rounds_dir: &Path,
    challenge: &Challenge,
    phase: &str,
    team: &str,
    now: u64,
) -> Result<Option<String>> {
    quota_refusal_with_pending(rounds_dir, challenge, phase, team, now, 0)
}

/// [`quota_refusal`] when `pending` more of the team's submissions are accepted but not yet in
/// a round (`podium serve`'s queue): they count as used.
pub fn quota_refusal_with_pending(
    rounds_dir: &Path,
    challenge: &Challenge,
    phase: &str,
    team: &str,
    now: u64,
    pending: usize,
) -> Result<Option<String>> {
    let Some(quota) = challenge.leaderboard.quota else {
        return Ok(None);
    };
    let period = challenge.leaderboard.quota_period;
    let since = period_start(period, now);
    let in_rounds = if rounds_dir.is_dir() {
        rounds(rounds_dir)?
            .iter()
            .filter(|r| r.plan.phase == phase)
            .flat_map(|r| &r.entries)
            .filter(|e| e.team == team && e.counts && !e.baseline && e.started_unix >= since)
            .count()
    } else {
        0
    };
    let used = in_rounds + pending;
    if used < quota {
        return Ok(None);
    }
    let (span, next) = match period {
        QuotaPeriod::Day => ("today (UTC)", Some(since + 86_400)),
        QuotaPeriod::Week => ("this week (UTC, from Monday)", Some(since + 7 * 86_400)),
        QuotaPeriod::Phase => ("in this phase", None),
    };
    let next = next.map_or(String::new(), |t| {
        format!("; the next opens at {} UTC", pipeline::utc_stamp(t))
    });
    Ok(Some(format!(
        "team {team:?} has used {used} of its {quota} submissions {span} on phase {phase}{next}. Submissions whose cases could not start at all (an organizer-side failure) do not count"
    )))
}

/// The phase's leaderboard over every round of `rounds_dir`: each team once, ranked with the
/// others; baselines shown once each. Written to `rounds_dir/phase-leaderboard/` (or
/// `phase-leaderboard-final/` on the private split).
pub fn phase_leaderboard(
    rounds_dir: &Path,
    selection: CaseSelection,
    ranking_method: Option<RankingMethod>,
) -> Result<(RoundOutcome, Vec<Entry>)> {
    let all = rounds(rounds_dir)?;
    let Some(last) = all.last() else {
        return Err(Error::msg(format!(
            "{} holds no finished round (folders with round.json and run.json); run `podium run --rounds {}` first",
            rounds_dir.display(),
            rounds_dir.display()
        )));
    };
    let phase_name = last.plan.phase.clone();
    let (mut challenge, phase) = last.plan.load_challenge()?;
    if let Some(method) = ranking_method {
        challenge.ranking.method = method;
    }
    let mut combined: Option<RoundScores> = None;
    let mut entries = Vec::new();
    for round in all.iter().filter(|r| r.plan.phase == phase_name) {
        let scores = score_round_outputs(round, &challenge, &phase, selection)?;
        entries.extend(round.entries.iter().cloned());
        combined = Some(match combined {
            None => scores,
            Some(mut c) => {
                if c.ranking.cases != scores.ranking.cases {
                    return Err(Error::msg(format!(
                        "round {} scored other cases than the earlier rounds of phase {phase_name}; a phase leaderboard needs the same cases in every round",
                        round.dir.display()
                    )));
                }
                merge(&mut c, scores);
                c
            }
        });
    }
    let mut scores = combined.expect("at least the last round");
    let kept = choose(&challenge, &scores, &entries);
    scores.submissions.retain(|s| kept.contains(&s.name));
    scores.case_scores.retain(|c| kept.contains(&c.submission));
    scores.aggregates.retain(|a| kept.contains(&a.submission));
    scores.problems.retain(|p| kept.contains(&p.submission));
    scores.curves.retain(|c| kept.contains(&c.submission));
    scores.confusion.retain(|c| kept.contains(&c.submission));
    scores.ranking.values.retain(|(s, _), _| kept.contains(s));
    scores.subgroups.retain(|a| kept.contains(&a.submission));
    scores
        .subgroup_summaries
        .retain(|a| kept.contains(&a.submission));
    let out = rounds_dir.join(if selection == CaseSelection::Private {
        "phase-leaderboard-final"
    } else {
        "phase-leaderboard"
    });
    let receipt = pipeline::Receipt::new(&challenge, &phase, pipeline::now_unix(), None, &[]);
    let mut outcome = pipeline::finish(&challenge, &out, scores, &receipt)?;
    let entries_path = out.join("entries.csv");
    let mut writer =
        csv::Writer::from_path(&entries_path).map_err(|e| Error::io("write", &entries_path, e))?;
    let io = |e: csv::Error| Error::io("write", &entries_path, e);
    writer
        .write_record([
            "round",
            "submission",
            "team",
            "started_utc",
            "baseline",
            "final",
            "counts_for_quota",
            "on_leaderboard",
        ])
        .map_err(io)?;
    let text = crate::text::csv_text;
    for e in &entries {
        writer
            .write_record([
                text(&e.round),
                text(&e.submission),
                text(&e.team),
                pipeline::utc_stamp(e.started_unix),
                e.baseline.to_string(),
                e.final_selection.to_string(),
                e.counts.to_string(),
                kept.contains(&e.key()).to_string(),
            ])
            .map_err(io)?;
    }
    writer
        .flush()
        .map_err(|e| Error::io("write", &entries_path, e))?;
    outcome.files.push(entries_path);
    Ok((outcome, entries))
}

/// A round's stored outputs scored on `selection`, its submissions named `submission@round`.
fn score_round_outputs(
    round: &Round,
    challenge: &Challenge,
    phase: &crate::challenge::PhasePaths,
    selection: CaseSelection,
) -> Result<RoundScores> {
    let mut by_submission: BTreeMap<String, BTreeMap<String, crate::results::CaseRecord>> =
        BTreeMap::new();
    for record in RunsCsv::read(&round.dir.join("runs.csv"))? {
        by_submission
            .entry(record.submission.clone())
            .or_default()
            .insert(record.case_id.clone(), record);
    }
    let dirs: Vec<PathBuf> = round
        .entries
        .iter()
        .map(|e| round.dir.join("predictions").join(&e.submission))
        .collect();
    let empty = BTreeMap::new();
    let inputs: Vec<ScoringInput> = round
        .entries
        .iter()
        .zip(&dirs)
        .map(|(e, dir)| ScoringInput {
            name: e.key(),
            team: e.team.clone(),
            baseline: e.baseline,
            predictions_dir: dir,
            runs: Some(by_submission.get(&e.submission).unwrap_or(&empty)),
        })
        .collect();
    scoring::score_round(challenge, phase, &inputs, selection)
}

fn merge(into: &mut RoundScores, other: RoundScores) {
    into.submissions.extend(other.submissions);
    into.case_scores.extend(other.case_scores);
    into.aggregates.extend(other.aggregates);
    into.problems.extend(other.problems);
    into.curves.extend(other.curves);
    into.confusion.extend(other.confusion);
    into.ranking.values.extend(other.ranking.values);
    into.subgroups.extend(other.subgroups);
    into.subgroup_summaries.extend(other.subgroup_summaries);
}

/// The leaderboard names that stay: per team, its final selection if it made one (the best of
/// them), else its best-ranked or latest submission; each baseline's latest run.
fn choose(challenge: &Challenge, scores: &RoundScores, entries: &[Entry]) -> BTreeSet<String> {
    let teams: Vec<String> = entries
        .iter()
        .filter(|e| !e.baseline)
        .map(Entry::key)
        .collect();
    let analysis = analysis::analyze(challenge, &scores.ranking, &teams, None);
    let method = analysis.method.unwrap_or(RankingMethod::MeanThenRank);
    let rank = |e: &Entry| {
        analysis
            .rank(method, analysis::CONSENSUS, &e.key())
            .unwrap_or(usize::MAX)
    };
    let mut kept = BTreeSet::new();
    let mut by_team: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.baseline) {
        by_team.entry(&e.team).or_default().push(e);
    }
    for (_, mut candidates) in by_team {
        if candidates.iter().any(|e| e.final_selection) {
            candidates.retain(|e| e.final_selection);
        }
        let chosen = match challenge.leaderboard.select {
            // The best rank; on a tie, the later submission.
            SubmissionChoice::Best => candidates.iter().min_by_key(|e| {
                (
                    rank(e),
                    std::cmp::Reverse(e.started_unix),
                    std::cmp::Reverse(e.round.clone()),
                )
            }),
            SubmissionChoice::Latest => candidates
                .iter()
                .max_by_key(|e| (e.started_unix, e.round.clone())),
        };
        if let Some(e) = chosen {
            kept.insert(e.key());
        }
    }
    let mut baselines: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.baseline) {
        baselines.insert(&e.submission, e);
    }
    kept.extend(baselines.values().map(|e| e.key()));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_periods_start_at_midnight_and_on_monday() {
        // 2026-11-27 12:00 UTC is a Friday; that week began on Monday 2026-11-23.
        let now = 1_795_780_800;
        assert_eq!(
            pipeline::utc_stamp(period_start(QuotaPeriod::Day, now)),
            "20261127-000000"
        );
        assert_eq!(
            pipeline::utc_stamp(period_start(QuotaPeriod::Week, now)),
            "20261123-000000"
        );
        assert_eq!(period_start(QuotaPeriod::Phase, now), 0);
    }
}
