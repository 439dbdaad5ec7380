//! Submission archives: what `podium submit` packs and what `podium serve` unpacks.
//!
//! An archive is a gzip-compressed tar of the submission folder (`submission.toml` at its top).
//! Every byte of an uploaded archive is the team's, so [`unpack`] trusts nothing in it:
//!
//! * **Paths** must be relative and stay inside the folder: no absolute path, no `..`, no
//!   Windows prefix, at most [`MAX_DEPTH`] folders deep and [`MAX_PATH_BYTES`] long, and no
//!   control or bidirectional-override character (a name is shown to organizers). The same
//!   path twice is refused rather than overwritten.
//! * **Entries** may be files, folders and symbolic links. A link's target must be relative
//!   and lead *down* from the link's folder (no `..`, no absolute target), so that no chain
//!   of links can leave the folder, and an entry may not be written through a link. Hard
//!   links, devices, FIFOs and sockets are refused.
//! * **Modes** are reduced to `0o755` (the owner's execute bit set) or `0o644`, folders to
//!   `0o755`: no set-user-ID, set-group-ID or sticky bit, nothing writable by others.
//! * **Size.** The decompressed stream (headers included) is counted as it is read, so a gzip
//!   bomb stops at [`UnpackLimits::max_unpacked_bytes`] however far it would expand; the file
//!   count is bounded too.
//!
//! On any refusal the destination is removed: a submission is either unpacked whole or not at
//! all, and the error names the entry and says what to change.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::text::shown;

/// The deepest an entry may sit (folders above it).
pub const MAX_DEPTH: usize = 32;
/// The longest path an entry may have, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// How much an archive may hold once unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    /// The decompressed tar stream, headers and padding included.
    pub max_unpacked_bytes: u64,
    /// Entries of any kind.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    /// 4 GiB and 100 000 entries: a Docker image archive of a PyTorch model with its weights
    /// fits; a gzip bomb or a folder of a million files does not.
    fn default() -> Self {
        UnpackLimits {
            max_unpacked_bytes: 4 << 30,
            max_entries: 100_000,
        }
    }
}

/// What [`unpack`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub folders: u64,
    pub links: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Why an archive was refused: the message names the entry (made safe to show) and says what
/// to change.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Counts the bytes read through it and fails once they pass `limit`.
struct Bounded<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the limit is enough to tell.
        let room = (self.limit + 1).saturating_sub(self.read);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if want == 0 {
            return Err(io::Error::other(OverLimit));
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(OverLimit));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("over the size limit")
    }
}

impl std::error::Error for OverLimit {}

/// Unpacks the gzip-compressed tar `archive` into `destination`, a folder that must not exist
/// yet, under `limits` and the rules of the [module documentation](self). On a refusal,
/// `destination` is removed and the error says why.
pub fn unpack(
    archive: impl Read,
    destination: &Path,
    limits: &UnpackLimits,
) -> Result<Unpacked, Refused> {
    if destination.symlink_metadata().is_ok() {
        return Err(Refused(format!(
            "{} already exists; podium unpacks a submission into a new folder",
            destination.display()
        )));
    }
    fs::create_dir_all(destination)
        .map_err(|e| Refused(format!("cannot create {}: {e}", destination.display())))?;
    let bounded = Bounded {
        inner: GzDecoder::new(archive),
        read: 0,
        limit: limits.max_unpacked_bytes,
    };
    let result = unpack_entries(bounded, destination, limits);
    if result.is_err() {
        let _ = fs::remove_dir_all(destination);
    }
    result
}

fn read_error(e: io::Error, limits: &UnpackLimits) -> Refused {
    if e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
        Refused(format!(
            "the archive unpacks to more than {} bytes, the limit; leave out what the program \
             does not need at run time (training data, caches, build folders)",
            limits.max_unpacked_bytes
        ))
    } else {
        Refused(format!(
            "the archive is not a gzip-compressed tar ({e}); pack it with `podium submit` or \
             `tar czf`"
        ))
    }
}

