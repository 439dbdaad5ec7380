//! Reading what a team's program left in its output folder without ever following a link.
//!
//! Every name under the output folder is the team's: a folder may be a symbolic link to the
//! truth, a file may be a FIFO that blocks its reader or a hard link to another team's mask.
//! So the folder is opened once, and every name below it is opened relative to that descriptor
//! with `O_NOFOLLOW`, after an `lstat` of the same name says it is what podium expects; the
//! opened descriptor is checked again with `fstat`, so a name swapped in between is caught.
//! Nothing here renames, moves or writes anything in the output folder.

use std::ffi::CString;
use std::fs::File;
use std::io::{Error, ErrorKind, Result};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What a name in the output folder turned out to be, when it was not what podium expected.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Absent,
    SymbolicLink,
    /// A regular file with several names: one of them could be outside the output folder.
    HardLink,
    NotAFolder,
    /// A FIFO, socket or device: reading it could block podium or touch the host.
    NotARegularFile,
    Unreadable(String),
}

impl Refusal {
    /// The message for a team, naming `shown` (a path relative to its output folder).
    pub fn describe(&self, shown: &str) -> String {
        match self {
            Refusal::Absent => format!("wrote no {shown}"),
            Refusal::SymbolicLink => {
                format!("{shown} is a symbolic link; podium never follows links: write a regular file or folder")
            }
            Refusal::HardLink => format!("{shown} is a hard link; write a regular file"),
            Refusal::NotAFolder => format!("{shown} is not a folder"),
            Refusal::NotARegularFile => format!("{shown} is not a regular file"),
            Refusal::Unreadable(e) => format!("podium could not read {shown}: {e}"),
        }
    }
}

fn name(name: &str) -> Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::new(ErrorKind::InvalidInput, "not a single name"));
    }
    CString::new(name).map_err(|e| Error::new(ErrorKind::InvalidInput, e))
}

fn stat_at(dir: &File, entry: &CString) -> Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            entry.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(Error::last_os_error());
    }
    Ok(st)
}

fn fstat(file: &File) -> Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } != 0 {
        return Err(Error::last_os_error());
    }
    Ok(st)
}

fn kind(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

fn open_at(dir: Option<&File>, path: &CString, flags: libc::c_int) -> Result<File> {
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY;
    let fd = match dir {
        Some(d) => unsafe { libc::openat(d.as_raw_fd(), path.as_ptr(), flags) },
        None => unsafe { libc::open(path.as_ptr(), flags) },
    };
    if fd < 0 {
        return Err(Error::last_os_error());
    }
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn refusal_of(e: Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Refusal::Absent,
        Some(libc::ELOOP) => Refusal::SymbolicLink,
        Some(libc::ENOTDIR) => Refusal::NotAFolder,
        _ => Refusal::Unreadable(e.to_string()),
    }
}

/// Opens the output folder itself, which podium created (its last component must not be a
/// link either: a program without a sandbox could have replaced it).
pub fn open_root(path: &Path) -> std::result::Result<File, Refusal> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    open_at(None, &c, libc::O_RDONLY | libc::O_DIRECTORY).map_err(refusal_of)
}

/// Opens the folder `entry` of `dir`, refusing a link or anything but a folder.
pub fn open_dir(dir: &File, entry: &str) -> std::result::Result<File, Refusal> {
    let c = name(entry).map_err(|e| Refusal::Unreadable(e.to_string()))?;
    let st = stat_at(dir, &c).map_err(refusal_of)?;
    match kind(&st) {
        libc::S_IFLNK => return Err(Refusal::SymbolicLink),
        libc::S_IFDIR => {}
        _ => return Err(Refusal::NotAFolder),
    }
    let opened = open_at(Some(dir), &c, libc::O_RDONLY | libc::O_DIRECTORY).map_err(refusal_of)?;
    let again = fstat(&opened).map_err(|e| Refusal::Unreadable(e.to_string()))?;
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        return Err(Refusal::Unreadable(
            "it changed while podium opened it".into(),
        ));
    }
    Ok(opened)
}

/// Opens the regular file `entry` of `dir` for reading, refusing a link (symbolic or hard), a
/// FIFO, a socket or a device without opening it.
pub fn open_file(dir: &File, entry: &str) -> std::result::Result<File, Refusal> {
    let c = name(entry).map_err(|e| Refusal::Unreadable(e.to_string()))?;
    let st = stat_at(dir, &c).map_err(refusal_of)?;
    match kind(&st) {
        libc::S_IFLNK => return Err(Refusal::SymbolicLink),
        libc::S_IFREG => {}
        _ => return Err(Refusal::NotARegularFile),
    }
    if st.st_nlink > 1 {
        return Err(Refusal::HardLink);
    }
    // O_NONBLOCK: should the name have become a FIFO since the lstat, opening it must not wait
    // for a writer (the fstat below then refuses it).
    let opened = open_at(Some(dir), &c, libc::O_RDONLY | libc::O_NONBLOCK).map_err(refusal_of)?;
    let again = fstat(&opened).map_err(|e| Refusal::Unreadable(e.to_string()))?;
    if kind(&again) != libc::S_IFREG || (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        return Err(Refusal::NotARegularFile);
    }
    if again.st_nlink > 1 {
        return Err(Refusal::HardLink);
    }
    Ok(opened)
}

/// Folders deeper than this below a folder being emptied are not followed: emptying fails,
/// and the caller gives up the folder rather than podium's stack.
const MAX_EMPTY_DEPTH: usize = 128;

