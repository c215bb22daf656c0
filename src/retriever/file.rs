//! `kind: file`: a flag document on the local filesystem.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncReadExt;

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
    pub fn new(cfg: &RetrieverConfig) -> Self {
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

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Reads the whole file every time: the refresh step skips parsing when the bytes hash the
    /// same as the last good document, so an unchanged file costs one read.
    pub async fn fetch(&self, _since: &Validators) -> Result<Fetched, RetrieverError> {
        match tokio::time::timeout(self.timeout, self.read()).await {
            Ok(result) => result,
            Err(_) => Err(RetrieverError::Timeout {
                source_name: self.source.clone(),
                after: self.timeout,
            }),
        }
    }

    async fn read(&self) -> Result<Fetched, RetrieverError> {
        let io = |e: std::io::Error| RetrieverError::Io {
            source_name: self.source.clone(),
            message: e.to_string(),
        };
        let file = tokio::fs::File::open(&self.path).await.map_err(io)?;
        // The mtime is the document's `lastModified` (the same on every relay reading it).
        let modified = file.metadata().await.ok().and_then(|m| m.modified().ok());
        // Read one byte past the limit to tell "exactly maxBytes" from "more than maxBytes".
        let mut buf = Vec::new();
        file.take(self.max_bytes + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(io)?;
        if buf.len() as u64 > self.max_bytes {
            return Err(RetrieverError::TooLarge {
                source_name: self.source.clone(),
                limit: self.max_bytes,
            });
        }
        let validators = Validators {
            etag: None,
            last_modified: modified.map(httpdate::fmt_http_date),
        };
        super::changed(&self.source, buf.into(), self.format, validators)
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
}
