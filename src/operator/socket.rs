//! The admin socket: how operator commands reach a running gateway's store.
//!
//! One request per connection, a JSON line; the answer is a JSON line, followed for `export` by the
//! bundle's bytes until the gateway closes the connection. The socket lives in the data directory
//! (mode 0700) and is itself mode 0600: reaching it requires the gateway's own user or root, the
//! same people who could read the store directly.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{deliver, ExportOutcome, OperatorError, SOCKET_NAME};
use crate::bundle::BundleManifest;
use crate::store::{PurgeReport, StoreStatus, SubmissionBackend, SubmissionStore};
use crate::submission::{BatchId, SubmissionId};

/// Bound on a request or reply line (a purge or an export carries a manifest, with its chain
/// segment).
const MAX_REQUEST: u64 = crate::bundle::MAX_MANIFEST_BYTES + 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    Export,
    Delivered {
        batch: BatchId,
    },
    Purge {
        manifest: BundleManifest,
        opened: Vec<SubmissionId>,
    },
    Status,
    /// A reply whose signature the operator's side has checked.
    AddReply {
        conversation: crate::replies::Locator,
        /// Base64 of the sealed reply.
        message: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest: Option<BundleManifest>,
    #[serde(default)]
    resumed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    purge: Option<PurgeReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<StoreStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    added: Option<(u32, bool)>,
}

impl Reply {
    fn ok() -> Self {
        Reply {
            ok: true,
            error: None,
            manifest: None,
            resumed: false,
            purge: None,
            status: None,
            added: None,
        }
    }

    fn error(message: String) -> Self {
        Reply {
            ok: false,
            error: Some(message),
            ..Reply::ok()
        }
    }
}

/// Serves the admin socket of a running gateway until the task is dropped.
pub async fn serve(
    store: Arc<SubmissionStore>,
    submissions: Arc<dyn SubmissionBackend>,
) -> io::Result<()> {
    let path = store.root().join(SOCKET_NAME);
    // A socket file left by a killed gateway; we hold the store lock, so it is not in use.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (stream, _) = listener.accept().await?;
        let store = store.clone();
        let submissions = submissions.clone();
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = handle(&store, &*submissions, stream) {
                tracing::warn!("admin socket: {e}");
            }
        });
    }
}

fn handle(
    store: &SubmissionStore,
    submissions: &dyn SubmissionBackend,
    stream: UnixStream,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    (&mut reader).take(MAX_REQUEST).read_line(&mut line)?;
    let mut out = stream;
    let request: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => return send(&mut out, &Reply::error(format!("bad request: {e}"))),
    };
    let reply = match request {
        Request::Export => match submissions.begin_export() {
            Ok(None) => Reply::ok(),
            Ok(Some(batch)) => {
                let reply = Reply {
                    manifest: Some(batch.manifest.clone()),
                    resumed: batch.resumed,
                    ..Reply::ok()
                };
                send(&mut out, &reply)?;
                // The client verifies what it received; a failure here just ends the stream.
                return submissions
                    .write_export(&batch, &mut out)
                    .map_err(|e| io::Error::other(e.to_string()));
            }
            Err(e) => Reply::error(e.to_string()),
        },
        Request::Delivered { batch } => match submissions.complete_export(&batch) {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::error(e.to_string()),
        },
        Request::Purge { manifest, opened } => {
            match submissions.purge(&manifest, &opened.into_iter().collect()) {
                Ok(report) => Reply {
                    purge: Some(report),
                    ..Reply::ok()
                },
                Err(e) => Reply::error(e.to_string()),
            }
        }
        Request::Status => match submissions.status() {
            Ok(status) => Reply {
                status: Some(status),
                ..Reply::ok()
            },
            Err(e) => Reply::error(e.to_string()),
        },
        Request::AddReply {
            conversation,
            message,
        } => {
            use base64::Engine as _;
            match base64::engine::general_purpose::STANDARD.decode(&message) {
                Err(_) => Reply::error("the reply is not base64".into()),
                Ok(bytes) => match store.add_reply(&conversation, &bytes) {
                    Ok(added) => Reply {
                        added: Some(added_pair(added)),
                        ..Reply::ok()
                    },
                    Err(e) => Reply::error(e.to_string()),
                },
            }
        }
    };
    send(&mut out, &reply)
}

