//! Upload slots: a bounded number of uploads in progress, where the slowest gives way.
//!
//! A slow-body attack opens uploads and trickles bytes to hold every slot. Each upload is timed
//! (see `upload::UploadPace`), but while it lasts it would lock real reporters out. So when all
//! slots are taken, a new upload may take the slot of the one in progress that falls furthest
//! short of the rate asked of it, provided that one has run a little while; the evicted upload
//! ends with 408 and stores nothing.
//!
//! The rate asked of an upload grows with its age: the eviction rate at first, twice that after
//! one ramp period, three times after two, and so on. Holding a slot therefore costs more the
//! longer it is held: the bytes an upload must have sent grow with the square of its age, so a
//! trickle that stays just above the line is pushed out within minutes, and even a fast one
//! reaches the size limit and ends. A reporter's real upload, which runs at whatever the
//! connection gives, is only at risk when every slot is contended and it is both slow and old.

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
    /// Average bytes per second so far, as a share of what is asked of an upload this old.
    fn share(&self, now: Instant, policy: &SlotPolicy) -> f64 {
        let age = now.duration_since(self.started).as_secs_f64().max(0.001);
        let rate = self.received.load(Ordering::Relaxed) as f64 / age;
        rate / policy.asked_at(age)
    }
}

/// How many uploads at once, and what rate an upload must keep to hold its slot when contended.
#[derive(Debug, Clone, Copy)]
pub struct SlotPolicy {
    /// Most uploads in progress at once (at least 1).
    pub cap: usize,
    /// Bytes per second asked of a young upload.
    pub evict_below_bytes_per_sec: u64,
    /// Every this long, the rate asked grows by the initial rate again.
    pub ramp: Duration,
}

impl SlotPolicy {
    /// The average rate asked of an upload `age_secs` old.
    fn asked_at(&self, age_secs: f64) -> f64 {
        let ramp = self.ramp.as_secs_f64().max(1.0);
        self.evict_below_bytes_per_sec as f64 * (1.0 + age_secs / ramp)
    }
}

/// The uploads in progress, at most `cap` of them: when all slots are taken, a new upload takes
/// the slot of the one (at least 2 s old) furthest below the rate asked of it, which is evicted.
/// Shared by API submissions and form posts (see `limits::Admission`).
pub struct UploadSlots {
    entries: Arc<Mutex<Vec<Entry>>>,
    policy: SlotPolicy,
    next_id: AtomicU64,
}

impl UploadSlots {
    /// No uploads in progress yet; a `cap` of 0 is raised to 1.
    pub fn new(policy: SlotPolicy) -> Self {
        UploadSlots {
            entries: Arc::default(),
            policy: SlotPolicy {
                cap: policy.cap.max(1),
                ..policy
            },
            next_id: AtomicU64::new(0),
        }
    }

    /// A slot, possibly taken from the upload furthest below the rate asked of it; `None` if
    /// every upload keeps up.
    pub fn acquire(&self) -> Option<Slot> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.policy.cap {
            let now = Instant::now();
            let policy = &self.policy;
            let slowest = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| now.duration_since(e.started) >= MIN_AGE)
                .map(|(i, e)| (i, e.share(now, policy)))
                .filter(|(_, share)| *share < 1.0)
                .min_by(|(_, a), (_, b)| a.total_cmp(b))
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
    /// A slot that holds no place (for reading a refused post's answers back).
    pub fn detached() -> Slot {
        Slot {
            id: u64::MAX,
            entries: Arc::default(),
            received: Arc::new(AtomicU64::new(0)),
            evicted: Arc::new((AtomicBool::new(false), Notify::new())),
        }
    }

    /// Counts `bytes` more received, the measure of whether this upload keeps up.
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

    fn policy(cap: usize, rate: u64, ramp_secs: u64) -> SlotPolicy {
        SlotPolicy {
            cap,
            evict_below_bytes_per_sec: rate,
            ramp: Duration::from_secs(ramp_secs),
        }
    }

    #[test]
    fn the_rate_asked_grows_with_age() {
        let p = policy(1, 8192, 600);
        assert_eq!(p.asked_at(0.0), 8192.0);
        assert_eq!(p.asked_at(600.0), 16384.0);
        assert_eq!(p.asked_at(1800.0), 32768.0);
        // The bytes a holder must have sent grow with the square of the time held: within 42
        // minutes a slot costs more than a 100 MiB upload can carry.
        assert!(p.asked_at(2500.0) * 2500.0 > 100.0 * 1024.0 * 1024.0);
    }

    #[tokio::test]
    async fn the_slowest_old_upload_gives_way() {
        let slots = UploadSlots::new(policy(2, 1000, 600));
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
