//! One server per data folder: an exclusive `flock` on `<data>/serve.lock`, held by the server
//! and by each round it starts until that round has stopped.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

pub struct DataLock {
    file: File,
}

impl DataLock {
    /// Takes the lock, waiting (with a message) while another server, or a round a killed
    /// server started, still holds it.
    pub fn acquire(data: &Path) -> Result<DataLock> {
        std::fs::create_dir_all(data).map_err(|e| Error::io("create the data folder", data, e))?;
        let path = data.join("serve.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let fd = file.as_raw_fd();
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            eprintln!(
                "podium serve: {} is held by another podium serve, or by a round that a stopped server started; waiting for it to stop",
                path.display()
            );
            // SAFETY: as above.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                return Err(Error::io("lock", &path, std::io::Error::last_os_error()));
            }
        }
        Ok(DataLock { file })
    }

    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}
