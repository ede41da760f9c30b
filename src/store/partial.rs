//! Uploads that resume (tus, `docs/uploads-v1.md` §1): the incomplete uploads of the store.
//!
//! Each upload is two files in `uploads/`, both taken from the spare pool (no file is created,
//! and so dated, when an upload begins; see [`super::pool`]):
//!
//! ```text
//! uploads/<upload id>.part    the bytes received so far (ciphertext, or any bytes until the
//!                             envelope check at the end decides); its length is the offset
//! uploads/<upload id>.state   what the upload was created with (see [`UploadState`])
//! ```
//!
//! The state holds the upload's length, its expiry day, the (checked, sealed) triage envelope,
//! the conversation headers, and once stored the submission's id and number: no time finer than
//! a day, nothing about the client. Creation refuses a length that does not fit under the quota
//! and above the free-disk floor now; the bytes count against the quota as they arrive (not the
//! whole length at creation, which let bodiless creations lock the quota for days), and are held
//! until the upload is committed, cancelled or expires. After a restart
//! every upload is found again, with the offset of what is on disk. The bytes are appended by a
//! [`PartialWriter`] (one at a time per upload: the gateway takes the upload's [`turn`]) and
//! synced before the offset counts. Completion adopts the partial file as the submission's
//! spool ([`Uploads::into_spool`]), so the ciphertext is not copied.
//!
//! [`turn`]: PartialUpload::turn

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use ring::digest;

use super::durable::sync_dir;
use super::incoming::{
    check_free_space, IncomingLimits, IncomingSubmission, SpareReturn, Usage, SPACE_CHECK_INTERVAL,
};
use super::pool::SparePool;
use super::{StoreError, SubmissionRecord};
use crate::replies::{Locator, NewConversation};
use crate::submission::{SubmissionId, UtcDay};

/// First line of every state file.
pub const STATE_FORMAT: &str = "resguardo.upload/1";
/// Largest state file read (a triage envelope is the largest part).
pub const MAX_STATE_BYTES: usize = 64 * 1024;

/// An upload's id: 128 bits from the OS CSPRNG, written as 32 lowercase hex digits. It is the
/// only capability to continue, look at or cancel the upload.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId([u8; 16]);

impl UploadId {
    /// A new random id.
    pub fn random() -> Self {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("the operating system's random number generator failed");
        UploadId(bytes)
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never printed whole: it is a capability.
        write!(f, "UploadId(…)")
    }
}

/// Not an upload id (the gateway answers 404, as for an unknown one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an upload id (32 lowercase hex digits)")]
pub struct BadUploadId;

impl FromStr for UploadId {
    type Err = BadUploadId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(BadUploadId);
        }
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| BadUploadId)?;
        Ok(UploadId(bytes))
    }
}

/// What arrived with the creation request, checked then, committed with the submission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadBeside {
    /// The sealed triage envelope (already checked).
    pub triage: Option<Vec<u8>>,
    /// The conversation a first report starts.
    pub conversation: Option<NewConversation>,
    /// The conversation a follow-up moves.
    pub touch: Option<Locator>,
}

/// Whether (and as what) an upload was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Not yet.
    No,
    /// Stored as this submission, with its number in the chain.
    Stored {
        /// The submission's id.
        id: SubmissionId,
        /// Its number in the chain.
        sequence: Option<u64>,
    },
    /// Stored, but a crash came before its id was written here.
    Unknown,
}

/// The state file of one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    /// `Upload-Length`.
    pub length: u64,
    /// The upload is deleted when this day begins.
    pub expires: UtcDay,
    /// What arrived beside it.
    pub beside: UploadBeside,
    /// Whether it was stored.
    pub done: Done,
}

