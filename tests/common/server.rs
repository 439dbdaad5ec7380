//! `podium serve` driven as teams and organizers would: started on a free port, teams added
//! with `podium teams add`, submissions sent with `podium submit`, pages and API over HTTP.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podium::serve::client;

use super::workspace_binary;

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `podium serve` on a free port and returns once it listens.
pub fn start(challenge: &Path, phase: &str, data: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podium"))
        .args([
            "serve",
            "--phase",
            phase,
            "--listen",
            "127.0.0.1:0",
            "--challenge",
        ])
        .arg(challenge)
        .arg("--data")
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("podium serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    Server { child, url }
}

pub fn podium(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn add_team(data: &Path, name: &str, organizer: bool) -> String {
    let data = data.to_str().unwrap();
    let mut args = vec!["teams", "add", name, "--data", data];
    if organizer {
        args.push("--organizer");
    }
    let (ok, stdout, stderr) = podium(&args);
    assert!(ok, "{stderr}");
    stdout.trim().to_string()
}

pub fn submit(url: &str, token: &str, dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["submit", "--server", url])
        .arg(dir)
        .env("PODIUM_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

pub fn get(url: &str, token: &str, path: &str) -> (u16, serde_json::Value) {
    let answer = client::request(url, "GET", path, token, None).unwrap();
    (answer.status, answer.body)
}

/// Polls the organizers' queue until every submission has finished.
pub fn wait_until_finished(url: &str, organizer: &str, limit: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (status, queue) = get(url, organizer, "/api/queue");
        assert_eq!(status, 200, "{queue}");
        let all = queue["submissions"].as_array().unwrap().clone();
        if !all.is_empty()
            && all
                .iter()
                .all(|s| !matches!(s["status"].as_str(), Some("queued" | "running")))
        {
            return queue;
        }
        assert!(
            started.elapsed() < limit,
            "still running after {limit:?}: {queue}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A submission folder running an example program, claiming to be someone else's baseline.
pub fn example(parent: &Path, name: &str, program: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(workspace_binary(program), dir.join("predict")).unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        format!("team = \"Somebody Else\"\nbaseline = true\nname = \"{name}\"\n[run]\nkind = \"process\"\ncommand = [\"./predict\", \"{{input}}\", \"{{output}}\"]\n"),
    )
    .unwrap();
    dir
}

/// A GET over plain TCP, for pages (no token).
pub fn http_text(url: &str, path: &str) -> String {
    let address = url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    text
}

/// A form POST over plain TCP; the answer's status line and body.
pub fn http_post_form(url: &str, path: &str, form: &str) -> (String, String) {
    let address = url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// Percent-encodes a form value.
pub fn form_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
