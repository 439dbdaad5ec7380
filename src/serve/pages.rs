//! The server's pages: self-contained HTML (inline style, no script, no font or image from
//! elsewhere), every text from a team escaped with the report's [`escape`].
//!
//! Browsers cannot send a bearer token, so the team and organizer pages are the answer to a
//! form that posts the token (never in a URL, where logs and histories would keep it).

use std::fmt::Write;

use super::http::{progress, quota_left, App};
use super::store::{Status, Submission, Team};
use crate::ranking::LeaderboardRow;
use crate::report::html::escape;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1b1b1b}\
table{border-collapse:collapse;margin:1em 0}th,td{border-bottom:1px solid #ccc;padding:.3em .7em;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#666}.failed{color:#a00}\
form{margin:1em 0}input[type=password]{width:32em;max-width:100%}nav a{margin-right:1em}";

fn page(title: &str, refresh_s: Option<u32>, body: &str) -> String {
    let refresh = refresh_s.map_or(String::new(), |s| {
        format!("<meta http-equiv=\"refresh\" content=\"{s}\">")
    });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}<title>{}</title><style>{STYLE}</style></head>\
<body><nav><a href=\"/\">Leaderboard</a><a href=\"/team\">My team</a><a href=\"/organizer\">Organizers</a></nav>\n<h1>{}</h1>\n{body}</body></html>\n",
        escape(title),
        escape(title)
    )
}

/// The phase's public leaderboard; it reloads itself every 15 s while submissions are queued
/// or running.
pub fn leaderboard_page(app: &App) -> String {
    let board = app.board.read().unwrap_or_else(|e| e.into_inner());
    let busy = app
        .queue
        .store()
        .all_submissions()
        .map(|all| {
            all.iter()
                .any(|s| matches!(s.status, Status::Queued | Status::Running))
        })
        .unwrap_or(false);
    let title = format!("{}: phase {}", app.phase.challenge.title, app.phase.phase);
    let mut body = String::new();
    if board.html_table.is_empty() {
        body.push_str("<p>No submission has finished yet.</p>");
    } else {
        body.push_str(&board.html_table);
    }
    if busy {
        body.push_str(
            "<p class=\"muted\">Submissions are being evaluated; this page reloads every 15 s.</p>",
        );
    }
    body.push_str("<p class=\"muted\">Also as JSON: <code>/api/leaderboard</code>. Each team appears once, with the submission the challenge's selection rule picks.</p>");
    page(&title, busy.then_some(15), &body)
}

/// The leaderboard rows as an HTML table.
pub fn leaderboard_table(rows: &[LeaderboardRow]) -> String {
    let mut html = String::from("<table><tr><th>rank</th><th>submission</th><th>team</th>");
    if let Some(first) = rows.first() {
        for t in &first.tasks {
            let _ = write!(html, "<th>{} {}</th>", escape(&t.task), escape(&t.label()));
        }
    }
    html.push_str("<th>mean rank</th></tr>\n");
    for r in rows {
        let rank = r
            .rank
            .map_or_else(|| "baseline".to_string(), |k| k.to_string());
        let _ = write!(
            html,
            "<tr><td class=\"n\">{rank}</td><td>{}</td><td>{}</td>",
            escape(&r.submission),
            escape(&r.team)
        );
        for t in &r.tasks {
            let value = t.value.map_or("–".to_string(), |v| format!("{v:.3}"));
            let ci = t.ci.map_or(String::new(), |(lo, hi)| {
                format!(" <span class=\"muted\">[{lo:.3}, {hi:.3}]</span>")
            });
            let _ = write!(html, "<td class=\"n\">{value}{ci}</td>");
        }
        let mean = r
            .mean_task_rank
            .map_or("–".to_string(), |m| format!("{m:.2}"));
        let _ = writeln!(html, "<td class=\"n\">{mean}</td></tr>");
    }
    html.push_str("</table>");
    html
}

pub fn token_form(action: &'static str, title: &str) -> String {
    page(
        title,
        None,
        &format!(
            "<form method=\"post\" action=\"{action}\"><label>Token <input type=\"password\" name=\"token\" autocomplete=\"off\" required></label> <button>Show</button></form>\
<p class=\"muted\">The token the organizers gave you (<code>podium teams add</code>). It is sent in the form, never in the address.</p>"
        ),
    )
}

pub fn message_page(title: &str, text: &str) -> String {
    page(title, None, &format!("<p>{}</p>", escape(text)))
}

