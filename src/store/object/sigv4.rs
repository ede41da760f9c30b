//! AWS Signature Version 4 for the S3 requests of [`super::client`]: the canonical request,
//! the string to sign, the signing key and the `Authorization` header, nothing else.
//!
//! Only what the client sends is supported: the signature goes in the `Authorization` header
//! (never in a presigned URL), the payload hash is always a real SHA-256 (never
//! `UNSIGNED-PAYLOAD` nor the chunked `STREAMING-…` forms), the service is always `s3`.
//! Pinned by the four header-signing examples AWS publishes for S3 (tests below).
//!
//! The secret only ever enters [`signing_key`]; nothing here formats it or keeps it.

use ring::{digest, hmac};

/// The SHA-256 of an empty payload, hex: what `x-amz-content-sha256` says for bodiless requests.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Who signs, and for which region.
pub(crate) struct Credentials<'a> {
    /// The access key id, sent in the clear in the credential scope.
    pub access_key_id: &'a str,
    /// The secret access key: only ever fed to HMAC.
    pub secret_access_key: &'a str,
    /// The region of the credential scope (Garage: `garage` unless configured otherwise).
    pub region: &'a str,
}

/// One request as SigV4 sees it.
pub(crate) struct Request<'a> {
    /// `GET`, `PUT`, `HEAD`, `DELETE`.
    pub method: &'a str,
    /// The absolute path exactly as sent on the request line, already URI-encoded
    /// (see [`encode`]); S3 wants it neither normalised nor encoded twice.
    pub path: &'a str,
    /// Query parameters, not encoded (encoded and sorted here). The same encoding must be
    /// used on the wire: [`canonical_query`] gives a string that is both.
    pub query: &'a [(&'a str, &'a str)],
    /// Every header to sign, `host` and `x-amz-date` included; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the payload, as sent in `x-amz-content-sha256`.
    pub payload_sha256: &'a str,
}

/// `20130524T000000Z`: the `x-amz-date` of a moment (UTC).
pub(crate) fn amz_date(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// SigV4 URI encoding: every byte but the unreserved `A-Z a-z 0-9 - . _ ~` as `%XX` (upper-case
/// hex); `/` is kept when `keep_slash` (object key in a path) and encoded otherwise (query).
pub(crate) fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The canonical query string: `name=value` pairs encoded, sorted by encoded name then value,
/// joined by `&`. Also what the client puts after the `?`, so the two cannot differ.
pub(crate) fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (encode(k, false), encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-cased, sorted headers with trimmed values whose inner runs of spaces are collapsed,
/// and the `;`-joined list of their names.
fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut list: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            (name.to_ascii_lowercase(), value)
        })
        .collect();
    list.sort();
    let canonical = list.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed = list
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (canonical, signed)
}

/// The canonical request and the signed-headers list.
pub(crate) fn canonical_request(request: &Request<'_>) -> (String, String) {
    let (headers, signed) = canonical_headers(request.headers);
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        request.path,
        canonical_query(request.query),
        headers,
        signed,
        request.payload_sha256
    );
    (canonical, signed)
}

/// The string to sign for a canonical request at `amz_date` in `scope`.
pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = digest::digest(&digest::SHA256, canonical_request.as_bytes());
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(hash.as_ref())
    )
}

/// `AWS4`+secret → day → region → `s3` → `aws4_request`.
pub(crate) fn signing_key(secret: &str, day: &str, region: &str) -> hmac::Key {
    let mut first = zeroize::Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    first.extend_from_slice(b"AWS4");
    first.extend_from_slice(secret.as_bytes());
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, &first);
    for part in [day, region, "s3", "aws4_request"] {
        let tag = hmac::sign(&key, part.as_bytes());
        key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
    }
    key
}

