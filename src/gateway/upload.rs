//! Receiving a sealed submission: the body streams from the connection into the envelope check and
//! the spool file at the same time, with bounded memory.
//!
//! The async side forwards body chunks over a small bounded channel to a blocking thread, which
//! runs the (synchronous) sequoia packet parser and writes the spool. Backpressure flows back to
//! the client through the channel, so a 100 MiB upload holds a few chunks in memory, not 100 MiB.
//! If the check refuses the message early (say, the first packet is plaintext), the blocking side
//! stops and the rest of the body is never read.

use std::io::{self, Read};
use std::sync::Arc;

use axum::body::Body;
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::paced::{PacedBody, Stalled, UploadPace};
use super::slots::Slot;
use crate::envelope::{self, RecipientSet};
use crate::replies::NewConversation;
use crate::store::{IncomingSubmission, SubmissionRecord};
use crate::submission::Sealing;

/// Chunks in flight between the connection and the checker.
const CHANNEL_DEPTH: usize = 4;

/// What arrives beside a report, checked before its body is read, and committed with it.
#[derive(Default)]
pub struct Beside {
    /// The triage envelope for the couriers.
    pub triage: Option<Vec<u8>>,
    /// The conversation a first report starts.
    pub conversation: Option<NewConversation>,
}

/// Streams `body` through the envelope check into `incoming` and commits it to the store with
/// its (already checked) triage envelope and the conversation it starts, if any; returns the
/// durable record.
pub async fn receive_sealed(
    store: Arc<dyn crate::store::SubmissionBackend>,
    recipients: Arc<RecipientSet>,
    incoming: IncomingSubmission,
    body: Body,
    pace: UploadPace,
    slot: &Slot,
    beside: Beside,
) -> Result<SubmissionRecord, ApiError> {
    let Beside {
        triage,
        conversation,
    } = beside;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let checker = tokio::task::spawn_blocking(move || {
        let mut incoming = incoming;
        match envelope::check(ChannelReader::new(rx), &recipients, &mut incoming) {
            Ok(_) => Ok(store.commit_with(
                incoming,
                Sealing::BySender,
                triage.as_deref(),
                conversation
                    .as_ref()
                    .map(|c| (&c.locator, c.sealed_box.as_slice())),
            )?),
            // A limit or the disk stopped the spool: that, not the parse, is the reason.
            Err(e) => Err(match incoming.take_fault() {
                Some(fault) => ApiError::Store(fault),
                None => ApiError::Envelope(e),
            }),
        }
    });

    let mut stream = body.into_data_stream();
    let mut paced = PacedBody::new(pace, slot);
    loop {
        let timed_out = |Stalled(reason)| Err(io::Error::new(io::ErrorKind::TimedOut, reason));
        // The next chunk, unless the client is silent too long, too slow, or a faster upload
        // takes the slot.
        let chunk = match paced.wait(stream.next()).await {
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => match paced.received(chunk.len()) {
                Ok(()) => Ok(chunk),
                Err(stalled) => timed_out(stalled),
            },
            Ok(Some(Err(e))) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, e)),
            Err(stalled) => timed_out(stalled),
        };
        let failed = chunk.is_err();
        // A send error means the checker has already decided; stop reading the body.
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    checker.await.map_err(|_| ApiError::Unavailable)?
}

/// A blocking reader over body chunks sent from the async side.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
