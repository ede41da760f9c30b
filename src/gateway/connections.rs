//! Connections: a cap on how many are open, a deadline for each request head, and a fair share of
//! the cheap routes for each.
//!
//! Slow clients hold connections open. A connection must deliver a complete request head within
//! the head timeout of being accepted, and again within it of its previous response: silence
//! (plain TCP, or a TLS handshake followed by nothing) does not keep a connection alive, and
//! neither does a head trickled byte by byte (hyper's own header timeout starts at the first
//! byte; ours starts at accept and is not moved by reads). While a request is being served there
//! is no head deadline; the upload code times bodies.
//!
//! The cap keeps descriptors and memory bounded. When it is reached, a new connection takes the
//! place of another, so sockets that say nothing cannot lock honest clients out: first of a
//! connection that has been served and sits idle between requests (the one idle longest), else
//! of one that has said nothing for a couple of seconds since it was accepted (the oldest). A
//! connection younger than that is never pushed out, so a flood of new connections cannot push
//! out an honest client in the middle of its handshake or its first request head; if every
//! connection is busy or that young, the new one is closed at once. The cap sits below TLS, so it
//! also bounds handshakes.
//!
//! Each connection carries a [`Connection`] record into the request's extensions (the client's
//! address is never kept): the request-tracking middleware marks requests in progress, gives each
//! connection its own small budget for the cheap routes, and closes a connection after a number
//! of requests, so one pipelining client cannot take the whole budget of a route.

use std::future::{ready, Future, Ready};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum_server::accept::Accept;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// What the gateway knows of one connection: no address, only its state.
pub struct Connection {
    /// When it was accepted, in milliseconds since the acceptor's epoch.
    accepted_ms: u64,
    /// Requests being served now.
    in_flight: AtomicUsize,
    /// When the connection last became idle (accepted, a response handed over, bytes written),
    /// in milliseconds since the acceptor's epoch.
    idle_since_ms: AtomicU64,
    requests: AtomicU64,
    evicted: AtomicBool,
    waker: AtomicWaker,
    /// This connection's own budget for the cheap routes.
    budget: Mutex<Bucket>,
    epoch: Instant,
}

