//! The control socket, a Unix stream socket: the client writes one line (a request word such
//! as `bindings` or `status`) and reads a JSON answer until the server closes. The server
//! never touches a daemon's engine: each request goes to the main loop as a [`Query`] and
//! waits for its answer. Unknown requests get `{"error": …}`.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

/// One request for the main loop and where its answer goes.
#[derive(Debug)]
pub struct Query<A> {
    pub ask: A,
    pub reply: oneshot::Sender<String>,
}

/// Reads, writes and the client's wait are bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Ask the main loop; `None` when it is gone (shutting down).
pub async fn ask<A>(tx: &mpsc::Sender<Query<A>>, ask: A) -> Option<String> {
    let (reply, rx) = oneshot::channel();
    tx.send(Query { ask, reply }).await.ok()?;
    rx.await.ok()
}

/// Serve the control socket until the task is dropped; `parse` maps a request word to what
/// the main loop is asked.
pub async fn serve<A: Send + 'static>(
    listener: UnixListener,
    tx: mpsc::Sender<Query<A>>,
    parse: fn(&str) -> Option<A>,
) {
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
            let answer = match parse(line.trim()) {
                Some(a) => ask(&tx, a).await,
                None => Some(
                    serde_json::json!({ "error": format!("unknown request `{}`", line.trim()) })
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

/// The client side: send `request` to `daemon`'s socket and return its JSON answer; an
/// `{"error": …}` answer is an error.
pub fn request(daemon: &str, socket: &Path, request: &str) -> Result<serde_json::Value> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "control socket {}: cannot connect (is {daemon} running?)",
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
    let v: serde_json::Value = serde_json::from_str(&out)
        .with_context(|| format!("control socket answer is not JSON: {out}"))?;
    if let Some(e) = v.get("error") {
        bail!("{daemon} refused the request `{request}`: {e}");
    }
    Ok(v)
}

/// The common arguments of the client commands (`bindings`, `leases`, `status`).
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The daemon's configuration file (its `daemon.control_socket` is used).
    #[arg(long, conflicts_with = "socket")]
    pub config: Option<PathBuf>,
    /// The control socket path.
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

impl ClientArgs {
    /// `--socket`, or the socket named by `--config` (read with `socket_of`).
    pub fn socket(&self, socket_of: impl FnOnce(&Path) -> Result<PathBuf>) -> Result<PathBuf> {
        match (&self.socket, &self.config) {
            (Some(s), _) => Ok(s.clone()),
            (None, Some(c)) => socket_of(c),
            (None, None) => bail!("give --config FILE or --socket PATH"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ask {
        One,
        Two,
    }

    fn parse(s: &str) -> Option<Ask> {
        match s {
            "one" => Some(Ask::One),
            "two" => Some(Ask::Two),
            _ => None,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_unknown_requests_and_missing_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let (tx, mut rx) = mpsc::channel::<Query<Ask>>(4);
        let server = tokio::spawn(serve(UnixListener::bind(&path).unwrap(), tx, parse));
        let answerer = tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                let _ = q.reply.send(format!("[\"{:?}\"]", q.ask));
            }
        });
        let (p, missing) = (path.clone(), dir.path().join("none.sock"));
        let (a, b, bad, gone) = tokio::task::spawn_blocking(move || {
            (
                request("d", &p, "one"),
                request("d", &p, "two"),
                request("d", &p, "drop"),
                request("dsmip-x", &missing, "one"),
            )
        })
        .await
        .unwrap();
        assert_eq!(a.unwrap(), serde_json::json!(["One"]));
        assert_eq!(b.unwrap(), serde_json::json!(["Two"]));
        let bad = format!("{:#}", bad.unwrap_err());
        assert!(bad.contains("unknown request `drop`"), "{bad}");
        let gone = format!("{:#}", gone.unwrap_err());
        assert!(gone.contains("is dsmip-x running?"), "{gone}");
        server.abort();
        answerer.abort();
    }

    #[test]
    fn client_args_pick_the_socket() {
        let a = ClientArgs {
            json: false,
            config: None,
            socket: Some("/run/x.sock".into()),
        };
        assert_eq!(
            a.socket(|_| unreachable!()).unwrap(),
            PathBuf::from("/run/x.sock")
        );
        let c = ClientArgs {
            json: false,
            config: Some("/etc/x.toml".into()),
            socket: None,
        };
        assert_eq!(
            c.socket(|p| Ok(p.with_extension("sock"))).unwrap(),
            PathBuf::from("/etc/x.sock")
        );
        let none = ClientArgs {
            json: false,
            config: None,
            socket: None,
        };
        assert!(none.socket(|_| unreachable!()).is_err());
    }
}