/// The `Authorization` header value for `request` made at `amz_date` (`YYYYMMDDTHHMMSSZ`).
/// The request's headers must include `x-amz-date: amz_date`.
pub(crate) fn authorization(
    credentials: &Credentials<'_>,
    amz_date: &str,
    request: &Request<'_>,
) -> String {
    let day = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{day}/{}/s3/aws4_request", credentials.region);
    let (canonical, signed) = canonical_request(request);
    let to_sign = string_to_sign(amz_date, &scope, &canonical);
    let key = signing_key(credentials.secret_access_key, day, credentials.region);
    let signature = hmac::sign(&key, to_sign.as_bytes());
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={signed},Signature={}",
        credentials.access_key_id,
        hex::encode(signature.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The header-signing examples of AWS's S3 documentation ("Signature Calculations for the
    // Authorization Header: Transferring Payload in a Single Chunk", example requests).
    const ACCESS: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";
    const HOST: &str = "examplebucket.s3.amazonaws.com";

    fn credentials() -> Credentials<'static> {
        Credentials {
            access_key_id: ACCESS,
            secret_access_key: SECRET,
            region: "us-east-1",
        }
    }

    fn sha256_hex(canonical: &str) -> String {
        hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    }

    #[test]
    fn aws_example_get_object_with_range() {
        let headers = [
            ("Host", HOST),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ];
        let request = Request {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        };
        let (canonical, _) = canonical_request(&request);
        assert_eq!(
            canonical,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(&canonical),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            authorization(&credentials(), DATE, &request),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn aws_example_put_object_encodes_the_dollar() {
        let body = "Welcome to Amazon S3.";
        let hash = sha256_hex(body);
        assert_eq!(
            hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let path = format!("/{}", encode("test$file.text", true));
        assert_eq!(path, "/test%24file.text");
        let headers = [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("Host", HOST),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", &hash),
        ];
        let request = Request {
            method: "PUT",
            path: &path,
            query: &[],
            headers: &headers,
            payload_sha256: &hash,
        };
        let (canonical, _) = canonical_request(&request);
        assert_eq!(
            sha256_hex(&canonical),
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"
        );
        assert!(authorization(&credentials(), DATE, &request).ends_with(
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,\
             Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        ));
    }

    #[test]
    fn aws_example_get_bucket_lifecycle_has_an_empty_query_value() {
        let headers = [
            ("Host", HOST),
            ("x-amz-date", DATE),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ];
        let request = Request {
            method: "GET",
            path: "/",
            query: &[("lifecycle", "")],
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        };
        assert!(authorization(&credentials(), DATE, &request).ends_with(
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        ));
    }

    #[test]
    fn aws_example_list_objects_sorts_the_query() {
        let headers = [
            ("Host", HOST),
            ("x-amz-date", DATE),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ];
        let request = Request {
            method: "GET",
            path: "/",
            // Given out of order: the canonical form sorts them.
            query: &[("prefix", "J"), ("max-keys", "2")],
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        };
        assert_eq!(canonical_query(request.query), "max-keys=2&prefix=J");
        assert!(authorization(&credentials(), DATE, &request).ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
    }

    #[test]
    fn encoding_keeps_only_unreserved_bytes_and_slash_in_paths() {
        assert_eq!(encode("a/b c+d=é~", true), "a/b%20c%2Bd%3D%C3%A9~");
        assert_eq!(encode("a/b", false), "a%2Fb");
        assert_eq!(
            canonical_query(&[("continuation-token", "1/x+y=="), ("list-type", "2")]),
            "continuation-token=1%2Fx%2By%3D%3D&list-type=2"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let (canonical, signed) = canonical_headers(&[("X-B", "  a   b "), ("x-a", "c")]);
        assert_eq!(canonical, "x-a:c\nx-b:a b\n");
        assert_eq!(signed, "x-a;x-b");
    }

    #[test]
    fn amz_date_is_utc_to_the_second() {
        let at = time::macros::datetime!(2013-05-24 02:03:04 +05:00);
        assert_eq!(amz_date(at), "20130523T210304Z");
    }
}
