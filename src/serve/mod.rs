//! `podium serve`'s building blocks: submission intake for teams (issue 17).
//!
//! * [`archive`]: packing a submission folder for upload, and unpacking an upload while
//!   trusting nothing in it.

pub mod archive;
