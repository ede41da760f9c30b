//! The reviewers' tool: key generation, and (offline) opening sealed bundles.
//!
//! `open` is the part that handles attacker-supplied data next to the only key that can read
//! reports, so it is built to be careful and contained: the bundle and every payload are read by
//! strict parsers with bounds ([`crate::bundle`], [`crate::payload::read`]), output is written
//! whole-or-nothing under generated names ([`output`]), and the process locks itself into a
//! Landlock sandbox before the first ciphertext is read ([`sandbox`]).

pub mod keygen;
pub mod open;
pub mod opened;
pub mod output;
pub mod passphrase;
pub mod render;
pub mod sandbox;
pub mod secret_key;
