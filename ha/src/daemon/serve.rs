//! The daemon's two side doors: the control socket (`dsmip_daemon::control`: one line,
//! `bindings` or `leases`, a JSON answer) and the Prometheus endpoint (HTTP/1.1
//! `GET /metrics`, answered and closed). Neither touches the engine: each request goes to
//! the main loop as a [`Query`] and waits for its answer.

use dsmip_daemon::control::{self, ask, IO_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

/// What a side door asks the main loop for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Bindings,
    Leases,
    Metrics,
}

/// One request and where its answer goes.
pub type Query = control::Query<Ask>;

const MAX_REQUEST: usize = 8192;

/// Serve the control socket until the task is dropped.
pub async fn control(listener: UnixListener, tx: mpsc::Sender<Query>) {
    control::serve(listener, tx, |req| match req {
        "bindings" => Some(Ask::Bindings),
        "leases" => Some(Ask::Leases),
        _ => None,
    })
    .await
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
    async fn control_socket_maps_bindings_and_leases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ha.sock");
        let (tx, rx) = mpsc::channel(4);
        answer_loop(rx);
        tokio::spawn(control(UnixListener::bind(&path).unwrap(), tx));
        let p = path.clone();
        let (b, l, m) = tokio::task::spawn_blocking(move || {
            (
                control::request("dsmip-ha", &p, "bindings"),
                control::request("dsmip-ha", &p, "leases"),
                control::request("dsmip-ha", &p, "metrics"),
            )
        })
        .await
        .unwrap();
        assert_eq!(b.unwrap(), serde_json::json!(["Bindings"]));
        assert_eq!(l.unwrap(), serde_json::json!(["Leases"]));
        // Metrics are served over HTTP only, not on the control socket.
        let m = format!("{:#}", m.unwrap_err());
        assert!(m.contains("unknown request `metrics`"), "{m}");
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
