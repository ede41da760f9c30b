//! The Garage test cluster (`common::garage`) and the facts about Garage 2.5.0 that the S3 store
//! backend (docs/store-v1.md) relies on, measured against three real nodes on loopback with curl
//! (7.88: it signs a given `x-amz-content-sha256` but sends none by itself; Garage requires one):
//! - replication 3, write quorum 2: one node down, PUT 200; two down, PUT and GET 503
//!   (`ServiceUnavailable`, "Could not reach quorum of 2"), the first one only once the dead
//!   peer is noticed (about 8 s after the kill), then at once; nothing of a refused PUT is
//!   readable; a restarted node serves again;
//! - `x-amz-checksum-sha256` and a signed `x-amz-content-sha256` are both verified: a wrong
//!   one is 400 `InvalidDigest` and nothing is readable (the refused body's blocks stay on disk
//!   until Garage collects them); `UNSIGNED-PAYLOAD` is accepted;
//! - Last-Modified is to the second, the listing to the millisecond; a CopyObject onto itself
//!   with `REPLACE` restamps both, keeps the bytes and does not rewrite the blocks;
//! - where bodies, names, query strings and client headers end up on a node's disk and logs.
//!
//! Each test starts its own cluster (about 1.5 s). Run with
//! `cargo test --test tests garage_cluster:: -- --nocapture` to see the timings and the facts.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::common::garage::{sha256, Body, GarageCluster, S3Reply};

fn started() -> (GarageCluster, Instant) {
    let t0 = Instant::now();
    let cluster = GarageCluster::start();
    eprintln!("garage cluster of 3 nodes up in {:?}", t0.elapsed());
    (cluster, Instant::now())
}

fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random");
    bytes
}

fn canary(what: &str) -> String {
    format!("CANARY{what}{}", hex::encode(random(8)))
}

fn assert_status(reply: &S3Reply, status: u16, what: &str, cluster: &GarageCluster) {
    assert_eq!(
        reply.status,
        status,
        "{what}: {} {}\n{}",
        reply.status,
        reply.text(),
        cluster.log_tails()
    );
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn unix_millis(rfc3339: &str) -> u64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"));
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("after 1970")
}

/// `<LastModified>` of `key` in a ListObjectsV2 answer.
fn listed_last_modified(cluster: &GarageCluster, key: &str) -> String {
    let path = format!("/{}?list-type=2&prefix={key}", cluster.bucket());
    let list = cluster.s3_request(0, "GET", &path, &[], Body::None);
    assert_status(&list, 200, "ListObjectsV2", cluster);
    let text = list.text();
    text.split("<LastModified>")
        .nth(1)
        .and_then(|s| s.split("</LastModified>").next())
        .unwrap_or_else(|| panic!("no LastModified in {text}"))
        .to_string()
}

#[test]
fn three_nodes_take_a_write_and_every_node_serves_it() {
    let (cluster, t0) = started();
    let body = random(100_000);
    assert_status(
        &cluster.put(0, "a/written-on-0", &body),
        200,
        "PUT",
        &cluster,
    );
    for i in 1..3 {
        let got = cluster.get(i, "a/written-on-0");
        assert_status(&got, 200, &format!("GET on node {i}"), &cluster);
        assert!(got.body == body, "node {i} served other bytes");
    }
    // A second bucket for the tests that need one, with the same key.
    cluster.create_bucket("second-bucket");
    let put = cluster.s3_request(1, "PUT", "/second-bucket/x", &[], Body::Signed(b"x"));
    assert_status(&put, 200, "PUT in the second bucket", &cluster);
    let path = format!("/{}/x", cluster.bucket());
    let other = cluster.s3_request(2, "GET", &path, &[], Body::None);
    assert_status(&other, 404, "the first bucket does not have it", &cluster);

    let creds = cluster.dir().join("s3-credentials");
    cluster.write_credentials_file(&creds);
    let text = std::fs::read_to_string(&creds).expect("credentials file");
    assert_eq!(
        text,
        format!(
            "# S3 credentials for resguardo-gateway ([store.s3] credentials_file)\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            cluster.access_key_id(),
            cluster.secret_access_key()
        )
    );
    assert!(cluster.access_key_id().starts_with("GK"), "{text}");
    let mode = std::fs::metadata(&creds)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(cluster.region(), "garage");
    assert!(cluster.s3_endpoint().starts_with("http://127.0.0.1:"));
    eprintln!(
        "three_nodes_take_a_write_and_every_node_serves_it: body {:?}",
        t0.elapsed()
    );
}

