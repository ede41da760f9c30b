//! `resguardo-review watch` and `ring`: the on-call person's early alerts
//! (`docs/early-alerts.md`).
//!
//! `watch` polls the gateway at a fixed rhythm (the same whether or not anything is urgent),
//! opens new triage envelopes with the courier key, prints one line per new report (urgent
//! first) and rings for urgent ones. Ringing is done by a detached `ring` process that claims
//! `alerts/<id>` in the state directory with `O_EXCL` before it rings, so an alert rings exactly
//! once across `kill -9` of the watch: a watch killed before it recorded the report as seen
//! spawns `ring` again after restart, and that second `ring` finds the claim and stops.
//!
//! At every poll it also checks the gateway's log (`docs/trust-v1.md`, part 2): the head must
//! extend the last one it verified (`chain_head` in its state). With `--org FINGERPRINT` it checks
//! the served key list and the page too (part 3) on a thread of its own (so that a slow or
//! hostile page never delays the triage polling and its rings), with a state file of its own
//! (`watch-trust.json`), in sessions of their own at random moments of the interval. A problem
//! rings like an urgent report, once per problem (`rung` in its state), through the same `ring`
//! process, its claim named by a hash of the problem.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sequoia_openpgp as openpgp;

use openpgp::parse::stream::DecryptorBuilder;
use openpgp::parse::Parse;
use openpgp::Fingerprint;
use serde::{Deserialize, Serialize};

use super::courier::{Courier, CHAIN_BEHIND};
use crate::courier::{TriageItem, TriageList};
use crate::payload::Urgency;
use crate::submission::{SubmissionId, UtcDay};
use crate::submit::verify_page::{check_gateway, check_rest_files, PageClient, TrustCheckError};
use crate::submit::SubmitError;
use crate::terminal::clean_line;
use crate::triage::{Triage, TRIAGE_BYTES};
use crate::trust::chain::{extends, ChainPoint, Rewritten};
use crate::trust::page::{PageManifest, PageReport};

/// Largest triage answer read (a full page of items is about 2.5 MiB).
const MAX_TRIAGE_ANSWER: u64 = 4 * 1024 * 1024;

/// The state file in the state directory.
const STATE_FILE: &str = "watch-state.json";
/// The trust checks' state file (`--org`), written by their thread only.
const TRUST_STATE_FILE: &str = "watch-trust.json";

/// A check of the page and keys that fails to complete this many polls in a row (the gateway
/// answering, but not with the page and its keys) rings, once a key list was verified.
pub const INCOMPLETE_ALARM: u32 = 3;
/// The folder of ring claims in the state directory.
const ALERTS_DIR: &str = "alerts";

/// Why watching stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Talking to the gateway failed (it is retried at the next poll; this is for the first).
    #[error(transparent)]
    Gateway(#[from] SubmitError),
    /// The state directory could not be read or written.
    #[error("{path}: {source}")]
    State {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Signing a request failed.
    #[error("signing the request failed: {0}")]
    Sign(String),
}

/// What the watch remembers between runs: the ids it has handled, with their day, and the
/// gateway's day at the last poll that answered (the next poll asks from the day before it, so a
/// watch that was off for a week still sees that week).
#[derive(Debug, Default, Serialize, Deserialize)]
struct WatchState {
    seen: BTreeMap<SubmissionId, UtcDay>,
    #[serde(default)]
    last_poll: Option<UtcDay>,
    /// Urgent reports listed but not rung yet (over the per-poll cap), in the order they were
    /// first listed: they ring first at the next polls. Not saved: after a restart they are new
    /// again.
    #[serde(skip)]
    waiting: Vec<SubmissionId>,
    /// The last point of the gateway's chain this watch verified (from genesis on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chain_head: Option<ChainPoint>,
    /// The highest key list version seen, by watches from before `watch-trust.json` (read once,
    /// to start that file from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_list_version: Option<u64>,
    /// Problems rung for ([`Alarm::key`]), with the day: each rings once (again only after
    /// [`RUNG_DAYS`], as a reminder, if it is still there).
    #[serde(default)]
    rung: BTreeMap<String, UtcDay>,
}

/// What the trust checks (`--org`) remember between polls and runs (`watch-trust.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustState {
    /// The highest key list version verified: a lower one rings. Also tells that a key list was
    /// verified before (then a check that does not complete rings, after
    /// [`INCOMPLETE_ALARM`] polls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_list_version: Option<u64>,
    /// Polls in a row whose check did not complete, the gateway answering.
    #[serde(default)]
    incomplete: u32,
    /// Problems rung for, as [`WatchState::rung`].
    #[serde(default)]
    rung: BTreeMap<String, UtcDay>,
    /// A session of this round did not complete (reached or not).
    #[serde(skip)]
    failed_now: bool,
}

