//! A TCP stream that remembers the kernel's receive timestamp (`SO_TIMESTAMPNS`,
//! CLOCK_REALTIME) of the last bytes it read, so push latency is measured to the moment the
//! packet reached this machine's socket, not to when this client got round to it (the same
//! method as the PocketBase peer's `bench.py`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Diagnostic (`--tcp-quickack`): ACK every packet at once instead of delaying the ACK. If a
/// latency figure collapses with it, the server's socket is waiting on Nagle's algorithm for
/// the ACK of its previous small write (a missing `TCP_NODELAY`).
pub static QUICKACK: AtomicBool = AtomicBool::new(false);

pub struct TsStream {
    inner: TcpStream,
    /// Kernel receive time of the last read that returned data (ns since the epoch; 0 if
    /// the kernel gave none).
    last_rx_ns: u64,
    cmsg: Vec<u8>,
}

impl TsStream {
    pub async fn connect(addr: SocketAddr) -> io::Result<TsStream> {
        let inner = TcpStream::connect(addr).await?;
        inner.set_nodelay(true)?;
        setsockopt(&inner, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        Ok(TsStream {
            inner,
            last_rx_ns: 0,
            cmsg: nix::cmsg_space!(TimeSpec),
        })
    }

    pub fn last_rx_ns(&self) -> u64 {
        self.last_rx_ns
    }
}

/// One `recvmsg` into `buf`: (bytes, kernel timestamp in ns if given).
fn recv_with_ts(fd: i32, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg =
        recvmsg::<()>(fd, &mut iov, Some(cmsg), MsgFlags::MSG_DONTWAIT).map_err(io::Error::from)?;
    let mut ts = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(t) = c {
                ts = Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64);
            }
        }
    }
    Ok((msg.bytes, ts))
}

impl AsyncRead for TsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let fd = this.inner.as_raw_fd();
            let cmsg = &mut this.cmsg;
            let unfilled = buf.initialize_unfilled();
            match this
                .inner
                .try_io(Interest::READABLE, || recv_with_ts(fd, unfilled, cmsg))
            {
                Ok((n, ts)) => {
                    if QUICKACK.load(Ordering::Relaxed) {
                        let _ = socket2::SockRef::from(&this.inner).set_tcp_quickack(true);
                    }
                    if let Some(ts) = ts {
                        this.last_rx_ns = ts;
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TsStream {
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
}
