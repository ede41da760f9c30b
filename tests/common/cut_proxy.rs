//! A loopback TCP proxy that cuts connections: between a client and a gateway, it forwards
//! bytes both ways, counts what the client sent, and drops the connection once each time the
//! bytes forwarded to the gateway (over all connections) reach one of the cut points. It may also
//! pace what it forwards, so a test can act (kill the gateway) in the middle of an upload.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct CutProxy {
    pub addr: SocketAddr,
    /// `http://<addr>/`.
    pub url: String,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: SocketAddr,
    /// Bytes read from clients (sent by them), whether forwarded or not.
    from_client: AtomicU64,
    /// Bytes forwarded to the upstream.
    forwarded: AtomicU64,
    /// The cut points not reached yet, ascending.
    cuts: Mutex<Vec<u64>>,
    cuts_done: AtomicUsize,
    /// Bytes per second forwarded to the upstream, per connection; 0 for no pacing.
    pace: u64,
    stop: AtomicBool,
}

impl CutProxy {
    /// Forwards to `upstream`; drops the connection once at each of `cuts` (bytes forwarded).
    pub fn start(upstream: SocketAddr, cuts: Vec<u64>, pace: u64) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut cuts = cuts;
        cuts.sort_unstable();
        let shared = Arc::new(Shared {
            upstream,
            from_client: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            cuts: Mutex::new(cuts),
            cuts_done: AtomicUsize::new(0),
            pace,
            stop: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let shared = accepting.clone();
                std::thread::spawn(move || relay(shared, client));
            }
        });
        CutProxy {
            addr,
            url: format!("http://{addr}/"),
            shared,
        }
    }

    /// Bytes the clients sent through the proxy (read by it), over all connections.
    pub fn bytes_from_client(&self) -> u64 {
        self.shared.from_client.load(Ordering::SeqCst)
    }

    /// Bytes forwarded to the upstream.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// How many connections were cut.
    pub fn cuts_done(&self) -> usize {
        self.shared.cuts_done.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` bytes were forwarded; false on timeout.
    pub fn wait_forwarded(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.forwarded() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn relay(shared: Arc<Shared>, mut client: TcpStream) {
    let Ok(mut upstream) = TcpStream::connect(shared.upstream) else {
        // The gateway is down: the client sees its connection closed.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(mut client_back), Ok(mut upstream_back)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    // Answers flow back untouched.
    let back = std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match upstream_back.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if client_back.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_back.shutdown(Shutdown::Write);
    });
    let mut buf = [0u8; 16 * 1024];
    let started = Instant::now();
    let mut sent_here = 0u64;
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        shared.from_client.fetch_add(n as u64, Ordering::SeqCst);
        // Forward up to the next cut point, then drop both sides.
        let before = shared.forwarded.load(Ordering::SeqCst);
        let cut = {
            let mut cuts = shared.cuts.lock().expect("lock");
            match cuts.first() {
                Some(&at) if before + n as u64 >= at => {
                    cuts.remove(0);
                    Some(at.saturating_sub(before) as usize)
                }
                _ => None,
            }
        };
        let take = cut.unwrap_or(n).min(n);
        if upstream.write_all(&buf[..take]).is_err() {
            break;
        }
        shared.forwarded.fetch_add(take as u64, Ordering::SeqCst);
        if cut.is_some() {
            shared.cuts_done.fetch_add(1, Ordering::SeqCst);
            let _ = upstream.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            break;
        }
        sent_here += take as u64;
        if shared.pace > 0 {
            let due = Duration::from_secs_f64(sent_here as f64 / shared.pace as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = back.join();
}
