//! The reviewers' tool: key generation, and (offline) opening sealed bundles.
//!
//! `open` is the part that handles attacker-supplied data next to the only key that can read
//! reports, so it is split and contained: the process that holds the key ([`open`]) verifies and
//! decrypts, and never parses a payload; each submission is parsed by a separate process
//! ([`worker`]) that never sees the key. Both lock themselves in before they touch attacker data
//! ([`sandbox`]: Landlock, seccomp, a new network namespace). Bundles and payloads are read by
//! strict parsers with bounds ([`crate::bundle`], [`crate::payload::read`]); output is written
//! whole-or-nothing under generated names ([`output`]); what reaches the terminal or a report
//! for people is cleaned ([`crate::terminal`]).
//!
//! The parts:
//! - [`keygen`], [`passphrase`], [`secret_key`]: reviewer keys, made and unlocked;
//! - [`open`]: the opener (verify, decrypt, stream, commit); [`worker`]: the parser;
//! - [`output`]: `--out` and staging; [`render`]: `report.txt`; [`opened`]: a report folder read
//!   back; [`index`]: `index.csv`, `index.txt` and `list DIR`;
//! - [`courier`]: the courier's signed connection; [`watch`]: its early alerts; [`transfer`]:
//!   its `fetch` and network `purge` (a networked device; no report is ever opened there);
//! - [`reply`]: answers to reporters, written offline and pushed by the courier; [`thread`]:
//!   each conversation's thread in the report folders;
//! - [`sandbox`]: containment; [`lang`] and [`messages`]: what the tool says, in Spanish or
//!   English.

pub mod courier;
pub mod index;
pub mod keygen;
pub mod lang;
pub mod messages;
pub mod open;
pub mod opened;
pub mod output;
pub mod passphrase;
pub mod render;
pub mod reply;
pub mod sandbox;
pub mod secret_key;
pub mod sign_keys;
pub mod thread;
pub mod transfer;
pub mod watch;
pub mod worker;
