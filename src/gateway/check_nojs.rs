//! The check-in without JavaScript (`docs/replies-v1.md`, Tor Browser at "Safest"): the words
//! are posted to the gateway, which derives the locator and the lock key, opens the locked reply
//! key and the answers in memory, checks every signature as the reporter's own client would, and
//! renders the thread. Nothing of it is written or logged; the receipt, the reply key and the
//! answers are dropped (and the receipt wiped) when the page is sent.
//!
//! The handler admits a post like a form (`page_routes::check_form`: its token, then the form's
//! budget, not the check-in budget that API check-ins pay for with work); here at most two
//! conversations are open in memory at once. Follow-ups go through [`super::form_post`] (sealed
//! on arrival, [`super::form_post::PostKind::FollowUp`]).

use axum::body::Body;
use axum::extract::Request;
use sequoia_openpgp::Cert;
use zeroize::Zeroizing;

use super::form_post::{FormPostError, RECEIPT_FIELD};
use super::AppState;
use crate::replies::Receipt;
use crate::submit::{open_conversation, ConversationRead, SubmitError};

/// Largest check-in post: the words (at most a few hundred characters), form-encoded.
pub const MAX_CHECK_POST: usize = 4096;

/// A conversation opened for a check-in without JavaScript.
pub struct Opened {
    /// The receipt, for the follow-up form.
    pub receipt: Receipt,
    /// The answers, read and checked.
    pub read: ConversationRead,
}

/// Reads the words of a check-in admitted as a form post (see the module) and opens the
/// conversation.
pub async fn open(app: &AppState, request: Request<Body>) -> Result<Opened, FormPostError> {
    let receipt = posted_receipt(request).await?;
    let _open = app
        .conversations_open
        .acquire()
        .await
        .map_err(|_| FormPostError::Busy)?;
    let store = app.store.clone();
    let team: Vec<Cert> = app
        .keyring
        .reviewers()
        .iter()
        .map(|r| r.cert().clone())
        .collect();
    tokio::task::spawn_blocking(move || {
        let opened = open_in_memory(&store, receipt, &team);
        // The reply key and the answers were on this thread's stack.
        crate::process::scrub_stack();
        opened
    })
    .await
    .map_err(|_| FormPostError::Seal(std::io::Error::other("the check-in task failed")))?
}

/// The `receipt` field of a form-encoded post.
async fn posted_receipt(request: Request<Body>) -> Result<Receipt, FormPostError> {
    let body = axum::body::to_bytes(request.into_body(), MAX_CHECK_POST)
        .await
        .map_err(|_| FormPostError::TooMuchText)?;
    let body = Zeroizing::new(body.to_vec());
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
        .map_err(|_| FormPostError::Malformed("not a form".into()))?;
    let mut fields = fields
        .into_iter()
        .map(|(name, value)| (name, Zeroizing::new(value)));
    let words = fields
        .find(|(name, _)| name == RECEIPT_FIELD)
        .map(|(_, value)| value)
        .unwrap_or_default();
    Receipt::parse(&words).map_err(FormPostError::BadReceipt)
}

/// Reads the conversation of `receipt` from the store and opens it, as a client would.
fn open_in_memory(
    store: &crate::store::SubmissionStore,
    receipt: Receipt,
    team: &[Cert],
) -> Result<Opened, FormPostError> {
    let Some((record, replies)) = store.conversation_with_replies(&receipt.locator())? else {
        return Err(FormPostError::NoConversation);
    };
    // The stored bytes as they are: no base64 round trip of up to 32 MiB.
    let replies = replies
        .into_iter()
        .map(|r| (r.entry.n, r.entry.day, Ok::<_, &str>(r.message)));
    match open_conversation(&receipt, &record.box_bytes(), replies, team) {
        Ok(read) => Ok(Opened { receipt, read }),
        Err(SubmitError::NoConversation) => Err(FormPostError::NoConversation),
        Err(e) => Err(FormPostError::Seal(std::io::Error::other(e.to_string()))),
    }
}