#[test]
fn one_node_down_writes_still_succeed_two_down_writes_fail_with_503_and_resume() {
    let (mut cluster, t0) = started();
    let before = random(10_000);
    assert_status(
        &cluster.put(0, "before", &before),
        200,
        "PUT, all up",
        &cluster,
    );

    cluster.kill(2);
    assert!(!cluster.is_running(2));
    let one_down = random(10_000);
    let t = Instant::now();
    let put = cluster.put(0, "one-down", &one_down);
    eprintln!("one of three down: PUT {} in {:?}", put.status, t.elapsed());
    assert_status(&put, 200, "PUT with one node of three down", &cluster);
    assert_status(&cluster.get(1, "before"), 200, "GET, one down", &cluster);

    cluster.kill(1);
    let t = Instant::now();
    let put = cluster.put(0, "two-down", b"must not be acknowledged");
    let refused_in = t.elapsed();
    assert_status(&put, 503, "PUT with two nodes of three down", &cluster);
    let t = Instant::now();
    let again = cluster.put(0, "two-down-again", b"must not be acknowledged");
    let refused_again_in = t.elapsed();
    assert_status(&again, 503, "a second PUT with two nodes down", &cluster);
    let get = cluster.get(0, "before");
    eprintln!(
        "two of three down: PUT {} in {refused_in:?} (the next in {refused_again_in:?}): {}\nGET {}: {}",
        put.status,
        put.text().trim(),
        get.status,
        get.text().trim()
    );
    assert_status(&get, 503, "GET with two nodes of three down", &cluster);

    let t = Instant::now();
    cluster.restart(1);
    eprintln!(
        "node 1 restarted and the cluster takes writes in {:?}",
        t.elapsed()
    );
    let after = random(10_000);
    assert_status(
        &cluster.put(0, "after", &after),
        200,
        "PUT, two of three up again",
        &cluster,
    );
    for (key, body) in [
        ("before", &before),
        ("one-down", &one_down),
        ("after", &after),
    ] {
        for node in [0, 1] {
            let got = cluster.get(node, key);
            assert_status(&got, 200, &format!("GET {key} on node {node}"), &cluster);
            assert!(got.body == *body, "{key} on node {node}: other bytes");
        }
    }
    // The refused write left nothing behind.
    assert_status(
        &cluster.get(0, "two-down"),
        404,
        "the refused PUT",
        &cluster,
    );
    let t = Instant::now();
    cluster.restart(2);
    eprintln!("node 2 restarted and takes writes in {:?}", t.elapsed());
    let got = cluster.get(2, "one-down");
    assert_status(&got, 200, "GET through the node that was down", &cluster);
    assert!(got.body == one_down);
    eprintln!("one_node_down_…_and_resume: body {:?}", t0.elapsed());
}

#[test]
fn put_with_x_amz_checksum_sha256_is_verified() {
    let (cluster, t0) = started();
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = random(50_000);
    let path = format!("/{}/checked", cluster.bucket());
    let good = b64.encode(sha256(&body));
    let put = cluster.s3_request(
        0,
        "PUT",
        &path,
        &[("x-amz-checksum-sha256", &good)],
        Body::Signed(&body),
    );
    assert_status(
        &put,
        200,
        "PUT with the right x-amz-checksum-sha256",
        &cluster,
    );
    eprintln!(
        "right checksum: 200, answer's x-amz-checksum-sha256: {:?}",
        put.header("x-amz-checksum-sha256")
    );

    // A wrong checksum on a streamed, unsigned body (as the gateway may send it): refused, and
    // nothing is readable; the canary tells whether its blocks stay on disk.
    let wrong = b64.encode(sha256(b"other bytes"));
    let bad_path = format!("/{}/checked-wrong", cluster.bucket());
    let refused_canary = format!("CANARYREFUSED{}", hex::encode(random(8)));
    let mut refused_body = random(50_000);
    refused_body.splice(100..100, refused_canary.bytes());
    let put = cluster.s3_request(
        0,
        "PUT",
        &bad_path,
        &[("x-amz-checksum-sha256", &wrong)],
        Body::Upload(&refused_body),
    );
    eprintln!(
        "wrong x-amz-checksum-sha256: {} {}",
        put.status,
        put.text().trim()
    );
    assert_status(
        &put,
        400,
        "PUT with a wrong x-amz-checksum-sha256",
        &cluster,
    );
    assert!(
        put.text().contains("<Code>InvalidDigest</Code>"),
        "{}",
        put.text()
    );
    let get = cluster.get(0, "checked-wrong");
    assert_status(&get, 404, "nothing stored after a wrong checksum", &cluster);
    let dir = cluster.dir().display().to_string();
    let left = cluster.scan_for(&[refused_canary.as_bytes()]);
    let left: Vec<String> = left.iter().map(|h| h.replace(&dir, "")).collect();
    eprintln!("blocks of the refused body left on disk: {left:?}");

    // The payload hash that signs the request (x-amz-content-sha256) is checked as well.
    let wrong_hex = hex::encode(sha256(b"other bytes"));
    let put = cluster.s3_request(
        0,
        "PUT",
        &format!("/{}/content-sha-wrong", cluster.bucket()),
        &[("x-amz-content-sha256", &wrong_hex)],
        Body::Signed(&body),
    );
    eprintln!(
        "wrong x-amz-content-sha256: {} {}",
        put.status,
        put.text().trim()
    );
    assert_status(&put, 400, "PUT with a wrong x-amz-content-sha256", &cluster);
    assert!(
        put.text().contains("<Code>InvalidDigest</Code>"),
        "{}",
        put.text()
    );
    let get = cluster.get(0, "content-sha-wrong");
    assert_status(
        &get,
        404,
        "nothing stored after a wrong payload hash",
        &cluster,
    );
    let right_hex = hex::encode(sha256(&body));
    let put = cluster.s3_request(
        0,
        "PUT",
        &format!("/{}/content-sha-right", cluster.bucket()),
        &[("x-amz-content-sha256", &right_hex)],
        Body::Upload(&body),
    );
    assert_status(
        &put,
        200,
        "PUT streamed with its x-amz-content-sha256",
        &cluster,
    );
    eprintln!(
        "put_with_x_amz_checksum_sha256_is_verified: body {:?}",
        t0.elapsed()
    );
}