fn unpack_entries<R: Read>(
    source: R,
    root: &Path,
    limits: &UnpackLimits,
) -> Result<Unpacked, Refused> {
    let mut archive = tar::Archive::new(source);
    let mut done = Unpacked::default();
    let mut entries_seen = 0u64;
    let entries = archive.entries().map_err(|e| read_error(e, limits))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_error(e, limits))?;
        entries_seen += 1;
        if entries_seen > limits.max_entries {
            return Err(Refused(format!(
                "the archive holds more than {} entries, the limit; pack the folder the \
                 program runs from, not a whole environment of small files",
                limits.max_entries
            )));
        }
        let raw = entry.path_bytes().into_owned();
        let relative = checked_path(&raw)?;
        let Some(relative) = relative else {
            // "." or "./": the folder itself.
            continue;
        };
        let named = shown(&relative.display().to_string());
        let target = root.join(&relative);
        refuse_links_above(root, &relative, &named)?;
        if target.symlink_metadata().is_ok() && !entry.header().entry_type().is_dir() {
            return Err(Refused(format!(
                "{named} appears twice in the archive; pack each file once"
            )));
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                if target.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                    return Err(Refused(format!("{named} appears twice in the archive")));
                }
                make_folders(root, &relative)?;
                done.folders += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = relative.parent() {
                    make_folders(root, parent)?;
                }
                let executable = mode & 0o100 != 0;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if executable { 0o755 } else { 0o644 })
                    .open(&target)
                    .map_err(|e| Refused(format!("cannot write {named}: {e}")))?;
                // Bounded by what is left of the limit too: the stream is counted as it is
                // read, but a file's content is what is written.
                let room = limits.max_unpacked_bytes.saturating_sub(done.bytes);
                let copied = io::copy(&mut (&mut entry).take(room + 1), &mut file)
                    .map_err(|e| read_error(e, limits))?;
                if copied > room {
                    return Err(read_error(io::Error::other(OverLimit), limits));
                }
                // The umask may have cleared bits the rule allows; set them exactly.
                let exact = if executable { 0o755 } else { 0o644 };
                let _ = file.set_permissions(fs::Permissions::from_mode(exact));
                done.files += 1;
                done.bytes += copied;
            }
            tar::EntryType::Symlink => {
                let link_target = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                check_link_target(&link_target, &named)?;
                if let Some(parent) = relative.parent() {
                    make_folders(root, parent)?;
                }
                let link_target = PathBuf::from(String::from_utf8_lossy(&link_target).into_owned());
                symlink(&link_target, &target)
                    .map_err(|e| Refused(format!("cannot create the link {named}: {e}")))?;
                done.links += 1;
            }
            tar::EntryType::Link => {
                return Err(Refused(format!(
                    "{named} is a hard link; podium accepts files, folders and symbolic links \
                     pointing down their own folder: pack the file itself"
                )))
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(Refused(format!(
                    "{named} is a {} entry; podium accepts files, folders and symbolic links only",
                    kind_name(other)
                )))
            }
        }
    }
    Ok(done)
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "special",
    }
}

/// The entry's path as a relative path of plain names, or `None` for the folder itself.
fn checked_path(raw: &[u8]) -> Result<Option<PathBuf>, Refused> {
    let text = String::from_utf8_lossy(raw);
    let named = shown(&text);
    if raw.len() > MAX_PATH_BYTES {
        return Err(Refused(format!(
            "{} has a path of {} bytes, more than the {MAX_PATH_BYTES} allowed; shorten it",
            shown(&text.chars().take(80).collect::<String>()),
            raw.len()
        )));
    }
    if std::str::from_utf8(raw).is_err() {
        return Err(Refused(format!(
            "{named} is not a UTF-8 name; rename it with letters, digits, '.', '-' or '_'"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() || crate::text::is_hidden(c))
    {
        return Err(Refused(format!(
            "{named} has a control or invisible character in its name; rename it"
        )));
    }
    let path = Path::new(text.as_ref());
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(Refused(format!(
                    "{named} climbs out of the submission folder with '..'; pack paths \
                     relative to the folder"
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Refused(format!(
                    "{named} is an absolute path; pack paths relative to the submission folder"
                )))
            }
        }
    }
    if clean.components().count() > MAX_DEPTH {
        return Err(Refused(format!(
            "{named} is more than {MAX_DEPTH} folders deep; flatten the folder"
        )));
    }
    Ok((!clean.as_os_str().is_empty()).then_some(clean))
}

/// A link may point only down its own folder: relative, plain names, no `..`.
fn check_link_target(target: &[u8], named: &str) -> Result<(), Refused> {
    let refused = |why: &str| {
        Err(Refused(format!(
            "the link {named} {why}; a link may point only to a file or folder below its own \
             folder (for example `python -> python3`); pack the file itself instead"
        )))
    };
    let Ok(text) = std::str::from_utf8(target) else {
        return refused("has a target that is not UTF-8");
    };
    if text.is_empty() {
        return refused("has an empty target");
    }
    if text
        .chars()
        .any(|c| c.is_control() || crate::text::is_hidden(c))
    {
        return refused("has a control or invisible character in its target");
    }
    for component in Path::new(text).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return refused("points up with '..'"),
            Component::RootDir | Component::Prefix(_) => {
                return refused("points to an absolute path")
            }
        }
    }
    Ok(())
}

