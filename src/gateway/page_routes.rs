//! The HTML handlers: `GET /` (the page), `GET /check` (the answers, read with the receipt),
//! and without JavaScript `POST /submit` (the form), `POST /check` (the answers opened by the
//! gateway) and `POST /check/follow-up`.
//! They admit and hand off; the page is drawn by [`super::page_render`], the post is read and
//! sealed by [`super::form_post`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::check_nojs;
use super::form_post::{read_texts, receive_form, FormContext, FormPostError, PostKind};
use super::form_token::TokenError;
use super::page_render::{CheckView, FormValues, PageMessage, PageView, ThreadView};
use super::slots::Slot;
use super::AppState;
use crate::form::FormDefinition;
use crate::replies::ReceiptError;

#[derive(Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

/// `GET /` (and `/?lang=en`).
pub async fn page(State(app): State<Arc<AppState>>, Query(query): Query<PageQuery>) -> Response {
    let lang = app.page.language(query.lang.as_deref());
    let view = PageView {
        token: app.form_tokens.issue(),
        ..PageView::default()
    };
    Html(app.page.page(&lang, &view)).into_response()
}

/// `GET /check` (and `/check?lang=en`): where a reporter reads the team's answers with the
/// receipt's words and adds to the report (`docs/replies-v1.md`). The page's script does all of
/// it in the browser, and the words never reach the gateway; without JavaScript, a form posts
/// them to [`check_form`].
pub async fn check(State(app): State<Arc<AppState>>, Query(query): Query<PageQuery>) -> Response {
    let lang = app.page.language(query.lang.as_deref());
    let token = app.form_tokens.issue();
    let view = CheckView {
        token: &token,
        message: None,
    };
    Html(app.page.check(&lang, &view)).into_response()
}

#[derive(Deserialize)]
pub struct CheckQuery {
    /// The form token from the form's action URL.
    t: Option<String>,
    lang: Option<String>,
}

/// `POST /check`: the check-in without JavaScript; the thread, opened by the gateway in memory,
/// with a follow-up form.
pub async fn check_form(
    State(app): State<Arc<AppState>>,
    Query(query): Query<CheckQuery>,
    request: Request<Body>,
) -> Response {
    let lang = app.page.language(query.lang.as_deref());
    // Admitted as every post without JavaScript (which cannot pay in work): its token, then the
    // form's budget — not the check-in budget that reporters with the page pay for.
    let announced = Some(check_nojs::MAX_CHECK_POST as u64);
    let _slot = match admit_form(&app, query.t.as_deref(), announced).await {
        Ok(slot) => slot,
        Err(e) => return check_refusal(&app, &lang, e, Refused::CheckIn),
    };
    match check_nojs::open(&app, request).await {
        Ok(opened) => {
            let token = app.form_tokens.issue();
            let view = ThreadView {
                read: &opened.read,
                receipt: &opened.receipt,
                token: &token,
                message: None,
            };
            Html(app.page.thread(&lang, &view)).into_response()
        }
        Err(e) => check_refusal(&app, &lang, e, Refused::CheckIn),
    }
}

/// `POST /check/follow-up`: a follow-up without JavaScript, sealed on arrival and added to the
/// conversation of the receipt posted with it.
pub async fn follow_up_form(
    State(app): State<Arc<AppState>>,
    Query(query): Query<CheckQuery>,
    request: Request<Body>,
) -> Response {
    let default_lang = app.page.language(query.lang.as_deref());
    if !app.page.server_sealing() {
        return refusal(&app, &default_lang, None, FormPostError::Disabled);
    }
    let announced = super::paced::announced_length(request.headers());
    let slot = match admit_form(&app, query.t.as_deref(), announced).await {
        Ok(slot) => slot,
        Err(e) => return check_refusal(&app, &default_lang, e, Refused::FollowUp),
    };
    let ctx = form_context(&app, PostKind::FollowUp);
    let posted = receive_form(ctx, request, app.languages.clone(), app.upload_pace, &slot).await;
    drop(slot);
    let lang = posted.language.unwrap_or(default_lang);
    match posted.result {
        Ok(sealed) => Html(app.page.followed(
            &lang,
            &sealed.record.id.to_string(),
            sealed.record.sequence.filter(|_| app.number_in_answer),
        ))
        .into_response(),
        Err(e) => check_refusal(&app, &lang, e, Refused::FollowUp),
    }
}

/// The check-in page again, with why the post was refused (and a fresh token). What was typed
/// in a follow-up is still in the browser's previous page.
fn check_refusal(app: &AppState, lang: &str, error: FormPostError, what: Refused) -> Response {
    if error.status().is_server_error() || error.status() == StatusCode::INSUFFICIENT_STORAGE {
        super::error::warn_operator("check_form", &error.to_string());
    }
    let sentence = error_sentence(app, lang, &error);
    let title_key = match what {
        Refused::CheckIn => "page.check.refused",
        Refused::FollowUp => "page.error.title",
    };
    let token = app.form_tokens.issue();
    let view = CheckView {
        token: &token,
        message: Some(PageMessage {
            title_key,
            sentence: &sentence,
        }),
    };
    (error.status(), Html(app.page.check(lang, &view))).into_response()
}

/// What [`check_refusal`] refused: the answers could not be read, or a follow-up was not sent.
#[derive(Clone, Copy)]
enum Refused {
    CheckIn,
    FollowUp,
}