/// Why a state file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upload state: {0}")]
pub struct StateError(&'static str);

impl UploadState {
    /// The file's bytes: fixed lines, in this order, LF only.
    pub fn encode(&self) -> Vec<u8> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let triage = self.beside.triage.as_deref().map_or("-".into(), b64);
        let conversation = self
            .beside
            .conversation
            .as_ref()
            .map_or("-".into(), NewConversation::header_value);
        let touch = self.beside.touch.map_or("-".into(), |l| l.to_string());
        let done = match self.done {
            Done::No => "-".to_string(),
            Done::Unknown => "?".to_string(),
            Done::Stored { id, sequence } => match sequence {
                Some(n) => format!("{id} {n}"),
                None => format!("{id} -"),
            },
        };
        format!(
            "{STATE_FORMAT}\nlength: {}\nexpires: {}\ntriage: {triage}\nconversation: \
             {conversation}\ntouch: {touch}\ndone: {done}\n",
            self.length, self.expires
        )
        .into_bytes()
    }

    /// Reads a state file strictly: exactly [`UploadState::encode`]'s lines.
    pub fn parse(bytes: &[u8]) -> Result<Self, StateError> {
        if bytes.len() > MAX_STATE_BYTES {
            return Err(StateError("too long"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| StateError("not UTF-8"))?;
        let body = text
            .strip_suffix('\n')
            .ok_or(StateError("does not end with a newline"))?;
        let mut lines = body.split('\n');
        if lines.next() != Some(STATE_FORMAT) {
            return Err(StateError("unknown format"));
        }
        let mut field = |name: &'static str| -> Result<&str, StateError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(": "))
                .ok_or(StateError("a line is missing or out of order"))
        };
        let length = decimal(field("length")?).ok_or(StateError("bad length"))?;
        let expires: UtcDay = field("expires")?
            .parse()
            .map_err(|_| StateError("bad expiry day"))?;
        let triage = match field("triage")? {
            "-" => None,
            t => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .map_err(|_| StateError("bad triage"))?,
            ),
        };
        let conversation = match field("conversation")? {
            "-" => None,
            c => Some(
                NewConversation::from_header(c.as_bytes())
                    .map_err(|_| StateError("bad conversation"))?,
            ),
        };
        let touch = match field("touch")? {
            "-" => None,
            t => Some(
                crate::replies::touched_locator(t.as_bytes())
                    .map_err(|_| StateError("bad touch"))?,
            ),
        };
        let done = match field("done")? {
            "-" => Done::No,
            "?" => Done::Unknown,
            d => {
                let (id, sequence) = d.split_once(' ').ok_or(StateError("bad done"))?;
                let id = id.parse().map_err(|_| StateError("bad done id"))?;
                let sequence = match sequence {
                    "-" => None,
                    n => Some(decimal(n).ok_or(StateError("bad done number"))?),
                };
                Done::Stored { id, sequence }
            }
        };
        if lines.next().is_some() {
            return Err(StateError("extra lines"));
        }
        if length == 0 {
            return Err(StateError("zero length"));
        }
        Ok(UploadState {
            length,
            expires,
            beside: UploadBeside {
                triage,
                conversation,
                touch,
            },
            done,
        })
    }
}

/// Reads a state file, at most [`MAX_STATE_BYTES`] and one more (so that a longer one is refused
/// by the parser without being read whole), never through a link.
fn read_state(path: &Path) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    use std::io::Read as _;
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The submission in `sealed/` (beside `uploads/`) that is the same file as a part file with
/// `part` metadata: the upload was stored before a crash, its id not yet in its state. Read only
/// at start, and only for such a part file.
fn linked_submission(uploads: &Path, part: &fs::Metadata) -> Option<SubmissionId> {
    let sealed = uploads.parent()?.join("sealed");
    fs::read_dir(sealed)
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| {
            let meta = entry.metadata().ok()?;
            if meta.ino() != part.ino() || meta.dev() != part.dev() {
                return None;
            }
            entry
                .file_name()
                .to_str()?
                .strip_suffix(".pgp")?
                .parse()
                .ok()
        })
}

/// Cuts a part file that is longer than its upload back to the upload's length.
fn cut_to(path: &Path, length: u64) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.set_len(length)?;
    file.sync_all()
}

/// A strict decimal: 1 to 20 ASCII digits, no sign, no spaces, no leading zero (except "0"),
/// fitting in a u64. The parser of `Upload-Length` and `Upload-Offset` too.
pub fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// One incomplete (or just stored) upload.
pub struct PartialUpload {
    /// Its id.
    pub id: UploadId,
    /// Its length (`Upload-Length`).
    pub length: u64,
    /// It is deleted when this day begins.
    pub expires: UtcDay,
    /// Dropped once stored (it then lives with the submission only), so that the uploads kept
    /// until their expiry to answer a lost final answer hold a few bytes each, not envelopes.
    beside: Mutex<Arc<UploadBeside>>,
    /// One writer at a time; a new PATCH signals `generation` and waits for this.
    turn: Arc<tokio::sync::Mutex<()>>,
    generation: AtomicU64,
    takeover: tokio::sync::Notify,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Bytes on disk and synced.
    offset: u64,
    done: Done,
    /// Deleted (cancelled, expired, refused): every later request is 404.
    gone: bool,
    /// Bytes of the quota this upload holds.
    reserved: u64,
}

