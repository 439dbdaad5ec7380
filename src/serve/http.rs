//! The HTTP side of `podium serve`: an HTTP/1.1 server (hyper) with a JSON API and
//! server-rendered pages. Plain HTTP on purpose: put it behind a TLS reverse proxy
//! (docs/serve.md).
//!
//! Every request is bounded: its headers must arrive within [`HEADER_TIMEOUT`], a body other
//! than an upload may hold [`MAX_FORM_BYTES`], an upload must declare its length, at most the
//! intake limit, and may pause at most [`UPLOAD_IDLE`] between chunks. Tokens are compared in
//! constant time (`store::authenticate`); each token may make [`RATE_PER_MINUTE`] requests a
//! minute, and each address [`FAILED_AUTH_PER_MINUTE`] failed authentications. No part of a
//! request is ever used as a path: submissions are found by their number in the database.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::intake::{self, IntakeLimits, Phase, Refusal};
use super::pages;
use super::queue::Queue;
use super::store::{Status, Store, Submission, Team};
use crate::report::html::escape;

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const UPLOAD_IDLE: Duration = Duration::from_secs(60);
pub const MAX_FORM_BYTES: usize = 16 * 1024;
pub const RATE_PER_MINUTE: u32 = 120;
pub const FAILED_AUTH_PER_MINUTE: u32 = 20;

/// The leaderboard as last built, in both forms.
#[derive(Default)]
pub struct Board {
    pub json: String,
    pub html_table: String,
    pub built_unix: u64,
}

pub struct App {
    pub queue: Arc<Queue>,
    pub phase: Arc<Phase>,
    pub limits: IntakeLimits,
    pub board: RwLock<Board>,
    rates: Mutex<HashMap<String, Window>>,
}

/// Requests counted in the current minute.
struct Window {
    started: Instant,
    count: u32,
}

