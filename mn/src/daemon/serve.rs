//! The control socket (a Unix stream socket): the client writes one line, `status`, and
//! reads a JSON answer until the server closes. The request goes to the main loop as a
//! [`Query`]; the engine is never touched here.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

/// One `status` request and where its answer goes.
#[derive(Debug)]
pub struct Query {
    pub reply: oneshot::Sender<String>,
}

const IO_TIMEOUT: Duration = Duration::from_secs(5);

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
                "status" => {
                    let (reply, rx) = oneshot::channel();
                    match tx.send(Query { reply }).await {
                        Ok(()) => rx.await.ok(),
                        Err(_) => None,
                    }
                }
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

/// The client side: send `request`, return the whole answer.
pub fn client(socket: &Path, request: &str) -> Result<String> {
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connecting to {} (is dsmip-mn running?)", socket.display()))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.write_all(format!("{request}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn status_and_unknown_requests() {
        let dir = std::env::temp_dir().join(format!("dsmip-mn-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let (tx, mut rx) = mpsc::channel::<Query>(4);
        let server = tokio::spawn(control(l, tx));
        let answerer = tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                let _ = q.reply.send("{\"state\":\"registered\"}".into());
            }
        });
        let p = path.clone();
        let (a, b) = tokio::task::spawn_blocking(move || {
            (client(&p, "status").unwrap(), client(&p, "bogus").unwrap())
        })
        .await
        .unwrap();
        assert_eq!(a, "{\"state\":\"registered\"}");
        assert!(b.contains("unknown request `bogus`"), "{b}");
        server.abort();
        answerer.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