impl PartialUpload {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes received and synced.
    pub fn offset(&self) -> u64 {
        self.inner().offset
    }

    /// Whether (and as what) it was stored.
    pub fn done(&self) -> Done {
        self.inner().done
    }

    /// True once deleted.
    pub fn is_gone(&self) -> bool {
        self.inner().gone
    }

    /// What arrived with the creation request.
    pub fn beside(&self) -> Arc<UploadBeside> {
        self.beside
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The writer's turn: tells the writer that holds it to stop (at its next chunk), then waits
    /// for it. Returns the turn and the generation that the new holder must watch.
    pub async fn take_turn(&self) -> (tokio::sync::OwnedMutexGuard<()>, u64) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.takeover.notify_waiters();
        let guard = self.turn.clone().lock_owned().await;
        (guard, generation)
    }

    /// The turn, if nobody holds it now.
    pub fn try_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.turn.clone().try_lock_owned().ok()
    }

    /// True if a later request took over from the holder of `generation`.
    pub fn taken_over(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) != generation
    }

    /// Woken when a later request asks to take over (enable a `notified()` future, then check
    /// [`PartialUpload::taken_over`], then await it: no request is missed).
    pub fn takeover(&self) -> &tokio::sync::Notify {
        &self.takeover
    }

    /// Waits for the turn without asking its holder to stop (a look at the upload waits for a
    /// writer that is finishing).
    pub async fn wait_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.turn.clone().lock_owned().await
    }
}

/// The incomplete uploads of a data directory (see the module doc).
pub struct Uploads {
    dir: PathBuf,
    pool: Arc<SparePool>,
    usage: Arc<Usage>,
    touched: Arc<AtomicBool>,
    limits: IncomingLimits,
    options: UploadOptions,
    map: Mutex<HashMap<UploadId, Arc<PartialUpload>>>,
}

/// `[uploads]` of the config.
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions {
    /// Days until an incomplete upload is deleted (see `docs/uploads-v1.md`).
    pub expire_days: u32,
    /// Most incomplete uploads at once.
    pub max_pending: usize,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            expire_days: 2,
            max_pending: 64,
        }
    }
}

/// What reading `uploads/` at start found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UploadsRecovery {
    /// Uploads found again.
    pub resumed: usize,
    /// Files that belonged to no readable upload, given back to the pool.
    pub dropped: usize,
}

impl Uploads {
    /// Opens `dir` (created if needed) and finds every upload again, with the offset of what is
    /// on disk; each incomplete one holds its length of the quota again.
    pub(super) fn open(
        dir: &Path,
        pool: Arc<SparePool>,
        usage: Arc<Usage>,
        touched: Arc<AtomicBool>,
        limits: IncomingLimits,
        options: UploadOptions,
    ) -> io::Result<(Self, UploadsRecovery)> {
        super::make_private_dir(dir)?;
        let uploads = Uploads {
            dir: dir.to_path_buf(),
            pool,
            usage,
            touched,
            limits,
            options,
            map: Mutex::new(HashMap::new()),
        };
        let recovery = uploads.recover()?;
        Ok((uploads, recovery))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, Arc<PartialUpload>>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn part_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn state_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.state"))
    }

    fn spare_return(&self) -> SpareReturn {
        SpareReturn {
            pool: self.pool.clone(),
            touched: self.touched.clone(),
        }
    }

    fn touch(&self) {
        self.touched.store(true, Ordering::Relaxed);
    }

    /// The options the uploads were opened with.
    pub fn options(&self) -> UploadOptions {
        self.options
    }

    /// How many uploads are not yet stored.
    pub fn pending(&self) -> usize {
        self.map().values().filter(|u| u.done() == Done::No).count()
    }

