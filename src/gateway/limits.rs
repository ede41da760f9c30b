//! Admission control: global budgets per kind of request (governor), a bounded set of uploads in
//! progress ([`super::slots`]), and a record of which budgets ran out lately, for `/healthz`.
//!
//! Budgets are global, never per client address: behind Tor every reporter arrives from the same
//! address, and keying on addresses would also mean keeping them. Each kind of request has its own
//! budget, so a flood of one (challenges, say) does not starve the others (the page).
//!
//! No budget refuses as soon as it is spent: a request waits its turn in a first-come queue
//! ([`FairQueue`]), up to a few seconds for the cheap routes and half a minute for uploads, so
//! asking again and again gains an attacker nothing over a reporter who asks once. Since HTTP/1.1 serves one request at a
//! time per connection, a client pipelining hundreds of requests holds one place in the queue,
//! and an honest request that arrives meanwhile is served next: a single connection, however
//! fast, gets its turn and no more. Each connection also has a small budget of its own
//! ([`super::connections`]) and is closed after a number of requests. A flood with many
//! connections still slows everyone (each connection is one more turn), which is the honest
//! trade-off; the connection cap bounds it, and proof-of-work admission (see `SECURITY.md`) is
//! what lets real reporters get ahead of a flood of submissions.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use super::slots::{Slot, SlotPolicy, UploadSlots};
use crate::config::{FormConfig, RateLimits};

/// The budgets, by name as `/healthz` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Budget {
    /// `GET /` and the static files (the [`Route::Page`] queue).
    Page,
    /// `GET /api/v1/keys`.
    Keys,
    /// `GET /api/v1/challenge`.
    Challenges,
    /// The courier routes (`/api/v1/courier/…`); never reported by `/healthz`.
    Courier,
    /// `POST /api/v1/conversations/check`.
    Checks,
    /// The queue of `POST /api/v1/submissions`.
    Submissions,
    /// The upload slots ([`UploadSlots`]).
    Uploads,
    /// `POST /submit`: its queue and its hourly kilobytes; never reported by `/healthz`.
    Form,
    /// The cap on open connections.
    Connections,
}

impl Budget {
    /// The name `/healthz` reports.
    pub fn name(self) -> &'static str {
        match self {
            Budget::Page => "page",
            Budget::Keys => "keys",
            Budget::Challenges => "challenges",
            Budget::Courier => "courier",
            Budget::Checks => "checks",
            Budget::Submissions => "submissions",
            Budget::Uploads => "uploads",
            Budget::Form => "form",
            Budget::Connections => "connections",
        }
    }
}

/// The cheap routes, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The page and the files it loads.
    Page,
    /// `GET /api/v1/keys`.
    Keys,
    /// `GET /api/v1/challenge`.
    Challenge,
    /// The signed `/api/v1/courier/…` routes, charged after authentication.
    Courier,
    /// `GET /api/v1/courier/challenge`.
    CourierChallenge,
    /// `POST /api/v1/conversations/check`.
    Check,
}

/// When each budget last refused something.
#[derive(Default)]
pub struct Saturation {
    last: Mutex<HashMap<Budget, Instant>>,
}

/// A budget that refused within this long counts as saturated.
const SATURATION_WINDOW: Duration = Duration::from_secs(60);

impl Saturation {
    /// Records that `budget` made a request wait or refused it, now.
    pub fn note(&self, budget: Budget) {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(budget, Instant::now());
    }

    /// Budgets that made requests wait or refused them in the last minute, sorted. The form's
    /// budget is small enough that a few honest posts fill it: saying so publicly would show
    /// when reports without JavaScript are sent, so it is left out; the couriers' and the
    /// check-ins' likewise would show when the people on call, or reporters, are at work.
    pub fn recent(&self) -> Vec<&'static str> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<Budget> = last
            .iter()
            .filter(|(b, t)| {
                t.elapsed() < SATURATION_WINDOW
                    && !matches!(b, Budget::Form | Budget::Courier | Budget::Checks)
            })
            .map(|(b, _)| *b)
            .collect();
        names.sort();
        names.into_iter().map(Budget::name).collect()
    }
}

/// A rate with a burst, served first come, first served: each request reserves the next free
/// moment (GCRA with reservations) and waits for it; one whose moment is further away than
/// `max_wait` is refused without reserving anything.
pub struct FairQueue {
    /// The theoretical arrival time of the next request.
    next: Mutex<tokio::time::Instant>,
    interval: Duration,
    /// How far ahead of its moment a request may go (the burst).
    tolerance: Duration,
    max_wait: Duration,
}

