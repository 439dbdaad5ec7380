//! Reporters: each one renders the same results model ([`crate::results::RoundScores`] and
//! the leaderboard) in its own format.

pub mod csv_files;
pub mod html;
pub mod leaderboard;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod plots;
pub mod terminal;
