//! Shared harness for the integration tests: the real binaries, started on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resguardo::keyring::ReviewerKeyring;

pub mod cut_proxy;
pub mod garage;
pub mod tor;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn demo_pub(n: u8) -> PathBuf {
    repo().join(format!("keys-example/demo-reviewer-{n}.pub.asc"))
}

pub fn demo_sec(n: u8) -> PathBuf {
    repo().join(format!("keys-example/demo-reviewer-{n}.sec.asc"))
}

pub fn demo_passphrase(n: u8) -> PathBuf {
    repo().join(format!("keys-example/demo-reviewer-{n}.passphrase"))
}

pub fn demo_keyring() -> ReviewerKeyring {
    ReviewerKeyring::load(&[demo_pub(1), demo_pub(2)]).expect("demo keys")
}

/// Encrypts `payload` to both demo reviewers, as any sender would.
pub fn sealed(payload: &[u8]) -> Vec<u8> {
    let keyring = demo_keyring();
    let mut out = Vec::new();
    let mut w = resguardo::seal::sealer(&keyring, &mut out).expect("sealer");
    w.write_all(payload).expect("write");
    w.finalize().expect("finalize");
    out
}

pub fn gateway_bin() -> &'static str {
    env!("CARGO_BIN_EXE_resguardo-gateway")
}

pub fn review_bin() -> &'static str {
    env!("CARGO_BIN_EXE_resguardo-review")
}

pub fn submit_bin() -> &'static str {
    env!("CARGO_BIN_EXE_resguardo-submit")
}

/// A config for a test gateway on a random loopback port; `extra` is appended verbatim.
/// Proof of work is off unless `extra` configures it (most tests post with plain HTTP clients).
pub fn config_text(data_dir: &Path, tls: &str, extra: &str) -> String {
    let pow = if extra.contains("[proof_of_work]") {
        ""
    } else {
        "[proof_of_work]\nenabled = false\n"
    };
    // Form tokens may be used at once (a person is slower; tests are not people).
    let form = if extra.contains("[form]") {
        ""
    } else {
        "[form]\ntoken_min_age_secs = 0\nposts_per_minute = 600\npost_burst = 100\n"
    };
    format!(
        r#"listen = "127.0.0.1:0"
data_dir = "{}"
reviewer_certs = ["{}", "{}"]

[tls]
mode = "{tls}"

{pow}
{form}
{extra}
"#,
        data_dir.display(),
        demo_pub(1).display(),
        demo_pub(2).display()
    )
}

/// The peak resident memory of a process, in KiB (VmHWM).
pub fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `resguardo-gateway purge` with a bundle and its receipt.
pub fn purge(data_dir: &Path, bundle: &Path, receipt: &Path) -> Output {
    run(Command::new(gateway_bin())
        .args(["purge", "--data-dir"])
        .arg(data_dir)
        .arg("--bundle")
        .arg(bundle)
        .arg("--receipt")
        .arg(receipt))
}

/// A running gateway process with its output captured.
pub struct Gateway {
    child: Child,
    pub url: String,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    output: Arc<Mutex<String>>,
}

impl Gateway {
    /// Plain HTTP on loopback (the onion-service mode): fast, and what most tests need.
    pub fn start(dir: &Path) -> Gateway {
        Self::start_with(dir, "plain-http", "")
    }

    pub fn start_with(dir: &Path, tls: &str, extra: &str) -> Gateway {
        let data_dir = dir.join("data");
        let config = dir.join("gateway.toml");
        std::fs::write(&config, config_text(&data_dir, tls, extra)).expect("write config");
        Self::start_config(&config, &data_dir)
    }

