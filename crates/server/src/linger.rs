//! [`Lingering`]: a request body that, when dropped before its end, keeps reading and
//! discarding the rest for up to [`LINGER`] on a task of its own, as nginx's lingering close
//! does.
//!
//! Why: a handler that refuses a request before reading its whole body (a bad upload URL, a
//! body over a limit, an unknown route) drops the body, and hyper then closes the connection
//! after the answer. A client that is still sending gets a broken pipe (`fetch failed`,
//! `EPIPE`) or a reset instead of the answer that says what went wrong. Reading the rest lets
//! the answer reach it, and a body read to its end leaves the connection usable for the next
//! request. The cost is bounded: at most [`LINGER`] of discarded input per refused request,
//! then the body is dropped and the connection closes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// How long the rest of a body dropped unread is read and discarded.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// A connection's request body; see the module docs.
pub(crate) struct Lingering {
    /// `None` once handed to the draining task.
    inner: Option<Incoming>,
    /// The body reached its end (or failed): nothing is left to read.
    ended: bool,
}

impl Lingering {
    pub(crate) fn new(inner: Incoming) -> Lingering {
        Lingering {
            inner: Some(inner),
            ended: false,
        }
    }
}

impl Body for Lingering {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        if self.is_end_stream() {
            return;
        }
        let Some(body) = self.inner.take() else {
            return;
        };
        // Outside a runtime (never, in the server) the body is simply dropped.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

/// Reads and discards `body` until its end, an error, or [`LINGER`].
async fn drain(mut body: Incoming) {
    let to_end = async {
        while let Some(Ok(_)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
        }
    };
    if tokio::time::timeout(LINGER, to_end).await.is_err() {
        tracing::debug!(
            "closed a connection still sending a refused request's body after {} s",
            LINGER.as_secs()
        );
    }
}
