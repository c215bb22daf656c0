//! A small HTTP/1.1 server on 127.0.0.1 for the http retriever tests, plain or TLS.
//!
//! Hand-written on a `TcpListener` rather than axum/hyper because the tests need to misbehave
//! in ways a correct server library will not: declare a Content-Length and send less, cut a
//! chunked body, never answer. One request per connection (`Connection: close`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client certificate chain presented over TLS (DER), if any.
    pub client_certs: usize,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// What to answer.
pub enum Reply {
    /// A complete response; Content-Length is the body's length.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Declare `declared` bytes, send `body` (shorter), close.
    Truncated { declared: usize, body: Vec<u8> },
    /// A chunked body; without `finish`, the connection closes before the final chunk.
    Chunked { chunks: Vec<Vec<u8>>, finish: bool },
    /// A chunked body that never ends, `chunk` bytes at a time. Records in
    /// [`Server::endless_written`] how much got out before the client hung up.
    Endless { chunk: usize },
    /// Neither Content-Length nor chunked: the body ends where the connection closes.
    CloseDelimited { body: Vec<u8> },
    /// Never answer; hold the connection open.
    Silent,
    /// Send the headers and `first` body bytes of a declared larger body, then stall.
    Stall { declared: usize, first: Vec<u8> },
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        Reply::status(200, body, headers)
    }

    pub fn status(status: u16, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        Reply::Full {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// What a [`Server::answering`] source answers every request: a status and a body.
#[derive(Clone)]
pub struct Answer(Arc<Mutex<(u16, String)>>);

impl Answer {
    /// Answer `status` and `body` from the next request on.
    pub fn set(&self, status: u16, body: &str) {
        *self.0.lock().unwrap() = (status, body.to_owned());
    }

    /// Answer `status`, the body unchanged.
    pub fn set_status(&self, status: u16) {
        self.0.lock().unwrap().0 = status;
    }
}

pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    endless_written: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// A plain HTTP server.
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        Server::start_inner(Arc::new(handler), None).await
    }

    /// A flag source on any path: 200 and `body` as `content_type` until the [`Answer`]
    /// changes.
    pub async fn answering(body: &str, content_type: &'static str) -> (Server, Answer) {
        let answer = Answer(Arc::new(Mutex::new((200, body.to_owned()))));
        let state = answer.clone();
        let server = Server::start(move |_| {
            let (status, body) = state.0.lock().unwrap().clone();
            Reply::status(status, body, &[("content-type", content_type)])
        })
        .await;
        (server, answer)
    }

    /// An HTTPS server with the given rustls configuration.
    pub async fn start_tls(
        tls: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        Server::start_inner(Arc::new(handler), Some(tls)).await
    }

    async fn start_inner(handler: Arc<Handler>, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let endless_written = Arc::new(Mutex::new(0));
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let (reqs, written) = (requests.clone(), endless_written.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, reqs, written) = (handler.clone(), reqs.clone(), written.clone());
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => serve(tcp, 0, &*handler, &reqs, &written).await,
                        Some(acceptor) => {
                            // A failed handshake (bad client certificate) just ends here.
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let certs = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .map_or(0, |c| c.len());
                                serve(stream, certs, &*handler, &reqs, &written).await;
                            }
                        }
                    }
                });
            }
        });
        Server {
            addr,
            requests,
            endless_written,
            task,
        }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn last_request(&self) -> Request {
        self.requests()
            .pop()
            .expect("no request reached the server")
    }

    pub fn endless_written(&self) -> u64 {
        *self.endless_written.lock().unwrap()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    client_certs: usize,
    handler: &Handler,
    requests: &Mutex<Vec<Request>>,
    endless_written: &Mutex<u64>,
) {
    let Some(mut req) = read_request(&mut s).await else {
        return;
    };
    req.client_certs = client_certs;
    requests.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    let _ = write_reply(&mut s, reply, endless_written).await;
    let _ = s.shutdown().await;
}

async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut byte).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut byte).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&byte[..n]);
    }
    Some(Request {
        method,
        target,
        headers,
        body,
        client_certs: 0,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

async fn write_reply<S: AsyncWrite + Unpin>(
    s: &mut S,
    reply: Reply,
    endless_written: &Mutex<u64>,
) -> std::io::Result<()> {
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\nConnection: close\r\n",
                reason(status)
            );
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            if status != 304 {
                head.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            head.push_str("\r\n");
            s.write_all(head.as_bytes()).await?;
            s.write_all(&body).await?;
        }
        Reply::Truncated { declared, body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {declared}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await?;
            s.write_all(&body).await?;
        }
        Reply::Chunked { chunks, finish } => {
            s.write_all(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await?;
            for c in chunks {
                s.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await?;
                s.write_all(&c).await?;
                s.write_all(b"\r\n").await?;
            }
            if finish {
                s.write_all(b"0\r\n\r\n").await?;
            }
        }
        Reply::Endless { chunk } => {
            s.write_all(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await?;
            let data = vec![b'#'; chunk];
            loop {
                s.write_all(format!("{chunk:x}\r\n").as_bytes()).await?;
                s.write_all(&data).await?;
                s.write_all(b"\r\n").await?;
                s.flush().await?;
                *endless_written.lock().unwrap() += chunk as u64;
            }
        }
        Reply::CloseDelimited { body } => {
            s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await?;
            s.write_all(&body).await?;
        }
        Reply::Silent => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Reply::Stall { declared, first } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {declared}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await?;
            s.write_all(&first).await?;
            s.flush().await?;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
    s.flush().await
}
