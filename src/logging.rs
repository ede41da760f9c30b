//! Logging for the operator, on stderr, deliberately poor in detail.
//!
//! No timestamps (the journal adds its own; we add nothing finer), and no per-request lines at
//! all: a log of when submissions arrived is exactly what a seizing adversary would want to
//! correlate with network traces. What is logged: start-up, shutdown, and failures of the server
//! itself. Level via `RESGUARDO_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber: level from `RESGUARDO_LOG` (default `info`), no times,
/// targets or colours. Does nothing if a subscriber is already installed.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("RESGUARDO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}
