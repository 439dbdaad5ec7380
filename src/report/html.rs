//! `report.html`: one self-contained file for the judges, written at the end of every `run`,
//! `score`, `check` and `rescore`. Inline CSS, a few lines of inline JavaScript to sort
//! tables, no request to any other file or host. Every text that comes from a team or a
//! file is escaped ([`escape`]).
//!
//! This first version holds the summary, the leaderboard, the ranking analysis, the runs and
//! the receipt as tables; the plots of issue 7 come next.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::pipeline::Receipt;
use crate::ranking::analysis::{RankingAnalysis, RankingMethod, CONSENSUS};
use crate::ranking::LeaderboardRow;
use crate::report::terminal::ranking_caveats;
use crate::results::RoundScores;
use crate::runner::CaseRecord;

/// Text for HTML content and attribute values: `& < > " '` become entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Everything the report shows.
pub struct ReportInput<'a> {
    pub scores: &'a RoundScores,
    pub leaderboard: &'a [LeaderboardRow],
    pub analysis: &'a RankingAnalysis,
    pub receipt: &'a Receipt,
    /// The round's journal, when podium ran the submissions.
    pub runs: &'a [CaseRecord],
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1f24}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #d0d7de;padding-bottom:.2rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f3f5f7;cursor:pointer;user-select:none}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.baseline td{color:#57606a;font-style:italic}.muted{color:#57606a}.warn{color:#9a6700;font-weight:600}
ul.caveats li{margin:.2rem 0}table.confusion{display:inline-table;margin-right:1rem}td.diag{background:#e6f4ea}caption{text-align:left;font-size:.85rem;color:#57606a}figure.plot{display:inline-block;margin:.5rem 1rem .5rem 0}figcaption{font-size:.85rem;color:#57606a;max-width:36rem}code{background:#f3f5f7;padding:0 .2rem}
@media print{th{cursor:auto}body{margin:0;max-width:none}h2{break-after:avoid}table{break-inside:auto}}
";

/// Sorts a table by the clicked header; numbers numerically, text alphabetically.
const SCRIPT: &str = "
document.querySelectorAll('table.sortable th').forEach(function(th,col){th.addEventListener('click',function(){
var body=th.closest('table').tBodies[0];var rows=Array.from(body.rows);var asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
rows.sort(function(a,b){var x=a.cells[col].dataset.v||a.cells[col].textContent,y=b.cells[col].dataset.v||b.cells[col].textContent;
var p=parseFloat(x),q=parseFloat(y);var r=(!isNaN(p)&&!isNaN(q))?p-q:x.localeCompare(y);return asc?r:-r;});
rows.forEach(function(r){body.appendChild(r);});});});
";

fn number(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
}

/// The whole report.
pub fn render(input: &ReportInput) -> String {
    let s = input.scores;
    let mut html = String::new();
    let title = format!("{} / {}", escape(&s.challenge), escape(&s.phase));
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>podium report: {title}</title><style>{STYLE}</style></head><body>\n\
         <h1>{title}</h1><p class=\"muted\">podium {} · {} cases scored · round started {} UTC</p>\n",
        escape(input.receipt.podium_version),
        s.cases,
        escape(&input.receipt.started_utc),
    );
    summary(&mut html, input);
    leaderboard(&mut html, input);
    per_task(&mut html, input);
    ranking(&mut html, input);
    runs(&mut html, input);
    receipt(&mut html, input);
    let _ = writeln!(html, "<script>{SCRIPT}</script></body></html>");
    // Wide tables scroll on their own instead of widening the page.
    html.replace("<table", "<div class=\"scroll\"><table")
        .replace("</table>", "</table></div>")
}

fn summary(html: &mut String, input: &ReportInput) {
    let ranked: Vec<&LeaderboardRow> = input
        .leaderboard
        .iter()
        .filter(|r| r.rank.is_some())
        .collect();
    let method = input
        .analysis
        .method
        .map_or("mean-then-rank", RankingMethod::name);
    html.push_str("<h2 id=\"summary\">Summary</h2>\n");
    let name = |r: &LeaderboardRow| {
        format!(
            "<strong>{}</strong> ({})",
            escape(&r.submission),
            escape(&r.team)
        )
    };
    let winners: Vec<String> = ranked
        .iter()
        .filter(|r| r.rank == Some(1))
        .map(|r| name(r))
        .collect();
    let _ = write!(
        html,
        "<p>Ranked by <code>{method}</code> per task, then the weighted mean of task ranks. Winner: {}.",
        if winners.is_empty() { "none".to_string() } else { winners.join(", ") }
    );
    if let Some(second) = ranked.iter().find(|r| r.rank.is_some_and(|k| k > 1)) {
        let _ = write!(html, " Runner-up: {}.", name(second));
    }
    html.push_str("</p>\n<ul class=\"caveats\">");
    for line in ranking_caveats(input.analysis) {
        let class = if line.contains("UNSTABLE") || line.contains("depends on the method") {
            " class=\"warn\""
        } else {
            ""
        };
        let _ = write!(html, "<li{class}>{}</li>", escape(&line));
    }
    html.push_str("</ul>\n");
}

