//! The tus client of `resguardo-submit` (`docs/uploads-v1.md` §1): a sealed message larger than
//! [`RESUMABLE_FROM`] is uploaded through `/api/v1/uploads` and resumed after a broken connection
//! or a restarted gateway, from the byte the gateway holds, never from the start.
//!
//! One upload: creation (`POST`, with the proof of work and the headers the one-piece route
//! takes), then one `PATCH` with everything that remains. When a request fails for a reason that
//! may pass (no answer, a cut connection, a busy or restarting gateway), the client waits
//! ([`DELAYS`]), asks where the upload stands (`HEAD`) and sends the rest with another `PATCH`,
//! until the upload is stored or `retry_for` has passed since the last byte moved. The upload's
//! address (its capability) is kept in memory only: nothing is written on the reporter's device.
//! It honours the same TLS trust, pin and proxy as every other request of the
//! [`GatewayClient`], whose agent it uses.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use super::{
    expect_json, refusal, Accepted, AcceptedBody, Conversation, GatewayClient, SubmitError,
    POW_RETRY,
};

/// Sealed messages larger than this go through the resumable route; smaller ones in one piece
/// (`POST /api/v1/submissions`), where a retry costs little.
pub const RESUMABLE_FROM: u64 = 1024 * 1024;

/// How long `resguardo-submit` keeps retrying an upload whose bytes stopped moving, unless told
/// otherwise (`--retry-for`).
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(600);

/// The waits before successive retries, in seconds; the last repeats.
pub const DELAYS: [u64; 7] = [0, 1, 3, 5, 10, 20, 30];

const TUS_VERSION: &str = "1.0.0";
const UPLOADS_PATH: &str = "api/v1/uploads";
/// Bound on every answer's body on these routes.
const MAX_ANSWER: u64 = 64 * 1024;
/// How long an answer may take once the request is sent; the last PATCH's covers the gateway's
/// check of the whole message.
const ANSWER_WAIT: Duration = Duration::from_secs(120);
const LAST_ANSWER_WAIT: Duration = Duration::from_secs(600);

/// A sealed message to upload: `len` bytes of `file` from `offset` (a sealed report staged by
/// [`super::seal_report`], or the message part of a sealed report file).
#[derive(Clone, Copy)]
pub struct Message<'a> {
    /// The file holding it.
    pub file: &'a File,
    /// Where it begins.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// How an upload ends, with what the reporter may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// What the gateway answered.
    pub accepted: Accepted,
    /// How many times the upload was resumed.
    pub resumed: u32,
}

/// One step of the upload, as the gateway answered it.
enum Step {
    /// Created at this URL.
    Created(String),
    /// The gateway holds this many bytes.
    At(u64),
    /// Stored.
    Stored(Accepted),
    /// Every byte arrived, and the gateway cannot say under which id (yet).
    StoredUnknown,
    /// This gateway has no resumable route: one piece, then.
    NoRoute,
}

/// A failure: whether to retry, and whether the gateway said where it stands.
enum Failed {
    /// Ask where the upload stands, after the next delay (a cut, a busy gateway).
    Retry(SubmitError, Option<Duration>),
    /// The gateway said where the upload stands; continue from there now.
    Resync(u64),
    /// For good.
    Fatal(SubmitError),
}

