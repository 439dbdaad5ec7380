//! How each case of a round ran, as the round's journal `runs.csv` records it: what the
//! runner writes, and scoring and the reports read.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CaseStatus;
use crate::error::{Error, Result};

/// The record of one case, as written to `runs.csv`.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRecord {
    pub submission: String,
    pub case_id: String,
    pub status: CaseStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall_s: f64,
    pub cpu_s: Option<f64>,
    pub peak_memory_mib: Option<f64>,
    /// For the organizer: podium's message and the program's last stderr line.
    pub message: String,
    /// For the team: on a hidden phase, podium's message alone, never the program's output
    /// (which could carry what it read); on a public phase, the same as `message`.
    pub team_message: String,
    /// `runs.csv`'s GPU columns.
    pub gpu: GpuUsage,
}

/// What a case's GPUs did while it ran; in `runs.csv` as `gpus`, `gpu_time_s`,
/// `gpu_peak_memory_mib` and `gpus_used`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuUsage {
    /// The GPUs the case was given (the K of `/dev/nvidia<K>`); empty without GPUs.
    pub gpus: Vec<u32>,
    /// An estimate of the time kernels ran, summed over the case's GPUs: at each reading, the
    /// share of the last period NVML says a kernel was running, times the time since the
    /// previous reading. Empty where the driver cannot say.
    pub time_s: Option<f64>,
    /// The most memory the case's GPUs held together, above what they held when it started.
    /// Empty where the driver cannot say.
    pub peak_memory_mib: Option<f64>,
    /// Of `gpus`, those that held memory for the case at some reading; meaningful only where
    /// `peak_memory_mib` is given.
    pub used: Vec<u32>,
}

pub fn count_statuses<'a>(
    records: impl Iterator<Item = &'a CaseRecord>,
) -> BTreeMap<CaseStatus, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.status).or_insert(0) += 1;
    }
    counts
}

/// `runs.csv`, the round's journal: one record per finished case, appended and synced to disk
/// before the case is reported, so an interrupted round keeps every finished case.
pub struct RunsCsv {
    writer: csv::Writer<std::fs::File>,
    path: std::path::PathBuf,
    /// How many of [`RUNS_HEADER`]'s columns the journal has: all, or [`BEFORE_GPUS`] for one
    /// begun by a podium that did not record GPUs, which a resumed round continues as it is.
    columns: usize,
}

/// The columns of a journal from before the GPU columns.
const BEFORE_GPUS: usize = 10;

const RUNS_HEADER: [&str; 14] = [
    "submission",
    "case_id",
    "status",
    "exit_code",
    "signal",
    "wall_s",
    "cpu_s",
    "peak_memory_mib",
    "message",
    "team_message",
    "gpus",
    "gpu_time_s",
    "gpu_peak_memory_mib",
    "gpus_used",
];

impl RunsCsv {
    pub fn create(path: &Path) -> Result<RunsCsv> {
        let mut writer = csv::Writer::from_path(path).map_err(|e| Error::io("create", path, e))?;
        // Durable at once: a podium killed before its first case leaves a journal to resume.
        writer
            .write_record(RUNS_HEADER)
            .and_then(|_| writer.flush().map_err(Into::into))
            .and_then(|_| writer.get_ref().sync_data().map_err(Into::into))
            .map_err(|e| Error::io("write", path, e))?;
        Ok(RunsCsv {
            writer,
            path: path.to_path_buf(),
            columns: RUNS_HEADER.len(),
        })
    }