impl App {
    pub fn new(queue: Arc<Queue>, phase: Arc<Phase>, limits: IntakeLimits) -> App {
        App {
            queue,
            phase,
            limits,
            board: RwLock::new(Board::default()),
            rates: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event for `key`; false once it passes `limit` in the current minute.
    fn allow(&self, key: String, limit: u32) -> bool {
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if rates.len() > 100_000 {
            rates.retain(|_, w| now.duration_since(w.started) < Duration::from_secs(60));
        }
        let window = rates.entry(key).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(window.started) >= Duration::from_secs(60) {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        window.count += 1;
        window.count <= limit
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.queue.store()
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, content_type: &'static str, body: String) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Pages are self-contained: nothing is fetched from anywhere, no script runs.
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

fn json_reply(status: u16, value: serde_json::Value) -> Reply {
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    reply(status, "application/json", text)
}

fn error(status: u16, message: &str) -> Reply {
    json_reply(status, json!({ "error": message }))
}

fn html(status: u16, body: String) -> Reply {
    reply(status, "text/html; charset=utf-8", body)
}

/// The bearer token of a request, if it carries one.
fn bearer(request: &Request<Incoming>) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty() && token.len() <= 200).then(|| token.to_string())
}

enum Auth {
    Team(Team),
    Refused(Reply),
}

fn authenticate(app: &App, token: Option<String>, peer: IpAddr) -> Auth {
    let Some(token) = token else {
        return Auth::Refused(error(
            401,
            "this needs your team's token: `Authorization: Bearer <token>` (podium submit --token)",
        ));
    };
    let found = app.store().authenticate(&token);
    match found {
        Ok(Some(team)) => {
            if app.allow(format!("team {}", team.id), RATE_PER_MINUTE) {
                Auth::Team(team)
            } else {
                Auth::Refused(error(
                    429,
                    &format!("more than {RATE_PER_MINUTE} requests a minute with this token; wait a minute"),
                ))
            }
        }
        Ok(None) => {
            if app.allow(format!("failed {peer}"), FAILED_AUTH_PER_MINUTE) {
                Auth::Refused(error(
                    401,
                    "unknown token; ask the organizers for your team's token",
                ))
            } else {
                Auth::Refused(error(
                    429,
                    "too many unknown tokens from this address; wait a minute",
                ))
            }
        }
        Err(e) => {
            eprintln!("podium serve: {e}");
            Auth::Refused(error(
                500,
                "the server could not read its teams; try again later",
            ))
        }
    }
}

/// Refuses a second guess from an address that has failed too often, before any lookup.
fn throttled(app: &App, peer: IpAddr) -> bool {
    let rates = app.rates.lock().unwrap_or_else(|e| e.into_inner());
    rates.get(&format!("failed {peer}")).is_some_and(|w| {
        w.count >= FAILED_AUTH_PER_MINUTE && w.started.elapsed() < Duration::from_secs(60)
    })
}

pub async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reply = match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => html(200, pages::leaderboard_page(&app)),
        (&Method::GET, ["api", "leaderboard"]) => {
            let board = app.board.read().unwrap_or_else(|e| e.into_inner());
            reply(200, "application/json", board.json.clone())
        }
        (&Method::GET, ["team"]) => {
            html(200, pages::token_form("/team", "Your team's submissions"))
        }
        (&Method::GET, ["organizer"]) => html(
            200,
            pages::token_form("/organizer", "The organizers' queue"),
        ),
        (&Method::POST, ["team"]) | (&Method::POST, ["organizer"]) => {
            let organizer_page = segments[0] == "organizer";
            match read_form(request).await {
                Err(reply) => reply,
                Ok(form) => page_for(&app, peer.ip(), &form, organizer_page),
            }
        }
        (&Method::POST, ["team", "report"]) => match read_form(request).await {
            Err(reply) => reply,
            Ok(form) => team_report(&app, peer.ip(), &form),
        },
        (&Method::POST, ["organizer", what]) if matches!(*what, "log" | "rerun" | "disqualify") => {
            let what = what.to_string();
            match read_form(request).await {
                Err(reply) => reply,
                Ok(form) => organizer_form(&app, peer.ip(), &form, &what),
            }
        }
        (&Method::POST, ["api", "submissions"]) => upload(&app, peer.ip(), request).await,
        (&Method::GET, ["api", "submissions"]) => {
            if throttled(&app, peer.ip()) {
                error(
                    429,
                    "too many unknown tokens from this address; wait a minute",
                )
            } else {
                match authenticate(&app, bearer(&request), peer.ip()) {
                    Auth::Refused(reply) => reply,
                    Auth::Team(team) => team_json(&app, &team),
                }
            }
        }
        (&Method::GET, ["api", "submissions", id]) => {
            match authenticate(&app, bearer(&request), peer.ip()) {
                Auth::Refused(reply) => reply,
                Auth::Team(team) => one_submission(&app, &team, id),
            }
        }
        (&Method::POST, ["api", "submissions", id, action]) => {
            match authenticate(&app, bearer(&request), peer.ip()) {
                Auth::Refused(reply) => reply,
                Auth::Team(team) if !team.organizer => {
                    error(403, "only an organizer token can do this")
                }
                Auth::Team(_) => organizer_action(&app, id, action),
            }
        }
        (&Method::GET, ["api", "submissions", id, "log"]) => {
            match authenticate(&app, bearer(&request), peer.ip()) {
                Auth::Refused(reply) => reply,
                Auth::Team(team) if !team.organizer => {
                    error(403, "only an organizer token can read the logs")
                }
                Auth::Team(_) => log_json(&app, id),
            }
        }
        (&Method::GET, ["api", "queue"]) => match authenticate(&app, bearer(&request), peer.ip()) {
            Auth::Refused(reply) => reply,
            Auth::Team(team) if !team.organizer => {
                error(403, "only an organizer token can see the queue")
            }
            Auth::Team(_) => queue_json(&app),
        },
        _ => error(404, "no such page; the API is described in docs/serve.md"),
    };
    Ok(reply)
}

/// A submission as its team sees it.
pub fn submission_json(app: &App, s: &Submission) -> serde_json::Value {
    let (done, total) = progress(app, s);
    json!({
        "id": s.id,
        "name": crate::text::shown(&s.name),
        "team": crate::text::shown(&s.team),
        "status": s.status.as_str(),
        "received_unix": s.received_unix,
        "started_unix": s.started_unix,
        "finished_unix": s.finished_unix,
        "cases_done": done,
        "cases_total": total,
        "reason": s.reason,
        "counts_for_quota": s.counts,
    })
}

/// Cases recorded in the round's journal, and the phase's case count, while it runs.
pub fn progress(app: &App, s: &Submission) -> (Option<usize>, Option<usize>) {
    if s.status != Status::Running {
        return (None, None);
    }
    let journal = app.phase.rounds_dir().join(&s.folder).join("runs.csv");
    let done = std::fs::read_to_string(journal)
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0);
    let total = app
        .phase
        .challenge
        .phase_paths(&app.phase.phase, None)
        .ok()
        .and_then(|p| crate::challenge::read_case_ids(&p).ok())
        .map(|ids| ids.len());
    (Some(done), total)
}

