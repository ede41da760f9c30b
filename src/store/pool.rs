//! Spare files: the inodes that submissions are written into, made ahead of time.
//!
//! A file's birth time (`statx` btime) is set when its inode is created and can never be changed,
//! and inode numbers grow in creation order. A spool file created when an upload begins would
//! therefore date that submission to the millisecond and order it against the others, whatever
//! we later do to its other times. So no file is created when a submission arrives: the upload is
//! written into a spare, empty file taken at random from `pool/`, made at a moment that says
//! nothing about any one report, and a refused upload or a purged submission gives its file back
//! (truncated) instead of deleting it.
//!
//! Spares are made when the store is created, and topped up at the first maintenance pass of
//! each UTC day; a file made by that pass later in the day (say, after a restart at 10:00) is only
//! handed out from the next day on: its name carries the first day it may be used. Spares are
//! never made because a submission arrived: when fewer than half remain usable, the next
//! maintenance pass (within the sweep interval) makes more, usable at once. Someone who submits a
//! great many reports to drain the pool therefore learns, at most, that a report written into one
//! of those files arrived after that pass, never when. Only if every spare is taken before a pass
//! comes (more submissions within a minute than half the pool, which the default rate limits do
//! not allow) does a take make one file on the spot, which does date that submission; the
//! operator's log says so at the next daily pass.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ring::rand::{SecureRandom, SystemRandom};

use crate::submission::{SubmissionId, UtcDay};

/// The spare files of one data directory.
pub struct SparePool {
    dir: PathBuf,
    /// Spare names, with the first day each may be handed out.
    spares: Mutex<Vec<(UtcDay, String)>>,
    /// How many spares the daily top-up aims for.
    target: usize,
}

/// What [`SparePool::take`] had to do, for the operator's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A spare made before (at the latest, at the last maintenance pass).
    Ready,
    /// No spare was left: one was made now, which dates this submission.
    MadeNow,
}

