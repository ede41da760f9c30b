//! A real Garage cluster on loopback, for the tests of the S3 store backend (issue 16).
//!
//! `GarageCluster::start()` runs three Garage 2.5.0 nodes on 127.0.0.1 in a temporary directory
//! (per node: `data/`, `meta/` with the SQLite metadata database, `garage.toml`, `garage.log`),
//! `replication_factor = 3`, one random `rpc_secret`, blocks stored uncompressed
//! (`compression_level = "none"`, so the canary scan reads what Garage stores), one zone per node
//! (dc1..dc3), a bucket and a key allowed to read, write and own it. Each node's S3, K2V, admin
//! and RPC ports are distinct free loopback ports. It owns:
//! - the daemons: `kill(i)` (SIGKILL), `restart(i)` (same config, waits until the cluster takes
//!   writes again), and on drop every process is killed and reaped; a small watchdog per node
//!   kills it within a second if the test process dies without dropping the cluster;
//! - S3 requests for the harness and its tests, through `curl --aws-sigv4` (no SDK);
//! - the canary scan of everything a node writes (`scan_for`).
//!
//! `GarageCluster::start_with(GarageOptions { fsync: true })` runs the nodes with
//! `metadata_fsync` and `data_fsync` on (production settings; `start()` leaves them off). The
//! file stands alone (no `super::`): `benches/gateway.rs` includes it with `#[path]`.
//!
//! The binary is `$RESGUARDO_GARAGE`, else `~/.cargo/bin/garage` (`scripts/ensure-deps test`
//! builds it once per machine). Waits are bounded; a failure panics with the end of every log.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The Garage version the harness (and the facts in docs/store-v1.md) was measured with.
pub const GARAGE_VERSION: &str = "2.5.0";
/// Nodes in a test cluster: replication factor 3 needs three.
pub const NODES: usize = 3;
const REGION: &str = "garage";
const BUCKET: &str = "resguardo-test";
/// How long a node, the cluster or a restarted node may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `garage` CLI call or one curl request may take.
const COMMAND_TIMEOUT_SECS: &str = "30";

/// How the nodes of a cluster are configured beyond the harness's fixed settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct GarageOptions {
    /// `metadata_fsync = true` and `data_fsync = true` (Garage's defaults are false): every
    /// metadata commit and every data block is fsynced before a write is acknowledged, as a
    /// production node should be configured. Off for tests (faster); the benchmark sets it.
    pub fsync: bool,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The Garage binary, checked once per test process.
