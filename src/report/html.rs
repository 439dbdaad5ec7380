//! `report.html`: one self-contained file for the judges, written at the end of every `run`,
//! `score`, `check` and `rescore`. Inline CSS, a few lines of inline JavaScript to sort
//! tables, no request to any other file or host. Every text that comes from a team or a
//! file is escaped ([`escape`]).
//!
//! docs/report.md describes every section and chart.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::ranking::analysis::{RankingAnalysis, RankingMethod, CONSENSUS};
use crate::ranking::LeaderboardRow;
use crate::report::figures::{self, Detail};
use crate::report::plots::Figure;
use crate::report::terminal::ranking_caveats;
use crate::report::thin;
use crate::results::CaseRecord;
use crate::results::Receipt;
use crate::results::{CaseStatus, RoundScores};

/// Text for HTML content and attribute values: `& < > " '` become entities, and control and
/// bidi characters visible escapes ([`crate::text::shown_lines`]: a right-to-left override
/// would make a name read as another one). Line breaks and tabs stay, for log excerpts.
pub fn escape(text: &str) -> String {
    let text = crate::text::shown_lines(text);
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

/// Who reads the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    /// Organizers and judges: the program's messages and log excerpts of failed cases.
    Organizer,
    /// The teams: on a hidden phase, team-safe messages only, no log excerpt and no per-case
    /// value (which next to a team's own predictions would give the hidden truth away).
    Team,
}

/// Everything the report shows.
pub struct ReportInput<'a> {
    pub scores: &'a RoundScores,
    pub leaderboard: &'a [LeaderboardRow],
    pub analysis: &'a RankingAnalysis,
    pub receipt: &'a Receipt,
    /// The round's journal, when podium ran the submissions.
    pub runs: &'a [CaseRecord],
    /// The last lines of the program's stderr, by (submission, case), for failed cases.
    pub log_excerpts: &'a BTreeMap<(String, String), String>,
    pub view: View,
    /// The segmentation slices, drawn from the challenge's images and the round's masks.
    pub slices: &'a crate::report::slices::Gallery,
}

