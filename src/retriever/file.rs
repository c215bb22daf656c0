//! `kind: file`: a flag document on the local filesystem.

use std::path::PathBuf;
use std::time::Duration;

use super::{Fetched, RetrieverError, Validators, format_for};
use crate::config::RetrieverConfig;
use crate::parse::Format;

#[derive(Debug)]
pub struct FileRetriever {
    path: PathBuf,
    source: String,
    format: Option<Format>,
    max_bytes: u64,
    timeout: Duration,
}

impl FileRetriever {
    pub(crate) fn new(cfg: &RetrieverConfig) -> Self {
        let path = cfg.path.clone().unwrap_or_default();
        let source = path.display().to_string();
        FileRetriever {
            format: format_for(cfg, &source),
            source,
            path,
            max_bytes: cfg.max_bytes,
            timeout: cfg.timeout.duration().unwrap_or(Duration::from_secs(10)),
        }
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Reads the file unless `since` names the version it still is (see [`Stamp::token`]); the
    /// refresh step then skips parsing when the bytes hash the same as the last good document.
    /// Not reading saves the poll its buffer: 10-20 ms of CPU and a document's worth of pages
    /// made resident again for a 13 MB file (BENCHMARKS.md, "RSS after refreshes").
    pub(crate) async fn fetch(&self, since: &Validators) -> Result<Fetched, RetrieverError> {
        super::within(&self.source, self.timeout, async {
            if let Some(token) = &since.etag
                && self
                    .stamp_now()
                    .await
                    .is_some_and(|now| now.token().as_ref() == Some(token))
            {
                return Ok(Fetched::NotModified);
            }
            self.read().await
        })
        .await
    }

    /// A file written in place can be read half-written, and a half that still parses (`rollout:
    /// 1` of `rollout: 100`) would be served. So a read counts only when the file did not change
    /// while it was read and, if it was modified within [`SETTLE`], stayed the same (size,
    /// modification time, identity) for [`SETTLE`] after (a quarter of `timeout` if shorter).
    async fn read(&self) -> Result<Fetched, RetrieverError> {
        // Within a short retriever timeout, a shorter settle period.
        let settle = SETTLE.min(self.timeout / 4);
        for _ in 0..SETTLE_ATTEMPTS {
            let (buf, stamp) = match self.read_once().await? {
                Some((buf, stamp)) if stamp.unsettled_for(settle).is_zero() => (buf, stamp),
                Some((buf, stamp)) => {
                    tokio::time::sleep(stamp.unsettled_for(settle)).await;
                    match self.stamp_now().await {
                        Some(now) if now == stamp => (buf, stamp),
                        _ => continue,
                    }
                }
                None => {
                    tokio::time::sleep(settle).await;
                    continue;
                }
            };
            // The mtime is the document's `lastModified` (the same on every relay reading it).
            let validators = Validators {
                etag: stamp.token(),
                last_modified: stamp.mtime.map(httpdate::fmt_http_date),
            };
            return super::changed(&self.source, buf.into(), self.format, validators);
        }
        Err(RetrieverError::Io {
            source_name: self.source.clone(),
            message: format!(
                "the file is still being written (it kept changing for {} reads {}ms apart); \
                 write it atomically (to a temporary file, then rename)",
                SETTLE_ATTEMPTS,
                settle.as_millis()
            ),
        })
    }

    async fn stamp_now(&self) -> Option<Stamp> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || std::fs::metadata(&path).ok().map(|m| Stamp::of(&m)))
            .await
            .ok()
            .flatten()
    }

    /// One read; `None` when the file changed while it was read.
    async fn read_once(&self) -> Result<Option<(Vec<u8>, Stamp)>, RetrieverError> {
        let (path, max_bytes) = (self.path.clone(), self.max_bytes);
        // One blocking thread per fetch at most, and it never waits on a writer: opening is
        // non-blocking and only a regular file is read.
        let read = tokio::task::spawn_blocking(move || read_regular(&path, max_bytes))
            .await
            .map_err(|e| ReadError::Io(std::io::Error::other(e.to_string())));
        match read.and_then(|r| r) {
            Ok((buf, before, after)) => Ok((before == after).then_some((buf, after))),
            Err(ReadError::TooLarge) => Err(RetrieverError::TooLarge {
                source_name: self.source.clone(),
                limit: self.max_bytes,
            }),
            Err(ReadError::NotRegular(what)) => Err(RetrieverError::Io {
                source_name: self.source.clone(),
                message: format!("not a regular file ({what}); refusing to read it"),
            }),
            Err(ReadError::Io(e)) => Err(RetrieverError::Io {
                source_name: self.source.clone(),
                message: e.to_string(),
            }),
        }
    }
}

/// How long a recently modified file must stay unchanged before it is served.
const SETTLE: Duration = Duration::from_millis(300);
const SETTLE_ATTEMPTS: usize = 10;
/// How old a file's modification time must be for its stamp to stand for its content.
const TRUSTED_AGE: Duration = Duration::from_secs(2);

/// What identifies one version of a file: device, inode, size, modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<std::time::SystemTime>,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        Stamp {
            dev,
            ino,
            len: m.len(),
            mtime: m.modified().ok(),
        }
    }

    /// The version's token for the next poll's `since`, when the stamp alone can tell a later
    /// write from it: its modification time is [`TRUSTED_AGE`] old, so a write from now on gets
    /// another time even where timestamps tick in whole seconds (2 s on FAT). `None` for a file
    /// modified since, which the next poll reads again.
    fn token(&self) -> Option<String> {
        let mtime = self.mtime?;
        let age = mtime.elapsed().ok()?;
        let since_epoch = mtime.duration_since(std::time::UNIX_EPOCH).ok()?;
        (age >= TRUSTED_AGE).then(|| {
            format!(
                "{}:{}:{}:{}",
                self.dev,
                self.ino,
                self.len,
                since_epoch.as_nanos()
            )
        })
    }

    /// How long until the file was last modified `settle` ago: zero once it was (a time in
    /// the future, or none, counts as just now).
    fn unsettled_for(&self, settle: Duration) -> Duration {
        let age = self
            .mtime
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        settle.saturating_sub(age)
    }
}

