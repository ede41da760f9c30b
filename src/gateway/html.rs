//! The HTML side of the gateway: the page, and the form posted without JavaScript.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::form_post::{receive_form, FormContext, FormError};
use super::AppState;

#[derive(Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

/// `GET /` (and `/?lang=en`).
pub async fn page(State(app): State<Arc<AppState>>, Query(query): Query<PageQuery>) -> Response {
    let lang = app.page.language(query.lang.as_deref());
    Html(app.page.page(&lang, None, None)).into_response()
}

/// `POST /submit`: the form without JavaScript, sealed on arrival.
pub async fn submit_form(State(app): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let default_lang = app.page.language(None);
    let slot = match admit_form(&app) {
        Ok(slot) => slot,
        Err(e) => {
            let announced = request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            super::api::drain(request.into_body(), announced).await;
            return refusal(&app, &default_lang, None, e);
        }
    };
    let ctx = FormContext {
        store: app.store.clone(),
        keyring: app.keyring.clone(),
        form: app.page.form().clone(),
        max_bytes: app.store.options().limits.max_bytes,
    };
    let posted = receive_form(ctx, request, app.languages.clone(), app.upload_pace, &slot).await;
    drop(slot);
    let lang = posted.language.unwrap_or(default_lang);
    match posted.result {
        Ok(record) => Html(app.page.result(&lang, &record.id.to_string())).into_response(),
        Err(e) => refusal(&app, &lang, Some(&posted.values), e),
    }
}

/// Whether a form post may start now: sealing on arrival switched on, the gateway calm (without
/// JavaScript no proof of work can be solved, so under load these posts wait), and a free slot.
fn admit_form(app: &AppState) -> Result<super::slots::Slot, FormError> {
    if !app.page.server_sealing() {
        return Err(FormError::Disabled);
    }
    if app.pow.enabled() {
        app.pow.note_attempt();
        if !app.pow.is_calm() {
            return Err(FormError::Busy);
        }
    }
    app.admission.admit_upload().map_err(|_| FormError::Busy)
}

/// The form again, with what was typed and the reason, under the error's status.
fn refusal(
    app: &AppState,
    lang: &str,
    values: Option<&super::page::FormValues>,
    error: FormError,
) -> Response {
    let (key, field) = error.message_key();
    let mut message = app.page.text(lang, key).to_string();
    if let Some(field) = field {
        let label = app
            .page
            .text(lang, &format!("field.{field}.label"))
            .to_string();
        message = message.replace("{field}", &label);
    }
    message = message.replace("{message}", &error.to_string());
    let kept = app.page.text(lang, "page.error.kept_files");
    let text = format!("{message} {kept}");
    if error.status().is_server_error() || error.status() == StatusCode::INSUFFICIENT_STORAGE {
        super::error::warn_operator("form_post", &error.to_string());
    }
    (
        error.status(),
        Html(app.page.page(lang, values, Some(&text))),
    )
        .into_response()
}
