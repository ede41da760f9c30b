//! Trusting the server less (`docs/trust-v1.md`): what lets clients refuse, and reviewers and
//! couriers notice, a gateway that swaps keys, drops reports or alters its page.
//!
//! - [`chain`]: the hash chain of accepted submissions, its segments in bundles and the
//!   couriers' check that a head extends the last one seen.
//! - [`keylist`]: the organisation's signed key list (reviewers, couriers, the page it released).
//! - [`page`]: the page manifest and the check of a served page against it.

pub mod chain;
pub mod keylist;
pub mod page;
