//! The gateway: the HTTP(S) endpoint that accepts sealed submissions and serves the page.
//!
//! This layer only speaks HTTP. It admits requests (rate limits in `limits`, upload slots in
//! `slots`, proof of work in [`crate::pow`], connection and header bounds in `connections`
//! and `serve`), paces every body it reads (`paced`), streams sealed bodies into the envelope
//! check and the store (`upload`, behind the API handlers in `api`; in pieces that resume, tus,
//! in `resumable`), renders the page
//! ([`page_render`]) for the HTML handlers (`page_routes`), seals the form posted without
//! JavaScript (`form_post`, with its tokens in `form_token`), runs the store's daily and sweep
//! passes (`maintenance`), adds the security headers (`headers`) and maps every failure to a
//! status and body in one place (`error`). It never logs anything about a request: no addresses,
//! no user agents, no times of individual submissions.

mod api;
mod check_nojs;
mod connections;
mod conversation_routes;
mod courier_routes;
mod error;
mod form_post;
mod form_token;
mod headers;
mod limits;
mod maintenance;
mod paced;
pub mod page_render;
mod page_routes;
mod resumable;
mod slots;
pub mod tls;
mod upload;

#[cfg(test)]
mod router_tests;

pub use error::ApiError;
/// The Content-Security-Policy of every answer (a page manifest carries it).
pub use headers::CONTENT_SECURITY_POLICY;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{get, head, post};
use axum::Router;
use bytes::Bytes;
use serde::Serialize;

use crate::config::{TlsConfig, ValidatedConfig};
use crate::envelope::RecipientSet;
use crate::form::FormDefinition;
use crate::keyring::{CourierKeyring, ReviewerKeyring};
use crate::store::{
    IncomingLimits, Recovery, StoreError, StoreOptions, SubmissionBackend, SubmissionStore,
};

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The submission store (or the form token key in the data directory) could not be opened
    /// or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The TLS certificate or key could not be made, written, read or used; the message names
    /// the file where there is one.
    #[error("TLS: {0}")]
    Tls(String),
    /// The listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured `listen` address.
        addr: SocketAddr,
        /// Why binding failed (address in use, permission denied, …).
        source: std::io::Error,
    },
    /// The server stopped with an error after it had started listening.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The form definition built into the binary does not parse (a build defect, not config).
    #[error("the embedded page is broken: {0}")]
    Page(String),
}

/// Shared by all handlers.
pub struct AppState {
    /// Where accepted ciphertext is spooled and kept; also served to the operator socket.
    store: Arc<SubmissionStore>,
    /// Where sealed submissions are kept: `store` itself, or the object store (`docs/store-v1.md`).
    submissions: Arc<dyn SubmissionBackend>,
    /// Whether `submissions` feeds the chain of accepted submissions (the embedded store does;
    /// the object store does not yet, and the courier route says so instead of showing a chain
    /// that never grows).
    chain_kept: bool,
    /// The reviewer encryption subkeys the envelope check admits API submissions to.
    recipients: Arc<RecipientSet>,
    /// The reviewers' certificates, to seal form posts on arrival.
    keyring: Arc<ReviewerKeyring>,
    /// The couriers' certificates: triage envelopes of form posts are sealed to them, and they
    /// sign courier requests.
    couriers: Arc<CourierKeyring>,
    /// The courier encryption subkeys a triage envelope may be addressed to.
    triage_recipients: Arc<RecipientSet>,
    /// Single-use challenges that courier requests answer (a key made at start: a restart
    /// only makes couriers ask again).
    courier_challenges: form_token::FormTokens,
    /// Renders the page, the form results and refusals, in every embedded language.
    page: page_render::PageRenderer,
    /// Codes of the embedded languages; a form post may choose only one of these.
    languages: Vec<String>,
    /// The `GET /api/v1/keys` body (reviewer certificates and the size limit), made once.
    keys_json: Bytes,
    /// Rate budgets, queues and upload slots that every request passes through.
    admission: limits::Admission,
    /// Proof-of-work challenges and the memory of spent solutions.
    pow: crate::pow::ProofOfWork,
    /// Deadlines and minimum rate for reading any request body (API and form alike).
    upload_pace: paced::UploadPace,
    /// Which budgets refused lately, for `/healthz`; shared with `admission` and the acceptor.
    saturation: Arc<limits::Saturation>,
    /// After this many requests a connection is answered with `Connection: close`.
    max_requests_per_connection: u64,
    /// Issues and checks the one-use tokens that the form without JavaScript must carry.
    form_tokens: form_token::FormTokens,
    /// Largest form post (without JavaScript), smaller than a sealed submission may be.
    form_max_bytes: u64,
    /// Refused form posts whose answers are being read back, at most this many at once.
    echoes: Arc<tokio::sync::Semaphore>,
    /// The decoy boxes of check-ins for locators that have no conversation.
    decoys: conversation_routes::Decoys,
    /// Conversations being read into memory for a check-in (up to 64 MiB each), at most this
    /// many at once.
    conversations_open: Arc<tokio::sync::Semaphore>,
    /// Bundle downloads in progress (each holds a blocking thread).
    downloads: Arc<tokio::sync::Semaphore>,
    /// Whether answers to reporters carry the submission's number in the chain
    /// (`[store] number_in_answer`).
    number_in_answer: bool,
}

