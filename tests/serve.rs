//! `podium serve` over real HTTP: teams submit with `podium submit`, the queue runs each
//! submission as a round, the leaderboard is `podium leaderboard`'s; a server killed with
//! `kill -9` loses nothing and runs nothing twice; hostile uploads, wrong tokens, another
//! team's submission and quotas each get a clear answer while the server keeps serving.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::server::*;
use common::*;
use podium::serve::client;

fn hidden_with_public_half(challenge: &podium::challenge::Challenge) {
    let toml = challenge.root.join("challenge.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let text = text.replace(
        "visibility = \"hidden\"",
        "visibility = \"hidden\"\npublic_fraction = 0.5",
    );
    std::fs::write(&toml, text).unwrap();
}

#[test]
fn teams_submit_over_http_and_the_leaderboard_is_podium_leaderboards() {
    // A hidden phase runs sandboxed.
    if !require_bubblewrap() {
        return;
    }
    let (dir, challenge) = small_challenge(6);
    hidden_with_public_half(&challenge);
    let data = dir.path().join("data");
    let a = add_team(&data, "Radiology <b>AI</b> Lab", false);
    let b = add_team(&data, "CT Vision", false);
    let organizer = add_team(&data, "Organizers", true);
    let server = start(&challenge.root, "test", &data, &["--jobs", "2"]);
    let subs = dir.path().join("subs");
    let (ok, said) = submit(
        &server.url,
        &a,
        &example(&subs, "unet", "threshold-baseline"),
    );
    assert!(ok && said.contains("is queued"), "{said}");
    let (ok, said) = submit(&server.url, &b, &example(&subs, "guess", "random-guess"));
    assert!(ok, "{said}");
    wait_until_finished(&server.url, &organizer, Duration::from_secs(180));

    // The token decides the team: neither the claimed team nor the baseline flag is used.
    let (status, mine) = get(&server.url, &a, "/api/submissions");
    assert_eq!(status, 200);
    assert_eq!(mine["team"], "Radiology <b>AI</b> Lab");
    let list = mine["submissions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{mine}");
    assert_eq!(
        (list[0]["name"].as_str(), list[0]["status"].as_str()),
        (Some("unet"), Some("done"))
    );
    let theirs = get(&server.url, &b, "/api/submissions").1["submissions"][0]["id"].clone();
    let (status, body) = get(&server.url, &a, &format!("/api/submissions/{theirs}"));
    assert_eq!(
        status, 404,
        "another team's submission looks missing: {body}"
    );

    // The leaderboard JSON is what `podium leaderboard` computes for the same rounds, once the
    // server has rebuilt it after the last round.
    let (ok, computed, stderr) = podium(&[
        "leaderboard",
        data.join("rounds").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(ok, "{stderr}");
    let computed: serde_json::Value = serde_json::from_str(&computed).unwrap();
    let started = Instant::now();
    loop {
        let served = client::request(&server.url, "GET", "/api/leaderboard", "", None).unwrap();
        if served.body == computed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "served {} but podium leaderboard computes {computed}",
            served.body
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let rows = computed.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["baseline"] == false), "{computed}");
    assert_eq!(rows[0]["team"], "Radiology <b>AI</b> Lab");

    // The page escapes the team's name and loads nothing from elsewhere.
    let page = http_text(&server.url, "/");
    assert!(
        page.contains("Radiology &lt;b&gt;AI&lt;/b&gt; Lab"),
        "{page}"
    );
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
}

#[test]
fn a_server_killed_mid_round_resumes_it_and_runs_no_case_twice() {
    if !require_bubblewrap() {
        return;
    }
    let (dir, challenge) = small_challenge(4);
    let marker = format!("4242{}", std::process::id());
    let subs = dir.path().join("subs");
    let stalling = stalling_submission(&subs, &challenge, &marker);
    let data = dir.path().join("data");
    let team = add_team(&data, "Team A", false);
    let organizer = add_team(&data, "Organizers", true);
    let mut server = start(&challenge.root, "test", &data, &["--jobs", "2"]);
    let (ok, said) = submit(&server.url, &team, &stalling);
    assert!(ok, "{said}");
    let round = || -> Option<PathBuf> {
        std::fs::read_dir(data.join("rounds"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('s'))
            })
    };
    wait_for("the first case recorded", || {
        round().is_some_and(|r| {
            std::fs::read_to_string(r.join("runs.csv")).is_ok_and(|t| t.lines().count() == 2)
        })
    });
    wait_for("two stalled cases", || processes_running(&marker) == 2);

    // kill -9: the server has no chance to clean up. Its round gets SIGTERM from the kernel
    // and stops its programs itself.
    unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGKILL) };
    let _ = server.child.wait();
    wait_for("the round's programs stopped", || {
        processes_running(&marker) == 0
    });
    let round_dir = round().unwrap();
    let key = round_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::fs::write(data.join("submissions").join(&key).join("resume-now"), "").unwrap();

    let server = start(&challenge.root, "test", &data, &["--jobs", "2"]);
    let queue = wait_until_finished(&server.url, &organizer, Duration::from_secs(120));
    let all = queue["submissions"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{queue}");
    assert_eq!(all[0]["status"], "done", "{queue}");
    // Each case once in the journal: the first was kept, the others ran after the restart.
    let journal = read_csv(&round_dir.join("runs.csv"));
    let mut cases: Vec<_> = journal.iter().map(|r| r["case_id"].clone()).collect();
    cases.sort();
    let before = cases.len();
    cases.dedup();
    assert_eq!((before, cases.len()), (4, 4), "{journal:?}");
    let rounds: Vec<_> = std::fs::read_dir(data.join("rounds"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.path().join("round.json").is_file()
                && e.file_name().to_string_lossy().starts_with('s')
        })
        .collect();
    assert_eq!(rounds.len(), 1);
}