impl Connection {
    fn new(epoch: Instant, budget: ConnectionBudget) -> Self {
        let connection = Connection {
            accepted_ms: epoch.elapsed().as_millis() as u64,
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            budget: Mutex::new(Bucket::new(budget)),
            epoch,
        };
        connection.mark_idle();
        connection
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn mark_idle(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// A request head arrived: no head deadline until its response is handed over. Returns how
    /// many requests this connection has made, this one included.
    pub fn request_started(&self) -> u64 {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The response was handed over: the next head is due within the head timeout.
    pub fn request_finished(&self) {
        self.mark_idle();
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        // The reader may be waiting with no deadline armed; let it arm one.
        self.waker.wake();
    }

    /// Takes one token from this connection's budget for cheap routes.
    pub fn take_budget(&self) -> bool {
        self.budget
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Each connection's share of the cheap routes: a token bucket.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionBudget {
    pub per_second: u32,
    pub burst: u32,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    budget: ConnectionBudget,
}

impl Bucket {
    fn new(budget: ConnectionBudget) -> Self {
        Bucket {
            tokens: f64::from(budget.burst),
            last: Instant::now(),
            budget,
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill =
            now.duration_since(self.last).as_secs_f64() * f64::from(self.budget.per_second);
        self.tokens = (self.tokens + refill).min(f64::from(self.budget.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A connection this young is never pushed out to make room.
const FRESH: Duration = Duration::from_secs(2);

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub cap: usize,
    /// A request head must be complete within this long of accept or of the previous response.
    pub head_timeout: Duration,
    pub budget: ConnectionBudget,
}

#[derive(Clone)]
pub struct CappedAcceptor {
    open: Arc<Mutex<Vec<Weak<Connection>>>>,
    limits: ConnectionLimits,
    epoch: Instant,
    /// Set when the cap was met, for `/healthz`.
    saturation: Arc<super::limits::Saturation>,
}

impl CappedAcceptor {
    pub fn new(limits: ConnectionLimits, saturation: Arc<super::limits::Saturation>) -> Self {
        CappedAcceptor {
            open: Arc::default(),
            limits,
            epoch: Instant::now(),
            saturation,
        }
    }

    /// Makes room for one more connection if the cap allows, evicting the longest-idle one if
    /// needed. False if every open connection is serving a request.
    fn make_room(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|w| w.strong_count() > 0);
        if open.len() < self.limits.cap {
            return true;
        }
        self.saturation.note(super::limits::Budget::Connections);
        let now = self.epoch.elapsed().as_millis() as u64;
        // (preference, how long idle or silent, index): served-and-idle first, then silent ones
        // past their protection, longest first.
        let candidate = open
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let c = w.upgrade()?;
                if c.evicted.load(Ordering::Acquire) {
                    return None;
                }
                let idle = c.idle_for()?;
                if c.requests.load(Ordering::Relaxed) > 0 {
                    Some((1u8, idle, i))
                } else {
                    let age = Duration::from_millis(now.saturating_sub(c.accepted_ms));
                    (age >= FRESH).then_some((0u8, age, i))
                }
            })
            .max()
            .map(|(_, _, i)| (i, ()));
        match candidate {
            Some((i, _)) => {
                if let Some(c) = open.swap_remove(i).upgrade() {
                    c.evict();
                }
                true
            }
            None => false,
        }
    }
}

impl<S> Accept<TcpStream, S> for CappedAcceptor {
    type Stream = Counted;
    type Service = WithConnection<S>;
    type Future = Ready<io::Result<(Counted, WithConnection<S>)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        if !self.make_room() {
            // Dropping the stream closes the socket.
            drop(stream);
            return ready(Err(io::Error::other("connection cap reached")));
        }
        let connection = Arc::new(Connection::new(self.epoch, self.limits.budget));
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&connection));
        let _ = stream.set_nodelay(true);
        let counted = Counted {
            inner: stream,
            connection: connection.clone(),
            head_timeout: self.limits.head_timeout,
            deadline: None,
        };
        ready(Ok((
            counted,
            WithConnection {
                inner: service,
                connection,
            },
        )))
    }
}

/// Adds the connection's [`Connection`] record to each request's extensions.
#[derive(Clone)]
pub struct WithConnection<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S, B> tower_service::Service<axum::http::Request<B>> for WithConnection<S>
where
    S: tower_service::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.connection.clone());
        self.inner.call(request)
    }
}

/// A connection's socket (its place is freed when the last handle to its [`Connection`] goes);
/// fails once the connection has been idle past the head deadline or was evicted.
pub struct Counted {
    inner: TcpStream,
    connection: Arc<Connection>,
    head_timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Counted {
    /// Ready with an error once the connection must close.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.connection.waker.register(cx.waker());
        if self.connection.evicted.load(Ordering::Acquire) {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection evicted to make room",
            ));
        }
        let Some(idle) = self.connection.idle_for() else {
            // A request is being served: no head deadline now.
            self.deadline = None;
            return Poll::Pending;
        };
        let Some(left) = self.head_timeout.checked_sub(idle) else {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request head in time",
            ));
        };
        let at = tokio::time::Instant::now() + left;
        match &mut self.deadline {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        match self.deadline.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request head in time",
            )),
            _ => Poll::Pending,
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(e) = this.poll_expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            // Still answering: the head deadline runs from the end of the response.
            this.connection.mark_idle();
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.connection.mark_idle();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_budget_refills_at_its_rate() {
        let mut bucket = Bucket::new(ConnectionBudget {
            per_second: 10,
            burst: 3,
        });
        assert!(bucket.take() && bucket.take() && bucket.take());
        assert!(!bucket.take(), "the burst is spent");
        std::thread::sleep(Duration::from_millis(150));
        assert!(bucket.take(), "a token came back after 100 ms");
        assert!(!bucket.take());
    }

    #[test]
    fn an_idle_connection_has_a_deadline_and_a_busy_one_has_none() {
        let c = Connection::new(
            Instant::now(),
            ConnectionBudget {
                per_second: 1,
                burst: 1,
            },
        );
        assert!(c.idle_for().is_some());
        assert_eq!(c.request_started(), 1);
        assert!(c.idle_for().is_none());
        c.request_finished();
        assert!(c.idle_for().is_some_and(|d| d < Duration::from_secs(1)));
    }
}