/// The signed courier routes. They are not charged before their signature is checked (see
/// `courier_routes::authenticated`), and every authenticated answer carries the next challenge.
fn courier_signed_routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/courier/triage", get(courier_routes::triage))
        .route("/api/v1/courier/chain", get(courier_routes::chain))
        .route(
            "/api/v1/courier/batches",
            post(courier_routes::begin_batch).get(courier_routes::list_batches),
        )
        .route(
            "/api/v1/courier/batches/{batch}",
            get(courier_routes::download_batch),
        )
        .route(
            "/api/v1/courier/batches/{batch}/delivered",
            post(courier_routes::batch_delivered),
        )
        .route(
            "/api/v1/courier/copies",
            post(courier_routes::describe_copy).get(courier_routes::download_copy),
        )
        .route(
            "/api/v1/courier/replies",
            post(conversation_routes::push)
                .layer(DefaultBodyLimit::max(conversation_routes::MAX_PUSH_REQUEST)),
        )
        .route(
            "/api/v1/courier/purge",
            post(courier_routes::purge)
                .layer(DefaultBodyLimit::max(crate::courier::MAX_PURGE_REQUEST)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            courier_routes::hand_out_next_challenge,
        ))
}

/// Refused form posts read back at once (each holds up to a few MiB while its page is made).
const ECHOES_AT_ONCE: usize = 4;
/// Check-ins reading their conversation into memory at once (API and without JavaScript).
const CONVERSATIONS_OPEN_AT_ONCE: usize = 2;

/// What the binary prints once the gateway is listening.
pub struct StartupInfo {
    /// `http://` or `https://` and the bound address, e.g. `https://127.0.0.1:8443/`.
    pub url: String,
    /// The address actually listened on (with the real port if the config asked for port 0).
    pub local_addr: SocketAddr,
    /// Each reviewer as (primary key fingerprint in hex, primary user ID), in config order.
    pub reviewers: Vec<(String, String)>,
    /// True when running on the embedded default config with the public demo reviewer keys:
    /// anyone can decrypt what is submitted, so the binary warns.
    pub demo_keys: bool,
    /// The data directory holding the store (and the self-signed TLS files, if any).
    pub data_dir: PathBuf,
    /// Number of submissions in the store at start.
    pub stored: usize,
    /// SHA-256 of the TLS leaf certificate as colon-separated uppercase hex; `None` for
    /// plain HTTP.
    pub tls_fingerprint: Option<String>,
    /// What opening the store had to repair.
    pub recovery: Recovery,
    /// The key list served, if any: the organisation's fingerprint (grouped by four), the list's
    /// version and last valid day, and whether it is the embedded default's demo list.
    pub key_list: Option<KeyListInfo>,
}