/// What [`FairQueue::reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Go at this moment (now or later).
    At(tokio::time::Instant),
    /// The queue is too long: try again after this many seconds.
    Refused(u64),
}

impl FairQueue {
    /// `per_second` requests a second (0 counts as 1), `burst` of them at once.
    pub fn new(per_second: u32, burst: u32, max_wait: Duration) -> Self {
        Self::with_interval(Duration::from_secs(1) / per_second.max(1), burst, max_wait)
    }

    /// `per_minute` requests a minute (0 counts as 1), `burst` of them at once.
    pub fn per_minute(per_minute: u32, burst: u32, max_wait: Duration) -> Self {
        Self::with_interval(Duration::from_secs(60) / per_minute.max(1), burst, max_wait)
    }

    fn with_interval(interval: Duration, burst: u32, max_wait: Duration) -> Self {
        FairQueue {
            next: Mutex::new(tokio::time::Instant::now()),
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            max_wait,
        }
    }

    /// Reserves the next turn, at `now`.
    pub fn reserve(&self, now: tokio::time::Instant) -> Turn {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let arrival = (*next).max(now);
        let at = arrival.checked_sub(self.tolerance).unwrap_or(now).max(now);
        if at > now + self.max_wait {
            return Turn::Refused(seconds(at - now));
        }
        *next = arrival + self.interval;
        Turn::At(at)
    }
}

/// A request that had to wait for its turn at all counts as saturation for `/healthz`: the
/// budget (and its burst) was spent.
const SLOW_TURN: Duration = Duration::ZERO;

/// Decides whether a request may go ahead, and when: a first-come queue per route (page, keys,
/// challenge), one for API submissions and one for form posts, the form's hourly byte budget,
/// and the upload slots. One per gateway, in `AppState`; refusals become [`ApiError`]s (429).
pub struct Admission {
    submissions: FairQueue,
    page: FairQueue,
    keys: FairQueue,
    challenges: FairQueue,
    courier: FairQueue,
    courier_challenges: FairQueue,
    checks: FairQueue,
    form_posts: FairQueue,
    /// Kilobytes of form posts (sealed on arrival: the gateway does the work).
    form_kilobytes: DefaultDirectRateLimiter,
    uploads: UploadSlots,
    clock: DefaultClock,
    saturation: std::sync::Arc<Saturation>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// The longest a cheap request waits for its turn before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(3);
/// The longest a submission (or a form post) waits for its turn: it holds a connection with its
/// body unread meanwhile, which a reporter on Tor tolerates for this long.
const MAX_UPLOAD_WAIT: Duration = Duration::from_secs(30);

impl Admission {
    /// Budgets from the `[rate_limits]` and `[form]` config sections.
    pub fn new(
        limits: &RateLimits,
        form: &FormConfig,
        slots: SlotPolicy,
        saturation: std::sync::Arc<Saturation>,
    ) -> Self {
        // A bucket of an hour's kilobytes that refills evenly.
        let kib_per_hour = u32::try_from(form.bytes_per_hour / 1024).unwrap_or(u32::MAX);
        let form_kilobytes = Quota::with_period(Duration::from_secs(3600) / kib_per_hour.max(1))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(nonzero(kib_per_hour));
        Admission {
            submissions: FairQueue::per_minute(
                limits.submissions_per_minute,
                limits.submission_burst,
                MAX_UPLOAD_WAIT,
            ),
            page: FairQueue::new(limits.requests_per_second, limits.request_burst, MAX_WAIT),
            keys: FairQueue::new(limits.keys_per_second, limits.keys_burst, MAX_WAIT),
            challenges: FairQueue::new(
                limits.challenges_per_second,
                limits.challenge_burst,
                MAX_WAIT,
            ),
            courier: FairQueue::new(limits.courier_per_second, limits.courier_burst, MAX_WAIT),
            courier_challenges: FairQueue::new(
                limits.courier_per_second,
                limits.courier_burst,
                MAX_WAIT,
            ),
            checks: FairQueue::per_minute(limits.checks_per_minute, limits.check_burst, MAX_WAIT),
            form_posts: FairQueue::per_minute(
                form.posts_per_minute,
                form.post_burst,
                MAX_UPLOAD_WAIT,
            ),
            form_kilobytes: RateLimiter::direct(form_kilobytes),
            uploads: UploadSlots::new(slots),
            clock: DefaultClock::default(),
            saturation,
        }
    }