impl GatewayClient {
    /// Uploads `message` in one piece when it is at most [`RESUMABLE_FROM`] bytes, else through
    /// the resumable route with retries for up to `retry_for` after the bytes last moved.
    pub fn send_message(
        &self,
        message: Message<'_>,
        triage: Option<&[u8]>,
        conversation: &Conversation,
        retry_for: Duration,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Uploaded, SubmitError> {
        if message.len > RESUMABLE_FROM {
            if let Some(uploaded) =
                self.upload_resumable(message, triage, conversation, retry_for, progress)?
            {
                return Ok(uploaded);
            }
            progress("This gateway cannot resume uploads: sending in one piece.");
        }
        let whole = if message.offset == 0
            && message.file.metadata().map(|m| m.len()).ok() == Some(message.len)
        {
            message.file.try_clone().map_err(SubmitError::Seal)?
        } else {
            // The message part of a sealed report file: staged alone (ciphertext only).
            let mut staged = tempfile::tempfile().map_err(SubmitError::Seal)?;
            io::copy(&mut Section::new(message), &mut staged).map_err(SubmitError::Seal)?;
            staged
        };
        let accepted = self.submit_accepted(whole, triage, conversation)?;
        Ok(Uploaded {
            accepted,
            resumed: 0,
        })
    }

    /// The resumable upload; `None` when the gateway has no resumable route.
    pub fn upload_resumable(
        &self,
        message: Message<'_>,
        mut triage: Option<&[u8]>,
        conversation: &Conversation,
        retry_for: Duration,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<Uploaded>, SubmitError> {
        let mut location: Option<String> = None;
        // Where the gateway stands, when known; `None` asks it (HEAD).
        let mut offset: Option<u64> = None;
        let mut failures = 0usize;
        let mut creations = 0u32;
        let mut resumed = 0u32;
        let mut moved = Instant::now();
        let mut best = 0u64;
        loop {
            let result = match (&location, offset) {
                (None, _) => {
                    creations += 1;
                    self.create_upload(message.len, triage, conversation)
                }
                (Some(url), None) => self.head_upload(url, message.len),
                (Some(url), Some(at)) => self.patch_upload(url, message, at),
            };
            let failure = match result {
                Ok(Step::NoRoute) => return Ok(None),
                Ok(Step::Created(url)) => {
                    location = Some(url);
                    offset = Some(0);
                    failures = 0;
                    continue;
                }
                Ok(Step::Stored(accepted)) => return Ok(Some(Uploaded { accepted, resumed })),
                Ok(Step::At(at)) if at < message.len => {
                    if offset.is_none() && location.is_some() && at > 0 {
                        resumed += 1;
                        progress(&format!(
                            "Resuming from {} % ({at} of {} bytes arrived).",
                            at * 100 / message.len,
                            message.len
                        ));
                    }
                    if at > best {
                        best = at;
                        moved = Instant::now();
                        failures = 0;
                    }
                    offset = Some(at);
                    continue;
                }
                Ok(Step::At(_)) | Ok(Step::StoredUnknown) => {
                    // Every byte is there: the gateway is checking it (and may still refuse
                    // it), or crashed after storing. Only its word counts: asked again until
                    // `retry_for` has passed, never taken as stored.
                    if best < message.len {
                        best = message.len;
                        moved = Instant::now();
                        failures = 0;
                    }
                    offset = None;
                    Failed::Retry(
                        SubmitError::BadResponse(
                            "every byte arrived, but the gateway has not said that it stored \
                             the report; it may not have: send it again"
                                .into(),
                        ),
                        None,
                    )
                }
                Err(failed) => failed,
            };
            match failure {
                Failed::Fatal(SubmitError::Refused { code, .. })
                    if location.is_none() && code == "bad_triage" && triage.is_some() =>
                {
                    // The note for the people on call never costs the report: without it, then.
                    triage = None;
                }
                Failed::Fatal(SubmitError::Refused { code, .. })
                    if location.is_none()
                        && creations < 4
                        && POW_RETRY.contains(&code.as_str()) => {}
                Failed::Fatal(e) => return Err(e),
                Failed::Resync(at) => {
                    offset = Some(at);
                    failures += 1;
                    if at > best {
                        best = at;
                        moved = Instant::now();
                        failures = 0;
                    }
                    if failures > DELAYS.len() * 4 {
                        return Err(SubmitError::BadResponse(
                            "the gateway keeps moving the upload's offset".into(),
                        ));
                    }
                }
                Failed::Retry(e, asked) => {
                    let delay = Duration::from_secs(DELAYS[failures.min(DELAYS.len() - 1)])
                        .max(asked.unwrap_or_default().min(Duration::from_secs(60)));
                    failures += 1;
                    if moved.elapsed() + delay > retry_for {
                        return Err(SubmitError::Unreachable(format!(
                            "gave up after {} s without progress ({} of {} bytes arrived): {e}",
                            retry_for.as_secs(),
                            best,
                            message.len
                        )));
                    }
                    progress(&format!(
                        "The upload was interrupted ({e}); trying again in {} s.",
                        delay.as_secs()
                    ));
                    std::thread::sleep(delay);
                    offset = None;
                }
            }
        }
    }

    /// `POST /api/v1/uploads`: creation, with the proof of work and the headers beside.
    fn create_upload(
        &self,
        len: u64,
        triage: Option<&[u8]>,
        conversation: &Conversation,
    ) -> Result<Step, Failed> {
        let pow = self.proof_of_work().map_err(transient)?;
        let url = format!("{}{UPLOADS_PATH}", self.base);
        let request = self
            .agent
            .post(&url)
            .config()
            .timeout_recv_response(Some(ANSWER_WAIT))
            .build()
            .header("Tus-Resumable", TUS_VERSION)
            .header("Upload-Length", len.to_string());
        let request = super::submission_headers(request, pow.as_deref(), triage, conversation);
        let mut response = request.send(&[][..]).map_err(unreachable)?;
        let status = response.status().as_u16();
        if status == 201 {
            let location = header(&response, "location").unwrap_or_default();
            return self.upload_url(&location).map(Step::Created);
        }
        // A gateway from before resumable uploads.
        if matches!(status, 404 | 405) {
            return Ok(Step::NoRoute);
        }
        Err(refused(&mut response))
    }

    /// `HEAD` of the upload: where it stands.
    fn head_upload(&self, url: &str, len: u64) -> Result<Step, Failed> {
        let response = self
            .agent
            .head(url)
            .config()
            .timeout_recv_response(Some(ANSWER_WAIT))
            .build()
            .header("Tus-Resumable", TUS_VERSION)
            .call()
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        if status == 404 {
            return Err(Failed::Fatal(SubmitError::Refused {
                status,
                code: "not_found".into(),
                message: "the gateway no longer holds this upload (it expired, or was refused \
                          when complete); nothing was stored"
                    .into(),
            }));
        }
        if status != 200 {
            // A HEAD answer has no body: the status says it all.
            return Err(by_status(status, retry_after(&response)));
        }
        if header(&response, "upload-length").and_then(|v| decimal(&v)) != Some(len) {
            return Err(Failed::Fatal(SubmitError::BadResponse(
                "the upload's length is not the message's".into(),
            )));
        }
        let at = header(&response, "upload-offset")
            .and_then(|v| decimal(&v))
            .filter(|at| *at <= len)
            .ok_or_else(|| {
                Failed::Fatal(SubmitError::BadResponse("no usable Upload-Offset".into()))
            })?;
        if let Some(id) = header(&response, "resguardo-submission") {
            let sequence = header(&response, "resguardo-sequence").and_then(|v| decimal(&v));
            return Ok(Step::Stored(Accepted { id, sequence }));
        }
        if at == len {
            return Ok(Step::StoredUnknown);
        }
        Ok(Step::At(at))
    }

    /// `PATCH` with everything from `at` to the end.
    fn patch_upload(&self, url: &str, message: Message<'_>, at: u64) -> Result<Step, Failed> {
        let mut body = Section::new(message);
        body.skip(at);
        let response = self
            .agent
            .patch(url)
            .config()
            .timeout_recv_response(Some(LAST_ANSWER_WAIT))
            .build()
            .header("Tus-Resumable", TUS_VERSION)
            .header("Upload-Offset", at.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .header("Content-Length", (message.len - at).to_string())
            .send(ureq::SendBody::from_reader(&mut body));
        let mut response = response.map_err(unreachable)?;
        match response.status().as_u16() {
            201 => expect_json::<AcceptedBody>(Ok(response), 201, MAX_ANSWER)
                .map(|body| {
                    Step::Stored(Accepted {
                        id: body.id,
                        sequence: body.sequence,
                    })
                })
                .map_err(transient),
            204 => header(&response, "upload-offset")
                .and_then(|v| decimal(&v))
                .filter(|n| *n <= message.len)
                .map(Step::At)
                .ok_or_else(|| transient(SubmitError::BadResponse("no Upload-Offset".into()))),
            _ => {
                // Never beyond the message: the next PATCH would announce a negative length.
                let held = header(&response, "upload-offset")
                    .and_then(|v| decimal(&v))
                    .filter(|n| *n <= message.len);
                match refused(&mut response) {
                    Failed::Fatal(SubmitError::Refused { code, .. })
                        if RESUME_CODES.contains(&code.as_str()) && held.is_some() =>
                    {
                        Err(Failed::Resync(held.unwrap_or(at)))
                    }
                    other => Err(other),
                }
            }
        }
    }

    /// The upload's URL from a `Location`: on this gateway, `/api/v1/uploads/<32 hex>`.
    fn upload_url(&self, location: &str) -> Result<String, Failed> {
        let path = location
            .strip_prefix(self.base.trim_end_matches('/'))
            .unwrap_or(location);
        let id = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(UPLOADS_PATH))
            .and_then(|p| p.strip_prefix('/'))
            .filter(|id| {
                id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            })
            .ok_or_else(|| {
                Failed::Fatal(SubmitError::BadResponse(
                    "the upload's Location is not an upload of this gateway".into(),
                ))
            })?;
        Ok(format!("{}{UPLOADS_PATH}/{id}", self.base))
    }
}

/// Refusals of a PATCH after which the upload continues from the offset the gateway gives.
const RESUME_CODES: &[&str] = &["offset_mismatch", "body_timeout", "incomplete_body"];

/// Refusals that may pass: the gateway is busy, restarting, or limiting the rate.
fn passing(status: u16) -> bool {
    status == 429 || status == 408 || (500..=504).contains(&status)
}

fn by_status(status: u16, after: Option<Duration>) -> Failed {
    let e = SubmitError::Refused {
        status,
        code: "unknown".into(),
        message: format!("HTTP {status}"),
    };
    if passing(status) {
        Failed::Retry(e, after)
    } else {
        Failed::Fatal(e)
    }
}

/// The gateway's refusal from an answer's body (bounded).
fn refused(response: &mut ureq::http::Response<ureq::Body>) -> Failed {
    let status = response.status().as_u16();
    let after = retry_after(response);
    let text = match response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_string()
    {
        Ok(text) => text,
        Err(e) => return Failed::Retry(SubmitError::Unreachable(e.to_string()), None),
    };
    let e = refusal(status, &text);
    if passing(status) {
        Failed::Retry(e, after)
    } else {
        Failed::Fatal(e)
    }
}

fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    header(response, "retry-after")
        .and_then(|v| decimal(&v))
        .map(Duration::from_secs)
}

/// A decimal header value (digits only, as tus writes them).
fn decimal(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().chars().take(200).collect())
}