fn send(out: &mut impl Write, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// The operator side of the socket.
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// A client for the socket in `data_dir`; it connects anew for each request.
    pub fn new(data_dir: &Path) -> Self {
        Client {
            path: data_dir.join(SOCKET_NAME),
        }
    }

    fn fail(&self, reason: impl ToString) -> OperatorError {
        OperatorError::Socket {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// Sends a request and reads the reply line; the stream is returned for what follows.
    fn call(&self, request: &Request) -> Result<(Reply, BufReader<UnixStream>), OperatorError> {
        let mut stream = UnixStream::connect(&self.path).map_err(|e| self.fail(e))?;
        let mut line = serde_json::to_vec(request).map_err(|e| self.fail(e))?;
        line.push(b'\n');
        stream.write_all(&line).map_err(|e| self.fail(e))?;
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        (&mut reader)
            .take(MAX_REQUEST)
            .read_line(&mut answer)
            .map_err(|e| self.fail(e))?;
        let reply: Reply = serde_json::from_str(&answer).map_err(|e| self.fail(e))?;
        if !reply.ok {
            return Err(OperatorError::Remote(
                reply.error.unwrap_or_else(|| "no reason given".into()),
            ));
        }
        Ok((reply, reader))
    }

    /// Export through the running gateway: it streams the bundle, this side writes and
    /// verifies it beside `out` and renames it into place, then tells the gateway it was
    /// delivered.
    pub fn export(&self, out: &Path) -> Result<ExportOutcome, OperatorError> {
        let (reply, mut stream) = self.call(&Request::Export)?;
        let Some(manifest) = reply.manifest else {
            return Ok(ExportOutcome {
                manifest: None,
                resumed: false,
                bytes: 0,
            });
        };
        let bytes = deliver(out, |writer| io::copy(&mut stream, writer).map(|_| ()))?;
        self.call(&Request::Delivered {
            batch: manifest.batch,
        })?;
        Ok(ExportOutcome {
            manifest: Some(manifest),
            resumed: reply.resumed,
            bytes,
        })
    }

    /// Asks the running gateway to purge the `opened` submissions of `manifest`; the caller has
    /// already verified the bundle and its receipt.
    pub fn purge(
        &self,
        manifest: &BundleManifest,
        opened: &HashSet<SubmissionId>,
    ) -> Result<PurgeReport, OperatorError> {
        let (reply, _) = self.call(&Request::Purge {
            manifest: manifest.clone(),
            opened: opened.iter().copied().collect(),
        })?;
        reply
            .purge
            .ok_or_else(|| self.fail("the reply has no purge report"))
    }

    /// Asks the running gateway to store a reply (checked by the caller).
    pub fn add_reply(
        &self,
        conversation: &crate::replies::Locator,
        message: &[u8],
    ) -> Result<(u32, bool), OperatorError> {
        use base64::Engine as _;
        let (reply, _) = self.call(&Request::AddReply {
            conversation: *conversation,
            message: base64::engine::general_purpose::STANDARD.encode(message),
        })?;
        reply
            .added
            .ok_or_else(|| self.fail("the reply has no answer for the reply"))
    }

    /// The running gateway's store counts.
    pub fn status(&self) -> Result<StoreStatus, OperatorError> {
        let (reply, _) = self.call(&Request::Status)?;
        reply
            .status
            .ok_or_else(|| self.fail("the reply has no status"))
    }
}

/// A reply's number and whether it was stored before.
pub(super) fn added_pair(added: crate::store::ReplyAdded) -> (u32, bool) {
    match added {
        crate::store::ReplyAdded::Stored(n) => (n, false),
        crate::store::ReplyAdded::AlreadyStored(n) => (n, true),
    }
}