    /// Which budgets refused lately, for `/healthz`.
    pub fn saturation(&self) -> &Saturation {
        &self.saturation
    }

    /// Waits for a turn in `queue`; refused if the queue is longer than it may wait.
    async fn turn(&self, queue: &FairQueue, budget: Budget) -> Result<(), u64> {
        let now = tokio::time::Instant::now();
        match queue.reserve(now) {
            Turn::At(at) => {
                if at > now + SLOW_TURN {
                    self.saturation.note(budget);
                    // Only when there is a wait: the timer's granularity would add a millisecond
                    // to every request otherwise.
                    tokio::time::sleep_until(at).await;
                }
                Ok(())
            }
            Turn::Refused(retry_after) => {
                self.saturation.note(budget);
                Err(retry_after)
            }
        }
    }

    fn slot(&self) -> Result<Slot, ApiError> {
        self.uploads.acquire().ok_or_else(|| {
            self.saturation.note(Budget::Uploads);
            ApiError::TooManyUploads { retry_after: 5 }
        })
    }

    /// Admits one more upload when its turn comes (first come, first served: asking again and
    /// again gains nothing), then gives it an upload slot, held for the upload.
    pub async fn admit_upload(&self) -> Result<Slot, ApiError> {
        self.turn(&self.submissions, Budget::Submissions)
            .await
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        self.slot()
    }

    /// Admits one more submission when its turn comes, without an upload slot (the creation of
    /// an upload that resumes: its bytes come later, each PATCH with its own slot).
    pub async fn admit_submission(&self) -> Result<(), ApiError> {
        self.turn(&self.submissions, Budget::Submissions)
            .await
            .map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    /// An upload slot, for a body that is already admitted (a PATCH of an upload that resumes).
    pub fn upload_slot(&self) -> Result<Slot, ApiError> {
        self.slot()
    }

    /// Admits a form post of about `bytes`: its turn in the form's own queue, its bytes from the
    /// form's hourly budget (the gateway seals these posts itself), then an upload slot.
    pub async fn admit_form_post(&self, bytes: u64) -> Result<Slot, ApiError> {
        let refused = |retry_after| ApiError::RateLimited { retry_after };
        self.turn(&self.form_posts, Budget::Form)
            .await
            .map_err(refused)?;
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        match self.form_kilobytes.check_n(nonzero(kib)) {
            Ok(Ok(())) => {}
            Ok(Err(not_until)) => {
                self.saturation.note(Budget::Form);
                return Err(refused(seconds(not_until.wait_time_from(self.clock.now()))));
            }
            // Larger than the whole hourly budget: never admitted.
            Err(_) => return Err(refused(3600)),
        }
        self.slot()
    }

    /// Admits one request to a cheap route, when its turn comes.
    pub async fn admit_request(&self, route: Route) -> Result<(), ApiError> {
        let (queue, budget) = match route {
            Route::Page => (&self.page, Budget::Page),
            Route::Keys => (&self.keys, Budget::Keys),
            Route::Challenge => (&self.challenges, Budget::Challenges),
            Route::Courier => (&self.courier, Budget::Courier),
            Route::CourierChallenge => (&self.courier_challenges, Budget::Courier),
            Route::Check => (&self.checks, Budget::Checks),
        };
        self.turn(queue, budget)
            .await
            .map_err(|retry_after| ApiError::TooManyRequests { retry_after })
    }
}

/// Whole seconds to wait, at least one.
fn seconds(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_given_in_order_with_a_burst_and_a_bound() {
        let queue = FairQueue::new(10, 3, Duration::from_secs(1));
        let now = tokio::time::Instant::now();
        let at = |turn| match turn {
            Turn::At(at) => at - now,
            Turn::Refused(_) => Duration::MAX,
        };
        // The burst goes at once; then one every 100 ms, in the order asked.
        for _ in 0..3 {
            assert_eq!(at(queue.reserve(now)), Duration::ZERO);
        }
        assert_eq!(at(queue.reserve(now)), Duration::from_millis(100));
        assert_eq!(at(queue.reserve(now)), Duration::from_millis(200));
        for _ in 0..8 {
            queue.reserve(now);
        }
        // More than a second away: refused, and nothing reserved for it.
        assert!(matches!(queue.reserve(now), Turn::Refused(_)));
        assert!(matches!(queue.reserve(now), Turn::Refused(_)));
        // Later, it is calm again.
        let later = now + Duration::from_secs(5);
        assert_eq!(queue.reserve(later), Turn::At(later));
    }
}
