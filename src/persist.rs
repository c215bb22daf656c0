//! The persisted snapshot (`persistentFlagConfigurationFile`): the last good merged flag set,
//! saved after every change and read back at start when the retrievers fail, so a restart
//! during an upstream outage still serves.
//!
//! The file is the relay's own envelope: `{"flagrelaySnapshot": 1, "etag", "savedAt", "flags"}`.
//! The etag is the content hash of `flags`, checked on load: a truncated or edited file is
//! rejected whole, never served half. A plain flag document (what `flagrelay export` writes) is
//! accepted too, validated like any source.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::parse::{self, FlagDef, Format};
use crate::snapshot::{Snapshot, content_hash};

const VERSION: u32 = 1;

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    #[serde(rename = "flagrelaySnapshot")]
    version: u32,
    etag: &'a str,
    #[serde(rename = "savedAt")]
    saved_at: u64,
    /// The snapshot's canonical flag set as it is (the etag is its hash).
    flags: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeIn {
    #[serde(rename = "flagrelaySnapshot")]
    version: u32,
    etag: String,
    #[serde(rename = "savedAt")]
    #[allow(dead_code)]
    saved_at: u64,
    flags: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PersistError {
    #[error("persisted snapshot {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("persisted snapshot {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Write `snapshot` to `path` atomically: a temp file in the same directory, fsynced, then
/// renamed over the old one, so a crash or a full disk leaves the previous file intact.
pub(crate) fn save(path: &Path, snapshot: &Snapshot) -> Result<(), PersistError> {
    let io = |source| PersistError::Io {
        path: path.to_owned(),
        source,
    };
    let flags = serde_json::value::RawValue::from_string(snapshot.flags_json().to_owned())
        .map_err(|e| io(std::io::Error::other(e)))?;
    let body = serde_json::to_vec(&EnvelopeOut {
        version: VERSION,
        etag: &snapshot.etag,
        saved_at: snapshot.loaded_at_unix(),
        flags: &flags,
    })
    .map_err(|e| io(std::io::Error::other(e)))?;
    write_atomically(path, &body).map_err(io)
}

/// Write `bytes` to `path` through a temp file and a rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Read a persisted snapshot (or a plain flag document) back, fully validated.
pub(crate) fn load(path: &Path) -> Result<BTreeMap<String, FlagDef>, PersistError> {
    let bytes = std::fs::read(path).map_err(|source| PersistError::Io {
        path: path.to_owned(),
        source,
    })?;
    from_bytes(path, &bytes)
}

fn from_bytes(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, FlagDef>, PersistError> {
    let invalid = |message: String| PersistError::Invalid {
        path: path.to_owned(),
        message,
    };
    let name = path.display().to_string();
    let is_envelope = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .is_some_and(|v| v.get("flagrelaySnapshot").is_some());
    if !is_envelope {
        let doc = parse::parse_document(&name, bytes, None).map_err(|e| invalid(e.to_string()))?;
        return Ok(doc.flags.into_iter().collect());
    }
    let env: EnvelopeIn =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a snapshot: {e}")))?;
    if env.version != VERSION {
        return Err(invalid(format!(
            "unsupported snapshot version {}",
            env.version
        )));
    }
    let flags_json = serde_json::to_vec(&env.flags).map_err(|e| invalid(e.to_string()))?;
    let doc = parse::parse_document(&name, &flags_json, Some(Format::Json))
        .map_err(|e| invalid(e.to_string()))?;
    let flags: BTreeMap<String, FlagDef> = doc.flags.into_iter().collect();
    let actual = content_hash(&flags);
    if actual != env.etag {
        return Err(invalid(format!(
            "content does not match its etag (saved {}, computed {actual}): the file is corrupt",
            env.etag
        )));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(text: &str) -> Snapshot {
        let flags = parse::parse_document("t", text.as_bytes(), None)
            .unwrap()
            .flags;
        Snapshot::build(flags.into_iter().collect(), None)
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("snap.json");
        let s = snapshot("a: {enabled: true, rollout: 30, value: {on: 1.5, off: 0.0}}\n");
        save(&p, &s).unwrap();
        let back = load(&p).unwrap();
        assert_eq!(Snapshot::build(back, None).etag, s.etag);
    }

    #[test]
    fn truncated_or_edited_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("snap.json");
        save(&p, &snapshot("a: {enabled: true}\nb: {rollout: 3}\n")).unwrap();
        let good = std::fs::read(&p).unwrap();
        for cut in [good.len() / 2, good.len() - 1, 1] {
            std::fs::write(&p, &good[..cut]).unwrap();
            assert!(load(&p).is_err(), "cut at {cut} accepted");
        }
        let edited = String::from_utf8(good)
            .unwrap()
            .replace("\"rollout\":3", "\"rollout\":4");
        std::fs::write(&p, edited).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
    }

    #[test]
    fn plain_documents_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("export.json");
        std::fs::write(&p, r#"{"a": {"enabled": true}}"#).unwrap();
        assert!(load(&p).unwrap()["a"].enabled);
    }

    #[test]
    fn saving_into_a_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/snap.json");
        assert!(save(&p, &snapshot("a: {}\n")).is_err());
    }
}
