//! `podium serve` under load: the leaderboard endpoint (`GET /api/leaderboard`) at a fixed
//! request rate from several keep-alive clients, while a round runs a submission that keeps a
//! core busy. Latency is measured from each request's scheduled time (an open loop), so a slow
//! answer delays the measurement of the ones queued behind it instead of hiding them.
//!
//! ```sh
//! cargo bench --bench serve                      # 200 requests/s for 10 s, 8 connections
//! cargo bench --bench serve -- 400 10 16         # rate, seconds, connections
//! ```
//!
//! Results go to docs/benchmarks.md by hand, with the command.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn podium() -> Command {
    Command::new(env!("CARGO_BIN_EXE_podium"))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rate: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200.0);
    let seconds: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10.0);
    let connections: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);

    let dir = tempfile::tempdir().unwrap();
    let challenge = dir.path().join("covid19-ct");
    podium::demo::init_covid19_ct(
        &challenge,
        &podium::demo::GenerationStamp::new(10, podium::demo::Size::Small, 7),
        &|_| {},
    )
    .unwrap();
    let data = dir.path().join("data");
    let token = |name: &str, organizer: bool| {
        let mut cmd = podium();
        cmd.args(["teams", "add", name, "--data"]).arg(&data);
        if organizer {
            cmd.arg("--organizer");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (team_a, team_b, organizer) = (
        token("Team A", false),
        token("Team B", false),
        token("Organizers", true),
    );
    let mut child = podium()
        .args([
            "serve",
            "--phase",
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--jobs",
            "1",
            "--backend",
            "process",
            "--challenge",
        ])
        .arg(&challenge)
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Server(child);
    let url = line
        .trim()
        .strip_prefix("podium serve: listening on ")
        .unwrap()
        .to_string();
    let address = url.strip_prefix("http://").unwrap().to_string();

    // A finished round, so that the leaderboard has rows.
    let example = dir.path().join("unet");
    std::fs::create_dir_all(&example).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_podium"))
        .parent()
        .unwrap()
        .join("threshold-baseline");
    assert!(
        binary.is_file(),
        "{} is missing: cargo build --release --workspace",
        binary.display()
    );
    std::fs::copy(&binary, example.join("predict")).unwrap();
    std::fs::write(
        example.join("submission.toml"),
        "name = \"unet\"\n[run]\nkind = \"process\"\ncommand = [\"./predict\", \"{input}\", \"{output}\"]\n",
    )
    .unwrap();
    submit(&url, &team_a, &example);
    wait(&url, &organizer, |queue| {
        queue.contains("\"done\"")
            && !queue.contains("\"queued\"")
            && !queue.contains("\"running\"")
    });
    let started = Instant::now();
    while !get(&address, "/api/leaderboard").contains("unet@") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no leaderboard"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Then a submission that keeps one core busy on every case, running while we measure.
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(
        busy.join("burn.sh"),
        "end=$(( $(date +%s) + 30 )); while [ $(date +%s) -lt $end ]; do :; done\n",
    )
    .unwrap();
    std::fs::write(
        busy.join("submission.toml"),
        "name = \"busy\"\n[run]\nkind = \"process\"\ncommand = [\"/bin/sh\", \"./burn.sh\"]\n",
    )
    .unwrap();
    submit(&url, &team_b, &busy);
    wait(&url, &organizer, |queue| queue.contains("\"running\""));
    std::thread::sleep(Duration::from_secs(1));

    let body_len = get(&address, "/api/leaderboard").len();
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let per_connection = (rate * seconds / connections as f64).round() as usize;
    let begin = Instant::now() + Duration::from_millis(100);
    let workers: Vec<_> = (0..connections)
        .map(|k| {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&address).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let offset = interval.mul_f64(k as f64 / connections as f64);
                let mut latencies = Vec::with_capacity(per_connection);
                for i in 0..per_connection {
                    let scheduled = begin + offset + interval * i as u32;
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    write!(
                        stream,
                        "GET /api/leaderboard HTTP/1.1\r\nHost: {address}\r\n\r\n"
                    )
                    .unwrap();
                    let length = read_head(&mut reader);
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    latencies.push(scheduled.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let elapsed = begin.elapsed();
    let still_running = get_with(&address, "/api/queue", &organizer).contains("\"running\"");
    latencies.sort();
    let quantile =
        |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!("| requests | target rate | achieved rate | connections | response | p50 | p99 | max | round running throughout |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| {} | {rate:.0}/s | {:.0}/s | {connections} | {body_len} B | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        quantile(0.5).as_secs_f64() * 1e3,
        quantile(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
        if still_running { "yes" } else { "no" }
    );
}

/// Reads a response's head and returns its Content-Length.
fn read_head(reader: &mut BufReader<TcpStream>) -> usize {
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            return length;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
}

fn get_with(address: &str, path: &str, token: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

fn get(address: &str, path: &str) -> String {
    get_with(address, path, "")
}

fn submit(url: &str, token: &str, dir: &Path) {
    let out = podium()
        .args(["submit", "--server", url])
        .arg(dir)
        .env("PODIUM_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait(url: &str, organizer: &str, ready: impl Fn(&str) -> bool) {
    let address = url.strip_prefix("http://").unwrap();
    let started = Instant::now();
    while !ready(&get_with(address, "/api/queue", organizer)) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the queue did not get there"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