/// The key list a gateway serves, for its start-up banner.
pub struct KeyListInfo {
    /// The organisation key's fingerprint, grouped by four.
    pub organisation: String,
    /// The list's version.
    pub version: u64,
    /// Its last valid day.
    pub expires: crate::submission::UtcDay,
    /// Signed at start with the public demo organisation key (embedded default).
    pub demo: bool,
}

#[derive(Serialize)]
struct KeysBody<'a> {
    reviewers: Vec<ReviewerKey<'a>>,
    /// Triage envelopes are sealed to these (empty: send none).
    couriers: Vec<ReviewerKey<'a>>,
    max_submission_bytes: u64,
    /// The organisation's signed key list (`docs/trust-v1.md`), when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_list: Option<&'a crate::trust::keylist::SignedKeyList>,
    /// The organisation key's fingerprint, with the key list.
    #[serde(skip_serializing_if = "Option::is_none")]
    organisation: Option<String>,
}

#[derive(Serialize)]
struct ReviewerKey<'a> {
    fingerprint: String,
    name: &'a str,
    cert: String,
}

fn key_entries(members: &[crate::keyring::Reviewer]) -> Vec<ReviewerKey<'_>> {
    members
        .iter()
        .map(|r| ReviewerKey {
            fingerprint: r.fingerprint().to_hex(),
            name: r.name(),
            cert: r.armored(),
        })
        .collect()
}

fn keys_json(
    keyring: &ReviewerKeyring,
    couriers: &CourierKeyring,
    max_submission_bytes: u64,
    key_list: Option<&crate::config::ServedKeyList>,
) -> Bytes {
    let body = KeysBody {
        reviewers: key_entries(keyring.reviewers()),
        couriers: key_entries(couriers.couriers()),
        max_submission_bytes,
        key_list: key_list.map(|k| &k.signed),
        organisation: key_list.map(|k| k.verified.organisation.to_hex()),
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
            get(page_routes::page).route_layer(budget(limits::Route::Page)),
        )
        .route(
            "/check",
            // The post (without JavaScript) takes its check-in turn inside, after its token.
            get(page_routes::check)
                .route_layer(budget(limits::Route::Page))
                .post(page_routes::check_form),
        )
        .route(
            "/api/v1/keys",
            get(api::keys).route_layer(budget(limits::Route::Keys)),
        )
        .route(
            "/api/v1/challenge",
            get(api::challenge).route_layer(budget(limits::Route::Challenge)),
        )
        .route(
            "/api/v1/courier/challenge",
            get(courier_routes::challenge).route_layer(budget(limits::Route::CourierChallenge)),
        )
        .route(
            "/api/v1/conversations/check",
            // Its budget is taken inside, after the proof of work.
            post(conversation_routes::check),
        )
        .merge(courier_signed_routes(state.clone()))
        .fallback(api::asset.layer(budget(limits::Route::Page)));
    Router::new()
        .route(
            "/api/v1/submissions",
            post(api::submit).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/submit",
            post(page_routes::submit_form).layer(DefaultBodyLimit::max(form_body_limit)),
        )
        .route(
            "/check/follow-up",
            post(page_routes::follow_up_form).layer(DefaultBodyLimit::max(form_body_limit)),
        )
        .route("/healthz", get(api::healthz))
        .merge(resumable_routes(state.clone()))
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

/// The routes of uploads that resume (tus, `docs/uploads-v1.md` §1). Creation takes its turn in
/// the submission queue inside, after its headers are checked; a PATCH takes an upload slot;
/// looking at, cancelling and asking about uploads costs a turn of the page's budget.
fn resumable_routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let budget = || {
        let state = state.clone();
        axum::middleware::from_fn(move |req, next| {
            api::admit_request(state.clone(), limits::Route::Page, req, next)
        })
    };
    Router::new()
        .route(
            resumable::UPLOADS_PATH,
            axum::routing::options(resumable::options)
                .route_layer(budget())
                .post(resumable::create),
        )
        .route(
            "/api/v1/uploads/{id}",
            // A PATCH takes the page's request budget too (each one costs a sync), and an
            // upload slot once admitted.
            head(resumable::head)
                .delete(resumable::delete)
                .patch(resumable::patch)
                .route_layer(budget())
                .layer(DefaultBodyLimit::disable()),
        )
        .route_layer(axum::middleware::from_fn(resumable::tus_resumable))
}