#[test]
fn unsigned_payload_is_accepted() {
    let (cluster, t0) = started();
    let body = random(20_000);
    let path = format!("/{}/unsigned", cluster.bucket());
    let put = cluster.s3_request(
        0,
        "PUT",
        &path,
        &[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
        Body::Upload(&body),
    );
    assert_status(&put, 200, "PUT with UNSIGNED-PAYLOAD", &cluster);
    let got = cluster.get(1, "unsigned");
    assert_status(&got, 200, "GET", &cluster);
    assert!(got.body == body);
    // Without the header (curl 7.88 does not send it by itself) Garage refuses the request.
    let put = cluster.s3_request(
        0,
        "PUT",
        &format!("{path}-no-header"),
        &[("x-amz-content-sha256", "")],
        Body::Upload(&body),
    );
    eprintln!(
        "no x-amz-content-sha256: {} {}",
        put.status,
        put.text().trim()
    );
    assert_status(&put, 400, "PUT without x-amz-content-sha256", &cluster);
    assert!(
        put.text().contains("Missing X-Amz-Content-Sha256"),
        "{}",
        put.text()
    );
    eprintln!("unsigned_payload_is_accepted: body {:?}", t0.elapsed());
}

#[test]
fn last_modified_is_exact_and_copy_onto_itself_restamps_it() {
    let (cluster, t0) = started();
    let body = random(10_000);
    assert_status(&cluster.put(0, "stamped", &body), 200, "PUT", &cluster);
    let head = cluster.head(1, "stamped");
    assert_status(&head, 200, "HEAD", &cluster);
    let first = head
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    let listed_first = listed_last_modified(&cluster, "stamped");
    eprintln!("Last-Modified after PUT: {first:?}; listed: {listed_first:?}");
    // The listing shows milliseconds: Garage keeps the write time to the millisecond.
    let millis = listed_first
        .rsplit('.')
        .next()
        .and_then(|s| s.strip_suffix('Z'))
        .unwrap_or("");
    assert_eq!(millis.len(), 3, "milliseconds in {listed_first}");
    // The same time, as Garage's metadata encodes it (MessagePack u64, big-endian
    // milliseconds), is in every node's metadata database.
    let stamp = unix_millis(&listed_first).to_be_bytes();
    let files_with_stamp = |cluster: &GarageCluster| {
        let dir = cluster.dir().display().to_string();
        let mut files: Vec<String> = cluster
            .scan_for(&[&stamp])
            .iter()
            .filter_map(|h| h.split(": ").next())
            .map(|p| p.replace(&dir, ""))
            .collect();
        files.dedup();
        files
    };
    let before = files_with_stamp(&cluster);
    eprintln!("files holding the write time (ms) before the restamp: {before:?}");
    assert_eq!(before.iter().filter(|f| f.contains("/meta/")).count(), 3);

    std::thread::sleep(Duration::from_millis(2100));
    let path = format!("/{}/stamped", cluster.bucket());
    let source = format!("/{}/stamped", cluster.bucket());
    let copy = cluster.s3_request(
        2,
        "PUT",
        &path,
        &[
            ("x-amz-copy-source", &source),
            ("x-amz-metadata-directive", "REPLACE"),
        ],
        Body::Signed(b""),
    );
    assert_status(&copy, 200, "CopyObject onto itself", &cluster);
    let head = cluster.head(0, "stamped");
    assert_status(&head, 200, "HEAD after the copy", &cluster);
    let second = head
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    let listed_second = listed_last_modified(&cluster, "stamped");
    eprintln!("Last-Modified after CopyObject onto itself: {second:?}; listed: {listed_second:?}");
    assert_ne!(first, second, "the copy restamps Last-Modified");
    assert_ne!(listed_first, listed_second);
    let got = cluster.get(1, "stamped");
    assert_status(&got, 200, "GET after the copy", &cluster);
    assert!(got.body == body, "the copy changed the content");
    eprintln!(
        "files still holding the first write time (ms) after the restamp: {:?}",
        files_with_stamp(&cluster)
    );
    // The copy shares the data blocks: their files keep the first write's mtime.
    let copied_at = unix_millis(&listed_second);
    let dir = cluster.dir().display().to_string();
    let mut blocks = 0;
    for data in cluster.data_dirs().iter().filter(|d| d.ends_with("data")) {
        let files = crate::common::all_files(data);
        // Block files are named by their hash (`data/8e/b3/8eb3…`); `garage-marker` is not one.
        let is_block = |p: &std::path::Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        for (path, _) in files.iter().filter(|(p, _)| is_block(p)) {
            let mtime = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .expect("mtime")
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_millis() as u64;
            eprintln!(
                "block {}: mtime {} ms before the restamp",
                path.display().to_string().replace(&dir, ""),
                copied_at.saturating_sub(mtime)
            );
            assert!(mtime + 1000 < copied_at, "a block rewritten by the copy");
            blocks += 1;
        }
    }
    assert_eq!(blocks, 3, "one block per node");
    eprintln!("last_modified_…_restamps_it: body {:?}", t0.elapsed());
}

#[test]
fn a_canary_in_an_object_body_is_found_by_the_scan_when_unencrypted() {
    let (cluster, t0) = started();
    // Larger than Garage's inline threshold (3072 bytes): stored as a block in data/.
    let big_canary = canary("BIGBODY");
    let mut big = random(200_000);
    big.splice(1000..1000, big_canary.bytes());
    assert_status(&cluster.put(0, "big", &big), 200, "PUT big", &cluster);
    // Smaller: stored inline in the metadata database.
    let small_canary = canary("SMALLBODY");
    let small = format!("xx{small_canary}xx");
    assert_status(
        &cluster.put(0, "small", small.as_bytes()),
        200,
        "PUT small",
        &cluster,
    );
    // In the object's name, in a query string, and in headers a client could send.
    let name_canary = canary("NAME");
    assert_status(
        &cluster.put(0, &name_canary, b"n"),
        200,
        "PUT named",
        &cluster,
    );
    let query_canary = canary("QUERY");
    let agent_canary = canary("AGENT");
    let get = cluster.s3_request(
        1,
        "GET",
        &format!("/{}/small?x-id={query_canary}", cluster.bucket()),
        &[
            ("User-Agent", &agent_canary),
            ("X-Forwarded-For", "203.0.113.77"),
        ],
        Body::None,
    );
    assert_status(&get, 200, "GET with a query and headers", &cluster);

    let needles: [&[u8]; 6] = [
        big_canary.as_bytes(),
        small_canary.as_bytes(),
        name_canary.as_bytes(),
        query_canary.as_bytes(),
        agent_canary.as_bytes(),
        b"203.0.113.77",
    ];
    let hits = cluster.scan_for(&needles);
    let dir = cluster.dir().display().to_string();
    let hits: Vec<String> = hits.iter().map(|h| h.replace(&dir, "")).collect();
    eprintln!("canary scan hits:\n{}", hits.join("\n"));
    let found = |needle: &str, place: &str| {
        hits.iter()
            .filter(|h| h.ends_with(needle) && h.contains(place))
            .count()
    };
    // Bodies: on every node, uncompressed (so the scan has teeth).
    assert_eq!(found(&big_canary, "/data/"), 3, "{hits:?}");
    assert_eq!(found(&small_canary, "/meta/"), 3, "{hits:?}");
    // Object names: in every node's metadata database, and in the log of the node asked.
    assert_eq!(found(&name_canary, "/meta/"), 3, "{hits:?}");
    assert_eq!(found(&name_canary, "garage.log"), 1, "{hits:?}");
    // At RUST_LOG=garage=info every request line is logged: its query string, and the client
    // address from X-Forwarded-For; the user agent is not.
    assert_eq!(found(&query_canary, "garage.log"), 1, "{hits:?}");
    assert_eq!(found("203.0.113.77", "garage.log"), 1, "{hits:?}");
    assert_eq!(found(&agent_canary, ""), 0, "{hits:?}");
    eprintln!("a_canary_…_when_unencrypted: body {:?}", t0.elapsed());
}