/// A raw tar entry: name, kind, link target, content.
type RawEntry<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8]);

/// A gzip-compressed tar of raw entries, as a hostile client would write it.
fn hostile_archive(path: &Path, entries: &[RawEntry]) {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for &(name, kind, link, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_entry_type(kind);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    std::fs::write(path, builder.into_inner().unwrap().finish().unwrap()).unwrap();
}

const TOML: &[u8] = b"name = \"ok\"\n[run]\nkind = \"process\"\ncommand = [\"/bin/true\"]\n";

#[test]
fn hostile_uploads_wrong_tokens_and_quotas_get_clear_answers_and_the_server_goes_on() {
    let (dir, challenge) = small_challenge(3);
    // One submission per team and day.
    let toml = challenge.root.join("challenge.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let text = text.replace(
        "[leaderboard]\nselect = \"best\"\nquota_period = \"day\"",
        "[leaderboard]\nselect = \"best\"\nquota = 1\nquota_period = \"day\"",
    );
    assert!(text.contains("quota = 1"));
    std::fs::write(&toml, text).unwrap();
    let data = dir.path().join("data");
    let team = add_team(&data, "Team A", false);
    let other = add_team(&data, "Team B", false);
    let organizer = add_team(&data, "Organizers", true);
    let server = start(
        &challenge.root,
        "dev",
        &data,
        &[
            "--backend",
            "process",
            "--max-upload-mib",
            "8",
            "--max-unpacked-mib",
            "48",
        ],
    );
    let scratch = dir.path().join("uploads");
    std::fs::create_dir_all(&scratch).unwrap();
    let send = |name: &str, entries: &[RawEntry]| {
        let file = scratch.join(format!("{name}.tar.gz"));
        hostile_archive(&file, entries);
        let answer =
            client::request(&server.url, "POST", "/api/submissions", &team, Some(&file)).unwrap();
        (
            answer.status,
            answer.body["error"].as_str().unwrap_or("").to_string(),
        )
    };
    use tar::EntryType::*;
    let zeros = vec![0u8; 64 << 20];
    let cases: Vec<(&str, Vec<RawEntry>, u16, &str)> = vec![
        (
            "traversal",
            vec![
                (b"submission.toml", Regular, b"", TOML),
                (b"../../evil", Regular, b"", b"x"),
            ],
            400,
            "climbs out",
        ),
        (
            "absolute",
            vec![(b"/tmp/podium-serve-evil", Regular, b"", b"x")],
            400,
            "absolute path",
        ),
        (
            "link",
            vec![
                (b"submission.toml", Regular, b"", TOML),
                (b"passwd", Symlink, b"/etc/passwd", b""),
            ],
            400,
            "points to an absolute path",
        ),
        (
            "device",
            vec![
                (b"submission.toml", Regular, b"", TOML),
                (b"mem", Char, b"", b""),
            ],
            400,
            "character device",
        ),
        (
            "bomb",
            vec![
                (b"submission.toml", Regular, b"", TOML),
                (b"zeros", Regular, b"", &zeros),
            ],
            400,
            "unpacks to more than",
        ),
        (
            "no toml",
            vec![(b"run.sh", Regular, b"", b"x")],
            400,
            "no submission.toml",
        ),
        (
            "bad toml",
            vec![(
                b"submission.toml",
                Regular,
                b"",
                b"name = \"x\"\n[run]\nkind = \"rocket\"\n",
            )],
            422,
            "submission.toml",
        ),
    ];
    for (what, entries, status, needle) in &cases {
        let (got, message) = send(what, entries);
        assert_eq!(got, *status, "{what}: {message}");
        assert!(message.contains(needle), "{what}: {message}");
    }
    assert!(!Path::new("/tmp/podium-serve-evil").exists());
    // Over the size limit: refused from its declared length, before anything is read.
    let address = server.url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /api/submissions HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {team}\r\nContent-Length: {}\r\n\r\n",
        9u64 << 20
    )
    .unwrap();
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // `podium submit` asks before it uploads.
    let fat = example(&scratch, "fat", "threshold-baseline");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..10u32 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    std::fs::write(fat.join("weights.bin"), noise).unwrap();
    let (ok, said) = submit(&server.url, &team, &fat);
    assert!(
        !ok && said.contains("(413)") && said.contains("more than the server's limit"),
        "{said}"
    );
    // Garbage.
    let garbage = scratch.join("garbage.tar.gz");
    std::fs::write(&garbage, b"PK\x03\x04 not a tar").unwrap();
    let answer = client::request(
        &server.url,
        "POST",
        "/api/submissions",
        &team,
        Some(&garbage),
    )
    .unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.body["error"]
        .as_str()
        .unwrap()
        .contains("not a gzip-compressed tar"));
    // Nothing refused was counted or kept.
    assert_eq!(
        get(&server.url, &team, "/api/submissions").1["submissions"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        std::fs::read_dir(data.join("incoming"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );

    // Wrong and missing tokens.
    let answer =
        client::request(&server.url, "GET", "/api/submissions", "podium_0000", None).unwrap();
    assert_eq!(answer.status, 401);
    let (ok, said) = submit(
        &server.url,
        "podium_0000",
        &example(&scratch, "unet", "threshold-baseline"),
    );
    assert!(!ok && said.contains("unknown token"), "{said}");
    // An organizer's token cannot submit.
    let (ok, said) = submit(
        &server.url,
        &organizer,
        &example(&scratch, "unet2", "threshold-baseline"),
    );
    assert!(
        !ok && said.contains("organizer token cannot send"),
        "{said}"
    );

    // The quota: one accepted, the next refused with when the next slot opens.
    let (ok, said) = submit(
        &server.url,
        &team,
        &example(&scratch, "unet3", "threshold-baseline"),
    );
    assert!(ok, "{said}");
    let (ok, said) = submit(
        &server.url,
        &team,
        &example(&scratch, "unet4", "threshold-baseline"),
    );
    assert!(
        !ok && said.contains("(429)") && said.contains("has used 1 of its 1"),
        "{said}"
    );
    // Another team's quota is its own; another team's submission number is not found.
    let (ok, said) = submit(
        &server.url,
        &other,
        &example(&scratch, "cnn", "threshold-baseline"),
    );
    assert!(ok, "{said}");
    wait_until_finished(&server.url, &organizer, Duration::from_secs(120));
    let mine = get(&server.url, &team, "/api/submissions").1;
    let id = mine["submissions"][0]["id"].clone();
    assert_eq!(
        get(&server.url, &other, &format!("/api/submissions/{id}")).0,
        404
    );
    assert_eq!(
        get(&server.url, &team, &format!("/api/submissions/{id}")).0,
        200
    );
    assert_eq!(
        get(&server.url, &team, "/api/submissions/../../etc/passwd").0,
        404
    );
    // The organizers read the log and disqualify; a team can do neither.
    let log = format!("/api/submissions/{id}/log");
    assert_eq!(get(&server.url, &team, &log).0, 403);
    let (status, body) = get(&server.url, &organizer, &log);
    assert!(
        status == 200 && body["log"].as_str().unwrap().contains("Results in"),
        "{body}"
    );
    let disqualify = format!("/api/submissions/{id}/disqualify");
    let answer = client::request(&server.url, "POST", &disqualify, &team, None).unwrap();
    assert_eq!(answer.status, 403);
    common::wait_for("both on the leaderboard", || {
        client::request(&server.url, "GET", "/api/leaderboard", "", None)
            .unwrap()
            .body
            .as_array()
            .is_some_and(|rows| rows.len() == 2)
    });
    let answer = client::request(&server.url, "POST", &disqualify, &organizer, None).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        get(&server.url, &team, &format!("/api/submissions/{id}")).1["status"],
        "disqualified"
    );
    common::wait_for("the disqualified submission off the leaderboard", || {
        let rows = client::request(&server.url, "GET", "/api/leaderboard", "", None)
            .unwrap()
            .body;
        rows.as_array()
            .is_some_and(|rows| rows.len() == 1 && rows[0]["team"] == "Team B")
    });
    // Still serving.
    assert!(http_text(&server.url, "/").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_docker_image_archive_is_submitted_like_a_program() {
    if !common::docker_images::require_docker() {
        return;
    }
    let (dir, challenge) = small_challenge(3);
    let image = "podium-test/served-baseline:latest";
    common::docker_images::build_baseline_image(image);
    let folder = dir.path().join("docker-unet");
    std::fs::create_dir_all(&folder).unwrap();
    common::docker_images::save_image(image, &folder.join("model.tar.gz"));
    std::fs::write(
        folder.join("submission.toml"),
        "name = \"docker-unet\"\n[run]\nkind = \"docker\"\nimage_archive = \"model.tar.gz\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let team = add_team(&data, "Team D", false);
    let organizer = add_team(&data, "Organizers", true);
    let server = start(&challenge.root, "dev", &data, &["--jobs", "2"]);
    let (ok, said) = submit(&server.url, &team, &folder);
    assert!(ok, "{said}");
    let queue = wait_until_finished(&server.url, &organizer, Duration::from_secs(180));
    assert_eq!(queue["submissions"][0]["status"], "done", "{queue}");
    let round = std::fs::read_dir(data.join("rounds"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.join("round.json").is_file()
                && p.file_name().unwrap().to_string_lossy().starts_with('s')
        })
        .unwrap();
    let runs = read_csv(&round.join("runs.csv"));
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
}