impl WatchState {
    /// The first day to ask the gateway for: the day before the last poll that answered; on a
    /// first run, the last [`FIRST_RUN_DAYS`] days.
    fn since(&self, today: UtcDay) -> UtcDay {
        let from = match self.last_poll {
            Some(day) => day.days_since_epoch().min(today.days_since_epoch()) - 1,
            None => today.days_since_epoch() - FIRST_RUN_DAYS,
        };
        UtcDay::from_days_since_epoch(from)
    }
}

/// Most urgent reports rung (and `--on-alert` runs) per poll; more are listed with one bell and
/// rung at the next polls.
pub const MAX_RINGS_PER_POLL: usize = 20;

/// A first run lists (and rings for) the reports of this many days back.
const FIRST_RUN_DAYS: i32 = 7;

/// A ring claim stays at least this long after the report left the watch's memory (a watch
/// killed between ringing and saving its state must still find the claim).
const CLAIM_DAYS: u64 = 14;

/// A problem rung for is not rung again for this many days.
const RUNG_DAYS: i32 = 30;

/// Most problems remembered as rung (the oldest are forgotten first).
const MAX_RUNG: usize = 1000;

/// Most chain answers read in one poll (10,000 leaves each); the rest at the next polls.
const MAX_CHAIN_PAGES_PER_POLL: usize = 100;

/// What a desktop notification needs from the session `watch` runs in; `ring` gets these, and
/// `--on-alert` only `HOME` and `LANG` of them.
const SESSION_VARIABLES: &[&str] = &[
    "HOME",
    "LANG",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
];

/// One new report, as the on-call person reads it.
#[derive(Debug, Clone)]
pub struct Sighting {
    /// The submission.
    pub id: SubmissionId,
    /// The note, or `None` when the envelope would not open (not for this key, or damaged).
    pub triage: Option<Triage>,
}

impl Sighting {
    /// True when someone is at imminent risk.
    pub fn is_urgent(&self) -> bool {
        self.triage
            .as_ref()
            .is_some_and(|t| t.urgent == Urgency::Yes)
    }

    /// The one line printed for it (only option ids and the day: nothing a reporter typed).
    pub fn line(&self) -> String {
        match &self.triage {
            Some(t) => {
                let label = if self.is_urgent() { "URGENT" } else { "report" };
                let region = t.region.as_deref().unwrap_or("-");
                let types = if t.types.is_empty() {
                    "-".to_string()
                } else {
                    t.types.join(",")
                };
                clean_line(&format!(
                    "{label}  {}  {}  types: {types}  region: {region}",
                    t.day, self.id
                ))
            }
            None => format!("report  {}  (its triage envelope did not open)", self.id),
        }
    }

    /// The environment `--on-alert` gets: the triage fields and nothing else.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let Some(t) = &self.triage else {
            return vec![("RESGUARDO_ID", self.id.to_string())];
        };
        let urgent = match t.urgent {
            Urgency::Yes => "yes",
            Urgency::No => "no",
            Urgency::Unanswered => "unanswered",
        };
        vec![
            ("RESGUARDO_ID", self.id.to_string()),
            ("RESGUARDO_URGENT", urgent.into()),
            ("RESGUARDO_TYPES", t.types.join(",")),
            ("RESGUARDO_REGION", t.region.clone().unwrap_or_default()),
            ("RESGUARDO_DAY", t.day.to_string()),
            ("RESGUARDO_SUMMARY", self.line()),
        ]
    }
}

impl Courier {
    /// Every triage envelope the gateway holds from `since` on.
    pub fn triage_since(
        &mut self,
        since: UtcDay,
    ) -> Result<(UtcDay, Vec<TriageItem>), SubmitError> {
        let mut items = Vec::new();
        let mut after: Option<SubmissionId> = None;
        loop {
            let mut path = format!("api/v1/courier/triage?since={since}");
            if let Some(after) = after {
                path.push_str(&format!("&after={after}"));
            }
            let list: TriageList =
                self.signed(|client, sign| client.courier_get(&path, sign, MAX_TRIAGE_ANSWER))?;
            after = list.items.last().map(|i| i.id);
            items.extend(list.items);
            if !list.more || after.is_none() {
                return Ok((list.today, items));
            }
        }
    }