pub fn garage_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BIN.get_or_init(|| {
        let path = match std::env::var_os("RESGUARDO_GARAGE") {
            Some(p) => PathBuf::from(p),
            None => {
                let cargo_home = std::env::var_os("CARGO_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
                    .unwrap_or_default();
                cargo_home.join("bin/garage")
            }
        };
        let out = Command::new(&path).arg("--version").output().map_err(|e| {
            format!(
                "Garage {GARAGE_VERSION} is needed at {} ({e}): run scripts/ensure-deps test",
                path.display()
            )
        })?;
        let version = String::from_utf8_lossy(&out.stdout).into_owned();
        if !version.contains(GARAGE_VERSION) {
            return Err(format!(
                "{} is not Garage {GARAGE_VERSION} ({}): run scripts/ensure-deps test",
                path.display(),
                version.trim()
            ));
        }
        Ok(path)
    });
    match found {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// `n` distinct free loopback TCP ports. One allocator per test process (tests run in parallel
/// threads), walking 10000-19999 from a start that depends on the process id, so two test
/// binaries rarely meet; below the kernel's ephemeral range (32768+, where outgoing connections
/// get their ports) and the private Tor network's (20000-32767). Each port is checked free.
fn free_ports(n: usize) -> Vec<u16> {
    const LOW: u32 = 10_000;
    const SPAN: u32 = 10_000;
    static NEXT: Mutex<Option<u32>> = Mutex::new(None);
    let mut next = NEXT.lock().unwrap_or_else(PoisonError::into_inner);
    let mut cursor = next.unwrap_or((std::process::id() % 500) * 20);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..SPAN {
        if ports.len() == n {
            break;
        }
        let port = (LOW + cursor % SPAN) as u16;
        cursor = (cursor + 1) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    *next = Some(cursor);
    assert_eq!(ports.len(), n, "no {n} free loopback ports in 10000-19999");
    ports
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    hex::encode(buf)
}

/// The last `lines` lines of a file (empty if unreadable).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn output_text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

/// One Garage daemon: its files, ports and (while it runs) its process and watchdog.
struct Node {
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    s3_port: u16,
    /// `<full node id>@127.0.0.1:<rpc port>`, known once the node has started.
    id: String,
    process: Option<Child>,
    watchdog: Option<Child>,
}

impl Node {
    fn new(
        root: &Path,
        i: usize,
        rpc_secret: &str,
        admin_token: &str,
        options: GarageOptions,
    ) -> Node {
        let ports = free_ports(4);
        let dir = root.join(format!("node{i}"));
        for sub in ["data", "meta"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create node dirs");
        }
        let config = dir.join("garage.toml");
        let text = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 3
compression_level = "none"
metadata_fsync = {fsync}
data_fsync = {fsync}

rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"

[k2v_api]
api_bind_addr = "127.0.0.1:{k2v}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{admin_token}"
"#,
            dir = dir.display(),
            rpc = ports[0],
            s3 = ports[1],
            k2v = ports[2],
            admin = ports[3],
            fsync = options.fsync,
        );
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .expect("write garage.toml");
        Node {
            log: dir.join("garage.log"),
            dir,
            config,
            s3_port: ports[1],
            id: String::new(),
            process: None,
            watchdog: None,
        }
    }

    /// Starts the daemon (appending to its log) and its watchdog.
    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open garage.log");
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .env("NO_COLOR", "1")
            .env_remove("GARAGE_LOG_TO_SYSLOG")
            .env_remove("GARAGE_LOG_TO_JOURNALD")
            .env_remove("GARAGE_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("start garage server");
        // Kills the daemon once the test process is gone (a test killed before its clean-up);
        // exits by itself when the daemon does.
        let watchdog = Command::new("sh")
            .args([
                "-c",
                "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 1; done; \
                 kill -9 \"$2\" 2>/dev/null",
                "garage-watchdog",
                &std::process::id().to_string(),
                &child.id().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start watchdog");
        self.process = Some(child);
        self.watchdog = Some(watchdog);
    }

    /// SIGKILL and reap (the watchdog first, so it never outlives the pid it watches).
    fn kill(&mut self) {
        for child in [self.watchdog.take(), self.process.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn exited(&mut self) -> Option<String> {
        match self.process.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(format!("exited with {status}")),
            Some(Err(e)) => Some(format!("cannot be waited for: {e}")),
            Some(Ok(None)) => None,
            None => Some("not running".into()),
        }
    }

    /// `garage -c <config> <args>`, bounded in time.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg(COMMAND_TIMEOUT_SECS)
            .arg(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("run garage CLI")
    }
}

/// What a body sent with `s3_request` is and how curl sends it.
pub enum Body<'a> {
    None,
    /// `--data-binary`, signed: `x-amz-content-sha256` is the body's SHA-256 (Garage checks it).
    Signed(&'a [u8]),
    /// `--upload-file` (streamed), with `x-amz-content-sha256: UNSIGNED-PAYLOAD` unless the
    /// request's headers give another value.
    Upload(&'a [u8]),
}

/// An S3 answer: status 0 means curl got no HTTP answer (`body` then holds curl's error).
#[derive(Debug)]
pub struct S3Reply {
    pub status: u16,
    /// Header lines of the (last) response head, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl S3Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Three Garage nodes on loopback with a bucket and a key; stopped when dropped.
pub struct GarageCluster {
    nodes: Vec<Node>,
    access_key_id: String,
    secret_access_key: String,
    /// Dropped last: the directory goes once every process is reaped.
    dir: tempfile::TempDir,
}

impl GarageCluster {
    /// Starts three nodes, connects them, applies a layout (zones dc1..dc3), creates the bucket
    /// and a key with read/write/owner on it, and returns once every node takes a write.
    /// Started again on other ports (at most three times) if a port was taken meanwhile.
    pub fn start() -> GarageCluster {
        Self::start_with(GarageOptions::default())
    }

    /// `start` with `options` (e.g. fsync on, for the benchmark).
    pub fn start_with(options: GarageOptions) -> GarageCluster {
        let mut attempt = 1;
        loop {
            match std::panic::catch_unwind(|| Self::start_once(options)) {
                Ok(cluster) => return cluster,
                Err(e) => {
                    let message = e
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| e.downcast_ref::<&str>().copied())
                        .unwrap_or_default();
                    if attempt == 3 || !message.contains("Address already in use") {
                        std::panic::resume_unwind(e);
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// One try of `start`: on failure the half-built cluster is dropped (every process reaped).
    fn start_once(options: GarageOptions) -> GarageCluster {
        let dir = tempfile::Builder::new()
            .prefix("garage-cluster-")
            .tempdir()
            .expect("temp dir");
        let rpc_secret = random_hex(32);
        let admin_token = random_hex(32);
        let nodes = (0..NODES)
            .map(|i| Node::new(dir.path(), i, &rpc_secret, &admin_token, options))
            .collect();
        let mut cluster = GarageCluster {
            nodes,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            dir,
        };
        for node in &mut cluster.nodes {
            node.spawn();
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in 0..NODES {
            cluster.wait_node_answers(i, deadline);
            let out = cluster.nodes[i].cli(&["node", "id", "-q"]);
            cluster.expect_ok(&out, &format!("garage node id on node {i}"));
            cluster.nodes[i].id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        for i in 1..NODES {
            let id = cluster.nodes[i].id.clone();
            cluster.cli0(&["node", "connect", &id]);
        }
        for i in 0..NODES {
            let id = cluster.nodes[i]
                .id
                .split('@')
                .next()
                .unwrap_or("")
                .to_string();
            let zone = format!("dc{}", i + 1);
            cluster.cli0(&["layout", "assign", "-z", &zone, "-c", "1G", &id]);
        }
        cluster.cli0(&["layout", "apply", "--version", "1"]);
        let key = cluster.cli0(&["json-api", "CreateKey", r#"{"name":"resguardo-test"}"#]);
        let key: serde_json::Value =
            serde_json::from_slice(&key.stdout).expect("CreateKey answers JSON");
        let field = |name: &str| {
            key[name]
                .as_str()
                .unwrap_or_else(|| panic!("CreateKey answer without {name}: {key}"))
                .to_string()
        };
        cluster.access_key_id = field("accessKeyId");
        cluster.secret_access_key = field("secretAccessKey");
        cluster.create_bucket(BUCKET);
        for i in 0..NODES {
            cluster.wait_takes_writes(i, deadline);
        }
        cluster
    }

    /// `http://127.0.0.1:PORT` of node 0's S3 API.
    pub fn s3_endpoint(&self) -> String {
        self.s3_endpoint_of(0)
    }

    pub fn s3_endpoint_of(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3_port)
    }

    pub fn bucket(&self) -> &str {
        BUCKET
    }

    pub fn region(&self) -> &str {
        REGION
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The gateway's `[store.s3] credentials_file`, mode 0600.
    pub fn write_credentials_file(&self, path: &Path) {
        let text = format!(
            "# S3 credentials for resguardo-gateway ([store.s3] credentials_file)\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            self.access_key_id, self.secret_access_key
        );
        let _ = std::fs::remove_file(path);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Creates another bucket with the same key allowed to read, write and own it.
    pub fn create_bucket(&self, name: &str) {
        self.cli0(&["bucket", "create", name]);
        let key = self.access_key_id.clone();
        self.cli0(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", &key,
        ]);
    }

    /// SIGKILL node `i` (and reap it).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again with the same config and data, and returns once a write through
    /// every running node succeeds (it is back in the cluster, which has its write quorum).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        self.nodes[i].spawn();
        let deadline = Instant::now() + READY_TIMEOUT;
        self.wait_node_answers(i, deadline);
        // Without this the nodes find each other again on their own retry schedule (up to
        // about 30 s): each side of each pair is told to connect.
        let running: Vec<usize> = (0..NODES)
            .filter(|&j| self.nodes[j].process.is_some())
            .collect();
        for &j in running.iter().filter(|&&j| j != i) {
            let _ = self.nodes[i].cli(&["node", "connect", &self.nodes[j].id]);
            let _ = self.nodes[j].cli(&["node", "connect", &self.nodes[i].id]);
        }
        for j in running {
            self.wait_takes_writes(j, deadline);
        }
    }

    /// Kills and reaps every node (also done on drop).
    pub fn stop_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Whether node `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].exited().is_none()
    }

    /// Every directory a node writes to: each node's data and meta directories.
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .flat_map(|n| [n.dir.join("data"), n.dir.join("meta")])
            .collect()
    }

    /// Each node's log (stdout and stderr of every run, `RUST_LOG=garage=info`).
    pub fn log_files(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.log.clone()).collect()
    }

    /// The temporary directory holding every node.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of every node's log, for panic messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            out.push_str(&format!(
                "--- node {i}: last lines of {}\n",
                n.log.display()
            ));
            out.push_str(&tail(&n.log, 25));
            out.push('\n');
        }
        out
    }

    /// The canary scan: every file under every node's data and meta directories (SQLite
    /// databases and their journals included) and every log, searched for each needle.
    /// Returns one `"<path>: <needle>"` line per file and needle found.
    pub fn scan_for(&self, needles: &[&[u8]]) -> Vec<String> {
        let mut files = self.log_files();
        let mut stack = self.data_dirs();
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => stack.push(path),
                    Ok(m) if m.is_file() => files.push(path),
                    _ => {}
                }
            }
        }
        files.sort();
        let mut hits = Vec::new();
        for path in files {
            // A file may vanish while the node runs (a temporary block, a journal).
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for needle in needles {
                if !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == *needle) {
                    hits.push(format!(
                        "{}: {}",
                        path.display(),
                        String::from_utf8_lossy(needle)
                    ));
                }
            }
        }
        hits
    }

    /// One S3 request to node `node` through `curl --aws-sigv4`. `path` is absolute and already
    /// URL-encoded (`/bucket/key?query`); `headers` are sent as given (an empty value: not sent,
    /// e.g. `("x-amz-content-sha256", "")` for a request without a payload hash).
    pub fn s3_request(
        &self,
        node: usize,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> S3Reply {
        let tmp = tempfile::tempdir().expect("temp dir");
        let head_file = tmp.path().join("head");
        let out_file = tmp.path().join("out");
        let body_file = tmp.path().join("body");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", COMMAND_TIMEOUT_SECS, "--aws-sigv4"])
            .arg(format!("aws:amz:{REGION}:s3"))
            .arg("--user")
            .arg(format!("{}:{}", self.access_key_id, self.secret_access_key))
            .arg("-D")
            .arg(&head_file)
            .arg("-o")
            .arg(&out_file)
            .args(["-w", "%{http_code}"]);
        if method == "HEAD" {
            cmd.arg("--head");
        } else {
            cmd.args(["-X", method]);
        }
        for (name, value) in headers {
            if value.is_empty() {
                cmd.arg("-H").arg(format!("{name}:"));
            } else {
                cmd.arg("-H").arg(format!("{name}: {value}"));
            }
        }
        // curl 7.88 signs this header's value as the payload hash but does not send it itself
        // (Garage requires it); a caller's own value wins.
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("x-amz-content-sha256"))
        {
            let payload_hash = match body {
                Body::None => hex::encode(sha256(b"")),
                Body::Signed(bytes) => hex::encode(sha256(bytes)),
                Body::Upload(_) => "UNSIGNED-PAYLOAD".to_string(),
            };
            cmd.arg("-H")
                .arg(format!("x-amz-content-sha256: {payload_hash}"));
        }
        match body {
            Body::None => {}
            Body::Signed(bytes) => {
                std::fs::write(&body_file, bytes).expect("write body");
                if !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                {
                    cmd.args(["-H", "Content-Type: application/octet-stream"]);
                }
                cmd.arg("--data-binary")
                    .arg(format!("@{}", body_file.display()));
            }
            Body::Upload(bytes) => {
                std::fs::write(&body_file, bytes).expect("write body");
                cmd.arg("--upload-file").arg(&body_file);
            }
        }
        cmd.arg(format!("{}{path}", self.s3_endpoint_of(node)));
        let out = cmd.stdin(Stdio::null()).output().expect("run curl");
        let status: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if status == 0 {
            return S3Reply {
                status,
                headers: Vec::new(),
                body: out.stderr,
            };
        }
        let head = std::fs::read_to_string(&head_file).unwrap_or_default();
        // With `100 Continue` there are two heads: keep the last.
        let last = head
            .trim_end()
            .rsplit("\r\n\r\n")
            .next()
            .unwrap_or_default();
        let headers = last
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        S3Reply {
            status,
            headers,
            body: std::fs::read(&out_file).unwrap_or_default(),
        }
    }

    /// PUT `body` as `key` in the test bucket through node `node` (payload signed).
    pub fn put(&self, node: usize, key: &str, body: &[u8]) -> S3Reply {
        let path = format!("/{BUCKET}/{key}");
        self.s3_request(node, "PUT", &path, &[], Body::Signed(body))
    }

    pub fn get(&self, node: usize, key: &str) -> S3Reply {
        self.s3_request(node, "GET", &format!("/{BUCKET}/{key}"), &[], Body::None)
    }

    pub fn head(&self, node: usize, key: &str) -> S3Reply {
        self.s3_request(node, "HEAD", &format!("/{BUCKET}/{key}"), &[], Body::None)
    }

    pub fn delete(&self, node: usize, key: &str) -> S3Reply {
        self.s3_request(node, "DELETE", &format!("/{BUCKET}/{key}"), &[], Body::None)
    }

    /// `garage` CLI through node 0; panics with the logs if it fails.
    fn cli0(&self, args: &[&str]) -> Output {
        let out = self.nodes[0].cli(args);
        self.expect_ok(&out, &format!("garage {}", args.join(" ")));
        out
    }

    fn expect_ok(&self, out: &Output, what: &str) {
        if !out.status.success() {
            panic!("{what} failed: {}\n{}", output_text(out), self.log_tails());
        }
    }

    /// Panics at once if node `i` exited or could not bind one of its ports (Garage then keeps
    /// running without that API).
    fn check_alive(&mut self, i: usize) {
        if let Some(why) = self.nodes[i].exited() {
            panic!("Garage node {i} {why}\n{}", self.log_tails());
        }
        let log = std::fs::read(&self.nodes[i].log).unwrap_or_default();
        if contains(&log, b"Address already in use") {
            panic!(
                "Garage node {i}: Address already in use\n{}",
                self.log_tails()
            );
        }
    }

    /// Until node `i` answers `garage status` over RPC (it has started and bound its ports).
    fn wait_node_answers(&mut self, i: usize, deadline: Instant) {
        loop {
            self.check_alive(i);
            let out = self.nodes[i].cli(&["status"]);
            if out.status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "Garage node {i} did not answer `garage status` within {READY_TIMEOUT:?}: {}\n{}",
                    output_text(&out),
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Until a probe object can be written, read back and deleted through node `i`.
    fn wait_takes_writes(&mut self, i: usize, deadline: Instant) {
        let probe = format!("harness-probe-{}", random_hex(8));
        let body = probe.as_bytes();
        loop {
            self.check_alive(i);
            let put = self.put(i, &probe, body);
            if put.status == 200 {
                let get = self.get(i, &probe);
                let delete = self.delete(i, &probe);
                if get.status == 200 && get.body == body && delete.status == 204 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "Garage node {i} did not take a write within {READY_TIMEOUT:?}: last PUT {} {}\n{}",
                    put.status,
                    put.text(),
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