fn leaderboard(html: &mut String, input: &ReportInput) {
    html.push_str("<h2 id=\"leaderboard\">Leaderboard</h2>\n<p class=\"muted\">Primary metric of each task with its 95 % CI; baselines are shown in italics and not ranked. Click a header to sort.</p>\n<table class=\"sortable\"><thead><tr><th>rank</th><th>submission</th><th>team</th>");
    if let Some(first) = input.leaderboard.first() {
        for t in &first.tasks {
            let _ = write!(
                html,
                "<th>{} {}</th><th>{} rank</th>",
                escape(&t.task),
                escape(&t.metric),
                escape(&t.task)
            );
        }
    }
    html.push_str("<th>mean rank</th><th>cases</th></tr></thead><tbody>\n");
    for r in input.leaderboard {
        let class = if r.baseline {
            " class=\"baseline\""
        } else {
            ""
        };
        let _ = write!(
            html,
            "<tr{class}><td class=\"n\">{}</td><td>{}{}</td><td>{}</td>",
            r.rank.map_or("–".into(), |k| k.to_string()),
            escape(&r.submission),
            if r.baseline { " (baseline)" } else { "" },
            escape(&r.team)
        );
        for t in &r.tasks {
            let ci =
                t.ci.map_or(String::new(), |(lo, hi)| format!(" [{lo:.3}, {hi:.3}]"));
            let _ = write!(
                html,
                "<td class=\"n\" data-v=\"{}\">{}{ci}</td><td class=\"n\">{}</td>",
                t.value.map_or(String::new(), |v| v.to_string()),
                number(t.value, 3),
                t.rank.map_or("–".into(), |k| k.to_string())
            );
        }
        let counts: Vec<String> = r
            .run_counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect();
        let _ = write!(
            html,
            "<td class=\"n\">{}</td><td>{}</td></tr>",
            number(r.mean_task_rank, 2),
            escape(&counts.join(", "))
        );
    }
    html.push_str("</tbody></table>\n");
}

/// Per task: every aggregate with its CI, the ROC overlays, the confusion matrices and the
/// worst cases of each submission.
fn per_task(html: &mut String, input: &ReportInput) {
    let s = input.scores;
    html.push_str("<h2 id=\"tasks\">Per task</h2>\n");
    let mut tasks: Vec<&str> = Vec::new();
    for a in &s.aggregates {
        if !tasks.contains(&a.task.as_str()) {
            tasks.push(&a.task);
        }
    }
    for task in tasks {
        let _ = writeln!(html, "<h3>{}</h3>", escape(task));
        task_metrics(html, s, task);
        let mut curves: BTreeMap<&str, BTreeMap<&str, Vec<&crate::results::CurvePoint>>> =
            BTreeMap::new();
        for p in s.curves.iter().filter(|p| p.task == task) {
            curves
                .entry(p.class.as_str())
                .or_default()
                .entry(p.submission.as_str())
                .or_default()
                .push(p);
        }
        for (class, by_submission) in curves {
            let curves: Vec<(String, Vec<&crate::results::CurvePoint>)> = by_submission
                .into_iter()
                .map(|(s, points)| (s.to_string(), points))
                .collect();
            let title = format!("{task}: ROC, {class} vs rest");
            if let Some(svg) = super::plots::roc_svg(&title, &curves) {
                let _ = writeln!(html, "<figure class=\"plot\">{svg}</figure>");
            }
        }
        confusion(html, s, task);
        worst_cases(html, s, task);
    }
}

