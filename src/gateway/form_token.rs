//! Form tokens: what a post without JavaScript pays instead of a proof of work.
//!
//! A browser without JavaScript cannot solve a proof of work, so the form's cost is different:
//! every page carries a single-use token (in the form's action URL) that is valid only from
//! `min_age` after the page was served until `ttl` after. A person takes longer than `min_age`
//! to fill in a form and never notices; a script must fetch a page (from the page's own budget)
//! and wait before each post, and the gateway holds a post that comes too early until its token
//! is old enough. Form posts also have their own rate and byte budgets (`limits`).
//!
//! Tokens are stateless, like proof-of-work challenges: version, time of issue and a random nonce,
//! authenticated with an HMAC-SHA256 whose key is kept in the data directory, so a restart of the
//! gateway does not turn away a reporter who was filling in the form meanwhile. A bounded memory
//! of spent nonces makes each token work once.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 16;
/// version ‖ issued (u64) ‖ nonce ‖ HMAC-SHA256.
const TOKEN_LEN: usize = 1 + 8 + NONCE_LEN + 32;
/// Where the key lives, in the data directory.
pub const KEY_FILE: &str = "form-token.key";
/// Spent tokens remembered (each until it expires).
const MEMORY: usize = 100_000;

/// Why a form token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the form was sent without its token")]
    Missing,
    #[error("the form's token is malformed or was not issued by this gateway")]
    Invalid,
    #[error("the form was open for too long")]
    Expired,
    #[error("this form was already sent")]
    Spent,
    #[error("too many forms in flight")]
    Busy,
}

/// A token that passed its checks: when it was issued, and its nonce.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    issued: u64,
    nonce: [u8; NONCE_LEN],
}

pub struct FormTokens {
    key: hmac::Key,
    min_age: u64,
    ttl: u64,
    spent: Mutex<HashMap<[u8; NONCE_LEN], u64>>,
}

impl FormTokens {
    /// Loads the key from `data_dir`, making it on first use.
    pub fn open(data_dir: &Path, min_age: u64, ttl: u64) -> io::Result<Self> {
        let bytes = load_or_create_key(&data_dir.join(KEY_FILE))?;
        Ok(Self::with_key(&bytes, min_age, ttl))
    }

    /// Tokens under `key` (kept in memory only).
    pub fn with_key(key: &[u8], min_age: u64, ttl: u64) -> Self {
        FormTokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            min_age,
            ttl,
            spent: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh token, as hex.
    pub fn issue(&self) -> String {
        self.issue_at(now_secs())
    }

    fn issue_at(&self, now: u64) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the operating system's random number generator failed");
        let mut token = Vec::with_capacity(TOKEN_LEN);
        token.push(VERSION);
        token.extend_from_slice(&now.to_be_bytes());
        token.extend_from_slice(&nonce);
        let tag = hmac::sign(&self.key, &token);
        token.extend_from_slice(tag.as_ref());
        hex::encode(token)
    }

    /// Checks a token without spending it.
    pub fn check(&self, token: Option<&str>) -> Result<Ticket, TokenError> {
        self.check_at(token, now_secs())
    }

    fn check_at(&self, token: Option<&str>, now: u64) -> Result<Ticket, TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        if token.len() != TOKEN_LEN * 2 {
            return Err(TokenError::Invalid);
        }
        let mut bytes = [0u8; TOKEN_LEN];
        hex::decode_to_slice(token, &mut bytes).map_err(|_| TokenError::Invalid)?;
        let (signed, tag) = bytes.split_at(TOKEN_LEN - 32);
        hmac::verify(&self.key, signed, tag).map_err(|_| TokenError::Invalid)?;
        if signed[0] != VERSION {
            return Err(TokenError::Invalid);
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&signed[1..9]);
        let issued = u64::from_be_bytes(issued);
        if now > issued.saturating_add(self.ttl) || issued > now.saturating_add(60) {
            return Err(TokenError::Expired);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&signed[9..]);
        if self.lock().contains_key(&nonce) {
            return Err(TokenError::Spent);
        }
        Ok(Ticket { issued, nonce })
    }

    /// How long a post with this ticket must still wait before it is taken.
    pub fn wait(&self, ticket: &Ticket) -> Duration {
        let ready = ticket.issued.saturating_add(self.min_age);
        Duration::from_secs(ready.saturating_sub(now_secs()))
    }

    /// Spends a ticket: it will not work again.
    pub fn spend(&self, ticket: Ticket) -> Result<(), TokenError> {
        let now = now_secs();
        let mut spent = self.lock();
        if spent.contains_key(&ticket.nonce) {
            return Err(TokenError::Spent);
        }
        if spent.len() >= MEMORY {
            spent.retain(|_, expiry| *expiry >= now);
            if spent.len() >= MEMORY {
                return Err(TokenError::Busy);
            }
        }
        spent.insert(ticket.nonce, ticket.issued.saturating_add(self.ttl));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; NONCE_LEN], u64>> {
        self.spent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The 32-byte key in `path`, made (random, mode 0600, synced) if the file does not exist.
pub(super) fn load_or_create_key(path: &Path) -> io::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    match fs::File::open(path) {
        Ok(mut file) => {
            file.read_exact(&mut bytes)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| io::Error::other("no random numbers"))?;
            // Whole or absent, never short (a kill between creating and writing would leave a
            // file no later start can read): written beside, then linked into place, which
            // fails if another start got there first; then that one's key is used.
            let beside = path.with_extension("new");
            let _ = fs::remove_file(&beside);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&beside)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            let linked = fs::hard_link(&beside, path);
            fs::remove_file(&beside)?;
            match linked {
                Ok(()) => {
                    if let Some(dir) = path.parent() {
                        fs::File::open(dir)?.sync_all()?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return load_or_create_key(path)
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_within_its_window() {
        let tokens = FormTokens::with_key(b"k", 10, 3600);
        let now = now_secs();
        let token = tokens.issue_at(now);
        let ticket = tokens.check_at(Some(&token), now).expect("valid");
        assert_eq!(tokens.wait(&ticket).as_secs(), 10);
        tokens.spend(ticket).expect("spend");
        assert_eq!(
            tokens.check_at(Some(&token), now).err(),
            Some(TokenError::Spent)
        );
        assert_eq!(
            tokens
                .check_at(Some(&tokens.issue_at(now - 3601)), now)
                .err(),
            Some(TokenError::Expired)
        );
        assert_eq!(tokens.check_at(None, now).err(), Some(TokenError::Missing));
        assert_eq!(
            tokens.check_at(Some("zz"), now).err(),
            Some(TokenError::Invalid)
        );
        // Another gateway's token, and an altered one.
        let foreign = FormTokens::with_key(b"other", 10, 3600).issue_at(now);
        assert_eq!(
            tokens.check_at(Some(&foreign), now).err(),
            Some(TokenError::Invalid)
        );
        let mut altered = tokens.issue_at(now).into_bytes();
        altered[4] = if altered[4] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert_eq!(
            tokens.check_at(Some(&altered), now).err(),
            Some(TokenError::Invalid)
        );
    }

    #[test]
    fn the_key_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = FormTokens::open(dir.path(), 0, 3600).expect("open").issue();
        let again = FormTokens::open(dir.path(), 0, 3600).expect("reopen");
        assert!(again.check(Some(&token)).is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
