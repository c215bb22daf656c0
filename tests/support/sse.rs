//! A minimal Server-Sent Events reader for tests.

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