    /// Opens one envelope: `None` if it is not for this key or not a triage note.
    pub fn open(&mut self, item: &TriageItem) -> Option<Triage> {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&item.triage)
            .ok()?;
        let helper = self.key.as_mut()?.helper(Arc::new(AtomicBool::new(false)));
        let mut reader = DecryptorBuilder::from_bytes(&sealed)
            .ok()?
            .with_policy(&crate::keyring::POLICY, None, helper)
            .ok()?;
        let mut plain = Vec::with_capacity(TRIAGE_BYTES);
        (&mut reader)
            .take(TRIAGE_BYTES as u64 + 1)
            .read_to_end(&mut plain)
            .ok()?;
        Triage::from_padded(&plain).ok()
    }
}

/// How `watch` runs.
pub struct WatchOptions {
    /// Seconds between polls.
    pub every: Duration,
    /// Where the state and the ring claims live.
    pub state_dir: PathBuf,
    /// Run by `/bin/sh -c` for each urgent report, with only the triage fields in its
    /// environment.
    pub on_alert: Option<String>,
    /// Stop after this many polls (tests and `--once`); `None` runs until killed.
    pub polls: Option<u64>,
    /// `--org`: check the served key list and the page at every poll.
    pub trust: Option<TrustOptions>,
}

/// What `watch --org` needs for the key list and the page.
pub struct TrustOptions {
    /// The organisation key's fingerprint, from the card.
    pub pin: Fingerprint,
    /// Reaches the gateway for the page, in sessions of their own.
    pub page: PageClient,
}

/// A trust problem that rings (`docs/trust-v1.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// `chain`, `keys` or `page`.
    pub area: &'static str,
    /// A short stable name: the watch rings once per key.
    pub key: String,
    /// The line printed and rung (names the file or the sequence number).
    pub line: String,
}

impl Alarm {
    fn chain(r: &Rewritten) -> Alarm {
        let key = match r {
            Rewritten::WentBack { seen, .. } => format!("chain:went-back:{seen}"),
            Rewritten::Changed(n) => format!("chain:changed:{n}"),
            Rewritten::DoesNotAddUp(n) => format!("chain:does-not-add-up:{n}"),
        };
        Alarm {
            area: "chain",
            key,
            line: format!("chain: {r}"),
        }
    }

    /// The claim `ring` makes for it: an id derived from the key (no report has it).
    fn claim_id(&self) -> SubmissionId {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("resguardo.watch.alarm/1\n{}", self.key).as_bytes(),
        );
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest.as_ref()[..16]);
        SubmissionId::from_bytes(id)
    }
}

fn state_error(path: &Path) -> impl FnOnce(io::Error) -> WatchError + '_ {
    move |source| WatchError::State {
        path: path.to_path_buf(),
        source,
    }
}

fn load_state(dir: &Path) -> Result<WatchState, WatchError> {
    let path = dir.join(STATE_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| WatchError::State {
            path,
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(WatchState::default()),
        Err(e) => Err(WatchError::State { path, source: e }),
    }
}

/// Replaces the state file atomically and durably (temporary file, fsync, rename, fsync dir).
fn save_state(dir: &Path, state: &WatchState) -> Result<(), WatchError> {
    let json = serde_json::to_vec(state).unwrap_or_default();
    write_atomically(dir, STATE_FILE, &json)
}

fn write_atomically(dir: &Path, name: &str, json: &[u8]) -> Result<(), WatchError> {
    let path = dir.join(name);
    let temp = dir.join(format!("{name}.new"));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(json)?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        File::open(dir)?.sync_all()
    })();
    written.map_err(state_error(&path))
}

/// Polls until `options.polls` is reached (or forever), printing each new report to `out`. With
/// `--org`, the key list and page checks run on a thread of their own ([`trust_loop`]); what it
/// prints comes out here, between polls.
pub fn watch(
    courier: &mut Courier,
    options: &WatchOptions,
    out: &mut dyn Write,
) -> Result<(), WatchError> {
    let dir = &options.state_dir;
    fs::create_dir_all(dir.join(ALERTS_DIR)).map_err(state_error(dir))?;
    let mut state = load_state(dir)?;
    forget_old_claims(dir, &state);
    if options.trust.is_none() {
        let _ = writeln!(
            out,
            "key list and page checks are off (give --org FINGERPRINT, from the organisation's card, to turn them on)"
        );
    }
    let (lines_tx, lines_rx) = mpsc::channel::<Vec<u8>>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let seed = state.key_list_version;
    std::thread::scope(|scope| {
        let trust_thread = options.trust.as_ref().map(|trust| {
            let lines = lines_tx.clone();
            scope.spawn(move || trust_loop(trust, options, seed, stop_rx, lines))
        });
        drop(lines_tx);
        let result = poll_loop(courier, options, &mut state, out, &lines_rx);
        // The trust thread stops at its next pause (at once with --once, after its check).
        drop(stop_tx);
        for chunk in lines_rx.iter() {
            let _ = out.write_all(&chunk);
        }
        let _ = out.flush();
        if let Some(thread) = trust_thread {
            let _ = thread.join();
        }
        result
    })
}

