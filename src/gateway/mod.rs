//! The gateway: the HTTP(S) endpoint that accepts sealed submissions and serves the page.
//!
//! This layer only speaks HTTP. It admits requests (rate limits in `limits`, upload slots in
//! `slots`, proof of work in [`crate::pow`], connection and header bounds in `connections`
//! and `serve`), streams sealed bodies into the envelope check and the store (`upload`), renders
//! the page ([`page`]) and seals the form posted without JavaScript (`form_post`), and maps
//! every failure to a status and body in one place (`error`). It never logs anything about a
//! request: no addresses, no user agents, no times of individual submissions.

mod api;
mod connections;
mod error;
mod form_post;
mod form_token;
mod headers;
mod html;
mod limits;
mod maintenance;
mod paced;
pub mod page;
mod slots;
pub mod tls;
mod upload;

pub use error::ApiError;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde::Serialize;

use crate::config::{TlsConfig, ValidatedConfig};
use crate::envelope::RecipientSet;
use crate::form::FormDefinition;
use crate::keyring::ReviewerKeyring;
use crate::store::{IncomingLimits, Recovery, StoreError, StoreOptions, SubmissionStore};

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("the embedded page is broken: {0}")]
    Page(String),
}

/// Shared by all handlers.
pub struct AppState {
    store: Arc<SubmissionStore>,
    recipients: Arc<RecipientSet>,
    keyring: Arc<ReviewerKeyring>,
    page: page::PageRenderer,
    languages: Vec<String>,
    keys_json: Bytes,
    admission: limits::Admission,
    pow: crate::pow::ProofOfWork,
    upload_pace: paced::UploadPace,
    saturation: Arc<limits::Saturation>,
    max_requests_per_connection: u64,
    form_tokens: form_token::FormTokens,
    /// Largest form post (without JavaScript), smaller than a sealed submission may be.
    form_max_bytes: u64,
    /// Refused form posts whose answers are being read back, at most this many at once.
    echoes: Arc<tokio::sync::Semaphore>,
}

/// Refused form posts read back at once (each holds up to a few MiB while its page is made).
const ECHOES_AT_ONCE: usize = 4;

/// What the binary prints once the gateway is listening.
pub struct StartupInfo {
    pub url: String,
    pub local_addr: SocketAddr,
    pub reviewers: Vec<(String, String)>,
    pub demo_keys: bool,
    pub data_dir: PathBuf,
    pub stored: usize,
    pub tls_fingerprint: Option<String>,
    pub recovery: Recovery,
}

#[derive(Serialize)]
struct KeysBody<'a> {
    reviewers: Vec<ReviewerKey<'a>>,
    max_submission_bytes: u64,
}

#[derive(Serialize)]
struct ReviewerKey<'a> {
    fingerprint: String,
    name: &'a str,
    cert: String,
}

