//! Conversations offline (`docs/replies-v1.md`): after each `open` (and `reply`), the folder of
//! the report that started a conversation gets `conversation.txt`, the thread in order — the
//! report, the answers sent (`conversation/NNN-reply.txt`), the follow-ups — and each follow-up's
//! `report.txt` starts by naming the report it follows.
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

#[derive(Default)]
struct Thread {
    first: Option<(UtcDay, SubmissionId)>,
    follow_ups: Vec<(UtcDay, SubmissionId)>,
}

/// Rewrites the thread files of every conversation in `out`; returns how many.
pub fn rebuild(out: &Path) -> std::io::Result<usize> {
    let mut threads: BTreeMap<Locator, Thread> = BTreeMap::new();
    for (id, dir) in super::index::report_folders(out)? {
        let folder = read_folder(&dir);
        let (Ok(bundle_entry), Some(Ok(report))) = (folder.entry, folder.report) else {
            continue;
        };
        let Some(conversation) = report.conversation else {
            continue;
        };
        let thread = threads.entry(conversation.locator).or_default();
        if conversation.reply_key.is_some() {
            thread.first = Some((bundle_entry.day, id));
        } else {
            thread.follow_ups.push((bundle_entry.day, id));
        }
    }
    let mut written = 0;
    for (locator, mut thread) in threads {
        let Some((day, first)) = thread.first else {
            continue;
        };
        thread.follow_ups.sort();
        let folder = out.join(first.to_string());
        let mut events: Vec<(UtcDay, u8, String)> =
            vec![(day, 0, format!("report {first} (the first)"))];
        for (name, sent) in replies_sent(&folder) {
            events.push((sent, 1, format!("answer sent: {CONVERSATION_DIR}/{name}")));
        }
        for (day, id) in &thread.follow_ups {
            events.push((*day, 2, format!("follow-up {id} (folder {id}/)")));
            mark_follow_up(&out.join(id.to_string()), &first)?;
        }
        events.sort();
        let mut text = format!(
            "Conversation {} — in order (only days are known)\n\n",
            &locator.to_string()[..16]
        );
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
            if !name.ends_with("-reply.txt") {
                return None;
            }
            let text = fs::read_to_string(e.path()).ok()?;
            let day = text
                .lines()
                .next()?
                .strip_prefix("Answer sent on ")?
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
