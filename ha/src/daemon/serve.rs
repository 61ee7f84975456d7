//! The daemon's two side doors: the control socket (a Unix stream socket: the client writes
//! one line, `bindings` or `leases`, and reads a JSON answer until the server closes) and
//! the Prometheus endpoint (HTTP/1.1 `GET /metrics`, answered and closed). Neither touches
//! the engine: each request goes to the main loop as a [`Query`] and waits for its answer.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot};

/// What a side door asks the main loop for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Bindings,
    Leases,
    Metrics,
}

/// One request and where its answer goes.
#[derive(Debug)]
pub struct Query {
    pub ask: Ask,
    pub reply: oneshot::Sender<String>,
}

const IO_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST: usize = 8192;

async fn ask(tx: &mpsc::Sender<Query>, ask: Ask) -> Option<String> {
    let (reply, rx) = oneshot::channel();
    tx.send(Query { ask, reply }).await.ok()?;
    rx.await.ok()
}

/// Serve the control socket until the task is dropped.
pub async fn control(listener: UnixListener, tx: mpsc::Sender<Query>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(r.take(256));
            let read = reader.read_line(&mut line);
            if !matches!(tokio::time::timeout(IO_TIMEOUT, read).await, Ok(Ok(_))) {
                return;
            }
            let answer = match line.trim() {
                "bindings" => ask(&tx, Ask::Bindings).await,
                "leases" => ask(&tx, Ask::Leases).await,
                other => Some(
                    serde_json::json!({ "error": format!("unknown request `{other}`") })
                        .to_string(),
                ),
            };
            if let Some(a) = answer {
                let _ = tokio::time::timeout(IO_TIMEOUT, w.write_all(a.as_bytes())).await;
            }
            let _ = w.shutdown().await;
        });
    }
}

/// Serve `GET /metrics` until the task is dropped.
pub async fn metrics(listener: TcpListener, tx: mpsc::Sender<Query>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut req = Vec::with_capacity(512);
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < MAX_REQUEST {
                match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => req.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let first = req.split(|b| *b == b'\r').next().unwrap_or(&[]);
            let (status, body) = if first.starts_with(b"GET /metrics ") {
                match ask(&tx, Ask::Metrics).await {
                    Some(b) => ("200 OK", b),
                    None => ("503 Service Unavailable", "shutting down\n".into()),
                }
            } else {
                ("404 Not Found", "only GET /metrics is served\n".into())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tokio::time::timeout(IO_TIMEOUT, async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

/// The client side of the control socket: send `request`, return the answer.
pub fn client(socket: &Path, request: &str) -> Result<String> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "control socket {}: cannot connect (is dsmip-ha running?)",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.write_all(format!("{request}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .with_context(|| format!("control socket {}: reading the answer", socket.display()))?;
    if out.is_empty() {
        bail!("control socket {}: empty answer", socket.display());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in main loop: answers every query with its kind.
    fn answer_loop(mut rx: mpsc::Receiver<Query>) {
        tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                let _ = q.reply.send(format!("[\"{:?}\"]", q.ask));
            }
        });
    }

    #[tokio::test]
    async fn control_socket_round_trip_and_unknown_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ha.sock");
        let (tx, rx) = mpsc::channel(4);
        answer_loop(rx);
        tokio::spawn(control(UnixListener::bind(&path).unwrap(), tx));
        let p = path.clone();
        let (b, l, bad) = tokio::task::spawn_blocking(move || {
            (
                client(&p, "bindings"),
                client(&p, "leases"),
                client(&p, "drop"),
            )
        })
        .await
        .unwrap();
        assert_eq!(b.unwrap(), "[\"Bindings\"]");
        assert_eq!(l.unwrap(), "[\"Leases\"]");
        let bad: serde_json::Value = serde_json::from_str(&bad.unwrap()).unwrap();
        assert_eq!(bad["error"], "unknown request `drop`");
        let missing = client(&dir.path().join("none.sock"), "bindings").unwrap_err();
        assert!(
            format!("{missing:#}").contains("cannot connect"),
            "{missing:#}"
        );
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_only_get_metrics() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(4);
        answer_loop(rx);
        tokio::spawn(metrics(l, tx));
        let get = |req: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(ok.ends_with("\r\n\r\n[\"Metrics\"]"), "{ok}");
        let nf = get("GET / HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"), "{nf}");
    }
}