/// The sentence for a refused post, in `lang`, with its numbers filled in.
fn error_sentence(app: &AppState, lang: &str, error: &FormPostError) -> String {
    let (count, position) = match error {
        FormPostError::BadReceipt(ReceiptError::WordCount(n)) => (*n, 0),
        FormPostError::BadReceipt(ReceiptError::UnknownWord(p)) => (0, *p),
        _ => (0, 0),
    };
    app.page
        .text(lang, error.message_key())
        .replace(
            "{limit}",
            &super::page_render::human_size(app.form_max_bytes),
        )
        .replace("{count}", &count.to_string())
        .replace("{position}", &position.to_string())
        .replace(
            "{files}",
            &error
                .uncleaned_files(|key| app.page.text(lang, key))
                .unwrap_or_default(),
        )
}

/// What sealing a form post needs.
fn form_context(app: &AppState, kind: PostKind) -> FormContext {
    let form = match kind {
        PostKind::Report => app.page.form().clone(),
        PostKind::FollowUp => {
            Arc::new(FormDefinition::follow_up(&app.page.form().default_language))
        }
    };
    FormContext {
        kind,
        store: app.store.clone(),
        submissions: app.submissions.clone(),
        keyring: app.keyring.clone(),
        couriers: app.couriers.clone(),
        form,
        max_bytes: app.form_max_bytes,
    }
}

#[derive(Deserialize)]
pub struct SubmitQuery {
    /// The form token from the page's action URL.
    t: Option<String>,
}

/// `POST /submit`: the form without JavaScript, sealed on arrival.
pub async fn submit_form(
    State(app): State<Arc<AppState>>,
    Query(query): Query<SubmitQuery>,
    request: Request<Body>,
) -> Response {
    let default_lang = app.page.language(None);
    if !app.page.server_sealing() {
        return refusal(&app, &default_lang, None, FormPostError::Disabled);
    }
    let announced = super::paced::announced_length(request.headers());
    let slot = match admit_form(&app, query.t.as_deref(), announced).await {
        Ok(slot) => slot,
        Err(e) => {
            // Refused before sealing: read back what was typed, so nothing is lost, unless the
            // post has no genuine token (nothing a page of ours sent) or too many are being
            // read back at once; then the reporter is told to go back instead.
            let genuine = !matches!(
                e,
                FormPostError::Token(TokenError::Missing | TokenError::Invalid)
            );
            let permit = genuine
                .then(|| app.echoes.clone().try_acquire_owned().ok())
                .flatten();
            let (language, values) = match permit {
                Some(_permit) => {
                    read_texts(request, app.page.form(), &app.languages, app.upload_pace).await
                }
                None => (None, FormValues::new()),
            };
            let echoed = !values.is_empty();
            let lang = language.unwrap_or(default_lang);
            return refusal(&app, &lang, echoed.then_some(&values), e);
        }
    };
    let ctx = form_context(&app, PostKind::Report);
    let posted = receive_form(ctx, request, app.languages.clone(), app.upload_pace, &slot).await;
    drop(slot);
    let lang = posted.language.unwrap_or(default_lang);
    match posted.result {
        Ok(sealed) => Html(app.page.result(
            &lang,
            &sealed.record.id.to_string(),
            sealed.record.sequence.filter(|_| app.number_in_answer),
            sealed.urgent,
            sealed.receipt.as_ref(),
        ))
        .into_response(),
        Err(e) => refusal(&app, &lang, Some(&posted.values), e),
    }
}

/// Whether a form post may start now. Its token is checked and spent at once (one token, one
/// try: a refused post comes back with a fresh one); a post that comes sooner after its page than
/// a person could fill it in is held until the token is old enough; then it waits for its turn in
/// the form's own queue, its bytes come from the form's hourly budget, and it gets an upload slot.
async fn admit_form(
    app: &AppState,
    token: Option<&str>,
    announced: Option<u64>,
) -> Result<Slot, FormPostError> {
    let ticket = app.form_tokens.check(token)?;
    app.form_tokens.spend(ticket)?;
    let size = announced.unwrap_or(app.form_max_bytes);
    if size > app.form_max_bytes {
        return Err(FormPostError::TooLarge);
    }
    tokio::time::sleep(app.form_tokens.wait(&ticket)).await;
    app.admission
        .admit_form_post(size)
        .await
        .map_err(|_| FormPostError::Busy)
}

/// The form again, with what was typed, the reason and every missing answer, under the
/// error's status, and a fresh token so "send again" works.
fn refusal(
    app: &AppState,
    lang: &str,
    values: Option<&FormValues>,
    error: FormPostError,
) -> Response {
    if error.status().is_server_error() || error.status() == StatusCode::INSUFFICIENT_STORAGE {
        super::error::warn_operator("form_post", &error.to_string());
    }
    if matches!(error, FormPostError::Disabled) {
        return (error.status(), Html(app.page.disabled(lang))).into_response();
    }
    let message = error_sentence(app, lang, &error);
    let missing = match &error {
        FormPostError::Missing(fields) => fields.clone(),
        _ => Vec::new(),
    };
    // Without what was typed, say how to get it back rather than that it is still there.
    let message = if values.is_none() {
        format!("{message} {}", app.page.text(lang, "page.error.go_back"))
    } else {
        message
    };
    let view = PageView {
        values,
        message: Some(message),
        missing,
        token: app.form_tokens.issue(),
        files_lost: values.is_some(),
    };
    (error.status(), Html(app.page.page(lang, &view))).into_response()
}
