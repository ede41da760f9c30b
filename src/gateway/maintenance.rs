//! Housekeeping while the gateway runs: blurring file change times, and retention.
//!
//! Every minute, if submissions arrived, all ciphertext files get their day-times set again, which
//! moves every file's inode change time to the same moment: a seized disk then shows when the last
//! sweep ran, not when each report arrived. Every hour, if retention is configured, submissions
//! never exported are deleted after their time, with a warning in the log (once a day) three days
//! before. Log lines carry counts and days only.

use std::sync::Arc;
use std::time::Duration;

use crate::store::SubmissionStore;
use crate::submission::UtcDay;

const TICK: Duration = Duration::from_secs(60);
const RETENTION_EVERY_TICKS: u32 = 60;
const WARN_DAYS: u32 = 3;

pub async fn run(store: Arc<SubmissionStore>, unexported_days: u32) {
    let mut ticks: u32 = 0;
    let mut warned_on: Option<UtcDay> = None;
    let mut interval = tokio::time::interval(TICK);
    loop {
        interval.tick().await;
        let s = store.clone();
        let restamp = tokio::task::spawn_blocking(move || {
            if s.needs_restamp() {
                s.restamp_times().map(|_| ())
            } else {
                Ok(())
            }
        })
        .await;
        if let Ok(Err(e)) = restamp {
            tracing::warn!("could not reset file times: {e}");
        }
        if unexported_days > 0 && ticks % RETENTION_EVERY_TICKS == 0 {
            let s = store.clone();
            let today = UtcDay::today();
            match tokio::task::spawn_blocking(move || {
                s.apply_retention(today, unexported_days, WARN_DAYS)
            })
            .await
            {
                Ok(Ok(report)) => {
                    if report.deleted > 0 {
                        tracing::warn!(
                            "retention: deleted {} submissions that were not exported within {unexported_days} days",
                            report.deleted
                        );
                    }
                    if report.due_soon > 0 && warned_on != Some(today) {
                        warned_on = Some(today);
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
        ticks = ticks.wrapping_add(1);
    }
}