/// The triage and chain polling, at its fixed rhythm.
fn poll_loop(
    courier: &mut Courier,
    options: &WatchOptions,
    state: &mut WatchState,
    out: &mut dyn Write,
    lines: &Receiver<Vec<u8>>,
) -> Result<(), WatchError> {
    let dir = &options.state_dir;
    let mut shown = Shown::default();
    let mut polls = 0u64;
    loop {
        let started = Instant::now();
        let since = state.since(UtcDay::today());
        match courier.triage_since(since) {
            Ok((gateway_today, items)) => {
                handle(courier, state, items, options, out)?;
                state.last_poll = Some(gateway_today);
                // What the next poll cannot return any more need not be remembered.
                let next = state.since(gateway_today);
                state.seen.retain(|_, day| *day >= next);
                save_state(dir, state)?;
            }
            // A gateway out of reach (a broken Tor circuit) is tried again at the next poll.
            Err(e) => {
                let _ = writeln!(out, "gateway not reached: {}", clean_line(&e.to_string()));
            }
        }
        let alarms = check_chain(courier, state, &mut shown, out);
        raise(&mut state.rung, options, &alarms, &mut shown, out);
        save_state(dir, state)?;
        let _ = out.flush();
        polls += 1;
        if options.polls.is_some_and(|n| polls >= n) {
            return Ok(());
        }
        // Until the next poll, print what the trust thread says as it says it.
        let until = started + options.every;
        loop {
            let now = Instant::now();
            if now >= until {
                break;
            }
            match lines.recv_timeout(until - now) {
                Ok(chunk) => {
                    let _ = out.write_all(&chunk);
                    let _ = out.flush();
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    break;
                }
            }
        }
    }
}

/// Lines for the main thread to print (each sent whole).
struct LineSender {
    to: Sender<Vec<u8>>,
    pending: Vec<u8>,
}

