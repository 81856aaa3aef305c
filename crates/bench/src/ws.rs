//! One client session over the sync WebSocket (`/api/1.48.0/sync`): connect, authenticate,
//! subscribe, send mutations, read frames with their kernel receive time, and keep the
//! three version counters (query set, identity, ts) from each Transition's `endVersion`, as
//! the Convex client does.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures::{SinkExt as _, StreamExt as _};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::proto;
use crate::stats::wall_ns;
use crate::tsstream::TsStream;

/// A text frame from the server and when it arrived.
pub struct Frame {
    pub text: Utf8Bytes,
    /// Kernel receive time of the packet that completed the frame (ns since the epoch).
    pub rx_ns: u64,
    /// When this client read it.
    pub app_ns: u64,
}

pub struct Session {
    ws: WebSocketStream<TsStream>,
    /// The last `endVersion` received.
    pub query_set: u32,
    pub identity: u32,
    pub ts: u64,
    pub next_request: u64,
    pub next_query: u32,
}

/// Where an [`open`] session authenticates and what it subscribes to.
pub struct OpenSpec<'a> {
    pub token: Option<&'a str>,
    /// `(udfPath, args object)`; `None` sends an empty query set.
    pub query: Option<(&'a str, serde_json::Value)>,
}

impl Session {
    /// TCP + WebSocket handshake + `Connect`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Session> {
        let stream = TsStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let config = WebSocketConfig::default()
            .read_buffer_size(8 << 10)
            .write_buffer_size(0);
        let url = format!("ws://{addr}/api/1.48.0/sync");
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .context("WebSocket handshake")?;
        let mut session = Session {
            ws,
            query_set: 0,
            identity: 0,
            ts: 0,
            next_request: 0,
            next_query: 0,
        };
        let id = format!(
            "00000000-0000-4000-8000-{:012x}",
            rand::random::<u64>() & 0xffff_ffff_ffff
        );
        session.send(proto::connect(&id)).await?;
        Ok(session)
    }

    /// Sends one text frame; returns the wall-clock time just before the write.
    pub async fn send(&mut self, text: String) -> anyhow::Result<u64> {
        let t = wall_ns();
        self.ws
            .send(Message::Text(text.into()))
            .await
            .context("sending a frame")?;
        Ok(t)
    }

    /// The next text frame (Pings and binary frames are skipped); `None` once closed.
    pub async fn next_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Ok(Some(Frame {
                        text,
                        rx_ns: self.ws.get_ref().last_rx_ns(),
                        app_ns: wall_ns(),
                    }));
                }
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(anyhow!("reading a frame: {e}")),
            }
        }
    }

    /// Like [`Session::next_frame`], bounded in time (a timeout is an error).
    pub async fn next_frame_within(&mut self, limit: Duration) -> anyhow::Result<Frame> {
        match timeout(limit, self.next_frame()).await {
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => bail!("the server closed the socket"),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("no frame from the server within {limit:?}"),
        }
    }

    /// Applies a Transition's `endVersion`; errors on `AuthError` / `FatalError`.
    pub fn observe(&mut self, msg: &proto::ServerMsg<'_>) -> anyhow::Result<()> {
        match msg.kind.as_ref() {
            "Transition" => {
                if let Some(end) = &msg.end_version {
                    self.query_set = end.query_set;
                    self.identity = end.identity;
                    self.ts = end.ts_u64();
                }
                Ok(())
            }
            "AuthError" | "FatalError" => bail!(
                "{}: {}",
                msg.kind,
                msg.error.as_deref().unwrap_or("(no message)")
            ),
            _ => Ok(()),
        }
    }

    /// Sends `Authenticate` with `baseVersion` = the identity version last received.
    pub async fn authenticate(&mut self, token: &str) -> anyhow::Result<u64> {
        let text = proto::authenticate(self.identity, token);
        self.send(text).await
    }

    /// Sends a `Mutation`.
    pub async fn mutation(
        &mut self,
        path: &str,
        args: &serde_json::Value,
    ) -> anyhow::Result<SentMutation> {
        let id = self.next_request;
        self.next_request += 1;
        let t = self.send(proto::mutation(id, path, args)).await?;
        Ok(SentMutation {
            request_id: id,
            sent_ns: t,
        })
    }

    pub async fn close(mut self) {
        let _ = timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

/// Connects, authenticates (if a token is given) and subscribes (if a query is given), and
/// waits for the Transition that reports all of it: an authenticated, subscribed session.
pub async fn open(
    addr: SocketAddr,
    spec: &OpenSpec<'_>,
    limit: Duration,
) -> anyhow::Result<Session> {
    let work = async {
        let mut s = Session::connect(addr).await?;
        let want_identity = u32::from(spec.token.is_some());
        if let Some(token) = spec.token {
            s.authenticate(token).await?;
        }
        let add = spec.query.as_ref().map(|(path, args)| (0u32, *path, args));
        s.send(proto::modify_query_set(0, add)).await?;
        if add.is_some() {
            s.next_query = 1;
        }
        loop {
            let frame = s.next_frame_within(limit).await?;
            let msg = proto::parse(&frame.text)?;
            s.observe(&msg)?;
            if s.query_set >= 1 && s.identity >= want_identity {
                return Ok::<Session, anyhow::Error>(s);
            }
        }
    };
    match timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => bail!("opening a session took longer than {limit:?}"),
    }
}

/// A `Mutation` on its way: the `requestId` its `MutationResponse` will name, and when it was
/// sent (wall clock, ns).
#[derive(Clone, Copy, Debug)]
pub struct SentMutation {
    pub request_id: u64,
    pub sent_ns: u64,
}

/// What [`open_many`] opened.
pub struct Opened {
    /// `(i, session)` for each session `i` that opened, in index order.
    pub sessions: Vec<(usize, Session)>,
    /// Why each of the others did not.
    pub failures: Vec<String>,
}

/// Opens `n` sessions, `concurrency` at a time, within `deadline`; `spec(i)` gives session
/// `i`'s token and query.
pub async fn open_many<'a, F>(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
    deadline: Duration,
    spec: F,
) -> Opened
where
    F: Fn(usize) -> OpenSpec<'a>,
{
    let started = tokio::time::Instant::now();
    let mut opened = Vec::with_capacity(n);
    let mut failures = Vec::new();
    let per_session = Duration::from_secs(20);
    let results = futures::stream::iter(0..n)
        .map(|i| {
            let spec = spec(i);
            async move {
                if started.elapsed() > deadline {
                    return (i, Err(anyhow!("deadline for opening sessions passed")));
                }
                (i, open(addr, &spec, per_session).await)
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut results = std::pin::pin!(results);
    while let Some((i, r)) = results.next().await {
        match r {
            Ok(s) => opened.push((i, s)),
            Err(e) => failures.push(format!("session {i}: {e:#}")),
        }
    }
    opened.sort_by_key(|(i, _)| *i);
    Opened {
        sessions: opened,
        failures,
    }
}
