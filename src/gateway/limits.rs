//! Admission control: global rate limits (governor) and a bounded set of uploads in progress
//! ([`super::slots`]).
//!
//! Limits are global, never per client address: behind Tor every reporter arrives from the same
//! address, and keying on addresses would also mean keeping them. A flood therefore slows
//! everyone, which is the honest trade-off; proof-of-work admission (see `SECURITY.md`) is what
//! lets real reporters get ahead of a flood.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use super::slots::{Slot, UploadSlots};
use crate::config::RateLimits;

pub struct Admission {
    submissions: DefaultDirectRateLimiter,
    requests: DefaultDirectRateLimiter,
    uploads: UploadSlots,
    clock: DefaultClock,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Admission {
    pub fn new(limits: &RateLimits) -> Self {
        let submissions = Quota::per_minute(nonzero(limits.submissions_per_minute))
            .allow_burst(nonzero(limits.submission_burst));
        let requests = Quota::per_second(nonzero(limits.requests_per_second))
            .allow_burst(nonzero(limits.request_burst));
        Admission {
            submissions: RateLimiter::direct(submissions),
            requests: RateLimiter::direct(requests),
            uploads: UploadSlots::new(
                limits.max_concurrent_uploads as usize,
                limits.evict_uploads_slower_than_bytes_per_sec,
            ),
            clock: DefaultClock::default(),
        }
    }

    /// Admits one more upload, or says how long to wait. The slot is held for the upload.
    pub fn admit_upload(&self) -> Result<Slot, ApiError> {
        let slot = self
            .uploads
            .acquire()
            .ok_or(ApiError::TooManyUploads { retry_after: 5 })?;
        self.submissions
            .check()
            .map_err(|not_until| ApiError::RateLimited {
                retry_after: seconds(not_until.wait_time_from(self.clock.now())),
            })?;
        Ok(slot)
    }

    /// Admits one request to a cheap route.
    pub fn admit_request(&self) -> Result<(), ApiError> {
        self.requests
            .check()
            .map_err(|not_until| ApiError::TooManyRequests {
                retry_after: seconds(not_until.wait_time_from(self.clock.now())),
            })
    }
}

/// Whole seconds to wait, at least one.
fn seconds(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}