impl Write for LineSender {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        if let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(last + 1);
            let line = std::mem::replace(&mut self.pending, rest);
            let _ = self.to.send(line);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Waits `d`; false when the watch is stopping.
fn pause(stop: &Receiver<()>, d: Duration) -> bool {
    matches!(stop.recv_timeout(d), Err(RecvTimeoutError::Timeout))
}

/// The key list and page checks (`--org`), on their own thread and state: at a random moment of
/// each interval the browser session (the pages, what they load, `/api/v1/keys`), at another
/// random moment after it the rest of the release, each a session of its own. A check takes at
/// most [`crate::trust::page::DEADLINE`] per session, and never delays the triage polling.
fn trust_loop(
    trust: &TrustOptions,
    options: &WatchOptions,
    seed: Option<u64>,
    stop: Receiver<()>,
    lines: Sender<Vec<u8>>,
) {
    let mut out = LineSender {
        to: lines,
        pending: Vec::new(),
    };
    let dir = &options.state_dir;
    let mut state = match load_trust_state(dir) {
        Ok(Some(s)) => s,
        Ok(None) => TrustState {
            key_list_version: seed,
            ..TrustState::default()
        },
        Err(e) => {
            let _ = writeln!(out, "page and keys not checked: {e}");
            return;
        }
    };
    let mut shown = Shown::default();
    let mut round = 0u64;
    loop {
        round += 1;
        let last = options.polls.is_some_and(|n| round >= n);
        let started = Instant::now();
        // Not right after the courier's signed requests, which the gateway can tell apart.
        if !last && !pause(&stop, random_part(options.every)) {
            return;
        }
        state.failed_now = false;
        let (alarms, rest) = check_trust(trust, &mut state, &mut shown, &mut out);
        raise(&mut state.rung, options, &alarms, &mut shown, &mut out);
        save_trust_state(dir, &state, &mut out);
        if let Some(rest) = rest {
            let left = options.every.saturating_sub(started.elapsed());
            if !last && !pause(&stop, random_part(left)) {
                return;
            }
            let alarms = check_rest(trust, rest, &mut state, &mut shown, &mut out);
            raise(&mut state.rung, options, &alarms, &mut shown, &mut out);
        }
        if !state.failed_now && state.incomplete > 0 {
            state.incomplete = 0;
            // Rings again if it comes back.
            state.rung.remove(INCOMPLETE_KEY);
        }
        save_trust_state(dir, &state, &mut out);
        if last {
            return;
        }
        if !pause(&stop, options.every.saturating_sub(started.elapsed())) {
            return;
        }
    }
}

fn load_trust_state(dir: &Path) -> Result<Option<TrustState>, WatchError> {
    let path = dir.join(TRUST_STATE_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| WatchError::State {
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WatchError::State { path, source: e }),
    }
}

fn save_trust_state(dir: &Path, state: &TrustState, out: &mut dyn Write) {
    let json = serde_json::to_vec(state).unwrap_or_default();
    if let Err(e) = write_atomically(dir, TRUST_STATE_FILE, &json) {
        let _ = writeln!(out, "could not save the trust checks' state: {e}");
    }
}

/// A uniformly random part of `every`.
fn random_part(every: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    let fraction = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    every.mul_f64(fraction)
}

/// What this run of the watch has printed already (so a lasting problem or a missing route is
/// printed once, not at every poll).
#[derive(Default)]
struct Shown {
    lines: std::collections::BTreeSet<String>,
    /// The last good trust summary printed.
    summary: Option<String>,
}

impl Shown {
    fn once(&mut self, out: &mut dyn Write, line: &str) {
        if self.lines.insert(line.to_string()) {
            let _ = writeln!(out, "{}", clean_line(line));
        }
    }
}

/// Checks that the gateway's chain extends the last point verified, reading every leaf after it
/// (from genesis on the first poll). Verified progress is kept even when a later part fails.
fn check_chain(
    courier: &mut Courier,
    state: &mut WatchState,
    shown: &mut Shown,
    out: &mut dyn Write,
) -> Vec<Alarm> {
    let mut seen = state.chain_head.unwrap_or(ChainPoint::GENESIS);
    // A head verified before (by this run or an earlier one).
    let mut verified = state.chain_head.is_some();
    let mut alarms = Vec::new();
    for _ in 0..MAX_CHAIN_PAGES_PER_POLL {
        match courier.chain_view(seen.sequence) {
            Ok(view) => match extends(&seen, &view) {
                Ok(point) => {
                    seen = point;
                    verified = true;
                    if view.complete {
                        break;
                    }
                }
                Err(r) => {
                    alarms.push(Alarm::chain(&r));
                    break;
                }
            },
            Err(SubmitError::Refused { status, code, .. })
                if status == 409 && code == CHAIN_BEHIND =>
            {
                // The gateway's chain is shorter than what this watch verified.
                let now = courier.chain_view(0).map(|v| v.head.sequence).unwrap_or(0);
                alarms.push(Alarm::chain(&Rewritten::WentBack {
                    seen: seen.sequence,
                    now,
                }));
                break;
            }
            Err(SubmitError::Refused {
                status: status @ (404 | 410),
                ..
            }) => {
                if verified {
                    // It had a log, and this watch verified it: a log that disappears is a
                    // gateway hiding its history.
                    alarms.push(Alarm {
                        area: "chain",
                        key: "chain:gone".into(),
                        line: format!(
                            "chain: the gateway no longer shows its log of accepted submissions \
                             ({status}), after this watch verified it up to number {}",
                            seen.sequence
                        ),
                    });
                } else {
                    shown.once(out, "chain: this gateway has no log of accepted submissions (an older version): not checked");
                }
                break;
            }
            Err(e) => {
                let _ = writeln!(out, "chain: not checked: {}", clean_line(&e.to_string()));
                break;
            }
        }
    }
    if verified {
        state.chain_head = Some(seen);
    }
    alarms
}

/// The name of the alarm for checks that do not complete.
const INCOMPLETE_KEY: &str = "page:incomplete";

/// What the rest session needs: the manifest and the files the browser session checked.
struct RestOfRelease {
    manifest: PageManifest,
    done: BTreeSet<String>,
    /// The browser session's report, for the summary.
    page: PageReport,
    summary: Option<String>,
}

/// The key list and the page (`--org`), the browser session: verified under the pin, no version
/// lower than the highest seen, the served keys the list's, the pages the list's release.
/// Returns the alarms, and what the rest session needs when the list verified.
fn check_trust(
    trust: &TrustOptions,
    state: &mut TrustState,
    shown: &mut Shown,
    out: &mut dyn Write,
) -> (Vec<Alarm>, Option<RestOfRelease>) {
    let verdict = match check_gateway(
        &trust.page,
        &trust.pin,
        UtcDay::today(),
        state.key_list_version,
    ) {
        Ok(v) => v,
        Err(e) => return (incomplete(state, &e, out), None),
    };
    if let Some(list) = &verdict.key_list {
        state.key_list_version = Some(state.key_list_version.unwrap_or(0).max(list.version));
    }
    let mut alarms: Vec<Alarm> = verdict
        .key_problems
        .iter()
        .map(|p| Alarm {
            area: "keys",
            key: p.key(),
            line: p.to_string(),
        })
        .collect();
    if let Some(report) = &verdict.page {
        alarms.extend(page_alarms(report));
    }
    let summary = verdict.key_list.as_ref().map(|list| {
        format!(
            "trust: key list {} of {} verified (valid until {}); the page is release {}",
            list.version,
            crate::trust::keylist::grouped(&list.organisation),
            list.expires,
            list.page.release,
        )
    });
    if !alarms.is_empty() {
        shown.summary = None;
    }
    let rest = match (verdict.key_list, verdict.page) {
        (Some(list), Some(page)) => Some(RestOfRelease {
            done: page.checked.clone(),
            manifest: list.page,
            page,
            summary: alarms.is_empty().then_some(summary).flatten(),
        }),
        _ => None,
    };
    (alarms, rest)
}

/// The rest of the release, in a session of its own.
fn check_rest(
    trust: &TrustOptions,
    rest: RestOfRelease,
    state: &mut TrustState,
    shown: &mut Shown,
    out: &mut dyn Write,
) -> Vec<Alarm> {
    let report = match check_rest_files(&trust.page, &rest.manifest, &rest.done) {
        Ok(r) => r,
        Err(e) => return incomplete(state, &e, out),
    };
    let alarms = page_alarms(&report);
    match (&rest.summary, alarms.is_empty()) {
        (Some(summary), true) => {
            let summary = format!(
                "{summary} ({} pages, {} files match)",
                rest.page.pages_checked,
                rest.page.files_checked + report.files_checked
            );
            if shown.summary.as_deref() != Some(summary.as_str()) {
                let _ = writeln!(out, "{}", clean_line(&summary));
                shown.summary = Some(summary);
            }
        }
        _ => shown.summary = None,
    }
    alarms
}

fn page_alarms(report: &PageReport) -> Vec<Alarm> {
    let mut alarms: Vec<Alarm> = report
        .differences
        .iter()
        .map(|d| Alarm {
            area: "page",
            key: format!("page:{}", d.key()),
            line: format!("page: {d}"),
        })
        .collect();
    if report.more > 0 {
        alarms.push(Alarm {
            area: "page",
            key: "page:more".into(),
            line: format!("page: and {} more differences", report.more),
        });
    }
    alarms
}

/// A check that did not complete: printed; once a key list was verified, the
/// [`INCOMPLETE_ALARM`]th in a row with the gateway answering rings. A gateway not reached at
/// all is only printed (a long silence is a sign too: `docs/early-alerts.md`).
fn incomplete(state: &mut TrustState, e: &TrustCheckError, out: &mut dyn Write) -> Vec<Alarm> {
    let why = clean_line(&e.to_string());
    state.failed_now = true;
    if !e.reached() {
        let _ = writeln!(out, "page and keys not checked: {why}");
        return Vec::new();
    }
    state.incomplete += 1;
    let n = state.incomplete;
    let _ = writeln!(
        out,
        "page and keys not checked ({n} in a row): {why}; do not rely on the page until a check completes"
    );
    if state.key_list_version.is_none() || n < INCOMPLETE_ALARM {
        return Vec::new();
    }
    vec![Alarm {
        area: "page",
        key: INCOMPLETE_KEY.into(),
        line: format!(
            "page: the page and keys could not be checked at {n} polls in a row, the gateway \
             answering otherwise than with them: {why}"
        ),
    }]
}

/// Prints each problem (once per run) and rings once per area for the problems not rung
/// before, naming the first (a file, a sequence number) and how many more.
fn raise(
    rung: &mut BTreeMap<String, UtcDay>,
    options: &WatchOptions,
    alarms: &[Alarm],
    shown: &mut Shown,
    out: &mut dyn Write,
) {
    let today = UtcDay::today();
    let oldest = UtcDay::from_days_since_epoch(today.days_since_epoch() - RUNG_DAYS);
    rung.retain(|_, day| *day >= oldest);
    let mut areas: Vec<&'static str> = alarms.iter().map(|a| a.area).collect();
    areas.dedup();
    for area in areas {
        let new: Vec<&Alarm> = alarms
            .iter()
            .filter(|a| a.area == area && !rung.contains_key(&a.key))
            .collect();
        for a in alarms.iter().filter(|a| a.area == area) {
            let bell = if new.contains(&a) { "\x07" } else { "" };
            if bell.is_empty() {
                shown.once(out, &format!("ALARM (rung before)  {}", a.line));
            } else {
                let _ = writeln!(out, "{bell}ALARM  {}", clean_line(&a.line));
                shown
                    .lines
                    .insert(format!("ALARM (rung before)  {}", a.line));
            }
        }
        let Some(first) = new.first() else {
            continue;
        };
        let summary = if new.len() == 1 {
            format!("ALARM {}", first.line)
        } else {
            format!("ALARM {} (and {} more)", first.line, new.len() - 1)
        };
        match spawn_alarm_ring(first, &clean_line(&summary), options) {
            Ok(()) => {
                for a in new {
                    rung.insert(a.key.clone(), today);
                }
            }
            // Not recorded: the next poll tries again.
            Err(e) => {
                let _ = writeln!(out, "could not ring for {}: {e}", first.key);
            }
        }
    }
    while rung.len() > MAX_RUNG {
        let oldest = rung
            .iter()
            .min_by_key(|(_, day)| **day)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => rung.remove(&k),
            None => break,
        };
    }
}

