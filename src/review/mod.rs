//! The reviewers' tool: key generation, and (offline) opening sealed bundles.

pub mod keygen;
pub mod passphrase;
