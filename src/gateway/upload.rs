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
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::slots::Slot;
use crate::envelope::{self, RecipientSet};
use crate::store::{IncomingSubmission, SubmissionRecord, SubmissionStore};
use crate::submission::Sealing;

/// Chunks in flight between the connection and the checker.
const CHANNEL_DEPTH: usize = 4;

/// How slow an upload may be before it is dropped.
#[derive(Debug, Clone, Copy)]
pub struct UploadPace {
    /// Longest silence.
    pub idle: Duration,
    /// After `grace`, the average rate must be at least `min_bytes_per_sec`.
    pub grace: Duration,
    pub min_bytes_per_sec: u64,
    /// Longest upload.
    pub total: Duration,
}

impl UploadPace {
    /// Why an upload that has sent `bytes` in `elapsed` must stop, if it must.
    pub fn verdict(&self, bytes: u64, elapsed: Duration) -> Option<&'static str> {
        if elapsed > self.total {
            return Some("the upload took too long");
        }
        if elapsed > self.grace
            && (bytes as f64) < self.min_bytes_per_sec as f64 * elapsed.as_secs_f64()
        {
            return Some("the upload is too slow");
        }
        None
    }
}

/// Streams `body` through the envelope check into `incoming` and commits it to the store;
/// returns the durable record.
pub async fn receive_sealed(
    store: Arc<SubmissionStore>,
    recipients: Arc<RecipientSet>,
    incoming: IncomingSubmission,
    body: Body,
    pace: UploadPace,
    slot: &Slot,
) -> Result<SubmissionRecord, ApiError> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let checker = tokio::task::spawn_blocking(move || {
        let mut incoming = incoming;
        match envelope::check(ChannelReader::new(rx), &recipients, &mut incoming) {
            Ok(_) => Ok(store.commit(incoming, Sealing::BySender)?),
            // A limit or the disk stopped the spool: that, not the parse, is the reason.
            Err(e) => Err(match incoming.take_fault() {
                Some(fault) => ApiError::Store(fault),
                None => ApiError::Envelope(e),
            }),
        }
    });

    let mut stream = body.into_data_stream();
    let started = Instant::now();
    let mut received = 0u64;
    loop {
        let timed_out = |reason: &str| Err(io::Error::new(io::ErrorKind::TimedOut, reason));
        // The next chunk, unless the client is silent too long or a faster upload takes the slot.
        let chunk = tokio::select! {
            biased;
            () = slot.evicted() => timed_out("the upload was too slow and gave its place to another"),
            next = tokio::time::timeout(pace.idle, stream.next()) => match next {
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => {
                    received += chunk.len() as u64;
                    slot.progress(chunk.len());
                    match pace.verdict(received, started.elapsed()) {
                        Some(reason) => timed_out(reason),
                        None => Ok(chunk),
                    }
                }
                Ok(Some(Err(e))) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, e)),
                Err(_) => timed_out("the client sent nothing for too long"),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_allows_slow_reporters_and_stops_slow_attacks() {
        let pace = UploadPace {
            idle: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            min_bytes_per_sec: 2048,
            total: Duration::from_secs(7200),
        };
        // A reporter on a bad Tor circuit: 20 KB/s.
        assert_eq!(pace.verdict(20_000 * 100, Duration::from_secs(100)), None);
        // Anything goes during the grace period.
        assert_eq!(pace.verdict(10, Duration::from_secs(20)), None);
        // A slow-body attack: 100 bytes a second.
        assert!(pace.verdict(100 * 40, Duration::from_secs(40)).is_some());
        assert!(pace.verdict(u64::MAX, Duration::from_secs(7201)).is_some());
    }
}
