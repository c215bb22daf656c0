//! Server-Sent Events readers for tests: parsed events, or the raw text to the stream's end.

use std::time::Duration;

use futures_util::StreamExt;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

pub struct SseReader {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    pub fn new(res: reqwest::Response) -> SseReader {
        SseReader {
            stream: res.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ends or `timeout` passes.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    let mut ev = SseEvent {
                        event: "message".into(),
                        ..Default::default()
                    };
                    let mut any = false;
                    for line in block.lines() {
                        if line.starts_with(':') || line.is_empty() {
                            continue;
                        }
                        let (k, v) = line.split_once(':').unwrap_or((line, ""));
                        let v = v.strip_prefix(' ').unwrap_or(v);
                        match k {
                            "event" => ev.event = v.into(),
                            "id" => ev.id = Some(v.into()),
                            "data" => {
                                // As in the WHATWG parser: only a block with data is an event
                                // (a lone `retry:` is a setting, not an event).
                                any = true;
                                if !ev.data.is_empty() {
                                    ev.data.push('\n');
                                }
                                ev.data.push_str(v);
                            }
                            _ => {}
                        }
                    }
                    if any {
                        return Some(ev);
                    }
                    continue;
                }
                match self.stream.next().await {
                    Some(Ok(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                    _ => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// True when the server closed the stream within `timeout`.
    pub async fn ended(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await
        .is_ok()
    }
}

/// An event stream read as raw text, so that a clean end (the final chunk) can be told apart
/// from a broken connection, which [`SseReader::ended`] does not do.
pub struct RawSse {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    pub text: String,
}

impl RawSse {
    pub fn new(res: reqwest::Response) -> RawSse {
        RawSse {
            stream: res.bytes_stream().boxed(),
            text: String::new(),
        }
    }

    /// Wait until the text read so far contains `needle`.
    pub async fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            while !self.text.contains(needle) {
                match self.stream.next().await {
                    Some(Ok(b)) => self.text.push_str(&String::from_utf8_lossy(&b)),
                    _ => return false,
                }
            }
            true
        })
        .await
        .unwrap_or(false)
    }

    /// Read to the end: `Ok` when the server ended the stream cleanly, `Err` when the
    /// connection broke or `timeout` passed first.
    pub async fn until_end(&mut self, timeout: Duration) -> Result<(), String> {
        tokio::time::timeout(timeout, async {
            while let Some(chunk) = self.stream.next().await {
                match chunk {
                    Ok(b) => self.text.push_str(&String::from_utf8_lossy(&b)),
                    Err(e) => return Err(format!("stream broke: {}", error_chain(&e))),
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| "stream still open".to_string())?
    }
}

/// An error and its sources, `: `-separated (reqwest's own message hides the cause).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        s.push_str(": ");
        s.push_str(&c.to_string());
        next = c.source();
    }
    s
}