fn unreachable(e: ureq::Error) -> Failed {
    Failed::Retry(SubmitError::Unreachable(e.to_string()), None)
}

/// An error on the way (the proof of work's challenge, an answer that broke off): retried when it
/// is the network's, for good otherwise.
fn transient(e: SubmitError) -> Failed {
    match e {
        SubmitError::Unreachable(_) => Failed::Retry(e, None),
        SubmitError::Refused { status, .. } if passing(status) => Failed::Retry(e, None),
        other => Failed::Fatal(other),
    }
}

/// `len` bytes of a file from an offset, read with positioned reads (no shared cursor).
pub(super) struct Section<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl<'a> Section<'a> {
    pub(super) fn new(message: Message<'a>) -> Self {
        Section {
            file: message.file,
            at: message.offset,
            end: message.offset + message.len,
        }
    }

    fn skip(&mut self, n: u64) {
        self.at = self.at.saturating_add(n).min(self.end);
    }
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.end - self.at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the sealed message is shorter than it was",
            ));
        }
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A gateway that takes every byte but never says it stored them: the PATCH's answer is
    /// lost (the connection closes) and every HEAD shows the offset at the end, no submission.
    fn silent_gateway(len: u64) -> String {
        fake_gateway(len, String::new())
    }

    /// A gateway that creates uploads, answers every PATCH with `patch_answer` (nothing: the
    /// answer is lost) and every HEAD with the offset at the end and no submission.
    fn fake_gateway(len: u64, patch_answer: String) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut length = 0u64;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let _ = io::copy(&mut (&mut reader).take(length), &mut io::sink());
                let id = "0123456789abcdef0123456789abcdef";
                let answer = if first.starts_with("GET /api/v1/challenge") {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\
                     \r\n{\"required\":false}"
                        .to_string()
                } else if first.starts_with("POST") {
                    format!(
                        "HTTP/1.1 201 Created\r\nLocation: /api/v1/uploads/{id}\r\n\
                         Content-Length: 0\r\n\r\n"
                    )
                } else if first.starts_with("HEAD") {
                    format!(
                        "HTTP/1.1 200 OK\r\nUpload-Offset: {len}\r\nUpload-Length: {len}\r\n\
                         Content-Length: 0\r\n\r\n"
                    )
                } else {
                    patch_answer.clone()
                };
                let mut stream = stream;
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        format!("http://{addr}/")
    }

    #[test]
    fn a_lost_final_answer_is_never_taken_as_stored_without_the_gateways_word() {
        let len = RESUMABLE_FROM + 10;
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(&vec![0xC1; len as usize]).expect("write");
        let client = GatewayClient::new(&silent_gateway(len), super::super::Trust::WebPki, None)
            .expect("client");
        let message = Message {
            file: &file,
            offset: 0,
            len,
        };
        // Long enough for the four asks after which it used to say "stored, id unknown".
        let result = client.upload_resumable(
            message,
            None,
            &Conversation::None,
            Duration::from_secs(12),
            &mut |_| {},
        );
        match result {
            Err(SubmitError::Unreachable(e)) => assert!(e.contains("has not said"), "{e}"),
            Err(other) => panic!("another error: {other}"),
            Ok(uploaded) => panic!("taken as stored: {uploaded:?}"),
        }
    }

    #[test]
    fn an_offset_beyond_the_message_in_a_refusal_is_not_followed() {
        let len = RESUMABLE_FROM + 10;
        let body = r#"{"error":"offset_mismatch","message":"x"}"#;
        let answer = format!(
            "HTTP/1.1 409 Conflict\r\nUpload-Offset: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            len + 5,
            body.len()
        );
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(&vec![0xC1; len as usize]).expect("write");
        let client = GatewayClient::new(
            &fake_gateway(len, answer),
            super::super::Trust::WebPki,
            None,
        )
        .expect("client");
        let message = Message {
            file: &file,
            offset: 0,
            len,
        };
        let result = client.upload_resumable(
            message,
            None,
            &Conversation::None,
            Duration::from_secs(5),
            &mut |_| {},
        );
        match result {
            Err(SubmitError::Refused { code, .. }) => assert_eq!(code, "offset_mismatch"),
            Err(other) => panic!("another error: {other}"),
            Ok(uploaded) => panic!("taken as stored: {uploaded:?}"),
        }
    }
}
