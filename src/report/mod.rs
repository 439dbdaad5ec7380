//! Reporters: each one renders the same results model ([`crate::results::RoundScores`] and
//! the leaderboard) in its own format.

pub mod csv_files;
pub mod figures;
mod forest;
pub mod html;
pub mod leaderboard;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod plots;
pub mod slices;
mod svg;
pub mod terminal;
pub mod thin;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ranking::analysis::{RankingAnalysis, RankingMethod};
use crate::ranking::LeaderboardRow;
use crate::results::{CaseRecord, CaseStatus, Receipt, RoundScores};
pub use html::View;

/// The file in a round's folder that holds everything the report is drawn from, so that
/// `podium report` redraws it from the folder alone, without the truth or the challenge.
pub const REPORT_DATA: &str = "report-data.json";

/// What the report is drawn from, as read back from [`REPORT_DATA`].
#[derive(Deserialize)]
pub struct ReportData {
    pub scores: RoundScores,
    pub leaderboard: Vec<LeaderboardRow>,
    pub analysis: RankingAnalysis,
    pub receipt: Receipt,
}

#[derive(Serialize)]
struct ReportDataRef<'a> {
    scores: &'a RoundScores,
    leaderboard: &'a [LeaderboardRow],
    analysis: &'a RankingAnalysis,
    receipt: &'a Receipt,
}

/// Writes [`REPORT_DATA`] into `dir`.
pub fn write_report_data(
    dir: &Path,
    scores: &RoundScores,
    leaderboard: &[LeaderboardRow],
    analysis: &RankingAnalysis,
    receipt: &Receipt,
) -> Result<PathBuf> {
    let path = dir.join(REPORT_DATA);
    let data = ReportDataRef {
        scores,
        leaderboard,
        analysis,
        receipt,
    };
    let text = serde_json::to_string(&data).map_err(|e| Error::msg(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
    Ok(path)
}

impl ReportData {
    /// Reads [`REPORT_DATA`] from a round's folder.
    pub fn read(run_dir: &Path) -> Result<ReportData> {
        let path = run_dir.join(REPORT_DATA);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::msg(format!(
                "cannot read {}: {e}; pass the folder of a round that podium {} wrote (it holds run.json and {REPORT_DATA}), or run `podium rescore {}` to write it again",
                path.display(),
                env!("CARGO_PKG_VERSION"),
                run_dir.display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            Error::msg(format!(
                "{} is not a report-data file this podium can read ({e}); run `podium rescore {}` to write it again",
                path.display(),
                run_dir.display()
            ))
        })
    }
}

/// Where `podium report` writes, and for whom.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub view: View,
    /// The HTML file; its Markdown summary goes beside it, with the extension `.md`.
    pub html: PathBuf,
    /// Also write every chart as SVG and PNG into this folder.
    pub plots: Option<PathBuf>,
}

/// The last lines of a failed case's stderr log, at most this many bytes.
const LOG_EXCERPT_BYTES: usize = 2000;
const LOG_EXCERPT_LINES: usize = 12;

/// The end of the stderr log of every case that did not end `ok`.
fn log_excerpts(run_dir: &Path, runs: &[CaseRecord]) -> BTreeMap<(String, String), String> {
    let mut excerpts = BTreeMap::new();
    for r in runs.iter().filter(|r| r.status != CaseStatus::Ok) {
        let path = run_dir
            .join("logs")
            .join(&r.submission)
            .join(format!("{}.stderr.log", r.case_id));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let tail = &bytes[bytes.len().saturating_sub(LOG_EXCERPT_BYTES)..];
        // Terminal colours and other control characters would only garble the page.
        let text: String = String::from_utf8_lossy(tail)
            .chars()
            .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
            .collect();
        let lines: Vec<&str> = text.lines().collect();
        let excerpt = lines[lines.len().saturating_sub(LOG_EXCERPT_LINES)..].join("\n");
        if !excerpt.trim().is_empty() {
            excerpts.insert((r.submission.clone(), r.case_id.clone()), excerpt);
        }
    }
    excerpts
}

/// Writes the report of the round in `run_dir`: the HTML file, `report.md` beside it, and the
/// charts when asked. Returns the files written.
pub fn write_report(
    run_dir: &Path,
    data: &ReportDataRefs,
    options: &ReportOptions,
) -> Result<Vec<PathBuf>> {
    let journal = run_dir.join("runs.csv");
    let runs = if journal.exists() {
        crate::results::RunsCsv::read(&journal)?
    } else {
        Vec::new()
    };
    let excerpts = log_excerpts(run_dir, &runs);
    let restricted = options.view == View::Team && data.receipt.hidden;
    let gallery = slices::gather(run_dir, data.scores, data.receipt, restricted);
    let input = html::ReportInput {
        scores: data.scores,
        leaderboard: data.leaderboard,
        analysis: data.analysis,
        receipt: data.receipt,
        runs: &runs,
        log_excerpts: &excerpts,
        view: options.view,
        slices: &gallery,
    };
    let mut files = Vec::new();
    if let Some(parent) = options.html.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    std::fs::write(&options.html, html::render(&input))
        .map_err(|e| Error::io("write", &options.html, e))?;
    files.push(options.html.clone());
    let md_path = options.html.with_extension("md");
    let html_name = options
        .html
        .file_name()
        .map_or("report.html".into(), |n| n.to_string_lossy().into_owned());
    std::fs::write(&md_path, markdown_summary(data, &html_name, options.view))
        .map_err(|e| Error::io("write", &md_path, e))?;
    files.push(md_path);
    if let Some(dir) = &options.plots {
        files.extend(write_plots(dir, data, &input)?);
    }
    Ok(files)
}

/// Borrowed parts of a round's results, as `finish` holds them and [`ReportData`] owns them.
pub struct ReportDataRefs<'a> {
    pub scores: &'a RoundScores,
    pub leaderboard: &'a [LeaderboardRow],
    pub analysis: &'a RankingAnalysis,
    pub receipt: &'a Receipt,
}

