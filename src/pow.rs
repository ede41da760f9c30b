//! Proof-of-work admission: a flood must pay for every submission, a reporter pays about a second.
//!
//! Behind Tor every client has the same address, so rate limits alone cannot tell a flood from a
//! reporter. Before a submission, a client asks `GET /api/v1/challenge` and finds a counter such
//! that SHA-256(challenge ‖ counter) starts with `difficulty` zero bits, then sends
//! `Resguardo-PoW: <challenge>.<counter>` with the upload.
//!
//! Challenges are stateless: version, expiry, difficulty and a random nonce, authenticated with an
//! HMAC-SHA256 (ring) under a key made at start and never stored. Verifying costs one HMAC and one
//! hash. The only state is a bounded memory of the nonces seen, so a solution works once.
//!
//! Difficulty rises with the rate of *verified* solutions (each counted once, when first seen)
//! and falls back when it is calm: requests without a valid proof cost the attacker and raise
//! nothing. A solution is judged against the difficulty in force when it is used, so work done
//! cheaply while it was calm cannot be spent during a flood (and is not counted either).
//!
//! Verifying, spending and releasing are separate steps. A verified solution is *held* while its
//! submission waits for its turn (one solution cannot wait in two places), then spent once the
//! submission is admitted, or released if it was refused for a reason that is not its fault (no
//! upload slot), so the reporter retries with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::digest;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use crate::config::ProofOfWorkConfig;

/// The request header carrying a solution.
pub const HEADER: &str = "resguardo-pow";

const VERSION: u8 = 1;
const NONCE_LEN: usize = 16;
/// version ‖ expiry (u64) ‖ difficulty ‖ nonce ‖ HMAC-SHA256.
const TOKEN_LEN: usize = 1 + 8 + 1 + NONCE_LEN + 32;

/// Why a proof of work was refused; each variant maps to an API error [`code`](PowError::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// The request has no `Resguardo-PoW` header.
    #[error("a proof of work is required: get a challenge from /api/v1/challenge")]
    Missing,
    /// The header is not `<challenge hex>.<decimal counter>` with a token of the right length.
    #[error("the proof of work is malformed")]
    Malformed,
    /// The HMAC does not verify under this process's key (as for any challenge issued before a
    /// restart), or the token version is unknown.
    #[error("the challenge was not issued by this gateway or was altered")]
    Forged,
    /// The challenge's expiry time has passed, or the held solution was pruned from memory.
    #[error("the challenge has expired; get a new one")]
    Expired,
    /// The hash has fewer leading zero bits than the challenge asked for.
    #[error("the solution does not meet the challenge's difficulty")]
    Insufficient,
    /// The solution was already spent, or is held by another submission right now.
    #[error("this solution was already used")]
    Replayed,
    /// Enough for the challenge, but below the difficulty in force now (it rose since issue).
    #[error("the gateway asks for more work now than this challenge did; get a new challenge")]
    Outdated,
    /// The replay memory is full of unexpired nonces, so a new solution cannot be remembered.
    #[error("too many solutions in flight; try again shortly")]
    ReplayMemoryFull,
}

impl PowError {
    /// Stable machine-readable identifier returned by the HTTP API.
    pub fn code(&self) -> &'static str {
        match self {
            PowError::Missing => "pow_missing",
            PowError::Malformed => "pow_malformed",
            PowError::Forged => "pow_invalid",
            PowError::Expired => "pow_expired",
            PowError::Insufficient => "pow_insufficient",
            PowError::Replayed => "pow_replayed",
            PowError::Outdated => "pow_outdated",
            PowError::ReplayMemoryFull => "pow_busy",
        }
    }
}

/// What `GET /api/v1/challenge` returns.
#[derive(Debug, Clone, Serialize)]
pub struct Challenge {
    /// Hex-encoded token: version, expiry (Unix seconds), difficulty, random nonce, HMAC-SHA256.
    pub challenge: String,
    /// Leading zero bits that SHA-256(token ‖ counter) must have.
    pub difficulty: u8,
    /// Seconds until the challenge expires (the configured `challenge_ttl_secs`).
    pub expires_in: u64,
    /// Always `"sha256-leading-zero-bits"`.
    pub algorithm: &'static str,
}

