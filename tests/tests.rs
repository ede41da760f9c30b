//! Every integration test of Resguardo, in one binary (as ripgrep does): sequoia, axum and the
//! rest are linked once, not once per area. A module per area; `common` holds what they share
//! (the real binaries started on loopback, demo keys, GnuPG, bundles), `common::tor` a private
//! Tor network on 127.0.0.1, `common::garage` three Garage nodes (the object store's tests;
//! `scripts/test` runs `object_store::` and `garage_cluster::` last, once Garage is built).
//!
//! Run one area with `cargo test --test tests <area>::`, e.g. `cargo test --test tests hardening::`.

mod common;

mod bad_bodies;
mod chain;
mod config_errors;
mod courier_transfer;
mod deploy;
mod durability;
mod early_alerts;
mod fault_suite;
mod form_post;
mod fuzz_regressions;
mod garage_cluster;
mod gateway_end_to_end;
mod hardening;
mod image_metadata;
mod key_list;
mod languages;
mod no_metadata;
mod object_store;
mod onion;
mod onionbalance;
mod page_watch;
mod registry;
mod replies;
mod resumable;
mod resumable_client;
mod review_bombs;
mod review_escapes;
mod review_open;
mod review_sandbox;
mod sealed_reports;
mod shared_vectors;