/// Loads the operator's TLS certificate and key, if configured, as `serve` would; returns the
/// certificate's SHA-256 fingerprint.
pub fn check_tls(config: &crate::config::GatewayConfig) -> Result<Option<String>, GatewayError> {
    match &config.tls {
        TlsConfig::Files { cert, key } => Ok(Some(tls::load(cert, key)?.fingerprint)),
        _ => Ok(None),
    }
}

/// 32 bytes from the operating system's CSPRNG.
fn random_key() -> [u8; 32] {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 32];
    // Only fails without an entropy source, which nothing here can run without.
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .expect("the operating system's random number generator failed");
    key
}

/// The store of sealed submissions the config names: the embedded store itself, or this
/// gateway's prefix in an object store (checked now: an unreachable store stops the start).
fn open_submissions(
    config: &crate::config::GatewayConfig,
    store: &Arc<SubmissionStore>,
) -> Result<Arc<dyn SubmissionBackend>, GatewayError> {
    use crate::store::object::{self, ObjectStore, S3Client, S3Target};
    let marker = config.data_dir.join(object::MARKER_FILE);
    let refuse = |reason: String| {
        GatewayError::Store(StoreError::Unavailable {
            path: config.data_dir.clone(),
            reason,
        })
    };
    let s3 = match (&config.store.backend, &config.store.s3) {
        (crate::config::StoreBackendKind::S3, Some(s3)) => s3,
        _ if marker.exists() => {
            // Its reports are in the bucket: with the embedded store nobody would see them.
            return Err(refuse(format!(
                "this gateway kept its reports in the object store; export and purge them \
                 there (backend = \"s3\") first, then delete {} to use the embedded store",
                marker.display()
            )));
        }
        _ => return Ok(store.clone()),
    };
    let held = store.records()?.len();
    if held > 0 || !store.batches()?.is_empty() {
        return Err(refuse(format!(
            "the data directory still holds {held} reports of the embedded store; export and \
             purge them with backend = \"embedded\" before moving to the object store"
        )));
    }
    let (access_key_id, secret_access_key) = object::read_credentials(&s3.credentials_file)?;
    let client = S3Client::new(S3Target {
        endpoint: s3.endpoint.clone(),
        bucket: s3.bucket.clone(),
        region: s3.region.clone(),
        access_key_id,
        secret_access_key,
        ca_file: s3.ca_file.clone(),
    })
    .map_err(|e| StoreError::Backend(e.to_string()))?;
    let (objects, recovery) = ObjectStore::open(store.clone(), client, &s3.gateway)?;
    object::write_marker(&marker, &s3.gateway)?;
    if recovery != Default::default() {
        tracing::warn!(
            "object store: finished {} purges and {} batch records, adopted {} ciphertexts \
             without a record",
            recovery.purges_finished,
            recovery.batch_records_finished,
            recovery.orphans_adopted.len()
        );
    }
    Ok(Arc::new(objects))
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
    let uploads = crate::store::UploadOptions {
        expire_days: config.uploads.expire_days,
        max_pending: config.uploads.max_pending,
    };
    let (store, recovery) = SubmissionStore::open_with(&config.data_dir, options, uploads)?;
    let store = Arc::new(store);
    let submissions = open_submissions(config, &store)?;
    let form = FormDefinition::embedded().map_err(|e| GatewayError::Page(e.to_string()))?;
    let reviewers = validated
        .keyring
        .reviewers()
        .iter()
        .map(|r| (r.fingerprint().to_hex(), r.name().to_string()))
        .collect();
    let saturation = Arc::new(limits::Saturation::default());
    let page = page_render::PageRenderer::new(page_render::PageSettings {
        form: Arc::new(form),
        keys: reviewers,
        max_bytes: config.limits.max_submission_bytes,
        form_max_bytes: config.form.max_post_bytes(&config.limits),
        server_sealing: config.form.server_sealing,
        organisation: config.organisation.clone(),
        stall_seconds: config.limits.body_idle_timeout_secs,
        organisation_fingerprint: validated
            .key_list
            .as_ref()
            .map(|k| k.verified.organisation.to_hex()),
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
    let decoy_key =
        form_token::load_or_create_key(&config.data_dir.join(conversation_routes::DECOY_KEY_FILE))
            .map_err(|e| {
                GatewayError::Store(StoreError::Unavailable {
                    path: config.data_dir.clone(),
                    reason: format!("conversation decoy key: {e}"),
                })
            })?;
    let languages = crate::i18n::Catalog::embedded()
        .languages()
        .map(String::from)
        .collect();
    let state = AppState {
        chain_kept: config.store.backend == crate::config::StoreBackendKind::Embedded,
        store,
        submissions,
        recipients: Arc::new(validated.keyring.recipient_set()),
        keyring: Arc::new(validated.keyring.clone()),
        couriers: Arc::new(validated.couriers.clone()),
        triage_recipients: Arc::new(validated.couriers.recipient_set()),
        courier_challenges: form_token::FormTokens::with_key(
            &random_key(),
            0,
            courier_routes::CHALLENGE_TTL_SECS,
        ),
        page,
        languages,
        keys_json: keys_json(
            &validated.keyring,
            &validated.couriers,
            config.limits.max_submission_bytes,
            validated.key_list.as_ref(),
        ),
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
        conversations_open: Arc::new(tokio::sync::Semaphore::new(CONVERSATIONS_OPEN_AT_ONCE)),
        decoys: conversation_routes::Decoys::new(&decoy_key),
        downloads: Arc::new(tokio::sync::Semaphore::new(
            courier_routes::DOWNLOADS_AT_ONCE,
        )),
        number_in_answer: config.store.number_in_answer,
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
    let stored = state.submissions.records()?.len();
    match &validated.key_list {
        Some(served) if served.record => record_served(&config.data_dir, served)?,
        Some(_) => {}
        None => tracing::warn!(
            "no key_list is configured: clients cannot check the reviewer keys against the \
             organisation key (docs/trust-v1.md); sign one with resguardo-review sign-keys"
        ),
    }
    let tls = match &config.tls {
        TlsConfig::PlainHttp => None,
        TlsConfig::SelfSigned => {
            let (cert, key) = tls::ensure_self_signed(&config.data_dir, config.listen)?;
            Some(tls::load(&cert, &key)?)
        }
        TlsConfig::Files { cert, key } => Some(tls::load(cert, key)?),
    };
    let admin = tokio::spawn(crate::operator::socket::serve(
        state.store.clone(),
        state.submissions.clone(),
    ));
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
        state.submissions.clone(),
        Duration::from_secs(config.store.sweep_secs),
        config.retention.clone(),
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
        key_list: validated.key_list.as_ref().map(|k| KeyListInfo {
            organisation: crate::trust::keylist::grouped(&k.verified.organisation),
            version: k.verified.version,
            expires: k.verified.expires,
            demo: !k.record,
        }),
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

/// Keeps `key-list.served` at the highest key list served (validation refused a lower one).
fn record_served(
    data_dir: &std::path::Path,
    served: &crate::config::ServedKeyList,
) -> Result<(), GatewayError> {
    use crate::trust::keylist::ServedRecord;
    let record = ServedRecord {
        version: served.verified.version,
        sha256: served.verified.sha256.clone(),
    };
    let unavailable = |reason: String| {
        GatewayError::Store(StoreError::Unavailable {
            path: data_dir.join(crate::trust::keylist::SERVED_FILE),
            reason,
        })
    };
    match ServedRecord::read(data_dir) {
        Ok(Some(old)) if old == record => Ok(()),
        Ok(Some(old)) if old.version > record.version => Err(unavailable(format!(
            "a newer key list (version {}) was served meanwhile",
            old.version
        ))),
        Ok(_) => record
            .write(data_dir)
            .map_err(|e| unavailable(format!("cannot record the key list served: {e}"))),
        Err(e) => Err(unavailable(e)),
    }
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