fn handle(
    courier: &mut Courier,
    state: &mut WatchState,
    items: Vec<TriageItem>,
    options: &WatchOptions,
    out: &mut dyn Write,
) -> Result<(), WatchError> {
    let mut new: Vec<(Sighting, UtcDay)> = items
        .into_iter()
        .filter(|i| !state.seen.contains_key(&i.id))
        .map(|i| {
            let triage = courier.open(&i);
            (Sighting { id: i.id, triage }, i.day)
        })
        .collect();
    // Urgent first (those waiting from earlier polls first, in their order); otherwise the
    // gateway's order (by id, which says nothing of arrival).
    let waiting = std::mem::take(&mut state.waiting);
    new.sort_by_key(|(s, _)| {
        (
            !s.is_urgent(),
            waiting
                .iter()
                .position(|w| *w == s.id)
                .unwrap_or(usize::MAX),
        )
    });
    let mut rung = 0;
    for (sighting, day) in new {
        let listed_before = waiting.contains(&sighting.id);
        if !listed_before {
            let _ = writeln!(out, "{}", sighting.line());
        }
        if sighting.is_urgent() {
            if rung == MAX_RINGS_PER_POLL {
                // Anyone can seal an urgent note to the couriers' published keys: a flood of
                // them must not become a flood of `--on-alert` runs. Listed now, rung at a
                // later poll (not recorded as seen).
                state.waiting.push(sighting.id);
                continue;
            } else if let Err(e) = spawn_ring(&sighting, options) {
                // Not recorded as seen: the next poll tries again.
                let _ = writeln!(out, "could not ring for {}: {e}", sighting.id);
                continue;
            } else {
                rung += 1;
            }
        }
        state.seen.insert(sighting.id, day);
    }
    if !state.waiting.is_empty() {
        let _ = writeln!(
            out,
            "\x07{} more URGENT reports are listed above; they ring at the next polls (at most {MAX_RINGS_PER_POLL} rings per poll)",
            state.waiting.len()
        );
    }
    Ok(())
}