fn keys_json(keyring: &ReviewerKeyring, max_submission_bytes: u64) -> Bytes {
    let body = KeysBody {
        reviewers: keyring
            .reviewers()
            .iter()
            .map(|r| ReviewerKey {
                fingerprint: r.fingerprint().to_hex(),
                name: r.name(),
                cert: r.armored(),
            })
            .collect(),
        max_submission_bytes,
    };
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// The router, without a listener (tests drive it directly).
pub fn router(state: Arc<AppState>, tls: bool) -> Router {
    // The form carries the attachments plus multipart framing and the text answers.
    let form_body_limit =
        usize::try_from(state.form_max_bytes + 2 * 1024 * 1024).unwrap_or(usize::MAX);
    let budget = |route| {
        let state = state.clone();
        axum::middleware::from_fn(move |req, next| {
            api::admit_request(state.clone(), route, req, next)
        })
    };
    let cheap = Router::new()
        .route(
            "/",
            get(html::page).route_layer(budget(limits::Route::Page)),
        )
        .route(
            "/api/v1/keys",
            get(api::keys).route_layer(budget(limits::Route::Keys)),
        )
        .route(
            "/api/v1/challenge",
            get(api::challenge).route_layer(budget(limits::Route::Challenge)),
        )
        .fallback(api::asset.layer(budget(limits::Route::Page)));
    Router::new()
        .route(
            "/api/v1/submissions",
            post(api::submit).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/submit",
            post(html::submit_form).layer(DefaultBodyLimit::max(form_body_limit)),
        )
        .route("/healthz", get(api::healthz))
        .merge(cheap)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn(move |req, next| {
            headers::security_headers(tls, req, next)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::track_request,
        ))
        .with_state(state)
}

/// Loads the operator's TLS certificate and key, if configured, as `serve` would; returns the
/// certificate's SHA-256 fingerprint.
pub fn check_tls(config: &crate::config::GatewayConfig) -> Result<Option<String>, GatewayError> {
    match &config.tls {
        TlsConfig::Files { cert, key } => Ok(Some(tls::load(cert, key)?.fingerprint)),
        _ => Ok(None),
    }
}

/// Opens the store and builds the shared state.
pub fn prepare(validated: &ValidatedConfig) -> Result<(Arc<AppState>, Recovery), GatewayError> {
    let config = &validated.config;
    let options = StoreOptions {
        quota_bytes: config.limits.store_quota_bytes,
        limits: IncomingLimits {
            max_bytes: config.limits.max_submission_bytes,
            min_free_bytes: config.limits.min_free_disk_bytes,
        },
        spare_files: config.store.spare_files,
    };
    let (store, recovery) = SubmissionStore::open(&config.data_dir, options)?;
    let form = FormDefinition::embedded().map_err(|e| GatewayError::Page(e.to_string()))?;
    let reviewers = validated
        .keyring
        .reviewers()
        .iter()
        .map(|r| (r.fingerprint().to_hex(), r.name().to_string()))
        .collect();
    let saturation = Arc::new(limits::Saturation::default());
    let page = page::PageRenderer::new(page::PageSettings {
        form: Arc::new(form),
        keys: reviewers,
        max_bytes: config.limits.max_submission_bytes,
        form_max_bytes: config.form.max_post_bytes(&config.limits),
        server_sealing: config.form.server_sealing,
        organisation: config.organisation.clone(),
        stall_seconds: config.limits.body_idle_timeout_secs,
    });
    let form_tokens = form_token::FormTokens::open(
        &config.data_dir,
        config.form.token_min_age_secs,
        config.form.token_ttl_secs,
    )
    .map_err(|e| {
        GatewayError::Store(StoreError::Unavailable {
            path: config.data_dir.clone(),
            reason: format!("form token key: {e}"),
        })
    })?;
    let languages = crate::i18n::Catalog::embedded()
        .languages()
        .map(String::from)
        .collect();
    let state = AppState {
        store: Arc::new(store),
        recipients: Arc::new(validated.keyring.recipient_set()),
        keyring: Arc::new(validated.keyring.clone()),
        page,
        languages,
        keys_json: keys_json(&validated.keyring, config.limits.max_submission_bytes),
        admission: limits::Admission::new(
            &config.rate_limits,
            &config.form,
            slots::SlotPolicy {
                cap: config.rate_limits.max_concurrent_uploads as usize,
                evict_below_bytes_per_sec: config
                    .rate_limits
                    .evict_uploads_slower_than_bytes_per_sec,
                ramp: Duration::from_secs(config.rate_limits.evict_ramp_secs),
            },
            saturation.clone(),
        ),
        pow: crate::pow::ProofOfWork::new(
            config.proof_of_work.clone(),
            config.rate_limits.submissions_per_minute,
        ),
        upload_pace: paced::UploadPace {
            idle: Duration::from_secs(config.limits.body_idle_timeout_secs),
            grace: Duration::from_secs(config.limits.upload_grace_secs),
            min_bytes_per_sec: config.limits.min_upload_bytes_per_sec,
            total: Duration::from_secs(config.limits.max_upload_secs),
        },
        saturation,
        max_requests_per_connection: u64::from(config.rate_limits.max_requests_per_connection),
        form_tokens,
        form_max_bytes: config.form.max_post_bytes(&config.limits),
        echoes: Arc::new(tokio::sync::Semaphore::new(ECHOES_AT_ONCE)),
    };
    Ok((Arc::new(state), recovery))
}

/// Runs the gateway until SIGINT or SIGTERM. `on_ready` is called once it is listening.
pub async fn serve(
    validated: ValidatedConfig,
    on_ready: impl FnOnce(&StartupInfo),
) -> Result<(), GatewayError> {
    let config = &validated.config;
    let (state, recovery) = prepare(&validated)?;
    let stored = state.store.records()?.len();
    let tls = match &config.tls {
        TlsConfig::PlainHttp => None,
        TlsConfig::SelfSigned => {
            let (cert, key) = tls::ensure_self_signed(&config.data_dir, config.listen)?;
            Some(tls::load(&cert, &key)?)
        }
        TlsConfig::Files { cert, key } => Some(tls::load(cert, key)?),
    };
    let admin = tokio::spawn(crate::operator::socket::serve(state.store.clone()));
    let connection_limits = connections::ConnectionLimits {
        cap: config.limits.max_connections,
        head_timeout: Duration::from_secs(config.limits.header_timeout_secs),
        budget: connections::ConnectionBudget {
            per_second: config.rate_limits.per_connection_per_second,
            burst: config.rate_limits.per_connection_burst,
        },
    };
    let saturation = state.saturation.clone();
    let maintenance = tokio::spawn(maintenance::run(
        state.store.clone(),
        Duration::from_secs(config.store.sweep_secs),
        config.retention.unexported_days,
    ));
    let app = router(state, tls.is_some());
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
    });

    let addr = config.listen;
    let make_service = app.into_make_service();
    let tls_fingerprint = tls.as_ref().map(|t| t.fingerprint.clone());
    let limits = config.limits.clone();
    let capped = connections::CappedAcceptor::new(connection_limits, saturation);
    let server = {
        let handle = handle.clone();
        async move {
            match tls {
                Some(loaded) => {
                    let rustls = axum_server::tls_rustls::RustlsConfig::from_config(loaded.config);
                    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
                        .handshake_timeout(Duration::from_secs(limits.header_timeout_secs))
                        .acceptor(capped);
                    let mut server = axum_server::bind(addr).acceptor(acceptor).handle(handle);
                    bound_slow_clients(server.http_builder(), &limits);
                    server.serve(make_service).await
                }
                None => {
                    let mut server = axum_server::bind(addr).acceptor(capped).handle(handle);
                    bound_slow_clients(server.http_builder(), &limits);
                    server.serve(make_service).await
                }
            }
        }
    };
    let server = tokio::spawn(server);
    let Some(local_addr) = handle.listening().await else {
        let source = match server.await {
            Ok(Err(e)) => e,
            _ => std::io::Error::other("the listener did not start"),
        };
        return Err(GatewayError::Bind { addr, source });
    };
    let scheme = if tls_fingerprint.is_some() {
        "https"
    } else {
        "http"
    };
    let info = StartupInfo {
        url: format!("{scheme}://{local_addr}/"),
        local_addr,
        reviewers: validated
            .keyring
            .reviewers()
            .iter()
            .map(|r| (r.fingerprint().to_hex(), r.name().to_string()))
            .collect(),
        demo_keys: validated.is_embedded_default,
        data_dir: config.data_dir.clone(),
        stored,
        tls_fingerprint,
        recovery,
    };
    on_ready(&info);
    let result = match server.await {
        Ok(result) => result.map_err(GatewayError::Serve),
        Err(e) => Err(GatewayError::Serve(std::io::Error::other(e))),
    };
    admin.abort();
    maintenance.abort();
    result
}

/// HTTP/1.1 only, with a deadline for the request head and a cap on its size. (Bodies are timed
/// by the upload code, which knows what rate a real reporter achieves.)
fn bound_slow_clients(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    limits: &crate::config::Limits,
) {
    builder
        .http1()
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs))
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(64);
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
}