    pub fn start_config(config: &Path, data_dir: &Path) -> Gateway {
        let mut child = Command::new(gateway_bin())
            .args(["serve", "--config"])
            .arg(config)
            .env("RESGUARDO_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gateway");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (stream, tx) in [
            (Box::new(stdout) as Box<dyn Read + Send>, Some(tx)),
            (Box::new(stderr), None),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let (Some(tx), Some(url)) = (&tx, line.strip_prefix("Listening on ")) {
                        let _ = tx.send(url.to_string());
                    }
                    let mut out = output.lock().expect("lock");
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "the gateway did not start:\n{}",
                    output.lock().expect("lock")
                );
            }
        };
        let addr: SocketAddr = url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("address");
        Gateway {
            child,
            url,
            addr,
            data_dir: data_dir.to_path_buf(),
            output,
        }
    }

    /// Everything the process printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        self.output.lock().expect("lock").clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        self.logs()
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return self.logs();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("the gateway did not stop on SIGTERM");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that accepts the test gateway's self-signed certificate and returns every
/// status as a response.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true)
                .build(),
        )
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// POSTs a body to the submissions endpoint; returns the status and the JSON body.
pub fn post(url: &str, body: &[u8], content_type: Option<&str>) -> (u16, serde_json::Value) {
    let agent = agent();
    let mut request = agent.post(format!("{url}api/v1/submissions"));
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    let mut response = request.send(body).expect("request");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

pub fn get(url: &str) -> (u16, String) {
    try_get(url).expect("request")
}

/// Like [`get`], but `None` if the connection fails (refused, closed, reset).
pub fn try_get(url: &str) -> Option<(u16, String)> {
    let mut response = agent().get(url).call().ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().ok()?;
    Some((status, text))
}

/// The single-use form token of a freshly served page (from the form's action URL).
pub fn form_token(url: &str) -> String {
    let (status, page) = get(url);
    assert_eq!(status, 200, "page: {page}");
    page.split("action=\"/submit?t=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's form has a token")
        .to_string()
}

pub const BOUNDARY: &str = "----resguardotestboundary";

/// A multipart body from (name, optional file name, content) parts.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/pdf\r\n\r\n")
                    .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `resguardo-review open BUNDLE` with demo reviewer 1's key into `out`.
pub fn open_as_demo_reviewer(bundle: &Path, out: &Path) -> Output {
    open_as_demo_reviewer_with(bundle, out, &[])
}

/// [`open_as_demo_reviewer`] with more arguments.
pub fn open_as_demo_reviewer_with(bundle: &Path, out: &Path, more: &[&str]) -> Output {
    run(Command::new(review_bin())
        .arg("open")
        .arg(bundle)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--out")
        .arg(out)
        .args(more))
}

/// The demo courier, signing requests to the gateway at `url`.
pub fn demo_courier(url: &str) -> resguardo::review::courier::Courier {
    let file = |ext: &str| repo().join(format!("keys-example/demo-courier-1.{ext}"));
    let key = resguardo::review::secret_key::LockedKey::load(&file("sec.asc")).expect("key");
    let passphrase =
        resguardo::review::passphrase::from_file(&file("passphrase")).expect("passphrase");
    resguardo::review::courier::Courier {
        client: resguardo::submit::GatewayClient::new(
            url,
            resguardo::submit::Trust::InsecureAnyCertificate,
            None,
        )
        .expect("client"),
        signer: key
            .authentication_signer(Some(&passphrase))
            .expect("unlock"),
        key: None,
    }
}

/// Posts `body` to `path` (with its query) on the gateway, as a browser would.
pub fn post_raw(gateway: &Gateway, path: &str, body: &[u8], content_type: &str) -> (u16, String) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    raw_request(gateway.addr, &head, body)
}

/// Runs a command and returns its output; panics with its stderr if it cannot start. The
/// reviewer tool speaks English here (its messages follow the locale otherwise).
pub fn run(cmd: &mut Command) -> Output {
    cmd.env("RESGUARDO_LANG", "en")
        .stdin(Stdio::null())
        .output()
        .expect("run command")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A private GnuPG home with both demo keys (public and secret) imported.
pub struct Gpg {
    pub home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::tempdir().expect("gnupg home");
        let gpg = Gpg { home };
        for n in [1, 2] {
            let out = gpg.run(&[
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase-file",
                &demo_passphrase(n).display().to_string(),
                "--import",
                &demo_sec(n).display().to_string(),
            ]);
            assert!(out.status.success(), "gpg import: {}", stderr(&out));
        }
        gpg
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", self.home.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(self.command().args(args))
    }

    /// `gpg --encrypt` to both demo reviewers.
    pub fn encrypt(&self, plaintext: &Path, out: &Path) {
        let o = self.run(&[
            "--batch",
            "--yes",
            "--trust-model",
            "always",
            "--encrypt",
            "-r",
            "C95C29B449920DED0872A622F1F1AA6FAE2F54AD",
            "-r",
            "1498E496AB7C1AE50416A95A5A9B8390A0FFBF57",
            "--output",
            &out.display().to_string(),
            &plaintext.display().to_string(),
        ]);
        assert!(o.status.success(), "gpg encrypt: {}", stderr(&o));
    }

    /// `gpg --decrypt` with demo reviewer 1's key.
    pub fn decrypt(&self, sealed: &Path) -> Vec<u8> {
        let o = self.run(&[
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase-file",
            &demo_passphrase(1).display().to_string(),
            "--decrypt",
            &sealed.display().to_string(),
        ]);
        assert!(o.status.success(), "gpg decrypt: {}", stderr(&o));
        o.stdout
    }
}

/// Exports everything not yet exported and returns the bundle's entries: id -> sealed bytes.
pub fn export(data_dir: &Path, out: &Path) -> Vec<(String, Vec<u8>)> {
    let o = run(Command::new(gateway_bin())
        .args(["export", "--data-dir"])
        .arg(data_dir)
        .arg("--out")
        .arg(out));
    assert!(o.status.success(), "export failed: {}", stderr(&o));
    if !out.exists() {
        return Vec::new();
    }
    read_bundle(out)
}