impl ReportData {
    pub fn refs(&self) -> ReportDataRefs<'_> {
        ReportDataRefs {
            scores: &self.scores,
            leaderboard: &self.leaderboard,
            analysis: &self.analysis,
            receipt: &self.receipt,
        }
    }
}

/// Every chart as `<stem>.svg` and `<stem>.png`, and the segmentation slices as PNG.
fn write_plots(
    dir: &Path,
    data: &ReportDataRefs,
    input: &html::ReportInput,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let detail = if input.view == View::Team && data.receipt.hidden {
        figures::Detail::AggregatesOnly
    } else {
        figures::Detail::PerCase
    };
    let mut files = Vec::new();
    for figure in figures::all(data.scores, data.analysis, detail) {
        let failed = |e: String| Error::msg(format!("chart {}: {e}", figure.stem));
        let svg = dir.join(format!("{}.svg", figure.stem));
        std::fs::write(&svg, figure.svg_file().map_err(failed)?)
            .map_err(|e| Error::io("write", &svg, e))?;
        let png = dir.join(format!("{}.png", figure.stem));
        std::fs::write(&png, figure.png().map_err(failed)?)
            .map_err(|e| Error::io("write", &png, e))?;
        files.extend([svg, png]);
    }
    for (name, bytes) in slices::png_files(input.slices) {
        let png = dir.join(name);
        std::fs::write(&png, bytes).map_err(|e| Error::io("write", &png, e))?;
        files.push(png);
    }
    Ok(files)
}

/// "Winner: A. Runner-up: B." over the ranked rows (baselines are shown, not ranked), each
/// submission written by `name` in the reporter's own escaping. An incomplete result names no
/// winner, nor does a round in which no team beats the best baseline overall.
fn winner_sentence(
    leaderboard: &[LeaderboardRow],
    analysis: &RankingAnalysis,
    incomplete: bool,
    name: impl Fn(&LeaderboardRow) -> String,
) -> String {
    if incomplete {
        return "No winner: this is an INCOMPLETE result.".to_string();
    }
    let ranked = || leaderboard.iter().filter(|r| r.rank.is_some());
    let winners: Vec<String> = ranked().filter(|r| r.rank == Some(1)).map(&name).collect();
    if let Some(verdict) = analysis.baseline_verdict().filter(|v| v.unbeaten_overall) {
        let baseline = leaderboard
            .iter()
            .find(|r| r.submission == verdict.best_baseline)
            .map_or_else(|| verdict.best_baseline.clone(), &name);
        return format!(
            "No winner above the baseline: the best team, {}, does not beat the best baseline, {baseline}.",
            if winners.is_empty() {
                "none".to_string()
            } else {
                winners.join(", ")
            }
        );
    }
    let mut sentence = format!(
        "Winner: {}.",
        if winners.is_empty() {
            "none".to_string()
        } else {
            winners.join(", ")
        }
    );
    if let Some(second) = ranked().find(|r| r.rank.is_some_and(|k| k > 1)) {
        let _ = write!(sentence, " Runner-up: {}.", name(second));
    }
    sentence
}

/// How many cases of the round were left out of scoring and why, for the organizer's views
/// only: a team is never told about a problem of the truth.
pub fn left_out_phrase(scores: &RoundScores) -> String {
    let n = scores.left_out.len();
    format!(
        "{n} case{} left out for every submission, since {} truth or image is broken (truth-findings.csv)",
        if n == 1 { "" } else { "s" },
        if n == 1 { "its" } else { "their" }
    )
}

/// A short Markdown summary for e-mails and issues: the winner, the leaderboard and the
/// caveats, pointing at the HTML report for the rest.
pub fn markdown_summary(data: &ReportDataRefs, html_name: &str, view: View) -> String {
    use leaderboard::escape_markdown;
    let s = data.scores;
    let method = data
        .analysis
        .method
        .map_or("mean-then-rank", RankingMethod::name);
    let left_out = if view == View::Organizer && !s.left_out.is_empty() {
        format!(" ({})", escape_markdown(&left_out_phrase(s)))
    } else {
        String::new()
    };
    let mut md = format!(
        "# {} / {}: results\n\n{} cases scored{left_out}, {} submissions; each task ranked `{method}`, then the weighted mean of task ranks.\n\n",
        escape_markdown(&s.challenge),
        escape_markdown(&s.phase),
        s.cases,
        s.submissions.len()
    );
    if let Some(incomplete) = &s.incomplete {
        let _ = write!(md, "**{}.**\n\n", incomplete.summary(s.cases));
    }
    md.push_str(&winner_sentence(
        data.leaderboard,
        data.analysis,
        s.incomplete.is_some(),
        |r| {
            format!(
                "**{}** ({})",
                escape_markdown(&r.submission),
                escape_markdown(&r.team)
            )
        },
    ));
    md.push_str("\n\n");
    md.push_str(&leaderboard::markdown(data.leaderboard));
    md.push('\n');
    if s.incomplete.is_none() {
        for line in terminal::ranking_caveats(data.analysis) {
            let _ = writeln!(md, "- {}", escape_markdown(&line));
        }
    }
    let _ = writeln!(
        md,
        "\nPrimary metric per task with its 95 % CI in brackets. The charts, per-task metrics, ranking analysis, runs and reproducibility receipt are in {}.",
        escape_markdown(html_name)
    );
    md
}