/// Removes everything inside the opened folder `dir`, keeping `dir` itself, without following
/// a link at any depth: each name is unlinked relative to its folder's descriptor, and a
/// folder is opened with `O_NOFOLLOW` (and made writable through that descriptor) before its
/// own names go. A program still running can rename or replace names meanwhile; the worst it
/// gets is an error, never podium deleting or changing anything outside `dir`.
pub fn empty_dir(dir: &File) -> Result<()> {
    empty_at(dir, 0)
}

fn empty_at(dir: &File, depth: usize) -> Result<()> {
    let listing = format!("/proc/self/fd/{}", dir.as_raw_fd());
    for entry in std::fs::read_dir(listing)? {
        let entry = entry?;
        let c = CString::new(entry.file_name().as_bytes())
            .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
        if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } == 0 {
            continue;
        }
        let e = Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EISDIR | libc::EPERM)) {
            if e.raw_os_error() == Some(libc::ENOENT) {
                continue;
            }
            return Err(e);
        }
        if depth >= MAX_EMPTY_DEPTH {
            return Err(Error::other(format!(
                "folders nested deeper than {MAX_EMPTY_DEPTH}"
            )));
        }
        // A folder the program made unreadable is opened as a bare handle first, and made
        // readable through that handle's own /proc link, which names that very folder.
        let handle = open_at(Some(dir), &c, libc::O_PATH | libc::O_DIRECTORY)?;
        let link = CString::new(format!("/proc/self/fd/{}", handle.as_raw_fd()))
            .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
        if unsafe { libc::chmod(link.as_ptr(), 0o700) } != 0 {
            return Err(Error::last_os_error());
        }
        // (Opened without O_NOFOLLOW: the /proc link is the one link that must be followed.)
        let fd = unsafe {
            libc::open(
                link.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(Error::last_os_error());
        }
        let sub = unsafe { File::from_raw_fd(fd) };
        empty_at(&sub, depth + 1)?;
        if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
            return Err(Error::last_os_error());
        }
    }
    Ok(())
}

/// Bytes of the regular files under `dir` (without following links), and the number of
/// entries seen. Stops counting past `max_entries`, so an inode flood costs podium little.
pub fn tree_size(dir: &File, max_entries: usize) -> (u64, usize) {
    let mut bytes = 0u64;
    let mut entries = 0usize;
    walk(dir, 0, max_entries, &mut bytes, &mut entries);
    (bytes, entries)
}

fn walk(dir: &File, depth: usize, max_entries: usize, bytes: &mut u64, entries: &mut usize) {
    // The listing goes through the descriptor's own /proc link, which names the opened folder
    // itself, never whatever its path leads to now.
    let listing = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let Ok(names) = std::fs::read_dir(listing) else {
        return;
    };
    for entry in names.flatten() {
        *entries += 1;
        if *entries > max_entries {
            return;
        }
        let Some(n) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Ok(c) = name(&n) else { continue };
        let Ok(st) = stat_at(dir, &c) else { continue };
        if kind(&st) == libc::S_IFDIR {
            if depth < 64 {
                if let Ok(sub) = open_dir(dir, &n) {
                    walk(&sub, depth + 1, max_entries, bytes, entries);
                }
            }
        } else if kind(&st) == libc::S_IFREG {
            *bytes = bytes.saturating_add(st.st_size as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emptying_never_follows_a_link_and_opens_up_locked_folders() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("truth.csv"), "secret").unwrap();
        std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("output");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("a/link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("truth.csv"), root.join("file-link"))
            .unwrap();
        std::fs::set_permissions(root.join("a/b"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(root.join("a"), std::fs::Permissions::from_mode(0o500)).unwrap();
        let opened = open_root(&root).unwrap();
        empty_dir(&opened).unwrap();
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_to_string(outside.path().join("truth.csv")).unwrap(),
            "secret"
        );
        let mode = std::fs::metadata(outside.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "the link's target kept its mode");
    }

    #[test]
    fn emptying_gives_up_on_a_folder_nested_too_deep() {
        let dir = tempfile::tempdir().unwrap();
        let mut deep = dir.path().join("output");
        let root = deep.clone();
        for _ in 0..(MAX_EMPTY_DEPTH + 2) {
            deep = deep.join("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        let opened = open_root(&root).unwrap();
        assert!(empty_dir(&opened).is_err());
    }

    #[test]
    fn links_fifos_and_folders_are_refused_without_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "truth").unwrap();
        let out = dir.path();
        std::fs::write(out.join("ok.csv"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), out.join("masks")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), out.join("link.csv")).unwrap();
        std::fs::hard_link(outside.path().join("secret"), out.join("hard.csv")).unwrap();
        let fifo = CString::new(out.join("fifo.csv").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

        let root = open_root(out).unwrap();
        assert!(open_file(&root, "ok.csv").is_ok());
        assert_eq!(open_dir(&root, "masks").unwrap_err(), Refusal::SymbolicLink);
        assert_eq!(
            open_file(&root, "link.csv").unwrap_err(),
            Refusal::SymbolicLink
        );
        assert_eq!(open_file(&root, "hard.csv").unwrap_err(), Refusal::HardLink);
        assert_eq!(
            open_file(&root, "fifo.csv").unwrap_err(),
            Refusal::NotARegularFile
        );
        assert_eq!(open_file(&root, "none").unwrap_err(), Refusal::Absent);
        assert_eq!(open_dir(&root, "ok.csv").unwrap_err(), Refusal::NotAFolder);
        assert!(open_file(&root, "../ok.csv").is_err());
        // The linked folder's file is not counted: the walk never follows the link.
        let (bytes, _) = tree_size(&root, 1000);
        assert_eq!(bytes, 1 + "truth".len() as u64, "ok.csv and hard.csv");
    }
}
