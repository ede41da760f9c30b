//! Housekeeping while the gateway runs: blurring file times, the daily pass, and retention.
//!
//! Every sweep interval (a minute by default, and once right after a start), if anything in the
//! data directory changed, every file's times are set again ([`SubmissionStore::sweep_times`]),
//! which moves every inode change time to the same moment: a seized disk then shows when the last
//! sweep ran, not when each report arrived. Once a UTC day the store tops up its spare files and
//! rewrites its index ([`SubmissionStore::daily`]). Every hour, if retention is configured,
//! submissions never exported are deleted after their time, with a warning in the log (once a
//! day) three days before. Log lines carry counts and days only, and are written by the daily and
//! hourly passes, never at the moment of a submission. The daily pass also deletes conversations
//! quiet for `[retention] conversation_days`. Every sweep interval (so at start, too), uploads
//! that resume are deleted when their expiry day has begun (`[uploads] expire_days`), which
//! releases what they held of the quota; nothing is logged for them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::RetentionConfig;
use crate::store::{SubmissionBackend, SubmissionStore};
use crate::submission::UtcDay;

const RETENTION_EVERY: Duration = Duration::from_secs(3600);
const WARN_DAYS: u32 = 3;

pub async fn run(
    store: Arc<SubmissionStore>,
    submissions: Arc<dyn SubmissionBackend>,
    sweep_every: Duration,
    retention_config: RetentionConfig,
) {
    let unexported_days = retention_config.unexported_days;
    let mut last_daily: Option<UtcDay> = None;
    let mut last_retention: Option<Instant> = None;
    let mut warned_on: Option<UtcDay> = None;
    // The first tick is immediate: a sweep right after a start hides the times of whatever
    // happened before a crash.
    let mut interval = tokio::time::interval(sweep_every);
    loop {
        interval.tick().await;
        let today = UtcDay::today();
        if last_daily != Some(today) {
            last_daily = Some(today);
            daily(&store, today).await;
            expire_conversations(&store, today, retention_config.conversation_days).await;
        }
        if unexported_days > 0 && last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            retention(&submissions, today, unexported_days, &mut warned_on).await;
        }
        // Spares made here, at a pass, never at an arrival; then the sweep, last, so it covers
        // what the passes above changed.
        let s = store.clone();
        let swept = tokio::task::spawn_blocking(move || {
            s.uploads().expire(today);
            s.refill_spares()?;
            if s.needs_sweep() {
                s.sweep_times().map(|_| ())
            } else {
                Ok(())
            }
        })
        .await;
        if let Ok(Err(e)) = swept {
            tracing::warn!("could not make spare files or reset file times: {e}");
        }
    }
}

async fn daily(store: &Arc<SubmissionStore>, today: UtcDay) {
    let seconds_into_day = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 86_400);
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.daily(today, seconds_into_day)).await {
        Ok(Ok(report)) => {
            if report.spare_shortages > 0 {
                tracing::warn!(
                    "the pool of spare files ran out {} times since the last daily pass; files made \
                     then date the submissions written into them to after that moment; raise \
                     store.spare_files",
                    report.spare_shortages
                );
            }
        }
        Ok(Err(e)) => tracing::warn!("daily store pass failed: {e}"),
        Err(_) => tracing::warn!("daily store pass failed"),
    }
}

async fn expire_conversations(store: &Arc<SubmissionStore>, today: UtcDay, days: u32) {
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.expire_conversations(today, days)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!("retention: deleted {n} conversations quiet for {days} days"),
        Ok(Err(e)) => tracing::warn!("conversation expiry failed: {e}"),
        Err(_) => tracing::warn!("conversation expiry task failed"),
    }
}

async fn retention(
    store: &Arc<dyn SubmissionBackend>,
    today: UtcDay,
    unexported_days: u32,
    warned_on: &mut Option<UtcDay>,
) {
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.apply_retention(today, unexported_days, WARN_DAYS))
        .await
    {
        Ok(Ok(report)) => {
            if report.deleted > 0 {
                tracing::warn!(
                    "retention: deleted {} submissions that were not exported within {unexported_days} days",
                    report.deleted
                );
            }
            if report.due_soon > 0 && *warned_on != Some(today) {
                *warned_on = Some(today);
                tracing::warn!(
                    "retention: {} submissions not yet exported will be deleted from {} on; export them before then",
                    report.due_soon,
                    report.first_due.map(|d| d.to_string()).unwrap_or_default()
                );
            }
        }
        Ok(Err(e)) => tracing::warn!("retention failed: {e}"),
        Err(_) => tracing::warn!("retention task failed"),
    }
}