/// Every aggregate of the task: one row per submission, one column per metric.
fn task_metrics(html: &mut String, s: &RoundScores, task: &str) {
    let mut metrics: Vec<&str> = Vec::new();
    let mut rows: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for a in s.aggregates.iter().filter(|a| a.task == task) {
        if !metrics.contains(&a.metric.as_str()) {
            metrics.push(&a.metric);
        }
        let ci = match (a.ci_lower, a.ci_upper) {
            (Some(lo), Some(hi)) => format!(" [{lo:.3}, {hi:.3}]"),
            _ => String::new(),
        };
        rows.entry(&a.submission)
            .or_default()
            .insert(&a.metric, format!("{}{ci}", number(a.value, 3)));
    }
    html.push_str("<table class=\"sortable\"><thead><tr><th>submission</th>");
    for m in &metrics {
        let _ = write!(html, "<th>{}</th>", escape(m));
    }
    html.push_str("</tr></thead><tbody>");
    for (submission, values) in rows {
        let _ = write!(html, "<tr><td>{}</td>", escape(submission));
        for m in &metrics {
            let _ = write!(
                html,
                "<td class=\"n\">{}</td>",
                values.get(m).map_or("", |v| v.as_str())
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>\n");
}

/// A confusion matrix per submission (rows: truth, columns: prediction).
fn confusion(html: &mut String, s: &RoundScores, task: &str) {
    let mut by_submission: BTreeMap<&str, Vec<&crate::results::ConfusionCell>> = BTreeMap::new();
    for c in s.confusion.iter().filter(|c| c.task == task) {
        by_submission.entry(&c.submission).or_default().push(c);
    }
    for (submission, cells) in by_submission {
        let mut labels: Vec<&str> = Vec::new();
        for c in &cells {
            if !labels.contains(&c.truth.as_str()) {
                labels.push(&c.truth);
            }
        }
        let _ = write!(
            html,
            "<table class=\"confusion\"><caption>{}: confusion matrix (rows truth, columns prediction)</caption><tr><th></th>",
            escape(submission)
        );
        for l in &labels {
            let _ = write!(html, "<th>{}</th>", escape(l));
        }
        html.push_str("</tr>");
        for t in &labels {
            let _ = write!(html, "<tr><th>{}</th>", escape(t));
            for p in &labels {
                let count = cells
                    .iter()
                    .find(|c| c.truth == *t && c.predicted == *p)
                    .map_or(0, |c| c.count);
                let class = if t == p {
                    " class=\"n diag\""
                } else {
                    " class=\"n\""
                };
                let _ = write!(html, "<td{class}>{count}</td>");
            }
            html.push_str("</tr>");
        }
        html.push_str("</table>\n");
    }
}

/// The five worst cases of each submission on the task's first per-case metric, where the
/// task has one beyond right/wrong.
fn worst_cases(html: &mut String, s: &RoundScores, task: &str) {
    let Some(metric) = s
        .case_scores
        .iter()
        .find(|c| c.task == task && c.metric != "correct")
        .map(|c| c.metric.as_str())
    else {
        return;
    };
    let lower_is_better = ["abs_error", "hd95", "assd", "volume_error_ml"]
        .iter()
        .any(|m| metric.starts_with(m));
    let mut by_submission: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for c in s
        .case_scores
        .iter()
        .filter(|c| c.task == task && c.metric == metric)
    {
        if let Some(v) = c.value {
            by_submission
                .entry(&c.submission)
                .or_default()
                .push((&c.case_id, v));
        }
    }
    let _ = write!(
        html,
        "<table><caption>Worst cases by {} ({} is better)</caption><tr><th>submission</th><th>cases (value)</th></tr>",
        escape(metric),
        if lower_is_better { "lower" } else { "higher" }
    );
    for (submission, mut cases) in by_submission {
        cases.sort_by(|a, b| {
            let order = a.1.total_cmp(&b.1);
            if lower_is_better {
                order.reverse()
            } else {
                order
            }
        });
        let worst: Vec<String> = cases
            .iter()
            .take(5)
            .map(|(case, v)| format!("{} ({v:.3})", escape(case)))
            .collect();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(submission),
            worst.join(", ")
        );
    }
    html.push_str("</table>\n");
}

fn ranking(html: &mut String, input: &ReportInput) {
    let a = input.analysis;
    html.push_str("<h2 id=\"ranking\">Ranking analysis</h2>\n");
    if let Some(svg) = super::plots::blob_svg(a, CONSENSUS) {
        let _ = writeln!(
            html,
            "<figure class=\"plot\">{svg}<figcaption>Each disc's area is the share of bootstrap resamples giving that rank; the cross is the rank on all cases.</figcaption></figure>"
        );
    }
    // Ranks under each method, side by side.
    html.push_str("<h3>Consensus rank under each method</h3><table class=\"sortable\"><thead><tr><th>submission</th>");
    for m in RankingMethod::ALL {
        let _ = write!(html, "<th>{}</th>", m.name());
    }
    html.push_str("</tr></thead><tbody>");
    for s in &a.submissions {
        let _ = write!(html, "<tr><td>{}</td>", escape(s));
        for m in RankingMethod::ALL {
            let _ = write!(
                html,
                "<td class=\"n\">{}</td>",
                a.rank(m, CONSENSUS, s)
                    .map_or("–".into(), |k| k.to_string())
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>\n");
    if a.resamples > 0 {
        let _ = write!(
            html,
            "<h3>Rank stability ({} bootstrap resamples over cases, seed {})</h3><table class=\"sortable\"><thead><tr><th>scope</th><th>submission</th><th>rank</th><th>median</th><th>95 % interval</th><th>ranked first</th></tr></thead><tbody>",
            a.resamples, a.seed
        );
        for i in &a.intervals {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}–{}</td><td class=\"n\">{:.0} %</td></tr>",
                escape(&i.scope),
                escape(&i.submission),
                i.rank,
                number(Some(i.median_rank), 1),
                i.rank_lower,
                i.rank_upper,
                i.first * 100.0
            );
        }
        html.push_str("</tbody></table>\n<p>Median Kendall's τ between the full ranking and the bootstrap rankings: ");
        let taus: Vec<String> = std::iter::once(CONSENSUS.to_string())
            .chain(a.tasks.iter().cloned())
            .map(|scope| format!("{} {}", escape(&scope), number(a.median_tau(&scope), 2)))
            .collect();
        html.push_str(&taus.join(" · "));
        html.push_str("</p>\n");
    }
    let _ = write!(
        html,
        "<h3>Significance (one-sided paired tests, Holm-corrected per task, α = {})</h3><table class=\"sortable\"><thead><tr><th>task</th><th>submission</th><th>better than</th><th>test</th><th>p</th><th>p (Holm)</th><th>significant</th></tr></thead><tbody>",
        a.alpha
    );
    for t in &a.significance {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\" data-v=\"{}\">{:.2e}</td><td class=\"n\" data-v=\"{}\">{:.2e}</td><td>{}</td></tr>",
            escape(&t.task),
            escape(&t.submission),
            escape(&t.opponent),
            t.test,
            t.p_value,
            t.p_value,
            t.p_holm,
            t.p_holm,
            if t.significant { "yes" } else { "no" }
        );
    }
    html.push_str("</tbody></table>\n");
}

fn runs(html: &mut String, input: &ReportInput) {
    html.push_str("<h2 id=\"runs\">Runs</h2>\n");
    if input.runs.is_empty() {
        html.push_str(
            "<p class=\"muted\">Scored from a folder of predictions: nothing was run.</p>\n",
        );
        return;
    }
    let mut by_submission: BTreeMap<&str, Vec<&CaseRecord>> = BTreeMap::new();
    for r in input.runs {
        by_submission.entry(&r.submission).or_default().push(r);
    }
    html.push_str("<table class=\"sortable\"><thead><tr><th>submission</th><th>cases</th><th>not ok</th><th>mean wall (s)</th><th>max wall (s)</th><th>max peak memory (MiB)</th></tr></thead><tbody>");
    for (name, records) in &by_submission {
        let walls: Vec<f64> = records.iter().map(|r| r.wall_s).collect();
        let peak = records
            .iter()
            .filter_map(|r| r.peak_memory_mib)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{}</td></tr>",
            escape(name),
            records.len(),
            records.iter().filter(|r| r.status.as_str() != "ok").count(),
            walls.iter().sum::<f64>() / walls.len().max(1) as f64,
            walls.iter().copied().fold(0.0, f64::max),
            number(peak, 0)
        );
    }
    html.push_str("</tbody></table>\n");
    let failures: Vec<&&CaseRecord> = by_submission
        .values()
        .flatten()
        .filter(|r| r.status.as_str() != "ok")
        .collect();
    if !failures.is_empty() {
        html.push_str("<h3>Failed cases</h3><p class=\"muted\">The team-safe message: on a hidden phase it never quotes the program's output.</p><table class=\"sortable\"><thead><tr><th>submission</th><th>case</th><th>status</th><th>message</th></tr></thead><tbody>");
        for r in failures {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.submission),
                escape(&r.case_id),
                r.status.as_str(),
                escape(&r.team_message)
            );
        }
        html.push_str("</tbody></table>\n");
    }
}

fn receipt(html: &mut String, input: &ReportInput) {
    let json = serde_json::to_string_pretty(input.receipt).unwrap_or_default();
    let _ = write!(
        html,
        "<h2 id=\"receipt\">Reproducibility receipt</h2>\n<p class=\"muted\">run.json: podium version, challenge, truth, limits, seeds, submissions (with image ids), host.</p><pre>{}</pre>\n",
        escape(&json)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_markup_text() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
