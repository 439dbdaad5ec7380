//! A team's `image_archive` (the output of `docker save`, gzip allowed), made safe to load
//! into an engine that other teams share.
//!
//! `docker load` applies every name an archive carries: an archive that also carries the tag
//! of another team's image (`victim/model:1`) would move that tag to the attacker's image, and
//! the victim's cases would run the attacker's code. So podium rewrites the archive without
//! any name (`RepoTags` of `manifest.json`, the legacy `repositories` file, and the OCI
//! `index.json` name annotations), loads that, and runs the image by the id its own manifest
//! names: the digest of its configuration, which no later load can change.

use std::io::Read;
use std::path::Path;

/// The rewritten archive and what its manifest said.
pub struct Untagged {
    /// The archive without names, ready to stream to the engine.
    pub tar: std::fs::File,
    /// `sha256:<hex>`: the image id the engine will give the loaded image.
    pub image_id: String,
    /// The first name the archive carried, shown in the receipt only.
    pub claimed_name: Option<String>,
}

/// The largest `manifest.json` or `index.json` read into memory.
const MAX_METADATA_BYTES: u64 = 16 << 20;

const NAME_ANNOTATIONS: [&str; 2] = [
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
];

pub fn untag(path: &Path) -> Result<Untagged, String> {
    let shown = path.display();
    let mut file = std::fs::File::open(path)
        .map_err(|e| format!("cannot open the image archive {shown}: {e}"))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).unwrap_or(0);
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let stream = head.chain(file);
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(stream))
    } else {
        Box::new(stream)
    };
    let not_saved = |e: std::io::Error| {
        format!("{shown} is not a `docker save` archive (tar, gzip allowed): {e}")
    };
    let out = tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))?;
    let mut builder = tar::Builder::new(out);
    let mut archive = tar::Archive::new(reader);
    let mut config = None;
    let mut claimed_name = None;
    for entry in archive.entries().map_err(not_saved)? {
        let mut entry = entry.map_err(not_saved)?;
        let name = entry
            .path()
            .map_err(not_saved)?
            .to_string_lossy()
            .into_owned();
        let mut header = entry.header().clone();
        match name.trim_start_matches("./") {
            "repositories" => continue,
            "manifest.json" => {
                let mut manifest: serde_json::Value = read_json(&mut entry, &name, path)?;
                let images = manifest
                    .as_array_mut()
                    .ok_or_else(|| format!("{shown}: manifest.json is not a list of images"))?;
                if images.len() != 1 {
                    return Err(format!(
                        "{shown} holds {} images; save exactly one (`docker save <image>`)",
                        images.len()
                    ));
                }
                let image = &mut images[0];
                claimed_name = image["RepoTags"][0].as_str().map(str::to_string);
                config = image["Config"].as_str().map(str::to_string);
                image["RepoTags"] = serde_json::Value::Null;
                append_json(&mut builder, &mut header, &name, &manifest)?;
            }
            "index.json" => {
                let mut index: serde_json::Value = read_json(&mut entry, &name, path)?;
                for manifest in index["manifests"].as_array_mut().into_iter().flatten() {
                    if let Some(annotations) = manifest["annotations"].as_object_mut() {
                        for key in NAME_ANNOTATIONS {
                            annotations.remove(key);
                        }
                    }
                }
                append_json(&mut builder, &mut header, &name, &index)?;
            }
            _ => {
                let written =
                    if header.entry_type().is_symlink() || header.entry_type().is_hard_link() {
                        let target = entry
                            .link_name()
                            .map_err(not_saved)?
                            .ok_or_else(|| format!("{shown}: link {name} has no target"))?
                            .into_owned();
                        builder.append_link(&mut header, &name, target)
                    } else {
                        builder.append_data(&mut header, &name, &mut entry)
                    };
                written.map_err(|e| format!("cannot copy {shown}: {e}"))?;
            }
        }
    }
    let config = config.ok_or_else(|| {
        format!("{shown} has no manifest.json naming the image's configuration; make it with `docker save <image>`")
    })?;
    let image_id = image_id_of(&config).ok_or_else(|| {
        format!("{shown}: manifest.json names an unexpected configuration {config:?}")
    })?;
    let mut tar = builder
        .into_inner()
        .map_err(|e| format!("cannot write the rewritten archive: {e}"))?;
    use std::io::Seek;
    tar.rewind()
        .map_err(|e| format!("cannot read the rewritten archive: {e}"))?;
    Ok(Untagged {
        tar,
        image_id,
        claimed_name,
    })
}

/// `sha256:<hex>` from a manifest's `Config`: `blobs/sha256/<hex>` (OCI layout, Docker 25 and
/// later) or `<hex>.json` (earlier engines).
fn image_id_of(config: &str) -> Option<String> {
    let hex = config
        .strip_prefix("blobs/sha256/")
        .or_else(|| config.strip_suffix(".json"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

fn read_json(
    entry: &mut impl Read,
    name: &str,
    archive: &Path,
) -> Result<serde_json::Value, String> {
    let mut text = Vec::new();
    entry
        .take(MAX_METADATA_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read {name} of {}: {e}", archive.display()))?;
    serde_json::from_slice(&text)
        .map_err(|e| format!("{name} of {} is not JSON: {e}", archive.display()))
}

fn append_json(
    builder: &mut tar::Builder<std::fs::File>,
    header: &mut tar::Header,
    name: &str,
    value: &serde_json::Value,
) -> Result<(), String> {
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    header.set_size(bytes.len() as u64);
    builder
        .append_data(header, name, bytes.as_slice())
        .map_err(|e| format!("cannot write {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_configuration_digest() {
        let hex = "ab".repeat(32);
        assert_eq!(
            image_id_of(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            image_id_of(&format!("{hex}.json")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(image_id_of("../../etc/passwd.json"), None);
    }

    #[test]
    fn names_are_removed_and_everything_else_kept() {
        let hex = "cd".repeat(32);
        let manifest = format!(
            r#"[{{"Config":"{hex}.json","RepoTags":["victim/model:1"],"Layers":["l/layer.tar"]}}]"#
        );
        let mut builder = tar::Builder::new(Vec::new());
        for (name, body) in [
            ("manifest.json", manifest.as_bytes()),
            ("repositories", br#"{"victim/model":{"1":"x"}}"#.as_slice()),
            ("l/layer.tar", b"layer bytes".as_slice()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, body).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.tar");
        std::fs::write(&path, builder.into_inner().unwrap()).unwrap();

        let untagged = untag(&path).unwrap();
        assert_eq!(untagged.image_id, format!("sha256:{hex}"));
        assert_eq!(untagged.claimed_name.as_deref(), Some("victim/model:1"));
        let mut archive = tar::Archive::new(untagged.tar);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut body = String::new();
            entry.read_to_string(&mut body).unwrap();
            if name == "manifest.json" {
                assert!(!body.contains("victim"), "{body}");
            }
            seen.push((name, body));
        }
        assert_eq!(seen.len(), 2, "repositories is dropped: {seen:?}");
        assert_eq!(
            seen[1],
            ("l/layer.tar".to_string(), "layer bytes".to_string())
        );
    }
}
