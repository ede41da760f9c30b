//! A cap on open connections, counted from accept to close.
//!
//! Slow clients (slowloris) hold connections open; timeouts end each one, but a cap keeps their
//! number bounded meanwhile, so file descriptors and memory stay available. Over the cap a new
//! connection is closed at once. The cap sits below TLS, so it also bounds handshakes in progress.

use std::future::{ready, Ready};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[derive(Clone)]
pub struct CappedAcceptor {
    open: Arc<AtomicUsize>,
    cap: usize,
}

impl CappedAcceptor {
    pub fn new(cap: usize) -> Self {
        CappedAcceptor {
            open: Arc::new(AtomicUsize::new(0)),
            cap,
        }
    }
}

impl<S> Accept<TcpStream, S> for CappedAcceptor {
    type Stream = Counted;
    type Service = S;
    type Future = Ready<io::Result<(Counted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let previous = self.open.fetch_add(1, Ordering::AcqRel);
        let counted = Counted {
            inner: stream,
            open: self.open.clone(),
        };
        if previous >= self.cap {
            // Dropping `counted` closes the socket and gives the slot back.
            drop(counted);
            return ready(Err(io::Error::other("connection cap reached")));
        }
        let _ = counted.inner.set_nodelay(true);
        ready(Ok((counted, service)))
    }
}

/// A connection that frees its slot when it closes.
pub struct Counted {
    inner: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
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
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
