//! Security headers on every response, and nothing stored by caches.
//!
//! The policy is strict because the page is the one piece of code a reporter's browser runs:
//! scripts only from this origin and never inline, no framing, no referrer, no cookies (we never
//! set one). Nothing is stored by a browser's or a proxy's cache (`no-store`): pages can hold what
//! a reporter typed (a refused form comes back filled in), and the API is per request. The only
//! exception is the page's own files under a versioned URL, which hold nothing personal.

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The Content-Security-Policy of every answer (also what a page manifest vouches for).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; worker-src 'self'; \
     font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const PERMISSIONS_POLICY: &str =
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()";

/// Adds the headers; `tls` decides whether HSTS is sent (it means nothing over plain HTTP).
pub async fn security_headers(tls: bool, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let has_cache_control = headers.contains_key(header::CACHE_CONTROL);
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("permissions-policy"),
        PERMISSIONS_POLICY,
    );
    if tls {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    if !has_cache_control {
        set(header::CACHE_CONTROL, "no-store");
    }
    // Defence in depth: nothing in Resguardo sets cookies, and nothing ever should.
    headers.remove(header::SET_COOKIE);
    response
}