/// Which buttons a row of the submissions table gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Buttons {
    /// The team's report of a finished submission.
    Team,
    /// The log, re-run and disqualify.
    Organizer,
}

/// A button posting the token and a submission number to `action`. The token travels in the
/// form, as it came, never in a URL.
fn button(action: &str, token: &str, id: i64, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\" style=\"display:inline;margin:0\"><input type=\"hidden\" name=\"token\" value=\"{}\"><input type=\"hidden\" name=\"id\" value=\"{id}\"><button>{label}</button></form>",
        escape(token)
    )
}

fn submissions_table(
    app: &App,
    submissions: &[Submission],
    buttons: Buttons,
    token: &str,
) -> String {
    let with_team = buttons == Buttons::Organizer;
    let mut html = String::from("<table><tr><th>#</th>");
    if with_team {
        html.push_str("<th>team</th>");
    }
    html.push_str("<th>submission</th><th>status</th><th>received (UTC)</th><th>cases</th><th>note</th><th></th></tr>\n");
    for s in submissions {
        let (done, total) = progress(app, s);
        let cases = match (done, total) {
            (Some(d), Some(t)) => format!("{d} of {t}"),
            (Some(d), None) => d.to_string(),
            _ => String::new(),
        };
        let class = if s.status == Status::Failed {
            " class=\"failed\""
        } else {
            ""
        };
        let _ = write!(html, "<tr><td class=\"n\">{}</td>", s.id);
        if with_team {
            let _ = write!(html, "<td>{}</td>", escape(&s.team));
        }
        let finished = !matches!(s.status, Status::Queued | Status::Running);
        let actions = match buttons {
            Buttons::Team if s.status == Status::Done => {
                button("/team/report", token, s.id, "report")
            }
            Buttons::Team => String::new(),
            Buttons::Organizer => {
                let mut b = button("/organizer/log", token, s.id, "log");
                if finished {
                    b.push_str(&button("/organizer/rerun", token, s.id, "re-run"));
                    if s.status != Status::Disqualified {
                        b.push_str(&button("/organizer/disqualify", token, s.id, "disqualify"));
                    }
                }
                b
            }
        };
        let _ = writeln!(
            html,
            "<td>{}</td><td{class}>{}</td><td>{}</td><td class=\"n\">{cases}</td><td>{}</td><td>{actions}</td></tr>",
            escape(&s.name),
            s.status.as_str(),
            crate::pipeline::utc_stamp(s.received_unix.max(0) as u64),
            escape(s.reason.as_deref().unwrap_or(""))
        );
    }
    html.push_str("</table>");
    html
}

pub fn team_page(app: &App, team: &Team, token: &str) -> String {
    let submissions = app
        .queue
        .store()
        .submissions_of(team.id)
        .unwrap_or_default();
    let mut body = format!(
        "<p>Team <b>{}</b>: {}.</p>",
        escape(&team.name),
        escape(&quota_left(app, team))
    );
    if submissions.is_empty() {
        body.push_str("<p>No submission yet. Send one with <code>podium submit --server URL --token TOKEN DIR</code>.</p>");
    } else {
        body.push_str(&submissions_table(app, &submissions, Buttons::Team, token));
    }
    page(&format!("{}: your submissions", team.name), None, &body)
}

pub fn organizer_page(app: &App, organizer: &Team, token: &str) -> String {
    let all = app.queue.store().all_submissions().unwrap_or_default();
    let mut body = format!(
        "<p>Signed in as {}. {} submissions; the logs are in <code>{}</code>. The round of a re-run or disqualified submission is set aside, kept, in the data folder's <code>set-aside/</code>.</p>",
        escape(&organizer.name),
        all.len(),
        escape(&app.phase.logs_dir().display().to_string())
    );
    body.push_str(&submissions_table(app, &all, Buttons::Organizer, token));
    page("The queue", None, &body)
}

/// The end of what a submission's round printed (organizers only).
pub fn log_page(s: &Submission, log: &str, token: &str) -> String {
    let back = format!(
        "<form method=\"post\" action=\"/organizer\"><input type=\"hidden\" name=\"token\" value=\"{}\"><button>Back to the queue</button></form>",
        escape(token)
    );
    let body = format!(
        "<p>Submission {} ({}) of {}, {}.</p>{back}<pre style=\"white-space:pre-wrap\">{}</pre>",
        s.id,
        escape(&s.name),
        escape(&s.team),
        s.status.as_str(),
        escape(log)
    );
    page(&format!("Log of submission {}", s.id), None, &body)
}
