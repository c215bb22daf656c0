//! The published flag set: one Redis hash, written by one Lua script so the document, its etag,
//! its `lastModified` and its version change together, and a channel that announces it.
//!
//! `{prefix}set` holds `version`, `etag`, `lastModified`, `flags` (the canonical JSON of the
//! definitions, whose content hash is the etag), `publishedBy` and `format`.

use std::collections::BTreeMap;

use redis::Script;

use super::redis::Redis;
use crate::parse::{self, FlagDef, Format};
use crate::refresh::Published;
use crate::snapshot::{Snapshot, content_hash};

/// The document format this relay writes and reads.
const FORMAT: &str = "1";

/// Publish unless the etag is already the published one; the new version is one above the
/// highest of: the published version, the publisher's own (`ARGV[4]`), and every version a
/// replica reports serving. So a Redis that lost its data (restarted without persistence) is
/// never told a version lower than one a replica serves, and no replica refuses the set.
/// `ARGV[7]` = 1 publishes even an unchanged etag (its version is below the publisher's).
const PUBLISH: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'etag', 'version', 'lastModified')
if cur[1] == ARGV[1] and ARGV[7] ~= '1' then
  return {0, tonumber(cur[2]) or 0, tonumber(cur[3]) or 0}
end
local v = tonumber(cur[2]) or 0
local floor = tonumber(ARGV[4]) or 0
if floor > v then v = floor end
for _, s in ipairs(redis.call('HVALS', KEYS[3])) do
  local n = tonumber(s)
  if n and n > v then v = n end
end
v = v + 1
redis.call('HSET', KEYS[1], 'version', string.format('%d', v), 'etag', ARGV[1],
  'lastModified', ARGV[2], 'flags', ARGV[3], 'publishedBy', ARGV[5], 'format', ARGV[6])
redis.call('PUBLISH', KEYS[2], string.format('%d', v))
return {1, v, tonumber(ARGV[2])}
";

/// Redis keys and channel of one fleet. The name is a hash tag (`{…}`), so every key of a fleet
/// lands in one slot of a Redis Cluster and the scripts may touch them together.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) set: String,
    pub(crate) changes: String,
    pub(crate) lease: String,
    pub(crate) alive: String,
    pub(crate) serving: String,
}

impl Keys {
    pub(crate) fn new(name: &str) -> Keys {
        let p = format!("flagrelay:{{{name}}}:");
        Keys {
            set: format!("{p}set"),
            changes: format!("{p}changes"),
            lease: format!("{p}lease"),
            alive: format!("{p}alive"),
            serving: format!("{p}serving"),
        }
    }
}

/// What publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) published: Published,
    /// This call wrote a new version (false: the etag was already published).
    pub(crate) wrote: bool,
}

pub(crate) async fn publish(
    redis: &Redis,
    keys: &Keys,
    snapshot: &Snapshot,
    floor: u64,
    me: &str,
    force: bool,
) -> Result<Outcome, String> {
    let flags = snapshot.flags_json().to_owned();
    let script = Script::new(PUBLISH);
    let (wrote, version, last_modified): (u8, u64, u64) = redis
        .run(|mut c| async move {
            script
                .key(&keys.set)
                .key(&keys.changes)
                .key(&keys.serving)
                .arg(&snapshot.etag)
                .arg(snapshot.last_modified)
                .arg(flags)
                .arg(floor)
                .arg(me)
                .arg(FORMAT)
                .arg(if force { "1" } else { "0" })
                .invoke_async(&mut c)
                .await
        })
        .await?;
    Ok(Outcome {
        published: Published {
            version,
            last_modified,
        },
        wrote: wrote == 1,
    })
}

/// The published version (0 when nothing is published), cheap enough to poll.
pub(crate) async fn version(redis: &Redis, keys: &Keys) -> Result<u64, String> {
    let v: Option<String> = redis
        .run(|mut c| async move {
            redis::cmd("HGET")
                .arg(&keys.set)
                .arg("version")
                .query_async(&mut c)
                .await
        })
        .await?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// A published set read back.
pub(crate) struct Loaded {
    pub(crate) version: u64,
    pub(crate) etag: String,
    pub(crate) last_modified: u64,
    pub(crate) flags: BTreeMap<String, FlagDef>,
}

/// Why a published set could not be used. Names the key, never the connection's credentials.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("fleet Redis: {0}")]
    Redis(String),
    #[error("published flag set {key}: {message}")]
    Invalid { key: String, message: String },
}

