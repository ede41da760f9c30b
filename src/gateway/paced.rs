//! The pace of a request body: how slow an upload may be, applied the same way to sealed
//! submissions (`upload`) and to forms posted without JavaScript (`form_post`).
//!
//! A body must not stay silent longer than `idle`, must average `min_bytes_per_sec` once `grace`
//! has passed, must end within `total`, and must keep its upload slot (a faster upload may take a
//! slot from one that falls behind the rate asked of it, see [`super::slots`]). Every byte counts,
//! file or text.

use std::future::Future;
use std::time::{Duration, Instant};

use super::slots::Slot;

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

/// Why a paced body was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled(pub &'static str);

/// One body being read at its pace, holding its upload slot.
pub struct PacedBody<'a> {
    pace: UploadPace,
    slot: &'a Slot,
    started: Instant,
    received: u64,
}

impl<'a> PacedBody<'a> {
    pub fn new(pace: UploadPace, slot: &'a Slot) -> Self {
        PacedBody {
            pace,
            slot,
            started: Instant::now(),
            received: 0,
        }
    }

    /// Awaits the next piece of the body (`next`) for at most the idle timeout, unless a faster
    /// upload takes this one's slot first.
    pub async fn wait<T>(&mut self, next: impl Future<Output = T>) -> Result<T, Stalled> {
        tokio::select! {
            biased;
            () = self.slot.evicted() => {
                Err(Stalled("the upload was too slow and gave its place to another"))
            }
            value = tokio::time::timeout(self.pace.idle, next) => {
                value.map_err(|_| Stalled("the client sent nothing for too long"))
            }
        }
    }

    /// Counts `n` bytes received, and checks the average pace.
    pub fn received(&mut self, n: usize) -> Result<(), Stalled> {
        self.received += n as u64;
        self.slot.progress(n);
        self.check()
    }

    /// Checks the average pace and the total time so far.
    pub fn check(&self) -> Result<(), Stalled> {
        match self.pace.verdict(self.received, self.started.elapsed()) {
            Some(reason) => Err(Stalled(reason)),
            None => Ok(()),
        }
    }
}

/// The body length a request announces (`Content-Length`), if it announces a valid one. Used to
/// refuse early and to size budgets; the body itself is still counted as it arrives.
pub fn announced_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
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