/// Removes ring claims of reports the watch no longer remembers, once they are old: a report it
/// does not remember is never asked for again, so its claim has done its work.
fn forget_old_claims(dir: &Path, state: &WatchState) {
    let Ok(entries) = fs::read_dir(dir.join(ALERTS_DIR)) else {
        return;
    };
    let old = Duration::from_secs(CLAIM_DAYS * 86_400);
    for entry in entries.flatten() {
        let remembered = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<SubmissionId>().ok())
            .is_some_and(|id| state.seen.contains_key(&id));
        let aged = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > old));
        if !remembered && aged {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Starts `resguardo-review ring` for one urgent report, in its own process group so that it
/// finishes even if the watch is killed.
fn spawn_ring(sighting: &Sighting, options: &WatchOptions) -> Result<(), WatchError> {
    spawn_ring_for(sighting.id, sighting.environment(), options)
}

/// Starts `ring` for a trust problem: `RESGUARDO_ALARM` (`chain`, `keys` or `page`),
/// `RESGUARDO_URGENT=yes` and `RESGUARDO_SUMMARY` (the alarm line); no report id.
fn spawn_alarm_ring(
    alarm: &Alarm,
    summary: &str,
    options: &WatchOptions,
) -> Result<(), WatchError> {
    let environment = vec![
        ("RESGUARDO_ALARM", alarm.area.to_string()),
        ("RESGUARDO_URGENT", "yes".to_string()),
        ("RESGUARDO_SUMMARY", summary.to_string()),
    ];
    spawn_ring_for(alarm.claim_id(), environment, options)
}

fn spawn_ring_for(
    claim: SubmissionId,
    environment: Vec<(&'static str, String)>,
    options: &WatchOptions,
) -> Result<(), WatchError> {
    let exe = std::env::current_exe().map_err(state_error(&options.state_dir))?;
    let mut command = Command::new(exe);
    command
        .arg("ring")
        .arg("--state")
        .arg(&options.state_dir)
        .arg("--id")
        .arg(claim.to_string())
        .env_clear()
        .envs(environment)
        .stdin(Stdio::null())
        .process_group(0);
    for name in std::iter::once("PATH").chain(SESSION_VARIABLES.iter().copied()) {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    if let Some(cmd) = &options.on_alert {
        command.arg("--on-alert").arg(cmd);
    }
    command
        .spawn()
        .map(drop)
        .map_err(state_error(&options.state_dir))
}

/// `ring`: claims the alert (exactly once per id), then rings: a bell and the summary on
/// stdout, `notify-send` where it exists, and `on_alert` with the triage fields. Returns false
/// when another `ring` had claimed it already.
pub fn ring(
    state_dir: &Path,
    id: SubmissionId,
    on_alert: Option<&str>,
) -> Result<bool, WatchError> {
    let alerts = state_dir.join(ALERTS_DIR);
    let claim = alerts.join(id.to_string());
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&claim)
    {
        Ok(file) => file.sync_all().map_err(state_error(&claim))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => {
            return Err(WatchError::State {
                path: claim,
                source: e,
            })
        }
    }
    File::open(&alerts)
        .and_then(|d| d.sync_all())
        .map_err(state_error(&alerts))?;
    let summary = std::env::var("RESGUARDO_SUMMARY").unwrap_or_else(|_| format!("URGENT {id}"));
    let mut stdout = io::stdout();
    let _ = writeln!(stdout, "\x07{summary}");
    let _ = stdout.flush();
    // A desktop notification where there is a desktop; its absence is not an error.
    let _ = Command::new("notify-send")
        .args(["--urgency=critical", "Resguardo: URGENT", &summary])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Some(cmd) = on_alert {
        // The triage fields, PATH, HOME and LANG (a forwarding tool finds its settings there);
        // not the desktop session.
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(cmd).stdin(Stdio::null()).env_clear();
        for (name, value) in std::env::vars_os() {
            let keep = name.to_str().is_some_and(|n| {
                n.starts_with("RESGUARDO_") || ["PATH", "HOME", "LANG"].contains(&n)
            });
            if keep {
                command.env(name, value);
            }
        }
        let _ = command.status();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i32) -> UtcDay {
        UtcDay::from_days_since_epoch(20_000 + n)
    }

    #[test]
    fn a_first_run_asks_for_the_last_week() {
        assert_eq!(WatchState::default().since(day(10)), day(3));
    }

    /// Regression: the watch asked from yesterday whatever its state, so reports that arrived
    /// while it was off for more than a day were never listed nor rung.
    #[test]
    fn a_watch_that_was_off_asks_from_the_day_before_its_last_poll() {
        let state = WatchState {
            last_poll: Some(day(0)),
            ..WatchState::default()
        };
        assert_eq!(state.since(day(30)), day(-1));
        // A gateway day ahead of this device's clock does not skip today's reports.
        let ahead = WatchState {
            last_poll: Some(day(31)),
            ..WatchState::default()
        };
        assert_eq!(ahead.since(day(30)), day(29));
    }

    #[test]
    fn old_claims_of_forgotten_reports_go_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let alerts = dir.path().join(ALERTS_DIR);
        fs::create_dir_all(&alerts).unwrap();
        let (forgotten, remembered, fresh) = (
            SubmissionId::random(),
            SubmissionId::random(),
            SubmissionId::random(),
        );
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(30 * 86_400);
        for id in [forgotten, remembered, fresh] {
            let file = File::create(alerts.join(id.to_string())).unwrap();
            if id != fresh {
                file.set_modified(long_ago).unwrap();
            }
        }
        let mut state = WatchState::default();
        state.seen.insert(remembered, day(0));
        forget_old_claims(dir.path(), &state);
        assert!(!alerts.join(forgotten.to_string()).exists());
        assert!(alerts.join(remembered.to_string()).exists());
        assert!(
            alerts.join(fresh.to_string()).exists(),
            "a recent claim stays"
        );
    }
}