    /// Continues an existing journal (`podium run --resume`).
    pub fn append_to(path: &Path) -> Result<RunsCsv> {
        let mut header = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(
                std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?,
            ),
            &mut header,
        )
        .map_err(|e| Error::io("read", path, e))?;
        let columns = if header.trim_end().split(',').any(|h| h == "gpus") {
            RUNS_HEADER.len()
        } else {
            BEFORE_GPUS
        };
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        let writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        Ok(RunsCsv {
            writer,
            path: path.to_path_buf(),
            columns,
        })
    }

    /// The records of an existing journal. A torn last line (an interruption in the middle of
    /// a write) is skipped: that case simply runs again.
    pub fn read(path: &Path) -> Result<Vec<CaseRecord>> {
        if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            // Killed before even the header reached the disk: nothing was recorded.
            return Ok(Vec::new());
        }
        let table = crate::io::table::Table::read(path)?;
        let header: Vec<String> = RUNS_HEADER[..BEFORE_GPUS]
            .iter()
            .map(|h| h.to_string())
            .collect();
        let idx = table.require(&header)?;
        // Absent from a journal written before podium recorded GPUs: read as none.
        let gpu_idx: Vec<Option<usize>> = RUNS_HEADER[BEFORE_GPUS..]
            .iter()
            .map(|h| table.column(h))
            .collect();
        let mut records = Vec::new();
        for row in &table.rows {
            let f = |i: usize| row.fields[idx[i]].as_str();
            let g = |i: usize| gpu_idx[i].map_or("", |c| row.fields[c].as_str());
            let list = |i: usize| -> Vec<u32> {
                g(i).split(',')
                    .filter_map(|k| k.trim().parse().ok())
                    .collect()
            };
            let text = |i: usize| crate::text::from_csv_text(f(i)).to_string();
            let Some(status) = CaseStatus::parse(f(2)) else {
                continue;
            };
            let Ok(wall_s) = f(5).parse::<f64>() else {
                continue;
            };
            records.push(CaseRecord {
                submission: text(0),
                case_id: text(1),
                status,
                exit_code: f(3).parse().ok(),
                signal: f(4).parse().ok(),
                wall_s,
                cpu_s: f(6).parse().ok(),
                peak_memory_mib: f(7).parse().ok(),
                message: text(8),
                team_message: text(9),
                gpu: crate::results::GpuUsage {
                    gpus: list(0),
                    time_s: g(1).parse().ok(),
                    peak_memory_mib: g(2).parse().ok(),
                    used: list(3),
                },
            });
        }
        Ok(records)
    }

    pub fn append(&mut self, r: &CaseRecord) -> Result<()> {
        let opt = |v: Option<i32>| v.map(|v| v.to_string()).unwrap_or_default();
        let float = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
        let text = crate::text::csv_text;
        let list = |gpus: &[u32]| {
            gpus.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let fields: [&str; RUNS_HEADER.len()] = [
            &text(&r.submission),
            &text(&r.case_id),
            r.status.as_str(),
            &opt(r.exit_code),
            &opt(r.signal),
            &format!("{:.3}", r.wall_s),
            &float(r.cpu_s),
            &float(r.peak_memory_mib),
            &text(&r.message),
            &text(&r.team_message),
            &list(&r.gpu.gpus),
            &float(r.gpu.time_s),
            &float(r.gpu.peak_memory_mib),
            &list(&r.gpu.used),
        ];
        self.writer
            .write_record(&fields[..self.columns])
            .and_then(|_| self.writer.flush().map_err(Into::into))
            .and_then(|_| self.writer.get_ref().sync_data().map_err(Into::into))
            .map_err(|e| Error::io("write", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_csv_keeps_no_escape_sequence_nor_formula_and_reads_back_what_it_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.csv");
        let record = CaseRecord {
            submission: "-model".into(),
            case_id: "case-1".into(),
            status: CaseStatus::Failed,
            exit_code: Some(-1),
            signal: None,
            wall_s: 0.5,
            cpu_s: None,
            peak_memory_mib: None,
            message: "=HYPERLINK(\"http://x\",\"click\") \u{1b}[2J\u{202e}".into(),
            team_message: "exit code 3: \u{1b}]0;pwned\u{7}".into(),
            gpu: Default::default(),
        };
        let mut journal = RunsCsv::create(&path).unwrap();
        journal.append(&record).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            !written.contains(['\u{1b}', '\u{7}', '\u{202e}']),
            "{written:?}"
        );
        assert!(written.contains(",-1,"), "numbers stay numbers: {written}");
        assert!(
            written.contains("'-model,") && written.contains("'=HYPERLINK("),
            "{written}"
        );
        let read = RunsCsv::read(&path).unwrap();
        assert_eq!(read[0].submission, "-model");
        assert_eq!(read[0].exit_code, Some(-1));
        assert_eq!(read[0].message, crate::text::shown(&record.message));
        assert_eq!(read[0].team_message, "exit code 3: \\u{1b}]0;pwned\\u{7}");
    }

    fn case(case_id: &str, gpu: crate::results::GpuUsage) -> CaseRecord {
        CaseRecord {
            submission: "model".into(),
            case_id: case_id.into(),
            status: CaseStatus::Ok,
            exit_code: Some(0),
            signal: None,
            wall_s: 1.25,
            cpu_s: Some(1.0),
            peak_memory_mib: Some(64.0),
            message: String::new(),
            team_message: String::new(),
            gpu,
        }
    }

    #[test]
    fn runs_csv_records_the_gpus_of_a_case_and_leaves_unmeasured_figures_empty() {
        use crate::results::GpuUsage;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.csv");
        let measured = GpuUsage {
            gpus: vec![2, 3],
            time_s: Some(4.5),
            peak_memory_mib: Some(2048.0),
            used: vec![3],
        };
        let unmeasured = GpuUsage {
            gpus: vec![1],
            ..GpuUsage::default()
        };
        let mut journal = RunsCsv::create(&path).unwrap();
        for (id, gpu) in [
            ("a", &measured),
            ("b", &unmeasured),
            ("c", &GpuUsage::default()),
        ] {
            journal.append(&case(id, gpu.clone())).unwrap();
        }
        let read = RunsCsv::read(&path).unwrap();
        let gpus: Vec<&GpuUsage> = read.iter().map(|r| &r.gpu).collect();
        assert_eq!(gpus, [&measured, &unmeasured, &GpuUsage::default()]);
        let rows = crate::io::table::Table::read(&path).unwrap();
        let column = |name: &str| rows.column(name).unwrap();
        assert_eq!(rows.rows[0].fields[column("gpus")], "2,3");
        assert_eq!(rows.rows[1].fields[column("gpus")], "1");
        for empty in ["gpu_time_s", "gpu_peak_memory_mib", "gpus_used"] {
            assert_eq!(rows.rows[1].fields[column(empty)], "", "{empty}");
        }
    }

    /// A round begun by a podium without the GPU columns is read, and resumed in its own
    /// layout, so the journal stays one table.
    #[test]
    fn a_journal_without_the_gpu_columns_is_read_and_continued_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.csv");
        let old_header = RUNS_HEADER[..BEFORE_GPUS].join(",");
        std::fs::write(
            &path,
            format!("{old_header}\nmodel,a,ok,0,,1.250,1.000,64.000,,\n"),
        )
        .unwrap();
        let gpu = crate::results::GpuUsage {
            gpus: vec![0],
            ..Default::default()
        };
        RunsCsv::append_to(&path)
            .unwrap()
            .append(&case("b", gpu))
            .unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            written.lines().all(|l| l.split(',').count() == BEFORE_GPUS),
            "{written}"
        );
        let read = RunsCsv::read(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(|r| r.gpu == Default::default()), "{read:?}");
        assert_eq!(read[0].peak_memory_mib, Some(64.0));
    }
}