fn team_json(app: &App, team: &Team) -> Reply {
    let submissions = match app.store().submissions_of(team.id) {
        Ok(s) => s,
        Err(e) => return error(500, &format!("the server could not read the queue: {e}")),
    };
    let can_submit = {
        let store = app.store();
        intake::check_quota(&store, &app.phase, team, crate::pipeline::now_unix()).is_ok()
    };
    let quota = quota_left(app, team);
    json_reply(
        200,
        json!({
            "team": crate::text::shown(&team.name),
            "quota": quota,
            "can_submit": can_submit,
            "max_upload_bytes": app.limits.max_upload_bytes,
            "submissions": submissions.iter().map(|s| submission_json(app, s)).collect::<Vec<_>>(),
        }),
    )
}

/// What the team may still send now, in words.
pub fn quota_left(app: &App, team: &Team) -> String {
    let store = app.store();
    match intake::check_quota(&store, &app.phase, team, crate::pipeline::now_unix()) {
        Ok(()) => match app.phase.challenge.leaderboard.quota {
            Some(q) => format!("within the quota of {q} submissions"),
            None => "no quota".into(),
        },
        Err(refusal) => refusal.message,
    }
}

fn one_submission(app: &App, team: &Team, id: &str) -> Reply {
    let not_found = || error(404, "no submission of your team has this number");
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    let found = app.store().submission(id);
    match found {
        Ok(Some(s)) if s.team_id == team.id || team.organizer => {
            json_reply(200, submission_json(app, &s))
        }
        // Another team's submission looks exactly like a missing one.
        Ok(_) => not_found(),
        Err(e) => error(500, &format!("the server could not read the queue: {e}")),
    }
}

fn queue_json(app: &App) -> Reply {
    match app.store().all_submissions() {
        Ok(all) => json_reply(
            200,
            json!({ "submissions": all.iter().map(|s| submission_json(app, s)).collect::<Vec<_>>() }),
        ),
        Err(e) => error(500, &format!("the server could not read the queue: {e}")),
    }
}

/// `rerun` or `disqualify` a submission (organizers only). The round of a submission that is
/// run again or disqualified leaves the phase's rounds folder for `set-aside/`, kept.
fn organizer_action(app: &App, id: &str, action: &str) -> Reply {
    let Ok(id) = id.parse::<i64>() else {
        return error(404, "no submission has this number");
    };
    let store = app.store();
    let s = match store.submission(id) {
        Ok(Some(s)) => s,
        Ok(None) => return error(404, "no submission has this number"),
        Err(e) => return error(500, &e.to_string()),
    };
    if s.status == Status::Running || s.status == Status::Queued {
        return error(
            409,
            "the submission is queued or running; act on it once it has finished",
        );
    }
    let round = app.phase.rounds_dir().join(&s.folder);
    let aside = app.phase.data.join("set-aside").join(format!(
        "{}-{}",
        s.folder,
        crate::pipeline::utc_stamp(crate::pipeline::now_unix())
    ));
    let set_aside = || -> std::io::Result<()> {
        if round.exists() {
            std::fs::create_dir_all(aside.parent().unwrap_or(&aside))?;
            std::fs::rename(&round, &aside)?;
        }
        Ok(())
    };
    let result = match action {
        "rerun" => set_aside()
            .map_err(|e| e.to_string())
            .and_then(|()| store.requeue(id).map_err(|e| e.to_string())),
        "disqualify" => set_aside().map_err(|e| e.to_string()).and_then(|()| {
            store
                .finish(
                    id,
                    Status::Disqualified,
                    Some("disqualified by the organizers"),
                    s.counts,
                    crate::pipeline::now_unix() as i64,
                )
                .map_err(|e| e.to_string())
        }),
        _ => return error(404, "the actions are rerun and disqualify"),
    };
    drop(store);
    match result {
        Ok(()) => {
            app.queue.rounds_done.fetch_add(1, Ordering::SeqCst);
            json_reply(200, json!({ "id": id, "action": action }))
        }
        Err(e) => error(500, &e),
    }
}

