//! Upload slots: a bounded number of uploads in progress, where the slowest gives way.
//!
//! A slow-body attack opens uploads and trickles bytes to hold every slot. Each upload is timed
//! (see `upload::UploadPace`), but while it lasts it would lock real reporters out. So when all
//! slots are taken, a new upload may take the slot of the slowest one in progress, provided that
//! one has run a little while and averages less than the eviction rate; the evicted upload ends
//! with 408 and stores nothing. An attacker must then keep every slot busier than that rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// An upload younger than this is never evicted (its rate means little yet).
const MIN_AGE: Duration = Duration::from_secs(2);

struct Entry {
    id: u64,
    started: Instant,
    received: Arc<AtomicU64>,
    evicted: Arc<(AtomicBool, Notify)>,
}

impl Entry {
    fn rate(&self, now: Instant) -> f64 {
        let secs = now.duration_since(self.started).as_secs_f64().max(0.001);
        self.received.load(Ordering::Relaxed) as f64 / secs
    }
}

pub struct UploadSlots {
    entries: Arc<Mutex<Vec<Entry>>>,
    cap: usize,
    evict_below: f64,
    next_id: AtomicU64,
}

impl UploadSlots {
    pub fn new(cap: usize, evict_below_bytes_per_sec: u64) -> Self {
        UploadSlots {
            entries: Arc::default(),
            cap: cap.max(1),
            evict_below: evict_below_bytes_per_sec as f64,
            next_id: AtomicU64::new(0),
        }
    }

    /// A slot, possibly taken from the slowest upload; `None` if every upload is fast enough.
    pub fn acquire(&self) -> Option<Slot> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.cap {
            let now = Instant::now();
            let slowest = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| now.duration_since(e.started) >= MIN_AGE)
                .filter(|(_, e)| e.rate(now) < self.evict_below)
                .min_by(|(_, a), (_, b)| a.rate(now).total_cmp(&b.rate(now)))
                .map(|(i, _)| i)?;
            let evicted = entries.swap_remove(slowest);
            evicted.evicted.0.store(true, Ordering::Release);
            evicted.evicted.1.notify_one();
        }
        let slot = Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            entries: self.entries.clone(),
            received: Arc::new(AtomicU64::new(0)),
            evicted: Arc::new((AtomicBool::new(false), Notify::new())),
        };
        entries.push(Entry {
            id: slot.id,
            started: Instant::now(),
            received: slot.received.clone(),
            evicted: slot.evicted.clone(),
        });
        Some(slot)
    }
}

/// One upload's place; freed when dropped.
pub struct Slot {
    id: u64,
    entries: Arc<Mutex<Vec<Entry>>>,
    received: Arc<AtomicU64>,
    evicted: Arc<(AtomicBool, Notify)>,
}

impl Slot {
    pub fn progress(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Completes when this upload has been evicted by a faster one.
    pub async fn evicted(&self) {
        if self.evicted.0.load(Ordering::Acquire) {
            return;
        }
        self.evicted.1.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|e| e.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_slowest_old_upload_gives_way() {
        let slots = UploadSlots::new(2, 1000);
        let a = slots.acquire().expect("a");
        let b = slots.acquire().expect("b");
        // Both are young: nobody is evicted.
        assert!(slots.acquire().is_none());
        tokio::time::sleep(MIN_AGE + Duration::from_millis(100)).await;
        a.progress(1_000_000); // fast
        b.progress(10); // slow
        let c = slots.acquire().expect("c takes b's slot");
        tokio::time::timeout(Duration::from_secs(1), b.evicted())
            .await
            .expect("b is told");
        drop(b);
        // a is fast and c is young: no more room.
        assert!(slots.acquire().is_none());
        drop(a);
        assert!(slots.acquire().is_some());
        drop(c);
    }
}