/// Refuses an entry whose path passes through a link: a link pointing down could still lead
/// a later entry somewhere the rules never checked.
fn refuse_links_above(root: &Path, relative: &Path, named: &str) -> Result<(), Refused> {
    let mut at = root.to_path_buf();
    let parents = relative
        .parent()
        .map(|p| p.components().count())
        .unwrap_or(0);
    for component in relative.components().take(parents) {
        at.push(component);
        if at
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(Refused(format!(
                "{named} lies under a link; pack the folder itself, not a link to it"
            )));
        }
    }
    Ok(())
}

fn make_folders(root: &Path, relative: &Path) -> Result<(), Refused> {
    let mut at = root.to_path_buf();
    for component in relative.components() {
        at.push(component);
        match at.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Refused(format!(
                    "{} is both a file and a folder in the archive",
                    shown(&relative.display().to_string())
                )))
            }
            Err(_) => {
                fs::create_dir(&at)
                    .and_then(|()| fs::set_permissions(&at, fs::Permissions::from_mode(0o755)))
                    .map_err(|e| Refused(format!("cannot create {}: {e}", at.display())))?;
            }
        }
    }
    Ok(())
}

/// Packs the folder `source` into a gzip-compressed tar at `archive` for upload, with paths
/// relative to the folder. Links are packed as links (never followed); a link that
/// [`unpack`] would refuse, a special file or a path it would refuse is an error here, so that
/// a team learns it before uploading.
pub fn pack(source: &Path, archive: &Path) -> Result<u64, Refused> {
    if !source.join("submission.toml").is_file() {
        return Err(Refused(format!(
            "{} has no submission.toml; pack the submission folder itself",
            source.display()
        )));
    }
    let file = File::create(archive)
        .map_err(|e| Refused(format!("cannot create {}: {e}", archive.display())))?;
    let mut builder = tar::Builder::new(GzEncoder::new(file, flate2::Compression::default()));
    builder.follow_symlinks(false);
    // Sparse entries are refused by `unpack`: their holes are not in the stream it counts.
    builder.sparse(false);
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let full = source.join(&relative);
        let mut children: Vec<_> = fs::read_dir(&full)
            .map_err(|e| Refused(format!("cannot read {}: {e}", full.display())))?
            .filter_map(|e| e.ok())
            .collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let name = relative.join(child.file_name());
            let path = source.join(&name);
            let named = shown(&name.display().to_string());
            checked_path(name.as_os_str().as_encoded_bytes())?;
            let meta = path
                .symlink_metadata()
                .map_err(|e| Refused(format!("cannot read {named}: {e}")))?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                let target = fs::read_link(&path)
                    .map_err(|e| Refused(format!("cannot read the link {named}: {e}")))?;
                check_link_target(target.as_os_str().as_encoded_bytes(), &named)?;
            } else if !kind.is_dir() && !kind.is_file() {
                return Err(Refused(format!(
                    "{named} is neither a file, a folder nor a link; leave it out"
                )));
            }
            builder
                .append_path_with_name(&path, &name)
                .map_err(|e| Refused(format!("cannot pack {named}: {e}")))?;
            if kind.is_dir() {
                stack.push(name);
            }
        }
    }
    let encoder = builder
        .into_inner()
        .map_err(|e| Refused(format!("cannot write {}: {e}", archive.display())))?;
    encoder
        .finish()
        .map_err(|e| Refused(format!("cannot write {}: {e}", archive.display())))?;
    fs::metadata(archive)
        .map(|m| m.len())
        .map_err(|e| Refused(format!("cannot read {}: {e}", archive.display())))
}

#[cfg(test)]
mod tests;