enum ReadError {
    Io(std::io::Error),
    TooLarge,
    NotRegular(&'static str),
}

/// Open without blocking (a FIFO or a device at the path would otherwise hold the thread until
/// a writer appears), refuse anything but a regular file, and read at most `max_bytes`.
fn read_regular(
    path: &std::path::Path,
    max_bytes: u64,
) -> Result<(Vec<u8>, Stamp, Stamp), ReadError> {
    use std::io::Read;
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        const O_NONBLOCK: i32 = 0o4000;
        open.custom_flags(O_NONBLOCK);
    }
    let file = open.open(path).map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    let ty = meta.file_type();
    if !ty.is_file() {
        return Err(ReadError::NotRegular(file_type_name(&ty)));
    }
    // Read one byte past the limit to tell "exactly maxBytes" from "more than maxBytes".
    // Sized from the metadata: one allocation, not a dozen as a buffer grown by doubling
    // copies what it holds each time (a 13 MB document is read on every poll).
    let expected = meta.len().min(max_bytes).saturating_add(1);
    let mut buf = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    (&file)
        .take(max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge);
    }
    let after = file.metadata().map_err(ReadError::Io)?;
    Ok((buf, Stamp::of(&meta), Stamp::of(&after)))
}

fn file_type_name(ty: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ty.is_fifo() {
            return "a FIFO";
        }
        if ty.is_socket() {
            return "a socket";
        }
        if ty.is_char_device() || ty.is_block_device() {
            return "a device";
        }
    }
    if ty.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retriever(path: &std::path::Path, max_bytes: u64) -> FileRetriever {
        let mut cfg = RetrieverConfig::file(path);
        cfg.max_bytes = max_bytes;
        FileRetriever::new(&cfg)
    }

    #[tokio::test]
    async fn reads_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flags.yaml");
        std::fs::write(&p, "a: {enabled: true}\n").unwrap();
        let Fetched::Changed(doc) = retriever(&p, 1024)
            .fetch(&Default::default())
            .await
            .unwrap()
        else {
            panic!("a file is always read")
        };
        assert_eq!(&doc.bytes[..], b"a: {enabled: true}\n");
        assert_eq!(doc.format, Some(Format::Yaml));

        let e = retriever(&p, 5)
            .fetch(&Default::default())
            .await
            .unwrap_err();
        assert!(matches!(e, RetrieverError::TooLarge { .. }), "{e}");

        std::fs::write(&p, "").unwrap();
        let e = retriever(&p, 1024)
            .fetch(&Default::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");

        let e = retriever(&dir.path().join("missing.yaml"), 1024)
            .fetch(&Default::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("missing.yaml"), "{e}");
    }

    fn read_now(fetched: Fetched) -> Validators {
        match fetched {
            Fetched::Changed(doc) => doc.validators,
            Fetched::NotModified => panic!("not read"),
        }
    }

    #[tokio::test]
    async fn a_file_old_enough_is_not_read_again_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flags.yaml");
        let r = retriever(&p, 1024);
        let age = |secs| std::time::SystemTime::now() - Duration::from_secs(secs);
        let set_mtime = |t| {
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(t).unwrap();
        };
        // Just written: read on every poll (its stamp cannot yet tell a write in the same
        // timestamp tick from it).
        std::fs::write(&p, "a: {enabled: true}\n").unwrap();
        set_mtime(age(0));
        let v = read_now(r.fetch(&Default::default()).await.unwrap());
        assert_eq!(v.etag, None);
        assert!(matches!(r.fetch(&v).await.unwrap(), Fetched::Changed(_)));

        // Older than TRUSTED_AGE: its version is a token, and a poll that finds it is not a read.
        set_mtime(age(10));
        let v = read_now(r.fetch(&Default::default()).await.unwrap());
        assert!(v.etag.is_some());
        assert!(matches!(r.fetch(&v).await.unwrap(), Fetched::NotModified));

        // Rewritten in place, same size: a new modification time, so read.
        std::fs::write(&p, "a: {enabled: fals}\n").unwrap();
        let doc = match r.fetch(&v).await.unwrap() {
            Fetched::Changed(doc) => doc,
            Fetched::NotModified => panic!("a rewritten file was not read"),
        };
        assert_eq!(&doc.bytes[..], b"a: {enabled: fals}\n");
        // Replaced by rename with the same size and time: another inode, so read.
        let q = dir.path().join("next.yaml");
        std::fs::write(&q, "a: {enabled: true}\n").unwrap();
        std::fs::rename(&q, &p).unwrap();
        set_mtime(age(10));
        let v = read_now(r.fetch(&Default::default()).await.unwrap());
        std::fs::write(&q, "b: {enabled: true}\n").unwrap();
        let f = std::fs::File::options().write(true).open(&q).unwrap();
        f.set_modified(std::fs::metadata(&p).unwrap().modified().unwrap())
            .unwrap();
        std::fs::rename(&q, &p).unwrap();
        assert!(matches!(r.fetch(&v).await.unwrap(), Fetched::Changed(_)));
    }
}
