use super::*;
use std::io::Write;

/// A tar entry written byte for byte, as a hostile client would, bypassing the checks the
/// `tar` crate's own path setters make.
fn raw(
    builder: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
    mode: u32,
) {
    let mut header = tar::Header::new_old();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_entry_type(kind);
    header.set_cksum();
    builder.append(&header, data).unwrap();
}

fn gzip(tar_bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(tar_bytes).unwrap();
    encoder.finish().unwrap()
}

fn archive(entries: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    raw(
        &mut builder,
        b"submission.toml",
        tar::EntryType::Regular,
        b"",
        b"name = \"x\"\n",
        0o644,
    );
    entries(&mut builder);
    gzip(&builder.into_inner().unwrap())
}

/// Unpacks into a fresh folder inside a scratch folder and returns the refusal, after checking
/// that nothing was left behind, inside or next to the destination.
fn refused(bytes: &[u8], limits: &UnpackLimits) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let destination = scratch.path().join("submission");
    let error = unpack(bytes, &destination, limits).expect_err("the archive should be refused");
    assert!(!destination.exists(), "a refused archive leaves nothing");
    let left: Vec<_> = fs::read_dir(scratch.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "nothing written next to the destination: {left:?}"
    );
    error.0
}

#[test]
fn a_packed_folder_unpacks_to_the_same_files_modes_and_links() {
    let source = tempfile::tempdir().unwrap();
    let s = source.path();
    fs::write(s.join("submission.toml"), "name = \"team\"\n").unwrap();
    fs::create_dir_all(s.join("bin/deep")).unwrap();
    fs::write(s.join("bin/run"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(s.join("bin/run"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(s.join("bin/deep/weights.bin"), vec![7u8; 100_000]).unwrap();
    symlink("run", s.join("bin/start")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let packed = scratch.path().join("upload.tar.gz");
    let size = pack(s, &packed).unwrap();
    assert!(size > 0 && size < 10_000, "compressed: {size} bytes");
    let out = scratch.path().join("unpacked");
    let done = unpack(File::open(&packed).unwrap(), &out, &UnpackLimits::default()).unwrap();
    assert_eq!((done.files, done.folders, done.links), (3, 2, 1));
    assert_eq!(
        done.bytes,
        100_000 + "#!/bin/sh\necho hi\n".len() as u64 + "name = \"team\"\n".len() as u64
    );
    assert_eq!(
        fs::read(out.join("bin/deep/weights.bin")).unwrap(),
        vec![7u8; 100_000]
    );
    assert_eq!(
        fs::read_link(out.join("bin/start")).unwrap(),
        Path::new("run")
    );
    let mode = |p: &str| fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o7777;
    // The set-user-ID bit is dropped; the execute bit kept.
    assert_eq!(mode("bin/run"), 0o755);
    assert_eq!(mode("submission.toml"), 0o644);
    assert_eq!(mode("bin/deep"), 0o755);
}

#[test]
fn paths_leaving_the_folder_are_refused() {
    for (name, expected) in [
        (&b"../escaped"[..], "climbs out of the submission folder"),
        (b"bin/../../escaped", "climbs out"),
        (b"/tmp/podium-absolute", "absolute path"),
        (b"bin/\x1b[31mred", "control or invisible character"),
        (b"bin/\xe2\x80\xaeevil", "control or invisible character"),
        (b"bin/\xff\xfe", "not a UTF-8 name"),
    ] {
        let bytes = archive(|b| raw(b, name, tar::EntryType::Regular, b"", b"x", 0o644));
        let error = refused(&bytes, &UnpackLimits::default());
        assert!(error.contains(expected), "{name:?}: {error}");
        assert!(
            !error.contains('\x1b'),
            "the name is shown safely: {error:?}"
        );
    }
    assert!(!Path::new("/tmp/podium-absolute").exists());
}

#[test]
fn links_may_only_point_down_and_nothing_is_written_through_them() {
    type Entries = Box<dyn Fn(&mut tar::Builder<Vec<u8>>)>;
    let cases: [(&str, Entries, &str); 5] = [
        (
            "up",
            Box::new(|b| raw(b, b"up", tar::EntryType::Symlink, b"../..", b"", 0o777)),
            "points up",
        ),
        (
            "absolute",
            Box::new(|b| raw(b, b"etc", tar::EntryType::Symlink, b"/etc", b"", 0o777)),
            "absolute path",
        ),
        (
            "inner up",
            Box::new(|b| {
                raw(
                    b,
                    b"a/l",
                    tar::EntryType::Symlink,
                    b"x/../../..",
                    b"",
                    0o777,
                )
            }),
            "points up",
        ),
        (
            "through a link",
            Box::new(|b| {
                raw(b, b"sub/", tar::EntryType::Directory, b"", b"", 0o755);
                raw(b, b"d", tar::EntryType::Symlink, b"sub", b"", 0o777);
                raw(b, b"d/file", tar::EntryType::Regular, b"", b"x", 0o644);
            }),
            "lies under a link",
        ),
        (
            "hard link",
            Box::new(|b| {
                raw(
                    b,
                    b"h",
                    tar::EntryType::Link,
                    b"submission.toml",
                    b"",
                    0o644,
                )
            }),
            "hard link",
        ),
    ];
    for (what, entries, expected) in cases {
        let error = refused(&archive(entries), &UnpackLimits::default());
        assert!(error.contains(expected), "{what}: {error}");
    }
}

#[test]
fn devices_fifos_and_duplicates_are_refused() {
    for (kind, expected) in [
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Block, "block device"),
        (tar::EntryType::Fifo, "FIFO"),
    ] {
        let error = refused(
            &archive(|b| raw(b, b"dev", kind, b"", b"", 0o666)),
            &UnpackLimits::default(),
        );
        assert!(error.contains(expected), "{error}");
    }
    let twice = archive(|b| {
        raw(
            b,
            b"submission.toml",
            tar::EntryType::Regular,
            b"",
            b"name = \"y\"\n",
            0o644,
        )
    });
    assert!(refused(&twice, &UnpackLimits::default()).contains("appears twice"));
    let file_then_folder = archive(|b| {
        raw(b, b"x", tar::EntryType::Regular, b"", b"1", 0o644);
        raw(b, b"x/y", tar::EntryType::Regular, b"", b"2", 0o644);
    });
    assert!(
        refused(&file_then_folder, &UnpackLimits::default()).contains("both a file and a folder")
    );
}

#[test]
fn a_gzip_bomb_stops_at_the_limit() {
    // 64 MiB of zeros compress to about 64 KiB; the limit is 8 MiB.
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::best()));
    let mut header = tar::Header::new_gnu();
    header.set_size(64 << 20);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "zeros.bin", io::repeat(0).take(64 << 20))
        .unwrap();
    let bomb = builder.into_inner().unwrap().finish().unwrap();
    assert!(
        bomb.len() < 1 << 20,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let limits = UnpackLimits {
        max_unpacked_bytes: 8 << 20,
        ..UnpackLimits::default()
    };
    let error = refused(&bomb, &limits);
    assert!(error.contains("more than 8388608 bytes"), "{error}");
}

#[test]
fn too_many_entries_and_garbage_are_refused_with_what_to_do() {
    let many = archive(|b| {
        for i in 0..20 {
            raw(
                b,
                format!("f{i}").as_bytes(),
                tar::EntryType::Regular,
                b"",
                b"",
                0o644,
            );
        }
    });
    let limits = UnpackLimits {
        max_entries: 10,
        ..UnpackLimits::default()
    };
    assert!(refused(&many, &limits).contains("more than 10 entries"));
    let error = refused(b"PK\x03\x04 this is a zip", &UnpackLimits::default());
    assert!(error.contains("not a gzip-compressed tar"), "{error}");
    let truncated = archive(|b| raw(b, b"big", tar::EntryType::Regular, b"", &[1u8; 5000], 0o644));
    let error = refused(&truncated[..truncated.len() / 2], &UnpackLimits::default());
    assert!(error.contains("not a gzip-compressed tar"), "{error}");
}

#[test]
fn pack_refuses_what_unpack_would_before_anything_is_uploaded() {
    let source = tempfile::tempdir().unwrap();
    let s = source.path();
    fs::write(s.join("submission.toml"), "name = \"team\"\n").unwrap();
    symlink("/etc/passwd", s.join("secrets")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let error = pack(s, &scratch.path().join("a.tar.gz")).unwrap_err().0;
    assert!(
        error.contains("the link secrets points to an absolute path"),
        "{error}"
    );
    let empty = tempfile::tempdir().unwrap();
    let error = pack(empty.path(), &scratch.path().join("b.tar.gz"))
        .unwrap_err()
        .0;
    assert!(error.contains("has no submission.toml"), "{error}");
}

#[test]
fn an_existing_destination_is_never_touched() {
    let scratch = tempfile::tempdir().unwrap();
    let destination = scratch.path().join("kept");
    fs::create_dir(&destination).unwrap();
    fs::write(destination.join("precious"), "x").unwrap();
    let error = unpack(&archive(|_| {})[..], &destination, &UnpackLimits::default()).unwrap_err();
    assert!(error.0.contains("already exists"), "{error}");
    assert!(destination.join("precious").exists());
}
