//! Proof-of-work admission: a flood must pay for every submission, a reporter pays about a second.
//!
//! Behind Tor every client has the same address, so rate limits alone cannot tell a flood from a
//! reporter. Before a submission, a client asks `GET /api/v1/challenge` and finds a counter such
//! that SHA-256(challenge ‖ counter) starts with `difficulty` zero bits, then sends
//! `Resguardo-PoW: <challenge>.<counter>` with the upload.
//!
//! Challenges are stateless: version, expiry, difficulty and a random nonce, authenticated with an
//! HMAC-SHA256 (ring) under a key made at start and never stored. Verifying costs one HMAC and one
//! hash. The only state is a bounded memory of the nonces already spent, so a solution works once.
//! Difficulty rises with the rate of submission attempts and falls back when it is calm.

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    #[error("a proof of work is required: get a challenge from /api/v1/challenge")]
    Missing,
    #[error("the proof of work is malformed")]
    Malformed,
    #[error("the challenge was not issued by this gateway or was altered")]
    Forged,
    #[error("the challenge has expired; get a new one")]
    Expired,
    #[error("the solution does not meet the challenge's difficulty")]
    Insufficient,
    #[error("this solution was already used")]
    Replayed,
    #[error("too many solutions in flight; try again shortly")]
    ReplayMemoryFull,
}

impl PowError {
    pub fn code(&self) -> &'static str {
        match self {
            PowError::Missing => "pow_missing",
            PowError::Malformed => "pow_malformed",
            PowError::Forged => "pow_invalid",
            PowError::Expired => "pow_expired",
            PowError::Insufficient => "pow_insufficient",
            PowError::Replayed => "pow_replayed",
            PowError::ReplayMemoryFull => "pow_busy",
        }
    }
}

/// What `GET /api/v1/challenge` returns.
#[derive(Debug, Clone, Serialize)]
pub struct Challenge {
    pub challenge: String,
    pub difficulty: u8,
    pub expires_in: u64,
    pub algorithm: &'static str,
}

pub struct ProofOfWork {
    key: hmac::Key,
    config: ProofOfWorkConfig,
    /// Submissions allowed per minute; the load is measured against it.
    rate_per_minute: u32,
    load: LoadMeter,
    spent: Mutex<HashMap<[u8; NONCE_LEN], u64>>,
}

impl ProofOfWork {
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
            spent: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The difficulty new challenges get now: the base when calm, two more bits for every
    /// doubling of the attempt rate beyond half the configured submission rate.
    pub fn current_difficulty(&self) -> u8 {
        let rate = self.load.per_minute(now_secs()) as f64;
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

    /// Counts a submission attempt towards the load.
    pub fn note_attempt(&self) {
        self.load.add(now_secs());
    }

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

    /// Checks a `Resguardo-PoW` header value and spends its challenge.
    pub fn verify(&self, header: Option<&str>) -> Result<(), PowError> {
        self.verify_at(header, now_secs())
    }

    fn verify_at(&self, header: Option<&str>, now: u64) -> Result<(), PowError> {
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
        if leading_zero_bits(&solution_hash(&token, counter)) < u32::from(difficulty) {
            return Err(PowError::Insufficient);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&signed[10..10 + NONCE_LEN]);
        self.spend(nonce, expiry, now)
    }

    fn spend(&self, nonce: [u8; NONCE_LEN], expiry: u64, now: u64) -> Result<(), PowError> {
        let mut spent = self
            .spent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if spent.contains_key(&nonce) {
            return Err(PowError::Replayed);
        }
        if spent.len() >= self.config.replay_memory {
            spent.retain(|_, exp| *exp >= now);
            if spent.len() >= self.config.replay_memory {
                return Err(PowError::ReplayMemoryFull);
            }
        }
        spent.insert(nonce, expiry);
        Ok(())
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
        ProofOfWork::new(
            ProofOfWorkConfig {
                enabled: true,
                base_difficulty: base,
                max_difficulty: base + 8,
                challenge_ttl_secs: 300,
                replay_memory: 4,
            },
            60,
        )
    }

    #[test]
    fn a_solution_works_once() {
        let p = pow(8);
        let c = p.issue();
        let solved = solve(&c.challenge, c.difficulty).expect("solvable");
        assert_eq!(p.verify(Some(&solved)), Ok(()));
        assert_eq!(p.verify(Some(&solved)), Err(PowError::Replayed));
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
            p.verify_at(Some(&solved), now_secs() + 301),
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
        assert_eq!(p.verify(Some(&solved)), Ok(()));
    }

    #[test]
    fn replay_memory_is_bounded() {
        let p = pow(4);
        for _ in 0..4 {
            let c = p.issue();
            p.verify(Some(&solve(&c.challenge, c.difficulty).expect("solve")))
                .expect("valid");
        }
        let c = p.issue();
        let solved = solve(&c.challenge, c.difficulty).expect("solve");
        assert_eq!(p.verify(Some(&solved)), Err(PowError::ReplayMemoryFull));
    }

    #[test]
    fn difficulty_rises_with_load_and_falls_back() {
        let p = pow(10);
        assert_eq!(p.current_difficulty(), 10);
        for _ in 0..120 {
            p.note_attempt();
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