/// Read the published set; `Ok(None)` when there is none.
pub(crate) async fn load(redis: &Redis, keys: &Keys) -> Result<Option<Loaded>, LoadError> {
    let fields: Vec<Option<Vec<u8>>> = redis
        .run(|mut c| async move {
            redis::cmd("HMGET")
                .arg(&keys.set)
                .arg(&["version", "etag", "lastModified", "flags", "format"])
                .query_async(&mut c)
                .await
        })
        .await
        .map_err(LoadError::Redis)?;
    decode(&keys.set, fields)
}

fn decode(key: &str, fields: Vec<Option<Vec<u8>>>) -> Result<Option<Loaded>, LoadError> {
    let invalid = |message: String| LoadError::Invalid {
        key: key.to_owned(),
        message,
    };
    if fields.iter().all(Option::is_none) {
        return Ok(None);
    }
    let text = |i: usize, name: &str| -> Result<String, LoadError> {
        let bytes = fields
            .get(i)
            .cloned()
            .flatten()
            .ok_or_else(|| invalid(format!("field {name:?} is missing")))?;
        String::from_utf8(bytes).map_err(|_| invalid(format!("field {name:?} is not UTF-8")))
    };
    let number = |i: usize, name: &str| -> Result<u64, LoadError> {
        text(i, name)?
            .parse()
            .map_err(|_| invalid(format!("field {name:?} is not a whole number")))
    };
    let format = text(4, "format")?;
    if format != FORMAT {
        return Err(invalid(format!(
            "format {format:?} is not one this relay reads ({FORMAT:?})"
        )));
    }
    let version = number(0, "version")?;
    let etag = text(1, "etag")?;
    let last_modified = number(2, "lastModified")?;
    let flags_json = text(3, "flags")?;
    let doc = parse::parse_document(key, flags_json.as_bytes(), Some(Format::Json))
        .map_err(|e| invalid(format!("field \"flags\": {e}")))?;
    let flags: BTreeMap<String, FlagDef> = doc.flags.into_iter().collect();
    let actual = content_hash(&flags);
    if actual != etag {
        return Err(invalid(format!(
            "the flags do not match the etag (published {etag}, computed {actual})"
        )));
    }
    Ok(Some(Loaded {
        version,
        etag,
        last_modified,
        flags,
    }))
}

impl Loaded {
    /// Build the snapshot every replica serves for this version.
    pub(crate) fn build(self, salt: Option<&str>) -> Snapshot {
        let mut s = Snapshot::build(self.flags, salt);
        s.last_modified = self.last_modified;
        s.fleet_version = Some(self.version);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: &[Option<&str>]) -> Vec<Option<Vec<u8>>> {
        v.iter().map(|f| f.map(|s| s.as_bytes().to_vec())).collect()
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("checkout");
        assert_eq!(k.set, "flagrelay:{checkout}:set");
        assert_eq!(k.lease, "flagrelay:{checkout}:lease");
    }

    #[test]
    fn decode_checks_the_etag_and_names_the_key() {
        let flags = r#"{"a":{"enabled":true}}"#;
        let good = parse::parse_document("t", flags.as_bytes(), Some(Format::Json)).unwrap();
        let etag = content_hash(&good.flags.into_iter().collect());
        let ok = decode(
            "k",
            fields(&[Some("3"), Some(&etag), Some("100"), Some(flags), Some("1")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!((ok.version, ok.last_modified), (3, 100));
        assert!(
            decode("k", fields(&[None, None, None, None, None]))
                .unwrap()
                .is_none()
        );
        let e = decode(
            "flagrelay:{x}:set",
            fields(&[Some("3"), Some("bad"), Some("100"), Some(flags), Some("1")]),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("flagrelay:{x}:set") && e.contains("etag"), "{e}");
        let e = decode(
            "k",
            fields(&[
                Some("3"),
                Some(&etag),
                Some("100"),
                Some("{not json"),
                Some("1"),
            ]),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("\"flags\""), "{e}");
        let e = decode(
            "k",
            fields(&[Some("x"), Some(&etag), Some("1"), Some(flags), Some("1")]),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("\"version\""), "{e}");
        let e = decode(
            "k",
            fields(&[Some("1"), Some(&etag), Some("1"), Some(flags), Some("9")]),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("format"), "{e}");
    }
}
