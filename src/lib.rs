//! podium runs, scores and ranks the submissions of a medical-imaging AI challenge.
//!
//! The folders follow the path of a round:
//! - [`challenge`]: the challenge definition (`challenge.toml`) and its validation;
//! - [`runner`]: executing submissions case by case, one backend per file;
//! - [`metrics`]: pure metric functions, each documented with its edge cases;
//! - [`scoring`]: predictions against the truth, into the [`results`] model;
//! - [`ranking`]: leaderboards from the results;
//! - [`report`]: reporters (terminal, CSV) over the same results;
//! - [`demo`]: the synthetic COVID-19 chest-CT challenge;
//! - [`pipeline`]: the commands' flows, which the thin CLI in `main.rs` calls;
//! - [`text`]: the rules for text others wrote that podium shows (terminal, CSV, Markdown, HTML).

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
pub mod submission;
pub mod text;

pub use error::{Error, Result};