/// The end of a submission's log (64 KiB), for the organizers.
fn log_json(app: &App, id: &str) -> Reply {
    let found = id
        .parse::<i64>()
        .ok()
        .and_then(|id| app.store().submission(id).ok().flatten());
    let Some(s) = found else {
        return error(404, "no submission has this number");
    };
    let log =
        std::fs::read(app.phase.logs_dir().join(format!("{}.log", s.folder))).unwrap_or_default();
    let tail = &log[log.len().saturating_sub(64 * 1024)..];
    json_reply(
        200,
        json!({ "id": s.id, "log": String::from_utf8_lossy(tail) }),
    )
}

/// A `application/x-www-form-urlencoded` body of at most [`MAX_FORM_BYTES`].
async fn read_form(request: Request<Incoming>) -> Result<HashMap<String, String>, Reply> {
    let body = http_body_util::Limited::new(request.into_body(), MAX_FORM_BYTES);
    let bytes = match tokio::time::timeout(UPLOAD_IDLE, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => return Err(error(413, "the form is too large")),
        Err(_) => return Err(error(408, "the form took too long to arrive")),
    };
    Ok(parse_form(&bytes))
}

fn parse_form(bytes: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(bytes);
    text.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((percent_decode(k), percent_decode(v)))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn page_for(
    app: &App,
    peer: IpAddr,
    form: &HashMap<String, String>,
    organizer_page: bool,
) -> Reply {
    if throttled(app, peer) {
        return html(
            429,
            pages::message_page(
                "Too many unknown tokens",
                "Too many unknown tokens came from this address; wait a minute.",
            ),
        );
    }
    let token = form.get("token").map(|t| t.trim().to_string());
    match authenticate(app, token, peer) {
        Auth::Refused(reply) => {
            let status = reply.status().as_u16();
            html(
                status,
                pages::message_page(
                    "Not signed in",
                    "The token is unknown. Ask the organizers for your team's token.",
                ),
            )
        }
        Auth::Team(team) if organizer_page && !team.organizer => html(
            403,
            pages::message_page("Organizers only", "This page needs an organizer token."),
        ),
        Auth::Team(team) if organizer_page => html(
            200,
            pages::organizer_page(app, &team, form.get("token").map_or("", String::as_str)),
        ),
        Auth::Team(team) => html(
            200,
            pages::team_page(app, &team, form.get("token").map_or("", String::as_str)),
        ),
    }
}

/// The team-view report of one of the team's finished submissions.
fn team_report(app: &App, peer: IpAddr, form: &HashMap<String, String>) -> Reply {
    let team = match form_team(app, peer, form) {
        Ok(team) => team,
        Err(reply) => return *reply,
    };
    let missing = || {
        html(
            404,
            pages::message_page(
                "No report",
                "Your team has no finished submission with this number.",
            ),
        )
    };
    let Some(id) = form.get("id").and_then(|id| id.parse::<i64>().ok()) else {
        return missing();
    };
    let found = app.store().submission(id);
    match found {
        Ok(Some(s)) if s.team_id == team.id && s.status == Status::Done => {
            let path = app
                .phase
                .rounds_dir()
                .join(&s.folder)
                .join(super::queue::TEAM_REPORT);
            match std::fs::read_to_string(&path) {
                Ok(report) => html(200, report),
                Err(_) => html(
                    404,
                    pages::message_page(
                        "No report",
                        "The report of this submission is not ready; try again in a minute.",
                    ),
                ),
            }
        }
        Ok(_) => missing(),
        Err(e) => error(500, &e.to_string()),
    }
}

/// The token of a form, authenticated.
fn form_team(app: &App, peer: IpAddr, form: &HashMap<String, String>) -> Result<Team, Box<Reply>> {
    if throttled(app, peer) {
        return Err(Box::new(html(
            429,
            pages::message_page(
                "Too many unknown tokens",
                "Too many unknown tokens came from this address; wait a minute.",
            ),
        )));
    }
    match authenticate(app, form.get("token").map(|t| t.trim().to_string()), peer) {
        Auth::Team(team) => Ok(team),
        Auth::Refused(reply) => Err(Box::new(html(
            reply.status().as_u16(),
            pages::message_page(
                "Not signed in",
                "The token is unknown. Ask the organizers for your team's token.",
            ),
        ))),
    }
}

/// The organizers' log view and actions, from the buttons of their page.
fn organizer_form(app: &App, peer: IpAddr, form: &HashMap<String, String>, what: &str) -> Reply {
    let organizer = match form_team(app, peer, form) {
        Ok(team) if team.organizer => team,
        Ok(_) => {
            return html(
                403,
                pages::message_page("Organizers only", "This needs an organizer token."),
            )
        }
        Err(reply) => return *reply,
    };
    let token = form.get("token").map_or("", String::as_str);
    let id = form.get("id").cloned().unwrap_or_default();
    if what == "log" {
        let found = id
            .parse::<i64>()
            .ok()
            .and_then(|id| app.store().submission(id).ok().flatten());
        let Some(s) = found else {
            return html(
                404,
                pages::message_page("No such submission", "No submission has this number."),
            );
        };
        let path = app.phase.logs_dir().join(format!("{}.log", s.folder));
        let log = std::fs::read(&path).unwrap_or_default();
        // The end of the log: what a failure says is there.
        let tail = &log[log.len().saturating_sub(64 * 1024)..];
        return html(
            200,
            pages::log_page(&s, &String::from_utf8_lossy(tail), token),
        );
    }
    let answer = organizer_action(app, &id, what);
    let done = answer.status().is_success();
    let notice = if done {
        format!("Submission {}: {what} done.", escape(&id))
    } else {
        format!(
            "Submission {}: {what} refused (it must have finished).",
            escape(&id)
        )
    };
    html(
        if done { 200 } else { 409 },
        pages::organizer_page(app, &organizer, token).replacen(
            "<h1>The queue</h1>",
            &format!("<h1>The queue</h1><p class=\"failed\">{notice}</p>"),
            1,
        ),
    )
}

/// A reader over the upload's chunks, fed by the request task.
struct ChannelReader {
    chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

async fn upload(app: &Arc<App>, peer: IpAddr, request: Request<Incoming>) -> Reply {
    if throttled(app, peer) {
        return error(
            429,
            "too many unknown tokens from this address; wait a minute",
        );
    }
    let team = match authenticate(app, bearer(&request), peer) {
        Auth::Refused(reply) => return reply,
        Auth::Team(team) => team,
    };
    // The quota first: a team over it uploads nothing.
    let quota = {
        let store = app.store();
        intake::check_quota(&store, &app.phase, &team, crate::pipeline::now_unix())
    };
    if let Err(refusal) = quota {
        return refused(&refusal);
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        None => return error(411, "send the archive with a Content-Length (podium submit does)"),
        Some(n) if n > app.limits.max_upload_bytes => {
            return refused(&Refusal::new(
                413,
                format!(
                    "the upload is larger than {} bytes, the limit; leave out what the program does not need at run time",
                    app.limits.max_upload_bytes
                ),
            ))
        }
        Some(_) => {}
    }
    let (sender, chunks) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(16);
    let receiving = {
        let phase = Arc::clone(&app.phase);
        let limits = app.limits;
        tokio::task::spawn_blocking(move || {
            intake::receive(
                &phase,
                ChannelReader {
                    chunks,
                    current: Bytes::new(),
                },
                &limits,
            )
        })
    };
    let mut body = request.into_body();
    loop {
        match tokio::time::timeout(UPLOAD_IDLE, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if sender.send(Ok(data)).await.is_err() {
                        // The unpacking stopped early (a refusal): its answer follows.
                        break;
                    }
                }
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let _ = sender.send(Err(io::Error::other(e.to_string()))).await;
                break;
            }
            Err(_) => {
                let _ = sender
                    .send(Err(io::Error::other(format!(
                        "nothing arrived for {} s",
                        UPLOAD_IDLE.as_secs()
                    ))))
                    .await;
                break;
            }
        }
    }
    drop(sender);
    let received = match receiving.await {
        Ok(result) => result,
        Err(e) => Err(Refusal::new(
            500,
            format!("the server could not unpack the upload ({e}); nothing was counted"),
        )),
    };
    let (key, name) = match received {
        Ok(r) => r,
        Err(refusal) => return refused(&refusal),
    };
    let queued = {
        let store = app.store();
        intake::queue_received(
            &store,
            &app.phase,
            &team,
            &key,
            &name,
            crate::pipeline::now_unix(),
        )
    };
    match queued {
        Ok(id) => json_reply(
            202,
            json!({
                "id": id,
                "name": crate::text::shown(&name),
                "team": crate::text::shown(&team.name),
                "status": "queued",
            }),
        ),
        Err(refusal) => refused(&refusal),
    }
}

/// A refusal answered before the body was read: the connection closes after it, so that the
/// rest of the upload is not taken for the next request.
fn refused(refusal: &Refusal) -> Reply {
    let mut reply = error(refusal.status, &refusal.message);
    reply
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    reply
}
