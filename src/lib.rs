//! Resguardo: a secure anonymous reporting gateway.
//!
//! The library holds all logic; the binaries in `src/bin` only parse arguments and map errors to
//! exit codes. Parts, each in its own module, with the smallest interfaces between them:
//!
//! - [`envelope`]: is a byte stream exactly a sealed message for our reviewers? (no secret key)
//! - [`keyring`]: the reviewers' certificates, validated once.
//! - [`store`]: durable storage of sealed submissions (ciphertext only), export and purge.
//! - [`gateway`]: the HTTP layer.
//! - [`payload`], [`bundle`]: the two file formats, each with a writer and a strict reader.
//! - [`review`]: the reviewers' offline tool.
//! - [`submit`]: the terminal client.
//! - [`terminal`]: the one place that makes outside text safe to print.
#![forbid(unsafe_code)]

pub mod envelope;
pub mod form;
pub mod gateway;
pub mod i18n;
pub mod keyring;
pub mod logging;
pub mod operator;
pub mod payload;
pub mod pow;
pub mod process;
pub mod review;
pub mod seal;
pub mod submit;

pub mod assets;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod store;
pub mod submission;
mod tarfmt;
pub mod terminal;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod testing;