/// Writes the receipt `resguardo-review open` would write for `bundle` if every submission
/// opened; for tests of the store, where opening is not what is tested. Returns its path.
pub fn receipt_for(bundle: &Path) -> PathBuf {
    let file = std::fs::File::open(bundle).expect("bundle");
    let manifest = resguardo::bundle::read_manifest(BufReader::new(file)).expect("manifest");
    let receipt = resguardo::bundle::receipt::OpenReceipt::new(
        manifest.batch,
        manifest
            .submissions
            .iter()
            .map(|e| resguardo::bundle::receipt::OpenedCiphertext {
                id: e.id,
                size: e.size,
                sha256: e.sha256.clone(),
            })
            .collect(),
        Vec::new(),
    );
    let path = bundle.with_extension("receipt.json");
    std::fs::write(&path, serde_json::to_vec(&receipt).expect("json")).expect("write receipt");
    path
}

pub fn read_bundle(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut entries = Vec::new();
    let file = std::fs::File::open(path).expect("bundle");
    resguardo::bundle::read_bundle(BufReader::new(file), |_, entry, data| {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).expect("read entry");
        data.finish().expect("entry intact");
        entries.push((entry.id.to_string(), bytes));
    })
    .expect("bundle reads");
    entries
}

/// Every file under `dir`, recursively, with its bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).expect("meta");
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A hand-written HTTP/1.1 request over plain TCP, for bodies a normal client will not send
/// (over-long, lying about their length). Write errors are ignored: the server may answer and
/// close before the body is sent. Returns the status and the body of the response.
pub fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    raw_exchange(addr, head, body, false)
}

/// Like [`raw_request`], then half-closes: the client will send nothing more (it gave up).
pub fn raw_request_cut(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    raw_exchange(addr, head, body, true)
}

fn raw_exchange(addr: SocketAddr, head: &str, body: &[u8], cut: bool) -> (u16, String) {
    use std::net::TcpStream;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let _ = stream.write_all(head.as_bytes());
    for chunk in body.chunks(64 * 1024) {
        if stream.write_all(chunk).is_err() {
            break;
        }
    }
    if cut {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A tmpfs mounted for the test, unmounted when dropped.
pub struct Tmpfs(pub std::path::PathBuf);

impl Tmpfs {
    pub fn mount(path: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mkdir");
        let o = run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path));
        assert!(
            o.status.success(),
            "this test mounts a small tmpfs and needs root (CI runs as root): {}",
            stderr(&o)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The pieces of the tests' loopback proxies that stand in front of a gateway and alter some of
/// its answers (one request per connection, as the gateway closes after answering).
pub mod relay {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    /// The client's request head, or `None` if it closed first.
    pub fn read_head(client: &mut TcpStream) -> std::io::Result<Option<String>> {
        client.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte)? == 0 {
                return Ok(None);
            }
            head.push(byte[0]);
        }
        Ok(Some(String::from_utf8_lossy(&head).into_owned()))
    }

    /// Sends `head` to the gateway with `Connection: close` (and without `Accept-Encoding` when
    /// `plain`, so an answer to alter comes uncompressed); returns the upstream connection.
    pub fn forward(head: &str, gateway: SocketAddr, plain: bool) -> std::io::Result<TcpStream> {
        let mut lines: Vec<&str> = head
            .trim_end()
            .split("\r\n")
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                !(l.starts_with("connection:") || (plain && l.starts_with("accept-encoding:")))
            })
            .collect();
        lines.push("Connection: close");
        let mut upstream = TcpStream::connect(gateway)?;
        upstream.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())?;
        Ok(upstream)
    }

    /// The whole answer from `upstream`, split into its head and its body.
    pub fn answer(mut upstream: TcpStream) -> std::io::Result<(String, Vec<u8>)> {
        let mut answer = Vec::new();
        upstream.read_to_end(&mut answer)?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an answer head")
            + 4;
        let body = answer.split_off(split);
        Ok((String::from_utf8_lossy(&answer).into_owned(), body))
    }

    /// Sends `head` with `body` (its `Content-Length` set anew) to the client and closes.
    pub fn reply(mut client: TcpStream, head: &str, body: &[u8]) -> std::io::Result<()> {
        let mut out: Vec<String> = head
            .trim_end()
            .split("\r\n")
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                !l.starts_with("content-length:") && !l.starts_with("connection:")
            })
            .map(String::from)
            .collect();
        out.push(format!("Content-Length: {}", body.len()));
        out.push("Connection: close".into());
        client.write_all(format!("{}\r\n\r\n", out.join("\r\n")).as_bytes())?;
        client.write_all(body)?;
        client.shutdown(std::net::Shutdown::Both)
    }
}