    fn recover(&self) -> io::Result<UploadsRecovery> {
        let mut recovery = UploadsRecovery::default();
        let mut states = Vec::new();
        let mut parts = std::collections::HashSet::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let parsed = name
                .split_once('.')
                .and_then(|(id, ext)| Some((id.parse::<UploadId>().ok()?, ext)));
            match parsed {
                Some((id, "state")) => states.push(id),
                Some((id, "part")) => {
                    parts.insert(id);
                }
                _ => {
                    self.give_back(&path);
                    recovery.dropped += 1;
                }
            }
        }
        let mut map = self.map();
        for id in states {
            let state_path = self.state_path(&id);
            let part_path = self.part_path(&id);
            let has_part = parts.remove(&id);
            let state = read_state(&state_path)
                .ok()
                .and_then(|b| UploadState::parse(&b).ok());
            let Some(mut state) = state else {
                self.give_back(&state_path);
                if has_part {
                    self.give_back(&part_path);
                }
                recovery.dropped += 1;
                continue;
            };
            let mut offset = state.length;
            if state.done == Done::No {
                let meta = if has_part {
                    fs::symlink_metadata(&part_path).ok()
                } else {
                    None
                };
                match meta {
                    // Linked into sealed/ before a crash: it was stored, its id unknown here.
                    Some(meta) if meta.is_file() && meta.nlink() > 1 => {
                        state.done = match linked_submission(&self.dir, &meta) {
                            Some(id) => Done::Stored { id, sequence: None },
                            None => Done::Unknown,
                        };
                        let _ = fs::remove_file(&part_path);
                        // Kept in memory all the same; one upload never stops the gateway.
                        let _ = self.write_state(&id, &state);
                    }
                    Some(meta) if meta.is_file() && meta.len() <= state.length => {
                        offset = meta.len();
                    }
                    Some(meta) if meta.is_file() && cut_to(&part_path, state.length).is_ok() => {
                        offset = state.length;
                    }
                    _ => {
                        // Its bytes are gone (a crash while it was being created): not kept.
                        self.give_back(&state_path);
                        if has_part {
                            self.give_back(&part_path);
                        }
                        recovery.dropped += 1;
                        continue;
                    }
                }
            } else if has_part {
                self.give_back(&part_path);
            }
            let reserved = if state.done == Done::No {
                self.usage.hold(offset);
                offset
            } else {
                0
            };
            map.insert(
                id,
                Arc::new(PartialUpload {
                    id,
                    length: state.length,
                    expires: state.expires,
                    beside: Mutex::new(Arc::new(state.beside)),
                    turn: Arc::default(),
                    generation: AtomicU64::new(0),
                    takeover: tokio::sync::Notify::new(),
                    inner: Mutex::new(Inner {
                        offset,
                        done: state.done,
                        gone: false,
                        reserved,
                    }),
                }),
            );
            recovery.resumed += 1;
        }
        drop(map);
        for id in parts {
            self.give_back(&self.part_path(&id));
            recovery.dropped += 1;
        }
        Ok(recovery)
    }

    fn give_back(&self, path: &Path) {
        self.spare_return().give_back(path);
    }

    /// Creates an upload of `length` bytes expiring `expire_days` after `today`: refused if too
    /// many are pending ([`StoreError::TooManyPending`]), if it is larger than a submission may
    /// be, or if its length does not fit in the quota or above the free-disk floor with what the
    /// other incomplete uploads still need. Durable when it returns. Blocking.
    pub fn create(
        &self,
        length: u64,
        beside: UploadBeside,
        today: UtcDay,
    ) -> Result<Arc<PartialUpload>, StoreError> {
        if length > self.limits.max_bytes {
            return Err(StoreError::TooLarge {
                limit: self.limits.max_bytes,
            });
        }
        let mut map = self.map();
        let pending: Vec<&Arc<PartialUpload>> =
            map.values().filter(|u| u.done() == Done::No).collect();
        if pending.len() >= self.options.max_pending {
            return Err(StoreError::TooManyPending);
        }
        // The length must fit now; it is counted as it arrives, not reserved whole: a
        // reservation at creation let a few bodiless creations lock the quota for days.
        check_free_space(&self.dir, self.limits.min_free_bytes.saturating_add(length))?;
        if self.usage.would_exceed(length) {
            return Err(StoreError::QuotaExceeded);
        }
        let expires = UtcDay::from_days_since_epoch(
            today.days_since_epoch() + self.options.expire_days as i32,
        );
        let id = loop {
            let id = UploadId::random();
            if !map.contains_key(&id) {
                break id;
            }
        };
        let state = UploadState {
            length,
            expires,
            beside,
            done: Done::No,
        };
        self.make_files(&id, &state, today)?;
        let upload = Arc::new(PartialUpload {
            id,
            length,
            expires,
            beside: Mutex::new(Arc::new(state.beside)),
            turn: Arc::default(),
            generation: AtomicU64::new(0),
            takeover: tokio::sync::Notify::new(),
            inner: Mutex::new(Inner {
                offset: 0,
                done: Done::No,
                gone: false,
                reserved: 0,
            }),
        });
        map.insert(id, upload.clone());
        Ok(upload)
    }

    /// Takes two spares (state and part), writes and syncs the state, syncs the directory.
    fn make_files(
        &self,
        id: &UploadId,
        state: &UploadState,
        today: UtcDay,
    ) -> Result<(), StoreError> {
        self.touch();
        let state_path = self.state_path(id);
        let part_path = self.part_path(id);
        let (mut file, _) = self
            .pool
            .take(today, &state_path)
            .map_err(StoreError::from_io)?;
        let written = file
            .write_all(&state.encode())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            self.give_back(&state_path);
            return Err(StoreError::from_io(e));
        }
        if let Err(e) = self.pool.take(today, &part_path) {
            self.give_back(&state_path);
            return Err(StoreError::from_io(e));
        }
        if let Err(e) = sync_dir(&self.dir) {
            self.give_back(&state_path);
            self.give_back(&part_path);
            return Err(StoreError::from_io(e));
        }
        self.touch();
        Ok(())
    }

    fn write_state(&self, id: &UploadId, state: &UploadState) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.state_path(id))?;
        file.set_len(0)?;
        file.write_all(&state.encode())?;
        file.sync_all()
    }

    /// The upload `id`, unless unknown or deleted.
    pub fn get(&self, id: &UploadId) -> Option<Arc<PartialUpload>> {
        self.map().get(id).filter(|u| !u.is_gone()).cloned()
    }

    /// Opens the upload's bytes for appending at its offset (the caller holds its turn).
    pub fn writer(&self, upload: &Arc<PartialUpload>) -> Result<PartialWriter, StoreError> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.part_path(&upload.id))
            .map_err(StoreError::from_io)?;
        let offset = upload.offset();
        // Whatever a writer stopped by a crash left beyond the synced offset is written again.
        file.set_len(offset).map_err(StoreError::from_io)?;
        io::Seek::seek(&mut &file, io::SeekFrom::Start(offset)).map_err(StoreError::from_io)?;
        self.touch();
        Ok(PartialWriter {
            file: io::BufWriter::with_capacity(256 * 1024, file),
            upload: upload.clone(),
            offset,
            touched: self.touched.clone(),
            usage: self.usage.clone(),
            dir: self.dir.clone(),
            min_free: self.limits.min_free_bytes,
            next_space_check: offset,
        })
    }

    /// Opens the upload's bytes for reading (the envelope check at the end).
    pub fn reader(&self, upload: &PartialUpload) -> Result<File, StoreError> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOATIME)
            .open(self.part_path(&upload.id))
            .or_else(|_| File::open(self.part_path(&upload.id)))
            .map_err(StoreError::from_io)
    }

    /// The complete, checked upload as a submission's spool, without copying it: `hash` is the
    /// SHA-256 state over its `size` bytes. The spool takes over the upload's quota reservation;
    /// committing it moves the file into `sealed/`, dropping it gives the file back.
    pub fn into_spool(
        &self,
        upload: &PartialUpload,
        hash: digest::Context,
        size: u64,
    ) -> Result<IncomingSubmission, StoreError> {
        let path = self.part_path(&upload.id);
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(StoreError::from_io)?;
        let reserved = std::mem::take(&mut upload.inner().reserved);
        Ok(IncomingSubmission::adopt(
            file,
            path,
            &self.dir,
            size,
            reserved,
            hash,
            self.limits,
            self.usage.clone(),
            self.spare_return(),
        ))
    }

    /// Gives up the upload's quota reservation (its bytes are copied through a new spool).
    pub fn release_reservation(&self, upload: &PartialUpload) {
        let reserved = std::mem::take(&mut upload.inner().reserved);
        self.usage.release(reserved);
    }

    /// Records that the upload was stored as `record` (HEAD shows it until the upload expires);
    /// its part file, if still there, goes back to the pool.
    pub fn mark_done(
        &self,
        upload: &PartialUpload,
        record: &SubmissionRecord,
    ) -> Result<(), StoreError> {
        let done = Done::Stored {
            id: record.id,
            sequence: record.sequence,
        };
        {
            let mut inner = upload.inner();
            inner.done = done;
            inner.offset = upload.length;
            let reserved = std::mem::take(&mut inner.reserved);
            self.usage.release(reserved);
        }
        *upload
            .beside
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::default();
        let part = self.part_path(&upload.id);
        if part.exists() {
            self.give_back(&part);
        }
        self.touch();
        // The triage envelope and the conversation now live with the submission only: a copy
        // kept here would outlive its purge, and tie this upload to the conversation.
        let state = UploadState {
            length: upload.length,
            expires: upload.expires,
            beside: UploadBeside::default(),
            done,
        };
        self.write_state(&upload.id, &state)
            .map_err(StoreError::from_io)
    }

    /// Deletes the upload at once: its bytes and state go back to the pool (emptied), its
    /// reservation is released. The caller holds its turn, or knows nobody does.
    pub fn delete(&self, upload: &PartialUpload) {
        if upload.is_gone() {
            return;
        }
        // The files first: once a request is told 404, the bytes are gone.
        let part = self.part_path(&upload.id);
        if part.exists() {
            self.give_back(&part);
        }
        self.give_back(&self.state_path(&upload.id));
        let _ = sync_dir(&self.dir);
        {
            let mut inner = upload.inner();
            inner.gone = true;
            let reserved = std::mem::take(&mut inner.reserved);
            self.usage.release(reserved);
        }
        self.map().remove(&upload.id);
        self.touch();
    }

    /// Deletes every upload whose expiry day has begun by `today` (stored ones too: their
    /// answer is no longer kept). An upload being written now is asked to stop and goes at the
    /// next pass. Returns how many were deleted.
    pub fn expire(&self, today: UtcDay) -> usize {
        let due: Vec<Arc<PartialUpload>> = self
            .map()
            .values()
            .filter(|u| u.expires <= today)
            .cloned()
            .collect();
        let mut deleted = 0;
        for upload in due {
            match upload.try_turn() {
                Some(_turn) => {
                    self.delete(&upload);
                    deleted += 1;
                }
                None => {
                    upload.generation.fetch_add(1, Ordering::SeqCst);
                    upload.takeover.notify_waiters();
                }
            }
        }
        deleted
    }
}

