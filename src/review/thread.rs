//! Conversations offline (`docs/replies-v1.md`): after each `open` (and `reply`), the folder of
//! the report that started a conversation gets `conversation.txt`, the thread in order — the
//! report, the answers sent (`conversation/NNN-reply.txt`), the follow-ups — and each follow-up's
//! `report.txt` starts by naming the report it follows.
//!
//! The gateway knows every locator, so a locator proves nothing: a follow-up belongs to the
//! thread only if it carries the first report's follow-up token (derived from the receipt,
//! inside the encryption). One that does not is listed as not sent with the receipt. Two reports
//! that both claim to start one conversation make it contested: `reply` refuses it.
//!
//! Only days are known (the gateway keeps no finer time): within one day the order is report,
//! answers, follow-ups.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::opened::read_folder;
use super::reply::CONVERSATION_DIR;
use crate::bundle::receipt::write_atomically;
use crate::replies::Locator;
use crate::submission::{SubmissionId, UtcDay};

/// The thread file in a first report's folder.
pub const THREAD_FILE: &str = "conversation.txt";

const FOLLOW_UP_PREFIX: &str = "Follow-up to report";

/// One report of a conversation, as its folder says.
#[derive(Debug, Clone)]
pub struct Member {
    /// The report.
    pub id: SubmissionId,
    /// Its day.
    pub day: UtcDay,
    /// Its follow-up token, if it carries one.
    pub token: Option<String>,
}

/// The reports of one conversation found in `--out`.
#[derive(Debug, Default)]
pub struct Thread {
    /// Reports that carry a reply key (start the conversation): one, unless contested.
    pub firsts: Vec<Member>,
    /// Reports without one (follow-ups, verified or not).
    pub follow_ups: Vec<Member>,
}

impl Thread {
    /// The report that started it, if exactly one claims to.
    pub fn first(&self) -> Option<&Member> {
        match self.firsts.as_slice() {
            [first] => Some(first),
            _ => None,
        }
    }

    /// Whether a follow-up was sent with the first report's receipt.
    pub fn verified(&self, follow_up: &Member) -> bool {
        // Every client derives a token from the receipt; without one (on either side) the
        // locator alone, which the gateway knows, would be enough to join a conversation.
        self.first()
            .is_some_and(|f| f.token.is_some() && f.token.as_ref() == follow_up.token.as_ref())
    }
}

/// Every conversation of the reports in `out`.
pub fn threads(out: &Path) -> std::io::Result<BTreeMap<Locator, Thread>> {
    let mut threads: BTreeMap<Locator, Thread> = BTreeMap::new();
    for (id, dir) in super::index::report_folders(out)? {
        let folder = read_folder(&dir);
        let (Ok(bundle_entry), Some(Ok(report))) = (folder.entry, folder.report) else {
            continue;
        };
        let Some(conversation) = report.conversation else {
            continue;
        };
        let member = Member {
            id,
            day: bundle_entry.day,
            token: conversation.token,
        };
        let thread = threads.entry(conversation.locator).or_default();
        if conversation.reply_key.is_some() {
            thread.firsts.push(member);
        } else {
            thread.follow_ups.push(member);
        }
    }
    Ok(threads)
}

/// Rewrites the thread files of every conversation in `out`; returns how many.
pub fn rebuild(out: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for (locator, mut thread) in threads(out)? {
        thread.firsts.sort_by_key(|m| (m.day, m.id));
        thread.follow_ups.sort_by_key(|m| (m.day, m.id));
        let short = &locator.to_string()[..16];
        let Some(first) = thread.first().cloned() else {
            // Contested: every claimant's folder says so, and nothing is threaded.
            let names: Vec<String> = thread.firsts.iter().map(|m| m.id.to_string()).collect();
            let text = format!(
                "Conversation {short} is CONTESTED: {} reports claim to start it ({}). One of them \
                 was not sent by the reporter (the gateway, or whoever sent it, knows the \
                 conversation's locator). Do not answer either with `reply` until the team has \
                 decided which is genuine.\n",
                names.len(),
                names.join(", ")
            );
            for member in &thread.firsts {
                write_atomically(
                    &out.join(member.id.to_string()).join(THREAD_FILE),
                    text.as_bytes(),
                )?;
            }
            continue;
        };
        let folder = out.join(first.id.to_string());
        let mut events: Vec<(UtcDay, u8, String)> =
            vec![(first.day, 0, format!("report {} (the first)", first.id))];
        for (name, sent) in replies_sent(&folder) {
            events.push((sent, 1, format!("answer sent: {CONVERSATION_DIR}/{name}")));
        }
        for member in &thread.follow_ups {
            if thread.verified(member) {
                events.push((
                    member.day,
                    2,
                    format!("follow-up {} (folder {}/)", member.id, member.id),
                ));
                mark_follow_up(&out.join(member.id.to_string()), &first.id)?;
            } else {
                events.push((
                    member.day,
                    3,
                    format!(
                        "NOT A FOLLOW-UP: {} names this conversation but was not sent with its \
                         receipt (its token differs); treat it as a separate, unverified report",
                        member.id
                    ),
                ));
            }
        }
        events.sort();
        let mut text = format!("Conversation {short} — in order (only days are known)\n\n");
        for (day, _, what) in events {
            text.push_str(&format!("{day}  {what}\n"));
        }
        write_atomically(&folder.join(THREAD_FILE), text.as_bytes())?;
        written += 1;
    }
    Ok(written)
}

/// The answers kept in a report's `conversation/` folder, with the day each was sent.
fn replies_sent(folder: &Path) -> Vec<(String, UtcDay)> {
    let Ok(entries) = fs::read_dir(folder.join(CONVERSATION_DIR)) else {
        return Vec::new();
    };
    let mut found: Vec<(String, UtcDay)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            if !name.ends_with(super::reply::REPLY_COPY_SUFFIX) {
                return None;
            }
            let text = fs::read_to_string(e.path()).ok()?;
            // "Answer N sent on DAY (conversation …)"
            let day = text
                .lines()
                .next()?
                .split_once(" sent on ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((name, day))
        })
        .collect();
    found.sort();
    found
}

/// Puts "Follow-up to report <first>" at the top of a follow-up's `report.txt` (once).
fn mark_follow_up(folder: &Path, first: &SubmissionId) -> std::io::Result<()> {
    let path = folder.join("report.txt");
    // Written by `open` into a folder of its own; not a link to follow.
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => {}
        _ => return Ok(()),
    }
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    if text.starts_with(FOLLOW_UP_PREFIX) {
        return Ok(());
    }
    let marked = format!(
        "{FOLLOW_UP_PREFIX} {first} / Seguimiento del reporte {first} (the thread: {first}/{THREAD_FILE})\n\n{text}"
    );
    write_atomically(&path, marked.as_bytes())
}