impl SparePool {
    /// Opens `dir` (created if needed) and reads its spares; files that are not spares are an
    /// error, so nothing foreign hides there.
    pub fn open(dir: &Path, target: usize) -> io::Result<Self> {
        super::make_private_dir(dir)?;
        let mut spares = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match parse_name(&name) {
                Some(day) => spares.push((day, name)),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected file in pool/: {name:?}"),
                    ))
                }
            }
        }
        Ok(SparePool {
            dir: dir.to_path_buf(),
            spares: Mutex::new(spares),
            target: target.max(1),
        })
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes spares until there are `target`. Those made now are usable from `first_day`.
    /// Returns how many were made.
    pub fn top_up(&self, first_day: UtcDay) -> io::Result<usize> {
        let missing = self.target.saturating_sub(self.len());
        self.make(missing, first_day)?;
        Ok(missing)
    }

    /// When fewer than half the target are usable `today`, makes spares usable at once until
    /// `target` are. Returns how many were made.
    pub fn refill_if_low(&self, today: UtcDay) -> io::Result<usize> {
        let usable = self.lock().iter().filter(|(day, _)| *day <= today).count();
        if usable * 2 >= self.target {
            return Ok(0);
        }
        let missing = self.target.saturating_sub(usable);
        self.make(missing, today)?;
        Ok(missing)
    }

    fn make(&self, count: usize, first_day: UtcDay) -> io::Result<()> {
        let mut made = Vec::with_capacity(count);
        for _ in 0..count {
            let name = spare_name(first_day);
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(self.dir.join(&name))?;
            made.push((first_day, name));
        }
        if count > 0 {
            super::durable::sync_dir(&self.dir)?;
        }
        self.lock().extend(made);
        Ok(())
    }

    /// Moves a random spare usable `today` to `to` (in the same file system) and opens it for
    /// writing. If none is usable today, one meant for tomorrow will do; if there is none at all,
    /// one is made now (and the caller is told).
    pub fn take(&self, today: UtcDay, to: &Path) -> io::Result<(File, Taken)> {
        let mut taken = Taken::Ready;
        let name = loop {
            if let Some(name) = self
                .pick(today)
                .or_else(|| self.pick(UtcDay::from_days_since_epoch(i32::MAX)))
            {
                break name;
            }
            taken = Taken::MadeNow;
            self.make(1, today)?;
        };
        let from = self.dir.join(&name);
        if let Err(e) = fs::rename(&from, to) {
            // Not taken after all: keep it in the pool's list.
            if from.exists() {
                self.lock().push((today, name));
            }
            return Err(e);
        }
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(to)?;
        Ok((file, taken))
    }

    fn pick(&self, today: UtcDay) -> Option<String> {
        let mut spares = self.lock();
        let ready: Vec<usize> = spares
            .iter()
            .enumerate()
            .filter(|(_, (day, _))| *day <= today)
            .map(|(i, _)| i)
            .collect();
        if ready.is_empty() {
            return None;
        }
        let choice = ready[random_below(ready.len())];
        Some(spares.swap_remove(choice).1)
    }

    /// Empties the file at `path` and puts it back among the spares (usable at once: its birth
    /// time is already that of a spare). A file that has another name too (a spool name left by a
    /// crash just after its submission was linked into `sealed/`) is the stored submission itself:
    /// only this name goes, the content is never touched. Returns whether it was given back.
    pub fn give_back(&self, path: &Path, today: UtcDay) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        if file.metadata()?.nlink() > 1 {
            drop(file);
            fs::remove_file(path)?;
            return Ok(false);
        }
        file.set_len(0)?;
        file.sync_all()?;
        drop(file);
        let name = spare_name(today);
        fs::rename(path, self.dir.join(&name))?;
        self.lock().push((today, name));
        Ok(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(UtcDay, String)>> {
        self.spares
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `<first day>-<random>.spare`, e.g. `2026-11-30-3f…9a.spare`.
fn spare_name(first_day: UtcDay) -> String {
    format!("{first_day}-{}.spare", SubmissionId::random())
}

fn parse_name(name: &str) -> Option<UtcDay> {
    let stem = name.strip_suffix(".spare")?;
    let (day, random) = stem.split_at_checked(10)?;
    let random = random.strip_prefix('-')?;
    random.parse::<SubmissionId>().ok()?;
    day.parse().ok()
}

/// A uniform random index below `n` (n > 0).
fn random_below(n: usize) -> usize {
    let mut bytes = [0u8; 8];
    // SystemRandom only fails without an entropy source, which we cannot run without.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator failed");
    // 64 random bits modulo a small n: the bias is far below anything observable.
    (u64::from_le_bytes(bytes) % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn spares_are_made_ahead_taken_at_random_and_given_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool_dir = dir.path().join("pool");
        let today = UtcDay::today();
        let pool = SparePool::open(&pool_dir, 8).expect("open");
        assert_eq!(pool.top_up(today).expect("top up"), 8);
        let inodes: std::collections::HashSet<u64> = fs::read_dir(&pool_dir)
            .expect("ls")
            .map(|e| e.expect("entry").metadata().expect("meta").ino())
            .collect();
        let target = dir.path().join("taken.part");
        let (_, taken) = pool.take(today, &target).expect("take");
        assert_eq!(taken, Taken::Ready);
        assert!(inodes.contains(&fs::metadata(&target).expect("meta").ino()));
        assert_eq!(pool.len(), 7);
        fs::write(&target, b"refused upload").expect("write");
        assert!(pool.give_back(&target, today).expect("give back"));
        assert_eq!(pool.len(), 8);
        assert!(!target.exists());
        // Still the same inodes, all empty.
        for entry in fs::read_dir(&pool_dir).expect("ls") {
            let meta = entry.expect("entry").metadata().expect("meta");
            assert!(inodes.contains(&meta.ino()));
            assert_eq!(meta.len(), 0);
        }
        // Reopened, the pool knows its spares.
        assert_eq!(SparePool::open(&pool_dir, 8).expect("reopen").len(), 8);
    }

    #[test]
    fn spares_are_refilled_by_maintenance_not_by_arrivals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let today = UtcDay::today();
        let tomorrow = UtcDay::from_days_since_epoch(today.days_since_epoch() + 1);
        let pool = SparePool::open(&dir.path().join("pool"), 4).expect("open");
        pool.top_up(tomorrow).expect("top up");
        // Only tomorrow's are left: the maintenance pass makes usable ones.
        assert_eq!(pool.refill_if_low(today).expect("refill"), 4);
        assert_eq!(
            pool.refill_if_low(today).expect("refill"),
            0,
            "not low any more"
        );
        for name in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            let (_, taken) = pool.take(today, &dir.path().join(name)).expect("take");
            assert_eq!(
                taken,
                Taken::Ready,
                "{name}: spares meant for tomorrow do too"
            );
        }
        // Only when every spare is gone is one made at the moment of a take.
        let (_, taken) = pool.take(today, &dir.path().join("i")).expect("take");
        assert_eq!(taken, Taken::MadeNow);
        assert_eq!(pool.len(), 0);
    }

    /// Regression (found by the kill -9 test): a crash between linking a submission into
    /// `sealed/` and removing its spool name left both names; giving the spool name back
    /// truncated the stored submission.
    #[test]
    fn a_file_with_a_second_name_is_never_emptied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = SparePool::open(&dir.path().join("pool"), 2).expect("open");
        let spool = dir.path().join("x.part");
        let sealed = dir.path().join("sealed.pgp");
        fs::write(&spool, b"acknowledged ciphertext").expect("write");
        fs::hard_link(&spool, &sealed).expect("link");
        assert!(!pool.give_back(&spool, UtcDay::today()).expect("give back"));
        assert!(!spool.exists());
        assert_eq!(fs::read(&sealed).expect("read"), b"acknowledged ciphertext");
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn foreign_files_in_the_pool_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool_dir = dir.path().join("pool");
        fs::create_dir(&pool_dir).expect("mkdir");
        fs::write(pool_dir.join("notes.txt"), b"?").expect("write");
        let err = SparePool::open(&pool_dir, 4).err().expect("refused");
        assert!(err.to_string().contains("notes.txt"), "{err}");
        assert_eq!(
            parse_name("2026-11-30-00112233445566778899aabbccddeeff.spare").map(|d| d.to_string()),
            Some("2026-11-30".into())
        );
        assert!(parse_name("2026-11-30-0011.spare").is_none());
    }
}
