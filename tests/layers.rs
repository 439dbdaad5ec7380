//! The layers of the library import in one direction only (src/lib.rs describes them): a
//! lower layer never names a higher one outside its tests. This test reads the sources and
//! fails on the first upward `crate::` path, so that the order cannot erode unnoticed.

use std::path::{Path, PathBuf};

/// Each layer's folder (or file) under src/, with the modules above it, which it must not name.
const RULES: &[(&str, &[&str])] = &[
    (
        "io",
        &[
            "challenge",
            "metrics",
            "submission",
            "results",
            "scoring",
            "ranking",
            "report",
            "runner",
            "demo",
            "pipeline",
            "rounds",
            "serve",
        ],
    ),
    (
        "challenge",
        &[
            "results", "scoring", "ranking", "report", "runner", "demo", "pipeline", "rounds",
            "serve",
        ],
    ),
    (
        "metrics",
        &[
            "results", "scoring", "ranking", "report", "runner", "demo", "pipeline", "rounds",
            "serve",
        ],
    ),
    (
        "results",
        &[
            "scoring", "ranking", "report", "runner", "demo", "pipeline", "rounds", "serve",
        ],
    ),
    (
        "scoring",
        &[
            "ranking", "report", "runner", "demo", "pipeline", "rounds", "serve",
        ],
    ),
    (
        "ranking",
        &["report", "runner", "demo", "pipeline", "rounds", "serve"],
    ),
    ("report", &["runner", "demo", "pipeline", "rounds", "serve"]),
];

fn sources(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files.extend(sources(&p));
        } else if p.extension().is_some_and(|e| e == "rs") && !p.ends_with("tests.rs") {
            // A `tests.rs` is a test module (`#[cfg(test)] mod tests;`), free to use anything.
            files.push(p);
        }
    }
    files
}

/// The code of a source file without its test module and its comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::` (also in `crate::{a, b::c}`).
fn named_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
        } else {
            names.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    names
}

#[test]
fn no_layer_names_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut upward = Vec::new();
    for (layer, above) in RULES {
        let folder = src.join(layer);
        let files = if folder.is_dir() {
            sources(&folder)
        } else {
            sources(&src.join(format!("{layer}.rs")))
        };
        assert!(!files.is_empty(), "no source for layer {layer}");
        for file in files {
            let code = code_of(&std::fs::read_to_string(&file).unwrap());
            for name in named_modules(&code) {
                if above.contains(&name.as_str()) {
                    upward.push(format!(
                        "{} names crate::{name}",
                        file.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layer order of src/lib.rs:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_scan_sees_grouped_and_plain_paths_and_skips_tests_and_comments() {
    let code = code_of(
        "use crate::{io::table, ranking::x};\nlet a = crate::runner::y(); // crate::pipeline\n#[cfg(test)]\nuse crate::demo;",
    );
    assert_eq!(named_modules(&code), ["io", "ranking", "runner"]);
}
