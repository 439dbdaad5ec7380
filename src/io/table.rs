//! Tolerant CSV tables. Teams write CSV from Excel, pandas and R, so a UTF-8 byte-order mark,
//! CRLF line ends, any column order, extra columns and spaces around fields are all accepted.
//! What is not accepted is reported with the file and line.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Table {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug)]
pub struct Row {
    /// 1-based line in the file, for messages.
    pub line: u64,
    pub fields: Vec<String>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        Self::parse(&bytes, path)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<Table> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        // csv's positions drift on CRLF input; with LF only they are exact byte offsets.
        let normalized;
        let bytes = if bytes.contains(&b'\r') {
            normalized = crlf_to_lf(bytes);
            &normalized[..]
        } else {
            bytes
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(bytes);
        let at = |line: u64, what: String| Error::msg(format!("{}:{line}: {what}", path.display()));
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| at(1, format!("unreadable header row: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        if headers.iter().all(|h| h.is_empty()) {
            return Err(at(
                1,
                "the file is empty; expected a header row such as `case_id,...`".into(),
            ));
        }
        let mut rows = Vec::new();
        let mut lines = LineCounter::new(bytes);
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                at(line, format!("unreadable row: {e}"))
            })?;
            let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
            if record.iter().all(str::is_empty) {
                continue; // blank lines, often at the end
            }
            if record.len() != headers.len() {
                return Err(at(
                    line,
                    format!(
                        "has {} fields but the header has {} columns",
                        record.len(),
                        headers.len()
                    ),
                ));
            }
            rows.push(Row {
                line,
                fields: record.iter().map(str::to_string).collect(),
            });
        }
        Ok(Table {
            path: path.to_path_buf(),
            headers,
            rows,
        })
    }

    /// Index of a column; an exact match wins, otherwise a case-insensitive one.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name).or_else(|| {
            self.headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
        })
    }

    /// Indices of the named columns, or one error listing every missing column.
    pub fn require(&self, names: &[String]) -> Result<Vec<usize>> {
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| self.column(n).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::msg(format!(
                "{}:1: missing column{} {}; the header has: {}",
                self.path.display(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                self.headers.join(", ")
            )));
        }
        Ok(names.iter().filter_map(|n| self.column(n)).collect())
    }
}

fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

/// Line numbers of records read in order: each count resumes where the previous one stopped,
/// so reading a file costs one pass over it, not one pass per record (which made a 30 000-row
/// `runs.csv` take seconds).
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// Newlines in `bytes[..counted_to]`.
    newlines: u64,
    counted_to: usize,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            newlines: 0,
            counted_to: 0,
        }
    }

    /// The 1-based line where a record starting at `offset` has its first field. csv reports a
    /// record's start before any blank lines that precede it, so those are skipped here.
    fn line_at(&mut self, offset: u64) -> u64 {
        let bytes = self.bytes;
        let mut start = (offset as usize).min(bytes.len());
        while bytes.get(start) == Some(&b'\n') {
            start += 1;
        }
        if start < self.counted_to {
            // Not in order (never, for csv's records): count from the beginning.
            (self.newlines, self.counted_to) = (0, 0);
        }
        self.newlines += bytes[self.counted_to..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.counted_to = start;
        1 + self.newlines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bom_crlf_reordered_and_extra_columns() {
        let text = "\u{feff}extra,value , case_id\r\nx, 1.5,a\r\n\r\ny,2,b\r\n";
        let t = Table::parse(text.as_bytes(), Path::new("p.csv")).unwrap();
        let idx = t.require(&["case_id".into(), "value".into()]).unwrap();
        assert_eq!(idx, vec![2, 1]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1].fields[idx[0]], "b");
        assert_eq!(t.rows[1].line, 4);
    }

    #[test]
    fn reports_missing_columns_and_ragged_rows_with_file_and_line() {
        let t = Table::parse(b"case_id,a\n1,2\n", Path::new("p.csv")).unwrap();
        let err = t
            .require(&["case_id".into(), "b".into()])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.csv:1: missing column b"), "{err}");
        let err = Table::parse(b"case_id,a\n1,2\n3\n", Path::new("p.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.csv:3: has 1 fields"), "{err}");
    }

    #[test]
    fn line_numbers_counted_as_records_come_equal_a_count_from_the_start() {
        let text = b"a,b\n\n1,2\n\n\n3,4\n5,6\n\n";
        let naive = |offset: usize| {
            let mut start = offset.min(text.len());
            while text.get(start) == Some(&b'\n') {
                start += 1;
            }
            1 + text[..start].iter().filter(|&&b| b == b'\n').count() as u64
        };
        let mut counter = LineCounter::new(text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                counter.line_at(offset as u64),
                naive(offset),
                "offset {offset}"
            );
        }
        // Out of order: still right.
        assert_eq!(counter.line_at(0), naive(0));
        assert_eq!(counter.line_at(9), naive(9));
        let t = Table::parse(text, Path::new("p.csv")).unwrap();
        let lines: Vec<u64> = t.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 6, 7]);
    }
}