/// Appends to an upload's part file; [`PartialWriter::sync`] makes what was written count.
pub struct PartialWriter {
    file: io::BufWriter<File>,
    upload: Arc<PartialUpload>,
    offset: u64,
    touched: Arc<AtomicBool>,
    /// The bytes are counted against the quota as they arrive, and the free-disk floor
    /// checked every [`SPACE_CHECK_INTERVAL`] bytes, as a one-piece upload's spool does.
    usage: Arc<Usage>,
    dir: PathBuf,
    min_free: u64,
    next_space_check: u64,
}

impl PartialWriter {
    /// Appends `bytes` (the caller keeps within the upload's length).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if self.offset.saturating_add(bytes.len() as u64) > self.upload.length {
            return Err(StoreError::TooLarge {
                limit: self.upload.length,
            });
        }
        let n = bytes.len() as u64;
        if self.offset.saturating_add(n) >= self.next_space_check {
            self.next_space_check = self.offset + n + SPACE_CHECK_INTERVAL;
            check_free_space(&self.dir, self.min_free)?;
        }
        if !self.usage.reserve(n) {
            return Err(StoreError::QuotaExceeded);
        }
        self.upload.inner().reserved += n;
        self.file.write_all(bytes).map_err(StoreError::from_io)?;
        self.offset += n;
        Ok(())
    }

    /// Flushes and syncs what was written; the upload's offset then counts it. Returns it.
    pub fn sync(&mut self) -> Result<u64, StoreError> {
        self.file.flush().map_err(StoreError::from_io)?;
        self.file
            .get_ref()
            .sync_data()
            .map_err(StoreError::from_io)?;
        self.upload.inner().offset = self.offset;
        self.touched.store(true, Ordering::Relaxed);
        Ok(self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreOptions, SubmissionStore};

    fn state() -> UploadState {
        UploadState {
            length: 1234,
            expires: "2026-12-03".parse().expect("day"),
            beside: UploadBeside {
                triage: Some(vec![1, 2, 3, 250]),
                conversation: None,
                touch: Some(Locator([7; 32])),
            },
            done: Done::No,
        }
    }

    #[test]
    fn a_state_reads_back_and_nothing_else_is_read() {
        let s = state();
        assert_eq!(UploadState::parse(&s.encode()), Ok(s.clone()));
        let stored = UploadState {
            done: Done::Stored {
                id: SubmissionId::random(),
                sequence: Some(9),
            },
            ..s.clone()
        };
        assert_eq!(UploadState::parse(&stored.encode()), Ok(stored));
        let text = String::from_utf8(s.encode()).expect("utf8");
        for bad in [
            text.replace("length: 1234", "length: 01234"),
            text.replace("length: 1234", "length: +1234"),
            text.replace("length: 1234", "length: 0"),
            text.replace("\n", "\r\n"),
            text.replace("touch: ", "touch:"),
            text.trim_end().to_string(),
            format!("{text}extra\n"),
            text.replace("expires: 2026-12-03", "expires: 2026-12-03T10:00"),
            text.replace("done: -", "done: x"),
        ] {
            assert!(UploadState::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uploads_expire_when_their_day_begins_and_release_their_reservation() {
        use crate::store::{StoreOptions, SubmissionStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StoreOptions {
            quota_bytes: Some(8_000),
            limits: IncomingLimits {
                max_bytes: 10_000,
                min_free_bytes: 0,
            },
            spare_files: 16,
        };
        let uploads = UploadOptions {
            expire_days: 2,
            max_pending: 4,
        };
        let today = UtcDay::today();
        let day = |n: i32| UtcDay::from_days_since_epoch(today.days_since_epoch() + n);
        let (store, _) = SubmissionStore::open_with(dir.path(), options, uploads).expect("store");
        let upload = store
            .uploads()
            .create(6_000, UploadBeside::default(), today)
            .expect("created");
        assert_eq!(upload.expires, day(2));
        // Nothing is held before bytes arrive: bodiless creations lock no quota.
        assert_eq!(store.usage().reserved(), 0);
        assert!(matches!(
            store
                .uploads()
                .create(9_000, UploadBeside::default(), today),
            Err(StoreError::QuotaExceeded)
        ));
        let mut writer = store.uploads().writer(&upload).expect("writer");
        writer.write(&[9; 1000]).expect("write");
        assert_eq!(writer.sync().expect("sync"), 1000);
        assert_eq!(store.usage().reserved(), 1000);
        drop(writer);
        drop(store);
        // Found again after a restart, with its offset and the bytes it holds.
        let (store, recovery) =
            SubmissionStore::open_with(dir.path(), options, uploads).expect("store");
        assert_eq!(recovery.uploads.resumed, 1);
        let again = store.uploads().get(&upload.id).expect("found again");
        assert_eq!(again.offset(), 1000);
        assert_eq!(store.usage().reserved(), 1000);
        assert_eq!(store.uploads().expire(day(1)), 0);
        assert_eq!(store.uploads().expire(day(2)), 1);
        assert!(store.uploads().get(&upload.id).is_none());
        assert_eq!(store.usage().reserved(), 0);
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads"))
                .expect("ls")
                .count(),
            0
        );
    }

    fn opened(dir: &Path) -> SubmissionStore {
        let options = StoreOptions {
            quota_bytes: Some(10_000),
            limits: IncomingLimits {
                max_bytes: 10_000,
                min_free_bytes: 0,
            },
            spare_files: 16,
        };
        SubmissionStore::open_with(dir, options, UploadOptions::default())
            .expect("store")
            .0
    }

    #[test]
    fn a_corrupt_or_huge_state_file_does_not_stop_the_store_or_lose_other_uploads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = opened(dir.path());
        let today = UtcDay::today();
        let good = store
            .uploads()
            .create(100, UploadBeside::default(), today)
            .expect("created");
        let mut writer = store.uploads().writer(&good).expect("writer");
        writer.write(&[1; 10]).expect("write");
        writer.sync().expect("sync");
        drop(writer);
        let other = store
            .uploads()
            .create(100, UploadBeside::default(), today)
            .expect("created");
        // A state file far beyond the bound, and a part file that is a directory (whose link
        // count once made it look stored).
        let big = store
            .uploads()
            .create(100, UploadBeside::default(), today)
            .expect("created");
        drop(store);
        let uploads = dir.path().join("uploads");
        std::fs::write(
            uploads.join(format!("{}.state", other.id)),
            vec![b'x'; 8 * MAX_STATE_BYTES],
        )
        .expect("huge state");
        std::fs::remove_file(uploads.join(format!("{}.part", big.id))).expect("rm part");
        std::fs::create_dir(uploads.join(format!("{}.part", big.id))).expect("dir part");
        let store = opened(dir.path());
        let again = store
            .uploads()
            .get(&good.id)
            .expect("the good upload is kept");
        assert_eq!(again.offset(), 10);
        assert!(store.uploads().get(&other.id).is_none());
        assert!(store.uploads().get(&big.id).is_none());
        assert_eq!(store.usage().reserved(), 10);
    }

    #[test]
    fn bodiless_creations_do_not_lock_the_quota_and_bytes_count_as_they_arrive() {
        use crate::store::{StoreOptions, SubmissionStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StoreOptions {
            quota_bytes: Some(10_000),
            limits: IncomingLimits {
                max_bytes: 10_000,
                min_free_bytes: 0,
            },
            spare_files: 16,
        };
        let uploads = UploadOptions {
            expire_days: 2,
            max_pending: 8,
        };
        let today = UtcDay::today();
        let (store, _) = SubmissionStore::open_with(dir.path(), options, uploads).expect("store");
        // Four creations of the whole quota, no bytes sent: a fifth is still welcome.
        let idle: Vec<_> = (0..4)
            .map(|_| {
                store
                    .uploads()
                    .create(10_000, UploadBeside::default(), today)
                    .expect("created")
            })
            .collect();
        let real = store
            .uploads()
            .create(6_000, UploadBeside::default(), today)
            .expect("not locked out by bodiless creations");
        let mut writer = store.uploads().writer(&real).expect("writer");
        writer.write(&[7; 6_000]).expect("fits");
        assert_eq!(writer.sync().expect("sync"), 6_000);
        drop(writer);
        // The quota is now what arrived: another upload's bytes beyond it are refused, and
        // what it got before is kept.
        let mut writer = store.uploads().writer(&idle[0]).expect("writer");
        writer.write(&[1; 3_000]).expect("fits");
        assert!(matches!(
            writer.write(&[1; 2_000]),
            Err(StoreError::QuotaExceeded)
        ));
        assert_eq!(writer.sync().expect("sync"), 3_000);
        assert_eq!(store.usage().reserved(), 9_000);
    }

    #[test]
    fn an_upload_stored_just_before_a_crash_is_found_with_its_submission_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = opened(dir.path());
        let upload = store
            .uploads()
            .create(100, UploadBeside::default(), UtcDay::today())
            .expect("created");
        let mut writer = store.uploads().writer(&upload).expect("writer");
        writer.write(&[0xC1; 100]).expect("write");
        writer.sync().expect("sync");
        drop(writer);
        drop(store);
        // The crash came after the part file was linked into sealed/, before its state said so.
        let id = SubmissionId::random();
        std::fs::hard_link(
            dir.path().join(format!("uploads/{}.part", upload.id)),
            dir.path().join(format!("sealed/{id}.pgp")),
        )
        .expect("link");
        let store = opened(dir.path());
        let again = store.uploads().get(&upload.id).expect("found again");
        assert_eq!(again.done(), Done::Stored { id, sequence: None });
        assert_eq!(store.uploads().pending(), 0);
        assert!(!dir
            .path()
            .join(format!("uploads/{}.part", upload.id))
            .exists());
    }

    #[test]
    fn a_stored_uploads_state_keeps_no_triage_or_conversation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = opened(dir.path());
        let beside = UploadBeside {
            triage: Some(vec![0xAB; 64]),
            conversation: None,
            touch: Some(Locator([7; 32])),
        };
        let upload = store
            .uploads()
            .create(100, beside, UtcDay::today())
            .expect("created");
        let record = SubmissionRecord {
            id: SubmissionId::random(),
            day: UtcDay::today(),
            size: 100,
            sha256: "00".repeat(32),
            sealing: crate::submission::Sealing::BySender,
            state: crate::store::RecordState::Stored,
            triage: None,
            sequence: Some(3),
        };
        store.uploads().mark_done(&upload, &record).expect("done");
        // Nor in memory, where it waits until its expiry for a client that lost the answer.
        assert_eq!(*upload.beside(), UploadBeside::default());
        let path = dir.path().join(format!("uploads/{}.state", upload.id));
        let state = UploadState::parse(&std::fs::read(path).expect("state")).expect("parse");
        assert_eq!(state.beside, UploadBeside::default());
        assert_eq!(
            state.done,
            Done::Stored {
                id: record.id,
                sequence: Some(3)
            }
        );
    }

    #[test]
    fn upload_ids_are_strict() {
        let id = UploadId::random();
        assert_eq!(id.to_string().parse::<UploadId>(), Ok(id));
        for bad in [
            "",
            "0123456789abcdef0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcdeg",
            "../../etc/passwd",
        ] {
            assert!(bad.parse::<UploadId>().is_err(), "{bad:?}");
        }
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "01",
            "18446744073709551616",
            "1e3",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }
}
