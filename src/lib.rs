//! Resguardo: a secure anonymous reporting gateway.
//!
//! The library holds all logic; the binaries in `src/bin` only parse arguments and map errors to
//! exit codes. Parts, each in its own module, with the smallest interfaces between them:
//!
//! The request path, from a reporter's device to the store:
//! - [`gateway`]: the HTTP layer (admission, pacing, the page, the form without JavaScript).
//! - [`pow`]: proof-of-work admission.
//! - [`envelope`]: is a byte stream exactly a sealed message for our reviewers? (no secret key)
//! - [`seal`]: encrypting a payload to every reviewer (the form without JavaScript, the client).
//! - [`store`]: durable storage of sealed submissions (ciphertext only), export and purge.
//! - [`operator`]: the operator's commands on a data directory (export, purge, status).
//! - [`courier`]: the protocol of the on-call couriers' signed requests (alerts, transfers).
//! - [`process`]: what the gateway does to its own process (no core dumps, a scrubbed stack).
//!
//! What the parts share:
//! - [`submission`]: a submission's id, its day and how it was sealed; batch ids.
//! - [`keyring`]: the reviewers' certificates, validated once.
//! - [`form`]: the form's definition, and the rule that turns answers into a report.
//! - [`triage`]: the small fixed-size note for the people on call, sealed beside each report.
//! - [`payload`], [`bundle`], [`sealed_file`]: the file formats, each with a writer and a strict
//!   reader (the first two on the tar subset in `tarfmt`).
//! - [`hashing`]: SHA-256 while copying.
//! - [`metadata`]: hidden data removed from attachments in memory (JPEG, PNG, WebP), and what may
//!   remain in the others.
//! - [`config`]: the gateway's configuration; [`assets`] and [`i18n`]: the embedded page and
//!   its languages.
//! - [`cli`], [`logging`], [`terminal`]: one-line errors and exit codes, the operator's log,
//!   outside text made safe to print.
//!
//! The clients:
//! - [`review`]: the reviewers' offline tool.
//! - [`submit`]: the terminal client.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod envelope;
pub mod form;
pub mod gateway;
pub mod hashing;
pub mod i18n;
pub mod keyring;
pub mod logging;
pub mod metadata;
pub mod operator;
pub mod payload;
pub mod pow;
pub mod process;
pub mod registry;
pub mod replies;
pub mod review;
pub mod seal;
pub mod sealed_file;
pub mod submit;
pub mod trust;

pub mod assets;
pub mod bundle;
pub mod cli;
pub mod config;
mod content_type;
pub mod courier;
pub mod store;
pub mod submission;
mod tarfmt;
pub mod terminal;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod testing;
pub mod triage;
