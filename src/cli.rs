//! What the binaries share: one mapping from each part's errors to a one-line message and an exit
//! code, so every command fails the same way.
//!
//! Exit codes: 0 success; 1 done, but some items failed (see the summary); 2 usage or
//! configuration error; 3 bad input data (a file that is not what it should be, a wrong
//! passphrase); 4 the environment failed (disk, network, a busy or unreachable gateway); 5 the
//! gateway is not what the organisation vouched for (keys not in its signed key list, a log of
//! accepted submissions with a gap or a rewrite: `docs/trust-v1.md`).

use std::fmt::Display;
use std::process::ExitCode;

use crate::bundle::BundleError;
use crate::config::ConfigError;
use crate::gateway::GatewayError;
use crate::operator::OperatorError;
use crate::store::StoreError;
use crate::terminal::clean_line;

/// Exit code 1: the command ran, but some items failed (its summary says which).
pub const EXIT_PARTIAL: u8 = 1;
/// Exit code 2: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code 3: bad input data, such as a malformed file or a wrong passphrase.
pub const EXIT_BAD_INPUT: u8 = 3;
/// Exit code 4: the environment failed (disk, network, a busy or unreachable gateway).
pub const EXIT_ENVIRONMENT: u8 = 4;
/// Exit code 5: a trust check failed: the gateway offers keys or a page its organisation did not
/// vouch for, or its log of accepted submissions shows a problem (`docs/trust-v1.md`).
pub const EXIT_UNTRUSTED: u8 = 5;

/// A failed command: what to print, and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code, one of the `EXIT_*` constants.
    pub code: u8,
    /// What went wrong; may span lines, and is cleaned of terminal controls when printed.
    pub message: String,
}

impl Failure {
    /// A failure with this exit code and message.
    pub fn new(code: u8, message: impl Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
        }
    }

    /// A failure with [`EXIT_USAGE`].
    pub fn usage(message: impl Display) -> Self {
        Self::new(EXIT_USAGE, message)
    }

    /// A failure with [`EXIT_BAD_INPUT`].
    pub fn bad_input(message: impl Display) -> Self {
        Self::new(EXIT_BAD_INPUT, message)
    }

    /// A failure with [`EXIT_ENVIRONMENT`].
    pub fn environment(message: impl Display) -> Self {
        Self::new(EXIT_ENVIRONMENT, message)
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::usage(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Integrity(_) | StoreError::UnsupportedFormat { .. } => {
                Failure::bad_input(e)
            }
            StoreError::Bundle(b) => b.into(),
            other => Failure::environment(other),
        }
    }
}

impl From<BundleError> for Failure {
    fn from(e: BundleError) -> Self {
        match e {
            BundleError::Io(_) => Failure::environment(e),
            other => Failure::bad_input(other),
        }
    }
}

impl From<GatewayError> for Failure {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Store(s) => s.into(),
            GatewayError::Tls(_) => Failure::usage(e),
            other => Failure::environment(other),
        }
    }
}

impl From<OperatorError> for Failure {
    fn from(e: OperatorError) -> Self {
        match e {
            OperatorError::Store(s) => s.into(),
            OperatorError::Bundle { .. }
            | OperatorError::Receipt { .. }
            | OperatorError::ReceiptMismatch { .. } => Failure::bad_input(e),
            OperatorError::OutputExists(_) => Failure::usage(e),
            other => Failure::environment(other),
        }
    }
}

/// Prints the failure as `program: error: message` (indented continuation lines) and returns the
/// exit code. Every line goes through [`crate::terminal::clean_line`]: messages quote files,
/// manifests and reports that an attacker may have written.
pub fn finish(program: &str, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprint!("{}", render_failure(program, &failure.message));
            ExitCode::from(failure.code)
        }
    }
}

/// The text [`finish`] prints for a failure message.
pub fn render_failure(program: &str, message: &str) -> String {
    let mut lines = message.lines();
    let mut out = format!(
        "{program}: error: {}\n",
        clean_line(lines.next().unwrap_or(""))
    );
    for line in lines {
        out.push_str(&format!("  {}\n", clean_line(line.trim_start())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_never_carry_terminal_controls() {
        let text = render_failure(
            "resguardo-review",
            "bundle: unknown field `\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}1m\u{202e}x`",
        );
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(!text.contains('\u{202e}'));
        assert!(text.starts_with("resguardo-review: error: bundle: unknown field `"));
    }
}
