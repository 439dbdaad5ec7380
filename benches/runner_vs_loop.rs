//! podium's own cost per case beside the shell loop an organizer would write instead, timed in
//! the same run.
//!
//! ```sh
//! cargo bench --bench runner_vs_loop
//! ```
//!
//! The cases are the demo challenge's (`podium init --template covid19-ct`): [`CT_CASES`] of
//! CT size (512×512×200, about 85 MB of gzip'ed image each) and [`SMALL_CASES`] small ones
//! (64×64×48). They are generated once, with the library's generator, and kept under
//! `target/tmp/` for later runs. The program is `/bin/true`: it exits at once and writes
//! nothing, so every case must end `missing`, and what is left is podium's own work.
//!
//! Each round is one of:
//! - `run_round` of the test phase, 1 job, with the process backend, then with the sandbox
//!   backend (when bubblewrap and cgroups work here);
//! - the loop an organizer's script runs, as one `sh` process: per case, create a staging
//!   folder and an output folder, write the one-row `cases.csv`, `cp` the image in, run the
//!   program on the two folders, and delete both. Once with the program itself, once with the
//!   program under a hand-written `bwrap` (new namespaces, `/usr` read-only, the staging folder
//!   at `/input` read-only, the output folder at `/output`), the sandbox's counterpart.
//!
//! The kinds of round alternate, one after the other, [`ROUNDS`] times after a warm-up of each,
//! so that the page cache and the load of the shared machine meet them alike. A figure is the
//! median over the rounds of the round's wall time divided by its cases.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use podium::challenge::{Challenge, PhasePaths};
use podium::demo::{GenerationStamp, Size};
use podium::results::CaseStatus;
use podium::runner::events::count_statuses;
use podium::runner::sandbox::SandboxBackend;
use podium::runner::{process::ProcessBackend, run_round, Backend, RoundOptions};
use podium::submission::Submission;

const CT_CASES: usize = 20;
const SMALL_CASES: usize = 200;
/// Timed rounds of each kind, after one warm-up round of each.
const ROUNDS: usize = 5;
const SEED: u64 = 20201;

/// The organizer's loop. `$1` is the phase's images, `$2` the staging root, `$3` the output
/// root, `$4` `plain` or `bwrap`; the case ids follow.
const LOOP: &str = r#"
images=$1; stage=$2; out=$3; how=$4; shift 4
for id in "$@"; do
  mkdir -p "$stage/$id/images" "$out/$id"
  printf 'case_id\n%s\n' "$id" > "$stage/$id/cases.csv"
  cp "$images/$id.nii.gz" "$stage/$id/images/"
  if [ "$how" = bwrap ]; then
    bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL \
      --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
      --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp \
      --ro-bind "$stage/$id" /input --bind "$out/$id" /output --chdir / \
      /bin/true /input /output
  else
    /bin/true "$stage/$id" "$out/$id"
  fi
  rm -rf "$stage/$id" "$out/$id"
done
"#;

/// One kind of round.
enum Kind<'a> {
    Podium(&'a dyn Backend),
    Loop { bwrap: bool },
}

struct Row<'a> {
    label: String,
    kind: Kind<'a>,
    /// Seconds per case, one per timed round.
    per_case: Vec<f64>,
}

fn main() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-runner-vs-loop");
    let sandbox = SandboxBackend::probe();
    if let Err(e) = &sandbox {
        println!("sandbox backend unavailable, its rows are not measured: {e}");
    }
    let work = tempfile::tempdir().unwrap();
    let submission = write_submission(&work.path().join("instant"));
    for (cases, size, name) in [
        (CT_CASES, Size::Ct, "CT-sized (512×512×200)"),
        (SMALL_CASES, Size::Small, "small (64×64×48)"),
    ] {
        let (challenge, phase) = demo_phase(&cache, cases, size);
        let images_mb = image_bytes(&phase) as f64 / 1e6;
        println!();
        println!(
            "{cases} {name} cases, {images_mb:.0} MB of images; `/bin/true`, 1 job; \
             median of {ROUNDS} interleaved rounds"
        );
        println!();
        let mut rows = vec![
            Row {
                label: "podium `run_round`, process backend".into(),
                kind: Kind::Podium(&ProcessBackend),
                per_case: Vec::new(),
            },
            Row {
                label: "shell loop: copy the image, run, delete".into(),
                kind: Kind::Loop { bwrap: false },
                per_case: Vec::new(),
            },
        ];
        if let Ok(sandbox) = &sandbox {
            rows.push(Row {
                label: "podium `run_round`, sandbox backend".into(),
                kind: Kind::Podium(sandbox),
                per_case: Vec::new(),
            });
            rows.push(Row {
                label: "shell loop, the program under `bwrap`".into(),
                kind: Kind::Loop { bwrap: true },
                per_case: Vec::new(),
            });
        }
        let ids = case_ids(&phase);
        for round in 0..=ROUNDS {
            for row in &mut rows {
                let dir = work.path().join(format!("round-{round}"));
                let seconds = match row.kind {
                    Kind::Podium(backend) => {
                        time_podium(&challenge, &phase, &submission, backend, &dir)
                    }
                    Kind::Loop { bwrap } => time_loop(&phase, &ids, bwrap, &dir),
                };
                std::fs::remove_dir_all(&dir).unwrap();
                if round > 0 {
                    row.per_case.push(seconds / ids.len() as f64);
                }
            }
        }
        print_table(&rows, ids.len());
    }
}

