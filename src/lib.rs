//! podium runs, scores and ranks the submissions of a medical-imaging AI challenge.
//!
//! The folders follow the path of a round:
//! - [`challenge`]: the challenge definition (`challenge.toml`) and its validation;
//! - [`runner`]: executing submissions case by case, one backend per file;
//! - [`metrics`]: pure metric functions, each documented with its edge cases;
//! - [`scoring`]: predictions against the truth, into the [`results`] model;
//! - [`results`]: what a round produces and the reports show: case records and the `runs.csv`
//!   journal, scores, what the ranking needs of them, and the receipt `run.json`;
//! - [`ranking`]: leaderboards from the results;
//! - [`report`]: reporters (terminal, CSV) over the same results;
//! - [`demo`]: the synthetic COVID-19 chest-CT challenge;
//! - [`pipeline`]: the commands' flows, which the thin CLI in `main.rs` calls;
//! - [`serve`]: intake of submissions for `podium serve` (packing and unpacking uploads);
//! - [`text`]: the rules for text others wrote that podium shows (terminal, CSV, Markdown, HTML).
//!
//! The layers read in one direction: each module imports only from those before it here (test
//! code aside), so a type lives in the lowest layer that needs it. `tests/layers.rs` fails on an
//! import against this order.
//!
//! [`error`], [`ids`], [`text`], [`io`] → [`challenge`], [`metrics`], [`submission`] →
//! [`results`] → [`scoring`] → [`ranking`] → [`report`] → [`runner`] → [`demo`] → [`pipeline`]
//! → [`rounds`] → [`serve`] → the CLI (`main.rs`).
//!
//! The settings a challenge declares (ranking method, backend kind, the bound on scoring a case)
//! and the reading of a phase's case list live in [`challenge`]. [`scoring`], [`ranking`],
//! [`report`] and [`runner`] meet only in [`results`]: none imports another, except that
//! [`report`] shows the [`ranking`]'s results. Only [`pipeline`] joins them into a round.

pub mod challenge;
pub mod demo;
pub mod error;
pub mod ids;
pub mod io;
pub mod metrics;
pub mod pipeline;
pub mod ranking;
pub mod report;
pub mod results;
pub mod rounds;
pub mod runner;
pub mod scoring;
pub mod serve;
pub mod submission;
pub mod text;

pub use error::{Error, Result};
