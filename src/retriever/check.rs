//! `flagrelay validate --source ENTRY`: fetch one source once and check what it serves,
//! without serving it. ENTRY is a retriever entry as the config file writes it, in YAML or
//! JSON flow style (`{kind: sql, url: "sqlite:///var/lib/app.db"}`), validated exactly as the
//! config is; credentials come from the environment as when serving.

use super::{Fetched, Retriever, Validators};
use crate::config::{self, RetrieverConfig};

/// Why a `--source` was not valid: a bad entry (exit code 2) or a source that failed or
/// served a bad document (exit code 1).
#[derive(Debug)]
pub(crate) enum CheckError {
    Settings(String),
    Source(Vec<String>),
}

/// Parse the entry with the config's own rules; errors name the key (`table: …`).
pub(crate) fn parse_entry(text: &str) -> Result<RetrieverConfig, CheckError> {
    let doc = format!("retrievers: [{text}]");
    config::parse_text("--source.yaml", &doc)
        .map(|mut c| c.retrievers.remove(0))
        .map_err(|e| {
            // Say `table`, not `retrievers[0].table`: there is one entry.
            let text = e.to_string().replace("retrievers[0].", "");
            CheckError::Settings(text.replace("config file --source.yaml: ", ""))
        })
}

/// Fetch once and parse; `Ok((source, flags))`.
pub(crate) async fn check(cfg: &RetrieverConfig) -> Result<(String, usize), CheckError> {
    let retriever = Retriever::from_config(cfg).map_err(|e| CheckError::Settings(e.to_string()))?;
    let source = retriever.source().to_owned();
    let doc = match retriever.fetch(&Validators::default()).await {
        Ok(Fetched::Changed(doc)) => doc,
        Ok(Fetched::NotModified) => {
            return Err(CheckError::Source(vec![format!(
                "{source}: answered \"not modified\" to an unconditional request"
            )]));
        }
        Err(e) => return Err(CheckError::Source(vec![e.to_string()])),
    };
    let kind = retriever.kind();
    let parsed = tokio::task::spawn_blocking(move || {
        super::parse_document(kind, &source, &doc.bytes, doc.format).map(|d| (source, d))
    })
    .await
    .map_err(|e| CheckError::Source(vec![format!("parser failed: {e}")]))?;
    match parsed {
        Ok((source, doc)) => Ok((source, doc.flags.len())),
        Err(e) => Err(CheckError::Source(
            e.errors.iter().map(ToString::to_string).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked_like_config() {
        let c = parse_entry("{kind: sql, url: 'sqlite:///x.db'}").unwrap();
        assert_eq!(c.kind, crate::config::RetrieverKind::Sql);
        let Err(CheckError::Settings(e)) =
            parse_entry("{kind: sql, url: 'sqlite:///x.db', table: 'a;b'}")
        else {
            panic!("a bad table is a settings error")
        };
        assert!(e.contains("`table`"), "{e}");
        assert!(matches!(
            parse_entry("{kind: nope}"),
            Err(CheckError::Settings(_))
        ));
    }
}