/// Issues and verifies challenges and remembers used solutions; one per gateway, shared by all
/// requests.
pub struct ProofOfWork {
    key: hmac::Key,
    config: ProofOfWorkConfig,
    /// Submissions allowed per minute; the load is measured against it.
    rate_per_minute: u32,
    load: LoadMeter,
    /// Nonces of verified solutions: expiry, and whether spent.
    seen: Mutex<HashMap<[u8; NONCE_LEN], Seen>>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    expiry: u64,
    state: SeenState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeenState {
    /// Verified before, free to be used.
    Free,
    /// Carried by a submission waiting for its turn or being received.
    Held,
    Spent,
}

/// Whether a verified solution counts towards the load that sets the difficulty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Counted,
    NotCounted,
}

/// A solution that passed every check and may be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    nonce: [u8; NONCE_LEN],
}

impl ProofOfWork {
    /// Makes a fresh HMAC key, so challenges issued before a restart are refused. The load is
    /// measured against `rate_per_minute`, the configured submissions per minute (0 counts as 1).
    pub fn new(config: ProofOfWorkConfig, rate_per_minute: u32) -> Self {
        let rng = SystemRandom::new();
        // The key exists only in this process: restarting the gateway voids all challenges.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .expect("the operating system's random number generator failed");
        ProofOfWork {
            key,
            config,
            rate_per_minute: rate_per_minute.max(1),
            load: LoadMeter::default(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether submissions must carry a solution; when false the API skips the check and
    /// `/api/v1/challenge` answers that none is required.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The difficulty new challenges get now: the base when calm, two more bits for every
    /// doubling of the rate of verified solutions beyond half the configured submission rate.
    pub fn current_difficulty(&self) -> u8 {
        self.current_difficulty_at(now_secs())
    }

    fn current_difficulty_at(&self, now: u64) -> u8 {
        let rate = self.load.per_minute(now) as f64;
        let ratio = rate / (f64::from(self.rate_per_minute) * 0.5);
        let extra = if ratio <= 1.0 {
            0
        } else {
            (ratio.log2().ceil() as u32).saturating_mul(2)
        };
        let difficulty = u32::from(self.config.base_difficulty).saturating_add(extra);
        difficulty.min(u32::from(self.config.max_difficulty)) as u8
    }

    /// True when no more than the base difficulty is asked (the gateway is calm).
    pub fn is_calm(&self) -> bool {
        self.current_difficulty() <= self.config.base_difficulty
    }

    /// A new challenge at the current difficulty, valid for `challenge_ttl_secs`.
    pub fn issue(&self) -> Challenge {
        self.issue_at(now_secs(), self.current_difficulty())
    }

    fn issue_at(&self, now: u64, difficulty: u8) -> Challenge {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the operating system's random number generator failed");
        let expiry = now + self.config.challenge_ttl_secs;
        let mut token = Vec::with_capacity(TOKEN_LEN);
        token.push(VERSION);
        token.extend_from_slice(&expiry.to_be_bytes());
        token.push(difficulty);
        token.extend_from_slice(&nonce);
        let tag = hmac::sign(&self.key, &token);
        token.extend_from_slice(tag.as_ref());
        Challenge {
            challenge: hex::encode(token),
            difficulty,
            expires_in: self.config.challenge_ttl_secs,
            algorithm: "sha256-leading-zero-bits",
        }
    }

    /// Checks a `Resguardo-PoW` header value; a solution seen for the first time counts towards
    /// the load. Does not spend it: see [`ProofOfWork::spend`].
    pub fn verify(&self, header: Option<&str>) -> Result<Verified, PowError> {
        self.verify_at(header, now_secs(), Load::Counted)
    }

    /// As [`ProofOfWork::verify`], for a request that is not a submission (a check-in): the
    /// difficulty in force applies, but the solution does not raise it for submissions, so a
    /// wave of check-ins does not make reporting harder.
    pub fn verify_uncounted(&self, header: Option<&str>) -> Result<Verified, PowError> {
        self.verify_at(header, now_secs(), Load::NotCounted)
    }

    fn verify_at(&self, header: Option<&str>, now: u64, load: Load) -> Result<Verified, PowError> {
        let header = header.ok_or(PowError::Missing)?;
        let (token_hex, counter) = header.trim().split_once('.').ok_or(PowError::Malformed)?;
        if token_hex.len() != TOKEN_LEN * 2 || counter.is_empty() || counter.len() > 20 {
            return Err(PowError::Malformed);
        }
        let counter: u64 = counter.parse().map_err(|_| PowError::Malformed)?;
        let mut token = [0u8; TOKEN_LEN];
        hex::decode_to_slice(token_hex, &mut token).map_err(|_| PowError::Malformed)?;
        let (signed, tag) = token.split_at(TOKEN_LEN - 32);
        hmac::verify(&self.key, signed, tag).map_err(|_| PowError::Forged)?;
        if signed[0] != VERSION {
            return Err(PowError::Forged);
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&signed[1..9]);
        let expiry = u64::from_be_bytes(expiry);
        if now > expiry {
            return Err(PowError::Expired);
        }
        let difficulty = signed[9];
        let work = leading_zero_bits(&solution_hash(&token, counter));
        if work < u32::from(difficulty) {
            return Err(PowError::Insufficient);
        }
        // Judged against the difficulty in force now; outdated work is not counted either.
        if work < u32::from(self.current_difficulty_at(now)) {
            return Err(PowError::Outdated);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&signed[10..10 + NONCE_LEN]);
        self.hold(nonce, expiry, now, load)?;
        Ok(Verified { nonce })
    }

    /// Holds a verified solution for one submission: counted towards the load the first time it
    /// is seen; refused if spent, or held by another submission right now.
    fn hold(
        &self,
        nonce: [u8; NONCE_LEN],
        expiry: u64,
        now: u64,
        load: Load,
    ) -> Result<(), PowError> {
        let mut seen = self.lock_seen();
        match seen.get_mut(&nonce) {
            Some(s) if s.state == SeenState::Free => {
                s.state = SeenState::Held;
                return Ok(());
            }
            Some(_) => return Err(PowError::Replayed),
            None => {}
        }
        if seen.len() >= self.config.replay_memory {
            seen.retain(|_, s| s.expiry >= now);
            if seen.len() >= self.config.replay_memory {
                return Err(PowError::ReplayMemoryFull);
            }
        }
        seen.insert(
            nonce,
            Seen {
                expiry,
                state: SeenState::Held,
            },
        );
        if load == Load::Counted {
            self.load.add(now);
        }
        Ok(())
    }

    /// Spends a held solution: it will not work again.
    pub fn spend(&self, verified: Verified) -> Result<(), PowError> {
        let mut seen = self.lock_seen();
        match seen.get_mut(&verified.nonce) {
            Some(s) if s.state == SeenState::Spent => Err(PowError::Replayed),
            Some(s) => {
                s.state = SeenState::Spent;
                Ok(())
            }
            // Forgotten meanwhile (the memory was pruned of expired entries): expired.
            None => Err(PowError::Expired),
        }
    }

    /// Gives a held solution back: its submission was refused for a reason that was not its
    /// fault, and it may be used again.
    pub fn release(&self, verified: Verified) {
        if let Some(s) = self.lock_seen().get_mut(&verified.nonce) {
            if s.state == SeenState::Held {
                s.state = SeenState::Free;
            }
        }
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; NONCE_LEN], Seen>> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// SHA-256(token ‖ counter as 8 big-endian bytes).
pub fn solution_hash(token: &[u8], counter: u64) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(token);
    ctx.update(&counter.to_be_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Number of leading zero bits of `hash`, starting at the most significant bit of the first byte.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for &b in hash {
        if b == 0 {
            bits += 8;
        } else {
            return bits + b.leading_zeros();
        }
    }
    bits
}

/// Finds a counter for a challenge (the terminal client's side; also used by tests).
pub fn solve(challenge_hex: &str, difficulty: u8) -> Option<String> {
    let token = hex::decode(challenge_hex).ok()?;
    (0..u64::MAX)
        .find(|&c| leading_zero_bits(&solution_hash(&token, c)) >= u32::from(difficulty))
        .map(|c| format!("{challenge_hex}.{c}"))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Attempts in the current and the previous minute (a two-bucket sliding window).
#[derive(Default)]
struct LoadMeter {
    minute: AtomicU64,
    current: AtomicU64,
    previous: AtomicU64,
}

impl LoadMeter {
    fn roll(&self, now: u64) {
        let minute = now / 60;
        let seen = self.minute.load(Ordering::Relaxed);
        if minute != seen
            && self
                .minute
                .compare_exchange(seen, minute, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let carried = if minute == seen + 1 {
                self.current.swap(0, Ordering::Relaxed)
            } else {
                self.current.store(0, Ordering::Relaxed);
                0
            };
            self.previous.store(carried, Ordering::Relaxed);
        }
    }

    fn add(&self, now: u64) {
        self.roll(now);
        self.current.fetch_add(1, Ordering::Relaxed);
    }

    /// The attempts of the last 60 seconds, estimated from the two buckets.
    fn per_minute(&self, now: u64) -> u64 {
        self.roll(now);
        let into = (now % 60) as f64 / 60.0;
        let previous = self.previous.load(Ordering::Relaxed) as f64;
        (self.current.load(Ordering::Relaxed) as f64 + previous * (1.0 - into)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pow(base: u8) -> ProofOfWork {
        pow_with_memory(base, 4)
    }

    fn pow_with_memory(base: u8, replay_memory: usize) -> ProofOfWork {
        ProofOfWork::new(
            ProofOfWorkConfig {
                enabled: true,
                base_difficulty: base,
                max_difficulty: base + 8,
                challenge_ttl_secs: 300,
                replay_memory,
            },
            60,
        )
    }

    /// Verifies and spends, as the gateway does for an admitted submission.
    fn use_solution(p: &ProofOfWork, solved: &str) -> Result<(), PowError> {
        p.spend(p.verify(Some(solved))?)
    }

    #[test]
    fn a_solution_works_once() {
        let p = pow(8);
        let c = p.issue();
        let solved = solve(&c.challenge, c.difficulty).expect("solvable");
        assert_eq!(use_solution(&p, &solved), Ok(()));
        assert_eq!(use_solution(&p, &solved), Err(PowError::Replayed));
    }

    #[test]
    fn a_solution_survives_a_refusal_that_was_not_its_fault() {
        let p = pow(8);
        let c = p.issue();
        let solved = solve(&c.challenge, c.difficulty).expect("solvable");
        // Verified, then refused for lack of an upload slot: released, not spent.
        let held = p.verify(Some(&solved)).expect("valid");
        // While held, the same solution cannot wait in a second place.
        assert_eq!(p.verify(Some(&solved)), Err(PowError::Replayed));
        p.release(held);
        assert_eq!(use_solution(&p, &solved), Ok(()), "the retry is admitted");
        assert_eq!(p.verify(Some(&solved)), Err(PowError::Replayed));
    }

    #[test]
    fn only_verified_work_raises_the_difficulty_once_per_solution() {
        let p = pow_with_memory(8, 1000);
        for _ in 0..400 {
            assert_eq!(p.verify(None), Err(PowError::Missing));
            assert_eq!(p.verify(Some("junk.1")), Err(PowError::Malformed));
        }
        assert_eq!(p.current_difficulty(), 8, "junk raised the difficulty");
        // The same valid solution presented again and again counts once.
        let c = p.issue();
        let solved = solve(&c.challenge, c.difficulty).expect("solvable");
        for _ in 0..100 {
            if let Ok(held) = p.verify(Some(&solved)) {
                p.release(held);
            }
        }
        assert_eq!(p.load.per_minute(now_secs()), 1);
    }

    #[test]
    fn work_done_while_calm_is_judged_at_the_difficulty_in_force() {
        let p = pow_with_memory(8, 1000);
        let calm = p.issue();
        let token = hex::decode(&calm.challenge).expect("hex");
        // A counter with exactly 8 to 9 bits of work: enough when calm, not under load.
        let counter = (0..u64::MAX)
            .find(|&n| (8..10).contains(&leading_zero_bits(&solution_hash(&token, n))))
            .expect("exists");
        let cheap = format!("{}.{counter}", calm.challenge);
        for _ in 0..70 {
            let c = p.issue();
            use_solution(&p, &solve(&c.challenge, c.difficulty).expect("solve")).expect("ok");
        }
        assert!(p.current_difficulty() >= 12, "{}", p.current_difficulty());
        assert_eq!(p.verify(Some(&cheap)), Err(PowError::Outdated));
    }

    #[test]
    fn every_bad_solution_is_refused_precisely() {
        let p = pow(8);
        let c = p.issue();
        let solved = solve(&c.challenge, c.difficulty).expect("solvable");
        assert_eq!(p.verify(None), Err(PowError::Missing));
        assert_eq!(p.verify(Some("nonsense")), Err(PowError::Malformed));
        assert_eq!(
            p.verify(Some(&format!("{}.x", c.challenge))),
            Err(PowError::Malformed)
        );
        // Expired: checked as if five minutes and one second later.
        assert_eq!(
            p.verify_at(Some(&solved), now_secs() + 301, Load::Counted),
            Err(PowError::Expired)
        );
        // A solution found for another challenge: a counter good for `other` but not for `c`.
        let other = p.issue();
        let (mine, theirs) = (
            hex::decode(&c.challenge).expect("hex"),
            hex::decode(&other.challenge).expect("hex"),
        );
        let counter = (0..u64::MAX)
            .find(|&n| {
                leading_zero_bits(&solution_hash(&theirs, n)) >= 8
                    && leading_zero_bits(&solution_hash(&mine, n)) < 8
            })
            .expect("such a counter exists");
        assert_eq!(
            p.verify(Some(&format!("{}.{counter}", c.challenge))),
            Err(PowError::Insufficient)
        );
        // Easier difficulty written into the challenge: the HMAC no longer matches.
        let mut token = hex::decode(&c.challenge).expect("hex");
        token[9] = 0;
        let forged = format!("{}.0", hex::encode(&token));
        assert_eq!(p.verify(Some(&forged)), Err(PowError::Forged));
        // A challenge from another gateway (another key).
        let foreign = pow(8).issue();
        let foreign_solved = solve(&foreign.challenge, foreign.difficulty).expect("solvable");
        assert_eq!(p.verify(Some(&foreign_solved)), Err(PowError::Forged));
        // Too little work: a counter whose hash misses the difficulty.
        let token = hex::decode(&c.challenge).expect("hex");
        let weak = (0..u64::MAX)
            .find(|&n| leading_zero_bits(&solution_hash(&token, n)) < 8)
            .expect("some counter fails");
        assert_eq!(
            p.verify(Some(&format!("{}.{weak}", c.challenge))),
            Err(PowError::Insufficient)
        );
        // The genuine solution still works once after all that.
        assert_eq!(use_solution(&p, &solved), Ok(()));
    }

    #[test]
    fn replay_memory_is_bounded() {
        let p = pow(4);
        for _ in 0..4 {
            let c = p.issue();
            use_solution(&p, &solve(&c.challenge, c.difficulty).expect("solve")).expect("valid");
        }
        let c = p.issue();
        let solved = solve(&c.challenge, c.difficulty).expect("solve");
        assert_eq!(use_solution(&p, &solved), Err(PowError::ReplayMemoryFull));
    }

    #[test]
    fn difficulty_rises_with_load_and_falls_back() {
        let p = pow(10);
        assert_eq!(p.current_difficulty(), 10);
        for _ in 0..120 {
            p.load.add(now_secs());
        }
        // 120 attempts a minute against a rate of 60: four times half the rate.
        assert!(p.current_difficulty() >= 14, "{}", p.current_difficulty());
        assert!(p.current_difficulty() <= 18);
        let later = now_secs() + 180;
        let rate = p.load.per_minute(later);
        assert_eq!(rate, 0, "calm again three minutes later");
        assert_eq!(p.issue_at(later, 10).difficulty, 10);
    }

    #[test]
    fn leading_zero_bits_counts_bits() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x10]), 19);
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }
}