/// The test phase of a demo challenge of `cases` cases per phase at `size`, generated into
/// `cache` unless a previous run left it there.
fn demo_phase(cache: &Path, cases: usize, size: Size) -> (Challenge, PhasePaths) {
    let stamp = GenerationStamp::new(cases, size, SEED);
    let dir = cache.join(format!("{size:?}-{cases}").to_lowercase());
    if !stamp.is_present(&dir) {
        eprintln!(
            "generating {cases} {size:?} cases per phase in {} (once)",
            dir.display()
        );
        let started = Instant::now();
        podium::demo::init_covid19_ct(&dir, &stamp, &|_| {}).unwrap();
        eprintln!("generated in {:.0} s", started.elapsed().as_secs_f64());
    }
    let challenge = Challenge::load(&dir).unwrap();
    let phase = challenge.phase_paths("test", None).unwrap();
    (challenge, phase)
}

fn write_submission(dir: &Path) -> Submission {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("submission.toml"),
        "team = \"bench\"\nname = \"instant\"\n[run]\nkind = \"process\"\ncommand = [\"/bin/true\", \"{input}\", \"{output}\"]\n",
    )
    .unwrap();
    Submission::load(dir).unwrap()
}

fn case_ids(phase: &PhasePaths) -> Vec<String> {
    let csv = std::fs::read_to_string(phase.cases_csv()).unwrap();
    csv.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn image_bytes(phase: &PhasePaths) -> u64 {
    case_ids(phase)
        .iter()
        .map(|id| std::fs::metadata(phase.image(id)).unwrap().len())
        .sum()
}

/// Wall time of one `run_round` into `out`; checks that every case ended `missing`.
fn time_podium(
    challenge: &Challenge,
    phase: &PhasePaths,
    submission: &Submission,
    backend: &dyn Backend,
    out: &Path,
) -> f64 {
    let options = RoundOptions {
        jobs: 1,
        out_dir: out.to_path_buf(),
        resume: false,
        gpus: None,
    };
    let started = Instant::now();
    let runs = run_round(
        challenge,
        phase,
        std::slice::from_ref(submission),
        backend,
        &options,
        &mut |_| {},
    )
    .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    // Anything but `missing` means the case failed before the program ran, and the figure
    // would not be podium's cost around a program.
    let records = &runs[0].cases;
    let statuses = count_statuses(records.values());
    assert_eq!(
        statuses.get(&CaseStatus::Missing),
        Some(&records.len()),
        "{}: {statuses:?}",
        backend.name()
    );
    seconds
}

/// Wall time of the organizer's loop over `ids`, in `dir`.
fn time_loop(phase: &PhasePaths, ids: &[String], bwrap: bool, dir: &Path) -> f64 {
    let (stage, out) = (dir.join("stage"), dir.join("out"));
    for d in [&stage, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    let images: PathBuf = phase.image(&ids[0]).parent().unwrap().to_path_buf();
    let started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", LOOP, "loop"])
        .arg(&images)
        .args([&stage, &out])
        .arg(if bwrap { "bwrap" } else { "plain" })
        .args(ids)
        .status()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(status.success(), "the loop failed: {status}");
    seconds
}

fn print_table(rows: &[Row], cases: usize) {
    println!("| round | per case | min – max | round of {cases} cases |");
    println!("|---|---|---|---|");
    for row in rows {
        let m = median(&row.per_case);
        println!(
            "| {} | {:.1} ms | {:.1} – {:.1} ms | {:.2} s |",
            row.label,
            m * 1e3,
            min(&row.per_case) * 1e3,
            max(&row.per_case) * 1e3,
            m * cases as f64
        );
    }
    // Each podium row against the loop row that follows it.
    for pair in rows.chunks(2) {
        if let [podium, shell] = pair {
            let difference = median(&podium.per_case) - median(&shell.per_case);
            println!(
                "| {} − {} | **{:+.1} ms** | | |",
                podium.label,
                shell.label,
                difference * 1e3
            );
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}
