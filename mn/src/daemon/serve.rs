//! The control socket (`dsmip_daemon::control`): one request, `status`, answered with the
//! JSON of `status.rs`. The request goes to the main loop as a [`Query`]; the engine is
//! never touched here.

use dsmip_daemon::control;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

/// The one thing the control socket asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status;

/// One `status` request and where its answer goes.
pub type Query = control::Query<Status>;

/// Serve the control socket until the task is dropped.
pub async fn control(listener: UnixListener, tx: mpsc::Sender<Query>) {
    control::serve(listener, tx, |req| (req == "status").then_some(Status)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn status_is_the_only_request() {
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
            (
                control::request("dsmip-mn", &p, "status"),
                control::request("dsmip-mn", &p, "bindings"),
            )
        })
        .await
        .unwrap();
        assert_eq!(a.unwrap()["state"], "registered");
        let b = format!("{:#}", b.unwrap_err());
        assert!(b.contains("unknown request `bindings`"), "{b}");
        server.abort();
        answerer.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