impl ReportInput<'_> {
    /// The team view of a hidden phase: nothing per case beyond the team's own statuses.
    fn restricted(&self) -> bool {
        self.view == View::Team && self.receipt.hidden
    }

    fn detail(&self) -> Detail {
        if self.restricted() {
            Detail::AggregatesOnly
        } else {
            Detail::PerCase
        }
    }
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:76rem;padding:0 1rem;color:#1b1f24}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #d0d7de;padding-bottom:.2rem}h3{margin-top:1.6rem}
nav{font-size:.9rem}nav a{margin-right:.8rem;color:#0b5cad}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}table.sortable th{cursor:pointer;user-select:none}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.baseline td{color:#57606a;font-style:italic}.muted{color:#57606a}.warn{color:#9a6700;font-weight:600}.winner{font-size:1.1rem}
ul.caveats li{margin:.2rem 0}table.confusion{display:inline-table;margin-right:1rem}caption{text-align:left;font-size:.85rem;color:#57606a}
.figures{display:flex;flex-wrap:wrap;gap:.5rem 1.2rem;align-items:flex-start}figure.plot{margin:.4rem 0;break-inside:avoid}figure.plot svg{max-width:100%;height:auto}figcaption{font-size:.82rem;color:#57606a;max-width:30rem}
.ci{font-size:.8rem;color:#57606a;white-space:nowrap}code{background:#f3f5f7;padding:0 .2rem}pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;font-size:.8rem;max-height:28rem}pre.log{max-height:10rem;margin:0}
.strip{display:flex;flex-wrap:wrap;gap:2px;margin:.2rem 0 .6rem}.strip span{width:10px;height:14px;display:inline-block}
.st-ok{background:#2da44e}.st-failed{background:#cf222e}.st-timeout{background:#bf8700}.st-oom{background:#8250df}.st-output_limit{background:#fb8f44}.st-invalid{background:#e16f76}.st-missing{background:#afb8c1}
.legend span{display:inline-block;width:10px;height:10px;margin:0 .25rem 0 .8rem}
.strip span,.legend span,table.confusion td{-webkit-print-color-adjust:exact;print-color-adjust:exact}
details>summary{cursor:pointer;margin:.4rem 0}
@media print{body{margin:0;max-width:none;font-size:11pt}nav{display:none}th{cursor:auto}h2{break-after:avoid}table{break-inside:auto}.scroll{overflow:visible}pre,pre.log{max-height:none}details.cases{display:none}}
";

/// Sorts a table by the clicked header (numbers numerically, text alphabetically), and opens
/// every collapsed section before printing.
const SCRIPT: &str = "
document.querySelectorAll('table.sortable').forEach(function(table){table.querySelectorAll('thead th').forEach(function(th,col){th.addEventListener('click',function(){
var body=table.tBodies[0];var rows=Array.from(body.rows);var asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
function key(row){var c=row.cells[col];var t=c.dataset.v!==undefined?c.dataset.v:c.textContent;return t.trim()==='–'?'':t;}
rows.sort(function(a,b){var x=key(a),y=key(b);if(x===''||y===''){return (x==='')-(y==='');}
var p=parseFloat(x),q=parseFloat(y);var r=(!isNaN(p)&&!isNaN(q))?p-q:x.localeCompare(y);return asc?r:-r;});
rows.forEach(function(r){body.appendChild(r);});});});});
window.addEventListener('beforeprint',function(){document.querySelectorAll('details:not(.cases)').forEach(function(d){d.open=true;});});
";

fn number(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
}

/// The figures in a wrapping row, each with its caption.
fn figures(html: &mut String, figures: &[Figure]) {
    if figures.is_empty() {
        return;
    }
    html.push_str("<div class=\"figures\">");
    for f in figures {
        match f.svg() {
            Ok(svg) => {
                // A thinned chart says what it leaves out, on a line of its own.
                let note = f.note.as_ref().map_or(String::new(), |n| {
                    format!("<br><span class=\"thinned\">{}</span>", escape(n))
                });
                let _ = write!(
                    html,
                    "<figure class=\"plot\">{svg}<figcaption>{}{note}</figcaption></figure>",
                    escape(&f.caption)
                );
            }
            Err(e) => {
                let _ = write!(
                    html,
                    "<p class=\"warn\">{}: {}</p>",
                    escape(&f.stem),
                    escape(&e)
                );
            }
        }
    }
    html.push_str("</div>\n");
}

/// The whole report.
pub fn render(input: &ReportInput) -> String {
    let s = input.scores;
    let mut html = String::new();
    let title = format!("{} / {}", escape(&s.challenge), escape(&s.phase));
    let view = match input.view {
        View::Organizer => "organizers' and judges' view",
        View::Team => "team view",
    };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>podium report: {title}</title><style>{STYLE}</style></head><body>\n\
         <h1>{title}</h1><p class=\"muted\">podium {} · {view} · round started {} UTC</p>\n\
         <nav><a href=\"#summary\">Summary</a><a href=\"#leaderboard\">Leaderboard</a><a href=\"#tasks\">Per task</a>{}{}<a href=\"#ranking\">Ranking analysis</a><a href=\"#runs\">Runs</a><a href=\"#receipt\">Receipt</a></nav>\n",
        escape(&input.receipt.podium_version),
        escape(&input.receipt.started_utc),
        if input.scores.subgroup_summaries.is_empty() || input.restricted() {
            ""
        } else {
            "<a href=\"#subgroups\">Subgroups</a>"
        },
        if matches!(input.slices, crate::report::slices::Gallery::Absent) {
            ""
        } else {
            "<a href=\"#slices\">Slices</a>"
        },
    );
    summary(&mut html, input);
    leaderboard(&mut html, input);
    per_task(&mut html, input);
    subgroups(&mut html, input);
    crate::report::slices::section(&mut html, input.slices);
    ranking(&mut html, input);
    runs(&mut html, input);
    receipt(&mut html, input);
    let _ = writeln!(html, "<script>{SCRIPT}</script></body></html>");
    // Wide tables scroll on their own instead of widening the page.
    html.replace("<table", "<div class=\"scroll\"><table")
        .replace("</table>", "</table></div>")
}

fn summary(html: &mut String, input: &ReportInput) {
    let method = input
        .analysis
        .method
        .map_or("mean-then-rank", RankingMethod::name);
    html.push_str("<h2 id=\"summary\">Summary</h2>\n");
    if let Some(incomplete) = &input.scores.incomplete {
        let _ = writeln!(
            html,
            "<p class=\"warn incomplete\">{}.</p>",
            escape(&incomplete.summary(input.scores.cases))
        );
    }
    let _ = write!(
        html,
        "<p class=\"winner\">Ranked by <code>{method}</code> per task, then the weighted mean of task ranks. {}",
        super::winner_sentence(
            input.leaderboard,
            input.analysis,
            input.scores.incomplete.is_some(),
            |r| format!(
                "<strong>{}</strong> ({})",
                escape(&r.submission),
                escape(&r.team)
            )
        )
    );
    html.push_str("</p>\n");
    let s = input.scores;
    let scope = match s.selection {
        crate::challenge::split::CaseSelection::All => String::new(),
        crate::challenge::split::CaseSelection::Public => format!(
            " (the public split: {} of the phase's {} cases; the private split decides the final leaderboard)",
            s.cases, s.phase_cases
        ),
        crate::challenge::split::CaseSelection::Private => format!(
            " (the private split: {} of the phase's {} cases, for the final leaderboard)",
            s.cases, s.phase_cases
        ),
    };
    // Only the organizer hears of the truth's problems.
    let scope = if input.view == View::Organizer && !s.left_out.is_empty() {
        format!("{scope} ({})", escape(&super::left_out_phrase(s)))
    } else {
        scope
    };
    let _ = write!(
        html,
        "<p>{} cases scored{scope}; {} submissions, {} of them baselines (shown at their place, without a rank). The phase is {}.</p>\n<ul class=\"caveats\">",
        s.cases,
        s.submissions.len(),
        s.submissions.iter().filter(|x| x.baseline).count(),
        if input.receipt.hidden { "hidden: only organizers see its truth" } else { "public: teams have its truth" }
    );
    let caveats = if input.scores.incomplete.is_some() {
        Vec::new()
    } else {
        ranking_caveats(input.analysis)
    };
    for line in caveats {
        let class = if line.contains("UNSTABLE")
            || line.contains("depends on the method")
            || line.contains("BEATS THE BEST BASELINE")
            || line.contains("beats the best baseline")
        {
            " class=\"warn\""
        } else {
            ""
        };
        let _ = write!(html, "<li{class}>{}</li>", escape(&line));
    }
    html.push_str("</ul>\n");
    if input.view == View::Organizer && !s.left_out.is_empty() {
        html.push_str("<details><summary>Cases left out, for every submission</summary><ul>");
        for case in &s.left_out {
            let _ = write!(
                html,
                "<li>{}: {}</li>",
                escape(&case.case_id),
                escape(&case.reasons.join("; "))
            );
        }
        html.push_str("</ul></details>\n");
    }
}

fn leaderboard(html: &mut String, input: &ReportInput) {
    html.push_str("<h2 id=\"leaderboard\">Leaderboard</h2>\n<p class=\"muted\">Primary metric of each task with its 95 % CI; baselines are shown in italics at their place among the teams, without a rank. Click a header to sort.</p>\n<table class=\"sortable\"><thead><tr><th>rank</th><th>submission</th><th>team</th>");
    if let Some(first) = input.leaderboard.first() {
        for t in &first.tasks {
            let _ = write!(
                html,
                "<th>{} {}</th><th>{} rank</th>",
                escape(&t.task),
                escape(&t.label()),
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
            let ci = t.ci.map_or(String::new(), |(lo, hi)| {
                format!("<br><span class=\"ci\">[{lo:.3}, {hi:.3}]</span>")
            });
            let _ = write!(
                html,
                "<td class=\"n\" data-v=\"{}\">{}{}{ci}</td><td class=\"n\">{}</td>",
                t.value.map_or(String::new(), |v| v.to_string()),
                number(t.value, 3),
                note_mark(&t.note),
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
    for n in super::terminal::precision_footnotes(input.leaderboard) {
        let submissions: Vec<String> = n.submissions.iter().map(|s| escape(s)).collect();
        let _ = writeln!(
            html,
            "<p class=\"muted precision-note\">{} {} {}: {} ({})</p>",
            super::terminal::NOTE_MARK,
            escape(&n.task),
            escape(&n.label),
            escape(&n.note),
            submissions.join(", ")
        );
    }
}

/// The mark after a value that is less precise than it looks; its title says why, and a
/// footnote below the table says it for print.
fn note_mark(note: &str) -> String {
    if note.is_empty() {
        return String::new();
    }
    format!(
        "<sup class=\"precision-note\" title=\"{}\">{}</sup>",
        escape(note),
        super::terminal::NOTE_MARK
    )
}

/// Per task: every aggregate with its CI, the task's charts, the confusion matrices and the
/// worst cases of each submission.
fn per_task(html: &mut String, input: &ReportInput) {
    let s = input.scores;
    html.push_str("<h2 id=\"tasks\">Per task</h2>\n<p class=\"muted\">Every metric of the task with its 95 % CI (the method of each interval is in metrics.csv).</p>\n");
    for task in figures::tasks(s) {
        let _ = writeln!(html, "<h3>{}</h3>", escape(&task));
        task_metrics(html, s, &task);
        figures(html, &figures::task_figures(s, &task, input.detail()));
        operating_points(html, s, &task);
        confusion(html, s, &task);
        if !input.restricted() {
            let primary = input
                .leaderboard
                .first()
                .and_then(|r| r.tasks.iter().find(|t| t.task == task))
                .map_or("", |t| t.metric.as_str());
            worst_cases(html, s, &task, primary);
        }
    }
}

/// Every aggregate of the task: one row per submission, one column per metric.
fn task_metrics(html: &mut String, s: &RoundScores, task: &str) {
    let mut metrics: Vec<&str> = Vec::new();
    let mut rows: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    let mut footnotes: Vec<String> = Vec::new();
    for a in s.aggregates.iter().filter(|a| a.task == task) {
        if !metrics.contains(&a.metric.as_str()) {
            metrics.push(&a.metric);
        }
        let ci = match (a.ci_lower, a.ci_upper) {
            (Some(lo), Some(hi)) => format!("<br><span class=\"ci\">[{lo:.3}, {hi:.3}]</span>"),
            _ => String::new(),
        };
        rows.entry(&a.submission).or_default().insert(
            &a.metric,
            format!("{}{}{ci}", number(a.value, 3), note_mark(&a.note)),
        );
        let footnote = format!("{} {}: {}", super::terminal::NOTE_MARK, a.metric, a.note);
        if !a.note.is_empty() && !footnotes.contains(&footnote) {
            footnotes.push(footnote);
        }
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
    for footnote in footnotes {
        let _ = writeln!(
            html,
            "<p class=\"muted precision-note\">{}</p>",
            escape(&footnote)
        );
    }
    let defined: Vec<String> = metrics
        .iter()
        .filter_map(|m| boundary_definition(m).map(|d| format!("<b>{}</b>: {d}", escape(m))))
        .collect();
    if !defined.is_empty() {
        let _ = writeln!(
            html,
            "<p class=\"muted\">{} (docs/boundary-metrics.md).</p>",
            defined.join("; ")
        );
    }
}

/// Which definition a boundary metric's number follows, where the references differ. A
/// multi-label task names its metrics `<metric>_<label>`.
fn boundary_definition(metric: &str) -> Option<&'static str> {
    let base = match metric.rsplit_once('_') {
        Some((base, label)) if !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => metric,
    };
    Some(match base {
        "hd95" => "the larger of the two directed 95th percentiles of the distances between surface voxels (Metrics Reloaded)",
        "hd95_medpy" => "the 95th percentile of the pooled distances between surface voxels of both masks (medpy)",
        "hd95_deepmind" => "the larger of the two directed 95th percentiles of the distances between surface elements on the voxel corners, weighted by their area (DeepMind)",
        "hd" => "the largest surface distance (every reference agrees)",
        "assd" => "the mean of the pooled distances between surface voxels (medpy, Metrics Reloaded)",
        "assd_deepmind" => "the mean of the two directed mean distances between surface elements, weighted by their area (DeepMind)",
        "nsd" => "the share of the surface area of both masks within the tolerance of the other surface, surface elements on the voxel corners weighted by their area (DeepMind's surface Dice, as Metrics Reloaded recommends)",
        "nsd_voxels" => "the share of surface voxels within the tolerance, each voxel counted once (Metrics Reloaded's formula on voxels)",
        _ => return None,
    })
}

/// A confusion matrix per submission (rows: truth, columns: prediction), each cell shaded by
/// its share of the row, so that the matrices read as heat maps on screen and on paper.
fn confusion(html: &mut String, s: &RoundScores, task: &str) {
    let mut by_submission: BTreeMap<&str, Vec<&crate::results::ConfusionCell>> = BTreeMap::new();
    for c in s.confusion.iter().filter(|c| c.task == task) {
        by_submission.entry(&c.submission).or_default().push(c);
    }
    if by_submission.is_empty() {
        return;
    }
    html.push_str("<div class=\"figures\">");
    for (submission, cells) in by_submission {
        let mut labels: Vec<&str> = Vec::new();
        for c in &cells {
            if !labels.contains(&c.truth.as_str()) {
                labels.push(&c.truth);
            }
        }
        let _ = write!(
            html,
            "<table class=\"confusion\"><caption>{}: rows truth, columns prediction</caption><tr><th></th>",
            escape(submission)
        );
        for l in &labels {
            let _ = write!(html, "<th>{}</th>", escape(l));
        }
        html.push_str("</tr>");
        for t in &labels {
            let _ = write!(html, "<tr><th>{}</th>", escape(t));
            let count = |p: &str| {
                cells
                    .iter()
                    .find(|c| c.truth == *t && c.predicted == p)
                    .map_or(0, |c| c.count)
            };
            let row_total: u64 = labels.iter().map(|p| count(p)).sum();
            for p in &labels {
                let n = count(p);
                let share = if row_total > 0 {
                    n as f64 / row_total as f64
                } else {
                    0.0
                };
                // Blue on the diagonal (right), orange off it (wrong).
                let rgb = if t == p { "0,114,178" } else { "213,94,0" };
                let _ = write!(
                    html,
                    "<td class=\"n\" style=\"background:rgba({rgb},{:.2})\">{n}</td>",
                    share * 0.6
                );
            }
            html.push_str("</tr>");
        }
        html.push_str("</table>\n");
    }
    html.push_str("</div>\n");
}

/// Values by (submission, case).
pub(super) type CaseValues<'a> = BTreeMap<(&'a str, &'a str), f64>;

/// The per-case values that stand for the task's primary metric: the primary itself when it is
/// per case (`dice`), its mean over labels (`dice_1`, `dice_2`…), or else the task's per-case
/// error (`abs_error` for `mae` or `quadratic_kappa`). Classification tasks have none beyond
/// right or wrong. Returns the metric's name and the values by (submission, case).
pub(super) fn primary_per_case<'a>(
    s: &'a RoundScores,
    task: &str,
    primary: &str,
) -> Option<(String, CaseValues<'a>)> {
    let of_task = || s.case_scores.iter().filter(move |c| c.task == task);
    let chosen: Vec<&str> = if of_task().any(|c| c.metric == primary) {
        vec![primary]
    } else {
        let labels: Vec<&str> = {
            let mut m: Vec<&str> = of_task()
                .map(|c| c.metric.as_str())
                .filter(|m| {
                    m.strip_prefix(primary)
                        .and_then(|rest| rest.strip_prefix('_'))
                        .is_some_and(|l| l.parse::<u32>().is_ok())
                })
                .collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        if labels.is_empty() {
            of_task()
                .map(|c| c.metric.as_str())
                .find(|m| *m != "correct")
                .into_iter()
                .collect()
        } else {
            labels
        }
    };
    let first = *chosen.first()?;
    let name = if chosen.len() > 1 {
        format!("{primary} (mean over labels)")
    } else {
        first.to_string()
    };
    let mut sums: BTreeMap<(&str, &str), (f64, usize)> = BTreeMap::new();
    for c in of_task().filter(|c| chosen.contains(&c.metric.as_str())) {
        if let Some(v) = c.value {
            let e = sums.entry((&c.submission, &c.case_id)).or_default();
            e.0 += v;
            e.1 += 1;
        }
    }
    let values = sums
        .into_iter()
        .filter(|(_, (_, n))| *n == chosen.len())
        .map(|(k, (sum, n))| (k, sum / n as f64))
        .collect();
    Some((name, values))
}

/// The five worst cases of each submission on the values that stand for the task's primary
/// metric ([`primary_per_case`]).
fn worst_cases(html: &mut String, s: &RoundScores, task: &str, primary: &str) {
    let Some((metric, values)) = primary_per_case(s, task, primary) else {
        return;
    };
    let lower_is_better = ["abs_error", "hd95", "assd", "volume_error_ml"]
        .iter()
        .any(|m| metric.starts_with(m));
    let mut by_submission: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for ((submission, case), v) in values {
        by_submission.entry(submission).or_default().push((case, v));
    }
    let _ = write!(
        html,
        "<table><caption>Worst cases by {} ({} is better)</caption><tr><th>submission</th><th>cases (value)</th></tr>",
        escape(&metric),
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

/// For a binary task that does not declare them: sensitivity and specificity at the threshold,
/// with Wilson intervals, from the confusion matrix (the operating points on its ROC chart).
fn operating_points(html: &mut String, s: &RoundScores, task: &str) {
    let declared = |m: &str| s.aggregates.iter().any(|a| a.task == task && a.metric == m);
    if declared("sensitivity") && declared("specificity") {
        return;
    }
    let mut rows = Vec::new();
    for submission in &s.submissions {
        let cells: Vec<_> = s
            .confusion
            .iter()
            .filter(|c| c.task == task && c.submission == submission.name)
            .collect();
        let Some(negative) = cells
            .iter()
            .find(|c| c.truth.starts_with("not "))
            .map(|c| c.truth.as_str())
        else {
            return;
        };
        let positive = &negative[4..];
        let count = |t: &str, p: &str| {
            cells
                .iter()
                .find(|c| c.truth == t && c.predicted == p)
                .map_or(0, |c| c.count)
        };
        let (tp, fn_) = (count(positive, positive), count(positive, negative));
        let (tn, fp) = (count(negative, negative), count(negative, positive));
        let cell = |k: u64, n: u64| match (n > 0, crate::metrics::intervals::wilson(k, n)) {
            (true, Some((lo, hi))) => format!(
                "{:.3}<br><span class=\"ci\">[{lo:.3}, {hi:.3}]</span>",
                k as f64 / n as f64
            ),
            _ => "–".to_string(),
        };
        rows.push(format!(
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&submission.name),
            cell(tp, tp + fn_),
            cell(tn, tn + fp)
        ));
    }
    let _ = writeln!(
        html,
        "<table><caption>At the declared threshold (the discs on the ROC chart), with Wilson 95 % CIs</caption><tr><th>submission</th><th>sensitivity</th><th>specificity</th></tr>{}</table>",
        rows.concat()
    );
}

/// Per task: each submission's worst level, spread and heterogeneity test per subgroup, a
/// forest plot per submission and subgroup, and the per-level table of the primary metric.
/// Not in the team view of a hidden phase: the levels would tell teams the hidden cases'
/// metadata.
fn subgroups(html: &mut String, input: &ReportInput) {
    let s = input.scores;
    if s.subgroup_summaries.is_empty() || input.restricted() {
        return;
    }
    html.push_str("<h2 id=\"subgroups\">Subgroups</h2>\n<p>Each task's primary metric on the cases of each level of the truth's metadata, with its 95 % interval. A level with too few cases, or too few of a class, gets no number. Every metric of every level is in <code>metrics_by_subgroup.csv</code>; the spreads and tests in <code>subgroup_summary.csv</code> (docs/metrics.md, \"Subgroups\").</p>\n");
    let mut tasks: Vec<&str> = Vec::new();
    for summary in &s.subgroup_summaries {
        if !tasks.contains(&summary.task.as_str()) {
            tasks.push(&summary.task);
        }
    }
    for task in tasks {
        let summaries: Vec<_> = s
            .subgroup_summaries
            .iter()
            .filter(|x| x.task == task)
            .collect();
        let metric = summaries.first().map_or("", |x| x.metric.as_str());
        let _ = write!(
            html,
            "<h3>{} ({})</h3><table class=\"sortable\"><thead><tr><th>submission</th><th>subgroup</th><th>worst level</th><th>best level</th><th>spread [95 % CI]</th><th>test</th><th>p</th></tr></thead><tbody>",
            escape(task),
            escape(metric)
        );
        for x in &summaries {
            let level = |name: &Option<String>, value: Option<f64>| match name {
                Some(name) => format!("{} ({})", escape(name), number(value, 3)),
                None => "–".to_string(),
            };
            let ci = match (x.spread_ci_lower, x.spread_ci_upper) {
                (Some(lo), Some(hi)) => format!(" [{lo:.3}, {hi:.3}]"),
                _ => String::new(),
            };
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}{ci}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                escape(&x.submission),
                escape(&x.subgroup),
                level(&x.worst_level, x.worst_value),
                level(&x.best_level, x.best_value),
                number(x.spread, 3),
                escape(&x.test),
                x.p_value.map_or("–".to_string(), |p| format!("{p:.2e}"))
            );
        }
        html.push_str("</tbody></table>\n<div class=\"figures\">");
        for x in &summaries {
            let levels: Vec<_> = s
                .subgroups
                .iter()
                .filter(|a| {
                    a.submission == x.submission
                        && a.task == task
                        && a.metric == metric
                        && a.subgroup == x.subgroup
                })
                .collect();
            let rows: Vec<super::forest::ForestRow> = levels
                .iter()
                .map(|a| super::forest::ForestRow {
                    label: format!("{} (n = {})", a.level, a.n),
                    value: a.value.map(|v| (v, a.ci_lower.zip(a.ci_upper))),
                })
                .collect();
            let pooled = s
                .aggregate(&x.submission, task, metric)
                .and_then(|a| a.value);
            let title = format!("{} by {}", x.submission, x.subgroup);
            match super::forest::forest_svg(&title, metric, &rows, pooled) {
                Ok(svg) => {
                    let _ = write!(
                        html,
                        "<figure class=\"plot\">{svg}<figcaption>{} per {}: square and line, the level's value and 95 % interval; dashed line, the value on all cases.</figcaption></figure>",
                        escape(metric),
                        escape(&x.subgroup)
                    );
                }
                Err(e) => {
                    let _ = write!(html, "<p class=\"warn\">{}</p>", escape(&e));
                }
            }
        }
        html.push_str("</div>\n<details><summary>Every level</summary><table class=\"sortable\"><thead><tr><th>submission</th><th>subgroup</th><th>level</th><th>value</th><th>95 % CI</th><th>n</th><th>class support</th><th>note</th></tr></thead><tbody>");
        for a in s
            .subgroups
            .iter()
            .filter(|a| a.task == task && a.metric == metric)
        {
            let ci = match (a.ci_lower, a.ci_upper) {
                (Some(lo), Some(hi)) => format!("{lo:.3}–{hi:.3}"),
                _ => "–".to_string(),
            };
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{ci}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.submission),
                escape(&a.subgroup),
                escape(&a.level),
                number(a.value, 3),
                a.n,
                escape(&a.class_support_text()),
                escape(&a.note())
            );
        }
        html.push_str("</tbody></table></details>\n");
    }
}

fn ranking(html: &mut String, input: &ReportInput) {
    let a = input.analysis;
    html.push_str("<h2 id=\"ranking\">Ranking analysis</h2>\n");
    if a.submissions.is_empty() {
        html.push_str("<p class=\"muted\">No submission is ranked.</p>\n");
        return;
    }
    let all = figures::ranking_figures(input.scores, a);
    let (per_task_blobs, main): (Vec<Figure>, Vec<Figure>) = all.into_iter().partition(|f| {
        f.stem.starts_with("ranking-blob-") && f.stem != format!("ranking-blob-{CONSENSUS}")
    });
    let (maps, main): (Vec<Figure>, Vec<Figure>) = main
        .into_iter()
        .partition(|f| f.stem.starts_with("ranking-significance-"));
    figures(html, &main);
    html.push_str("<h3>Significance maps</h3>");
    figures(html, &maps);
    if !per_task_blobs.is_empty() {
        html.push_str("<details><summary>Bootstrap ranks per task</summary>");
        figures(html, &per_task_blobs);
        html.push_str("</details>\n");
    }
    // Ranks under each method, side by side, and how much the methods agree.
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
    html.push_str("</tbody></table>\n<table><caption>Kendall's τ between the consensus rankings of two methods (1: same order)</caption><tr><th></th>");
    for m in RankingMethod::ALL {
        let _ = write!(html, "<th>{}</th>", m.name());
    }
    html.push_str("</tr>");
    let ranks = |m: RankingMethod| -> Vec<f64> {
        a.submissions
            .iter()
            .map(|s| a.rank(m, CONSENSUS, s).map_or(f64::NAN, |r| r as f64))
            .collect()
    };
    for m in RankingMethod::ALL {
        let _ = write!(html, "<tr><th>{}</th>", m.name());
        for o in RankingMethod::ALL {
            let tau = crate::ranking::significance::kendall_tau_b(&ranks(m), &ranks(o));
            let _ = write!(html, "<td class=\"n\">{}</td>", number(tau, 2));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>\n");
    for line in crate::report::terminal::robustness_caveats(a) {
        let _ = writeln!(html, "<p>{}</p>", escape(&line));
    }
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
    let listed = listed_tests(a);
    if listed.len() == a.significance.len() {
        let _ = write!(
            html,
            "<details><summary>Every pairwise test (one-sided paired tests, Holm-corrected per task, α = {})</summary>",
            a.alpha
        );
    } else {
        let _ = write!(
            html,
            "<details><summary>Pairwise tests of neighbours in each task's ranking (one-sided paired tests, Holm-corrected per task, α = {})</summary><p class=\"muted\">Listed: the {} tests between submissions next to each other in a task's ranking, of the {} tests (more than {}). The significance maps above show every verdict, and ranking/significance.csv holds every test.</p>",
            a.alpha,
            thin::thousands(listed.len()),
            thin::thousands(a.significance.len()),
            thin::thousands(thin::MAX_TEST_ROWS)
        );
    }
    html.push_str("<table class=\"sortable\"><thead><tr><th>task</th><th>submission</th><th>better than</th><th>test</th><th>p</th><th>p (Holm)</th><th>significant</th></tr></thead><tbody>");
    for t in listed {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\" data-v=\"{}\">{:.2e}</td><td class=\"n\" data-v=\"{}\">{:.2e}</td><td>{}</td></tr>",
            escape(&t.task),
            escape(&t.submission),
            escape(&t.opponent),
            escape(&t.test),
            t.p_value,
            t.p_value,
            t.p_holm,
            t.p_holm,
            if t.significant { "yes" } else { "no" }
        );
    }
    html.push_str("</tbody></table></details>\n");
}

/// The pairwise tests the collapsed table lists: every one, or in a round of more than
/// [`thin::MAX_TEST_ROWS`] tests, those between submissions next to each other in a task's
/// ranking under the declared method (both ways). The significance maps show every verdict,
/// and ranking/significance.csv holds every test.
fn listed_tests(a: &RankingAnalysis) -> Vec<&crate::ranking::analysis::Significance> {
    if a.significance.len() <= thin::MAX_TEST_ROWS {
        return a.significance.iter().collect();
    }
    let method = a.method.unwrap_or(RankingMethod::MeanThenRank);
    let mut places: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for task in &a.tasks {
        let mut order: Vec<(usize, &str)> = a
            .submissions
            .iter()
            .map(|n| (a.rank(method, task, n).unwrap_or(usize::MAX), n.as_str()))
            .collect();
        order.sort();
        for (place, (_, name)) in order.into_iter().enumerate() {
            places.insert((task.as_str(), name), place);
        }
    }
    let place = |task: &str, name: &str| places.get(&(task, name)).copied();
    a.significance
        .iter()
        .filter(
            |t| match (place(&t.task, &t.submission), place(&t.task, &t.opponent)) {
                (Some(p), Some(q)) => p.abs_diff(q) == 1,
                _ => false,
            },
        )
        .collect()
}

const STATUSES: [CaseStatus; 7] = [
    CaseStatus::Ok,
    CaseStatus::Failed,
    CaseStatus::Timeout,
    CaseStatus::Oom,
    CaseStatus::OutputLimit,
    CaseStatus::Invalid,
    CaseStatus::Missing,
];

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
    html.push_str("<table class=\"sortable\"><thead><tr><th>submission</th><th>cases</th>");
    for status in STATUSES {
        let _ = write!(html, "<th>{}</th>", status.as_str());
    }
    html.push_str("<th>mean wall (s)</th><th>max wall (s)</th><th>CPU time (s)</th><th>max peak memory (MiB)</th>");
    // Only a round whose cases had GPUs gets their columns.
    let gpus = input.runs.iter().any(|r| !r.gpu.gpus.is_empty());
    if gpus {
        html.push_str("<th>GPU time (s)</th><th>max peak GPU memory (MiB)</th>");
    }
    html.push_str("</tr></thead><tbody>");
    let max = |values: &mut dyn Iterator<Item = f64>| {
        values.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let total = |values: Vec<f64>, digits: usize| {
        if values.is_empty() {
            "–".to_string()
        } else {
            format!("{:.digits$}", values.iter().sum::<f64>())
        }
    };
    for (name, records) in &by_submission {
        let walls: Vec<f64> = records.iter().map(|r| r.wall_s).collect();
        let peak = max(&mut records.iter().filter_map(|r| r.peak_memory_mib));
        let cpu: Vec<f64> = records.iter().filter_map(|r| r.cpu_s).collect();
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"n\">{}</td>",
            escape(name),
            records.len()
        );
        for status in STATUSES {
            let n = records.iter().filter(|r| r.status == status).count();
            let _ = write!(html, "<td class=\"n\">{n}</td>");
        }
        let _ = write!(
            html,
            "<td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
            walls.iter().sum::<f64>() / walls.len().max(1) as f64,
            walls.iter().copied().fold(0.0, f64::max),
            total(cpu, 1),
            number(peak, 0)
        );
        if gpus {
            let _ = write!(
                html,
                "<td class=\"n\">{}</td><td class=\"n\">{}</td>",
                total(records.iter().filter_map(|r| r.gpu.time_s).collect(), 1),
                number(
                    max(&mut records.iter().filter_map(|r| r.gpu.peak_memory_mib)),
                    0
                )
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>\n");
    case_statuses(html, &by_submission, input.view, gpus);
    let message = |r: &CaseRecord| match input.view {
        View::Organizer => r.message.clone(),
        View::Team => r.team_message.clone(),
    };
    let failures: Vec<&&CaseRecord> = by_submission
        .values()
        .flatten()
        .filter(|r| r.status != CaseStatus::Ok)
        .collect();
    if failures.is_empty() {
        return;
    }
    let shows_logs = !input.restricted();
    let _ = write!(
        html,
        "<h3>Failed cases</h3><p class=\"muted\">{}</p><table class=\"sortable\"><thead><tr><th>submission</th><th>case</th><th>status</th><th>message</th>{}</tr></thead><tbody>",
        match (input.view, shows_logs) {
            (View::Organizer, _) => "podium's message with the program's last stderr line, and the end of its stderr log.",
            (View::Team, true) => "The phase is public: the program's own output is shown.",
            (View::Team, false) => "The phase is hidden: podium's message only, never the program's output (which could carry what it read).",
        },
        if shows_logs { "<th>end of stderr</th>" } else { "" }
    );
    for r in failures {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            escape(&r.submission),
            escape(&r.case_id),
            r.status.as_str(),
            escape(&message(r))
        );
        if shows_logs {
            let excerpt = input
                .log_excerpts
                .get(&(r.submission.clone(), r.case_id.clone()))
                .map_or("", String::as_str);
            let _ = write!(
                html,
                "<td><pre class=\"log\">{}</pre></td>",
                escape(excerpt)
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>\n");
}

/// "Status of every case": a square per case and, collapsed, a table of the cases of each
/// submission. A round of more than [`thin::MAX_CASE_ROWS`] case runs lists only the runs that
/// did not end ok, and says so; the summary table above counts every case.
fn case_statuses(
    html: &mut String,
    by_submission: &BTreeMap<&str, Vec<&CaseRecord>>,
    view: View,
    gpus: bool,
) {
    // A large round lists only the runs that did not end ok; the counts above cover them all.
    let runs: usize = by_submission.values().map(Vec::len).sum();
    let every_case = runs <= thin::MAX_CASE_ROWS;
    html.push_str("<h3>Status of every case</h3><p class=\"muted legend\">");
    if every_case {
        html.push_str("One square per case, in case order; hover for the case.");
    } else {
        let unclean = by_submission
            .values()
            .flatten()
            .filter(|r| r.status != CaseStatus::Ok)
            .count();
        let _ = write!(
            html,
            "Listed here: only the {} of the {} case runs that did not end ok (more than {} runs in all), one square each in case order; hover for the case. The table above counts every case, and runs.csv holds every case run.",
            thin::thousands(unclean),
            thin::thousands(runs),
            thin::thousands(thin::MAX_CASE_ROWS)
        );
    }
    for status in STATUSES {
        let _ = write!(html, "<span class=\"st-{0}\"></span>{0}", status.as_str());
    }
    html.push_str("</p>\n");
    let message = |r: &CaseRecord| match view {
        View::Organizer => r.message.clone(),
        View::Team => r.team_message.clone(),
    };
    for (name, records) in by_submission {
        let mut sorted = records.clone();
        sorted.sort_by(|a, b| a.case_id.cmp(&b.case_id));
        if !every_case {
            sorted.retain(|r| r.status != CaseStatus::Ok);
            if sorted.is_empty() {
                let _ = writeln!(
                    html,
                    "<p><strong>{}</strong>: all {} cases ok.</p>",
                    escape(name),
                    records.len()
                );
                continue;
            }
        }
        let _ = write!(
            html,
            "<div><strong>{}</strong>{}<div class=\"strip\">",
            escape(name),
            if every_case {
                String::new()
            } else {
                format!(
                    ": {} of {} cases did not end ok",
                    sorted.len(),
                    records.len()
                )
            }
        );
        for r in &sorted {
            let _ = write!(
                html,
                "<span class=\"st-{}\" title=\"{}: {}\"></span>",
                r.status.as_str(),
                escape(&r.case_id),
                r.status.as_str()
            );
        }
        html.push_str("</div></div>\n");
        let _ = write!(
            html,
            "<details class=\"cases\"><summary>{}: {}</summary><table class=\"sortable\"><thead><tr><th>case</th><th>status</th><th>wall (s)</th><th>CPU (s)</th><th>peak memory (MiB)</th>{}<th>message</th></tr></thead><tbody>",
            escape(name),
            if every_case {
                "every case".to_string()
            } else {
                format!("the {} cases that did not end ok", sorted.len())
            },
            if gpus {
                "<th>GPUs</th><th>GPU (s)</th><th>peak GPU memory (MiB)</th>"
            } else {
                ""
            }
        );
        for r in &sorted {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                escape(&r.case_id),
                r.status.as_str(),
                r.wall_s,
                number(r.cpu_s, 2),
                number(r.peak_memory_mib, 1),
            );
            if gpus {
                let list: Vec<String> = r.gpu.gpus.iter().map(u32::to_string).collect();
                let _ = write!(
                    html,
                    "<td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                    list.join(","),
                    number(r.gpu.time_s, 2),
                    number(r.gpu.peak_memory_mib, 1)
                );
            }
            let _ = write!(html, "<td>{}</td></tr>", escape(&message(r)));
        }
        html.push_str("</tbody></table></details>\n");
    }
}

fn receipt(html: &mut String, input: &ReportInput) {
    let mut shown = input.receipt.clone();
    if input.view == View::Team {
        // The truth's problems are the organizer's alone, whatever the phase.
        shown.cases_left_out.clear();
        if shown.hidden {
            if let Some(incomplete) = shown.incomplete.as_mut() {
                incomplete.cases_not_run.clear();
            }
        }
    }
    let json = serde_json::to_string_pretty(&shown).unwrap_or_default();
    let _ = write!(
        html,
        "<h2 id=\"receipt\">Reproducibility receipt</h2>\n<p class=\"muted\">run.json: podium version, challenge, truth, limits, seeds, submissions (with image ids), host and time.</p><details open><summary>run.json</summary><pre>{}</pre></details>\n",
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
        assert_eq!(
            escape("a\u{202e}b\u{1b}[2J\n\tc"),
            "a\\u{202e}b\\u{1b}[2J\n\tc"
        );
    }

    fn record(submission: &str, case: usize, status: CaseStatus) -> CaseRecord {
        CaseRecord {
            submission: submission.into(),
            case_id: format!("case-{case:04}"),
            status,
            exit_code: None,
            signal: None,
            wall_s: 0.5,
            cpu_s: Some(0.4),
            peak_memory_mib: Some(10.0),
            message: "<b>oops</b>".into(),
            team_message: String::new(),
            gpu: Default::default(),
        }
    }

    /// Every case of `submissions` × `cases`, the case `failing` of each failed.
    fn statuses(submissions: &[&str], cases: usize, failing: usize) -> String {
        let records: Vec<CaseRecord> = submissions
            .iter()
            .flat_map(|s| {
                (0..cases).map(move |i| {
                    let status = if i == failing && *s != "clean" {
                        CaseStatus::Failed
                    } else {
                        CaseStatus::Ok
                    };
                    record(s, i, status)
                })
            })
            .collect();
        let mut by_submission: BTreeMap<&str, Vec<&CaseRecord>> = BTreeMap::new();
        for r in &records {
            by_submission.entry(&r.submission).or_default().push(r);
        }
        let mut html = String::new();
        case_statuses(&mut html, &by_submission, View::Organizer, false);
        html
    }

    #[test]
    fn a_small_round_lists_every_case() {
        let html = statuses(&["a", "b"], 40, 7);
        assert_eq!(html.matches("<span class=\"st-").count(), 7 + 2 * 40);
        assert_eq!(html.matches("<tr><td>case-").count(), 2 * 40);
        assert!(html.contains("a: every case") && html.contains("One square per case"));
        assert!(!html.contains("did not end ok"));
        assert!(html.contains("&lt;b&gt;oops&lt;/b&gt;") && !html.contains("<b>oops"));
    }

    #[test]
    fn a_large_round_lists_the_runs_that_did_not_end_ok_and_says_so() {
        let html = statuses(&["a", "b", "clean"], 1000, 7);
        // The legend's seven squares, and one per failed case.
        assert_eq!(html.matches("<span class=\"st-").count(), 7 + 2);
        assert_eq!(
            html.matches("<tr><td>case-0007</td><td>failed</td>")
                .count(),
            2
        );
        assert_eq!(html.matches("<tr><td>").count(), 2);
        assert!(
            html.contains("Listed here: only the 2 of the 3,000 case runs that did not end ok")
                && html.contains("runs.csv"),
            "{html}"
        );
        assert!(html.contains("<strong>a</strong>: 1 of 1000 cases did not end ok"));
        assert!(html.contains("<strong>clean</strong>: all 1000 cases ok."));
    }

    fn test_row(task: &str, submission: &str, opponent: &str) -> serde_json::Value {
        serde_json::json!({"task": task, "metric": "auc", "submission": submission,
            "opponent": opponent, "test": "delong", "statistic": 1.0, "p_value": 0.01,
            "p_holm": 0.02, "significant": true})
    }

    #[test]
    fn many_pairwise_tests_list_the_neighbours_in_each_ranking() {
        let names: Vec<String> = (0..30).map(|i| format!("s{i:02}")).collect();
        let tasks = ["t1", "t2"];
        let mut methods = Vec::new();
        let mut tests = Vec::new();
        for task in tasks {
            for (i, name) in names.iter().enumerate() {
                // t1 ranks in name order, t2 in reverse.
                let rank = if task == "t1" { i + 1 } else { 30 - i };
                methods.push(
                    serde_json::json!({"method": "mean-then-rank", "scope": task,
                    "submission": name, "rank": rank}),
                );
                for other in &names {
                    if other != name {
                        tests.push(test_row(task, name, other));
                    }
                }
            }
        }
        let analysis: RankingAnalysis = serde_json::from_value(serde_json::json!({
            "method": null, "resamples": 0, "seed": 0, "alpha": 0.05, "submissions": names,
            "tasks": tasks, "methods": methods, "intervals": [], "rank_counts": [],
            "kendall": [], "significance": tests
        }))
        .unwrap();
        assert_eq!(analysis.significance.len(), 2 * 30 * 29);
        let listed = listed_tests(&analysis);
        // 29 neighbouring pairs per task, each tested both ways.
        assert_eq!(listed.len(), 2 * 29 * 2);
        assert!(listed.iter().all(|t| t.submission[1..]
            .parse::<i32>()
            .unwrap()
            .abs_diff(t.opponent[1..].parse::<i32>().unwrap())
            == 1));
        // A few tests are all listed.
        let few = RankingAnalysis {
            significance: analysis.significance[..40].to_vec(),
            ..analysis.clone()
        };
        assert_eq!(listed_tests(&few).len(), 40);
    }
}
