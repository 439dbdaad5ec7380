//! One error type for the library. Every message names the file, line, key or case it is
//! about and, where there is one, what to do about it; the CLI prints it as is.

use std::fmt;
use std::path::Path;

#[derive(Debug)]
pub enum Error {
    Msg(String),
    /// Several independent findings, reported together so a user fixes them in one pass.
    List(Vec<String>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn msg(text: impl Into<String>) -> Error {
        Error::Msg(text.into())
    }

    /// An I/O failure on `path`, phrased as "cannot <action> <path>: <cause>".
    pub fn io(action: &str, path: &Path, cause: impl fmt::Display) -> Error {
        Error::Msg(format!("cannot {action} {}: {cause}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Msg(m) => f.write_str(m),
            Error::List(items) => {
                let n = items.len();
                write!(f, "{n} problem{}:", if n == 1 { "" } else { "s" })?;
                for item in items {
                    write!(f, "\n  - {item}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}
