//! The sync WebSocket: upgrades the connection and wires it to a `sync` session.
//!
//! Two tasks per connection: the session (which reads frames in order) and a writer that
//! drains the session's bounded channel into the socket and sends a protocol `Ping` after
//! [`PING_AFTER`] of silence, so the client's 60 s inactivity timer never fires on an idle
//! but healthy connection. Socket buffers are kept small so idle sessions stay cheap.
//!
//! A connection never outlives its session by more than [`CLOSE_GRACE`]: a client that has
//! stopped reading cannot hold the socket (and the frames queued for it) open. A single write
//! that stays blocked for the stall limit ends the connection too. A frame over the 20 MiB
//! limit ends the session with a FatalError naming the limit rather than a silent drop.
//!
//! Liveness: with its keepalive the writer also sends a WebSocket Ping, which every
//! WebSocket stack answers by itself; a peer that has sent nothing at all, not even a Pong,
//! for the guard's WebSocket idle timeout is closed. A live session is never timed out.
//!
//! Shutdown: the session stops reading, answers the mutations it took in (and the
//! Transition each success owes), then closes with 1001 so the client reconnects at once;
//! whatever is left at the shutdown deadline is dropped.
//!
//! Limits: the session applies the guard's rate limits to each call (`sync`'s
//! `SessionPeer`); behind a trusted proxy the per-address connection cap is taken here, at
//! the upgrade, against the forwarded address.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use guard::{AddressPermit, Guard};
use protocol::ServerMessage;
use sync::{
    FrameReceiver, FrameSender, Inbound, Outbound, SessionPeer, frame_channel, run_session_with,
    stall_limit,
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

use crate::accept::cap_refusal;
use crate::api_error::error_response;
use crate::conn_info::{ConnInfo, client_ip};
use crate::lifecycle::Lifecycle;
use crate::state::ServerState;

/// Silence after which the writer sends `{"type":"Ping"}` (the client gives up after 60 s).
const PING_AFTER: Duration = Duration::from_secs(15);
/// Largest frame accepted from a client (20 MiB, listed under "Limits" in README.md).
const MAX_FRAME: usize = 20 << 20;
/// How long the writer may take to deliver a session's last frames and its close once the
/// session has ended; then the socket is dropped, whether or not the client read them.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long a socket stays open after the server sent a close frame (within [`CLOSE_GRACE`]).
const CLOSE_LINGER: Duration = Duration::from_millis(500);
/// Most bytes of queued frames gathered into one socket write.
const COALESCE_BYTES: usize = 64 << 10;
/// Most queued frames gathered into one socket write.
const COALESCE_FRAMES: usize = 16;
/// Frames queued between a session and its writer. Small on purpose: the session coalesces
/// updates instead of queueing them.
const CHANNEL: usize = 4;

pub(crate) async fn upgrade(
    upgrade: WebSocketUpgrade,
    State(state): State<Arc<ServerState>>,
    info: Option<Extension<Arc<ConnInfo>>>,
    headers: HeaderMap,
) -> Response {
    let info = info.map(|Extension(info)| info);
    let guard = state.guard.clone();
    let addr = client_ip(info.as_deref(), &headers, &guard.config().trusted_proxies);
    // Behind a trusted proxy the accept loop could not count this client: count it here.
    let behind_proxy = info
        .as_ref()
        .is_some_and(|i| guard.config().trusted_proxies.trusts(i.peer.ip()));
    let address_permit = match addr {
        Some(addr) if behind_proxy => match guard.cap.admit_address(addr) {
            Ok(permit) => permit,
            Err(refusal) => {
                let refusal = cap_refusal(refusal);
                return error_response(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    refusal.code,
                    &refusal.message,
                )
                .into_response();
            }
        },
        _ => None,
    };
    let held = Held {
        _conn: info,
        _address: address_permit,
    };
    let peer = SessionPeer {
        addr,
        guard: Some(guard),
        shutdown: Some(state.lifecycle.token()),
    };
    upgrade
        .read_buffer_size(1 << 10)
        // Frames are buffered and written by an explicit flush, so the frames a session
        // queued together (a MutationResponse and its Transition) leave in one write. The
        // buffer is a `Vec` that grows with what is written, nothing is reserved up front.
        .write_buffer_size(COALESCE_BYTES)
        .max_write_buffer_size(64 << 20)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| connection(socket, state, peer, held))
}

/// What a WebSocket connection holds for as long as it lives: its slot in the connection
/// cap (and, behind a proxy, its forwarded address's).
struct Held {
    _conn: Option<Arc<ConnInfo>>,
    _address: Option<AddressPermit>,
}

/// When the peer was last heard from, in nanoseconds since `since`. Not milliseconds: a pong
/// read within the millisecond its ping was sent would round down to before the ping, and
/// the live peer would count as silent.
struct LastHeard {
    since: Instant,
    nanos: AtomicU64,
}

impl LastHeard {
    fn touch(&self) {
        self.nanos
            .store(self.since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        self.since
            .elapsed()
            .saturating_sub(Duration::from_nanos(self.nanos.load(Ordering::Relaxed)))
    }
}

/// Starts a connection's writer and session tasks, and returns what watches them for as long
/// as the connection lives. The setup is a plain function so that the watching future, held
/// by every idle connection, keeps only what it needs (an async fn would reserve room for
/// the socket and the setup's locals too: 4.2 KB instead of a few hundred bytes).
fn connection(
    socket: WebSocket,
    state: Arc<ServerState>,
    peer: SessionPeer,
    held: Held,
) -> impl std::future::Future<Output = ()> + Send {
    let lifecycle = state.lifecycle.clone();
    // The shutdown waits for this connection until its deadline.
    let tracked = lifecycle.track();
    let (sink, stream) = socket.split();
    let (outbound, frames) = frame_channel(CHANNEL);
    // Kept to send a close after a panicked session, whose own sender is gone by then.
    let control = outbound.clone();
    let heard = Arc::new(LastHeard {
        since: Instant::now(),
        nanos: AtomicU64::new(0),
    });
    let writer = tokio::spawn(write_frames(
        sink,
        frames,
        heard.clone(),
        state.guard.clone(),
    ));
    let inbound = futures::stream::unfold(stream, move |mut stream| {
        let heard = heard.clone();
        async move {
            loop {
                let next = stream.next().await;
                heard.touch();
                match next {
                    Some(Ok(Message::Text(text))) => {
                        return Some((Inbound::Text(text.to_string()), stream));
                    }
                    Some(Ok(Message::Binary(_))) => return Some((Inbound::Binary, stream)),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => return None,
                    // Any other read error ends the session like a close.
                    Some(Err(e)) => {
                        return too_large(e)
                            .map(|(size, max)| (Inbound::TooLarge { size, max }, stream));
                    }
                }
            }
        }
    });
    let session = tokio::spawn(run_session_with(
        state.hub.clone(),
        peer,
        Box::pin(inbound),
        outbound,
    ));
    watch(lifecycle, session, writer, control, (tracked, held))
}

/// Watches a connection's two tasks: whichever ends first decides how the other ends.
/// `_held` (the shutdown's tracking and the connection's cap slots) is released on return.
async fn watch(
    lifecycle: Lifecycle,
    mut session: tokio::task::JoinHandle<()>,
    mut writer: tokio::task::JoinHandle<()>,
    control: FrameSender,
    _held: impl Send,
) {
    tokio::select! {
        () = past_shutdown_deadline(&lifecycle) => {
            // The session did not drain in time: drop it (its cleanup runs in `Drop`).
            session.abort();
            writer.abort();
        }
        ended = &mut session => {
            if let Err(e) = ended
                && e.is_panic()
            {
                tracing::error!("a sync session panicked; closing its socket");
                let _ = control.try_send(Outbound::Close {
                    code: 1011,
                    reason: "internal server error".into(),
                });
            }
            drop(control);
            // The writer now delivers the last frames and the close. A client that does not
            // read cannot take them: after the grace period the socket is dropped anyway.
            if tokio::time::timeout(CLOSE_GRACE, &mut writer).await.is_err() {
                writer.abort();
                tracing::info!(
                    "dropped a connection whose client did not take its last frames within {} s",
                    CLOSE_GRACE.as_secs()
                );
            }
        }
        _ = &mut writer => {
            // The socket failed or stayed unwritable past the stall limit: nobody can reach
            // this client any more. Aborting the session runs its cleanup (`Drop`).
            session.abort();
        }
    }
}

/// Completes once a shutdown has begun and its deadline has passed.
async fn past_shutdown_deadline(lifecycle: &Lifecycle) {
    lifecycle.stopping().await;
    tokio::time::sleep_until(lifecycle.deadline()).await;
}

/// Drains the session's frames into the socket, with a keepalive Ping after silence. Ends
/// after a close, when the session is gone, when one write cannot complete within the
/// stall limit (the client stopped reading and the socket buffers are full), or when the
/// peer has not been heard from for the WebSocket idle timeout.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: FrameReceiver,
    heard: Arc<LastHeard>,
    guard: Arc<Guard>,
) {
    let idle_limit = guard.config().ws_idle_timeout;
    // Pings go out every PING_AFTER of silence, or more often when the idle limit is short,
    // so that a peer gets a few pings to answer before it counts as gone.
    let ping_after = PING_AFTER.min(idle_limit / 4).max(Duration::from_secs(1));
    let ping = ServerMessage::Ping.to_text();
    // The last WebSocket Ping sent, while unanswered.
    let mut unanswered: Option<Instant> = None;
    // One timer per connection, due `ping_after` after the last frame, and moved only when
    // it fires: frames are the hot path (a fan-out writes one to every session) and must not
    // touch the timer wheel, and an idle connection wakes once per `ping_after`, not more.
    let mut last_sent = tokio::time::Instant::now();
    let ping_due = tokio::time::sleep_until(last_sent + ping_after);
    tokio::pin!(ping_due);
    // A frame taken from the channel while gathering a batch, handled on the next turn.
    let mut carried: Option<Outbound> = None;
    loop {
        let frame = match carried.take() {
            Some(frame) => Some(frame),
            None => tokio::select! {
                frame = frames.recv() => frame,
                () = &mut ping_due => {
                    if !keepalive(&mut sink, &heard, &guard, &ping, ping_after, &mut unanswered, &mut last_sent).await {
                        break;
                    }
                    ping_due.as_mut().reset(last_sent + ping_after);
                    continue;
                }
            },
        };
        match frame {
            Some(Outbound::Text(text)) => {
                // Text frames already queued behind this one go out in the same write.
                let mut ok = feed(&mut sink, text).await;
                for _ in 1..COALESCE_FRAMES {
                    if !ok {
                        break;
                    }
                    match frames.try_recv() {
                        Some(Outbound::Text(text)) => ok = feed(&mut sink, text).await,
                        other => {
                            carried = other;
                            break;
                        }
                    }
                }
                if !(ok && stalled(tokio::time::timeout(stall_limit(), sink.flush()).await)) {
                    break;
                }
                last_sent = tokio::time::Instant::now();
            }
            Some(Outbound::Close { code, reason }) => {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                if send(&mut sink, Message::Close(Some(frame))).await {
                    // Keep the socket open a moment so the client reads the close (and
                    // the FatalError before it): closing a socket whose receive buffer
                    // still holds client data (the rest of an oversized frame) sends a
                    // reset, which can make the client discard both unread.
                    tokio::time::sleep(CLOSE_LINGER).await;
                }
                break;
            }
            None => {
                let _ = tokio::time::timeout(stall_limit(), sink.close()).await;
                break;
            }
        }
    }
}

/// Writes one message now; whether it went out in time.
async fn send(sink: &mut SplitSink<WebSocket, Message>, message: Message) -> bool {
    stalled(tokio::time::timeout(stall_limit(), sink.send(message)).await)
}

/// Buffers one text frame (written once the buffer passes [`COALESCE_BYTES`] or at the next
/// flush); whether that went in time.
async fn feed(sink: &mut SplitSink<WebSocket, Message>, text: String) -> bool {
    stalled(tokio::time::timeout(stall_limit(), sink.feed(Message::Text(text.into()))).await)
}

/// Whether a write finished in time; logs why not.
fn stalled(outcome: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>) -> bool {
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "a WebSocket write failed");
            false
        }
        Err(_) => {
            // Worded like the session's own stall message: whichever notices first, the
            // operator sees the same cause.
            tracing::warn!(
                "closing connection: client did not read its messages for {} s (a write stayed blocked); dropping it",
                stall_limit().as_secs()
            );
            false
        }
    }
}

/// The keepalive, when `ping_due` fires: after `ping_after` of silence, a protocol Ping (and
/// a WebSocket Ping the peer's stack must answer); closes a peer silent past the idle limit.
/// Returns whether the connection goes on.
async fn keepalive(
    sink: &mut SplitSink<WebSocket, Message>,
    heard: &LastHeard,
    guard: &Guard,
    ping: &str,
    ping_after: Duration,
    unanswered: &mut Option<Instant>,
    last_sent: &mut tokio::time::Instant,
) -> bool {
    let idle_limit = guard.config().ws_idle_timeout;
    if last_sent.elapsed() < ping_after {
        return true;
    }
    let silent = heard.silent_for();
    if !unanswered.is_some_and(|sent| silent >= sent.elapsed()) {
        // Something came back since that ping.
        *unanswered = None;
    }
    if unanswered.is_some() && silent >= idle_limit {
        guard.stats.ws_idle_closed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "closing a WebSocket whose client sent nothing, not even a pong, for {} s",
            silent.as_secs()
        );
        let frame = CloseFrame {
            code: 1000,
            reason: "no answer to pings; reconnect".into(),
        };
        let _ = send(sink, Message::Close(Some(frame))).await;
        return false;
    }
    // The protocol's Ping keeps the client's own timer quiet; the WebSocket Ping makes its
    // stack answer, which shows it is alive.
    if !send(sink, Message::Text(ping.into())).await {
        return false;
    }
    if silent >= ping_after && unanswered.is_none() {
        // Taken before the send: a pong read while the send is still being awaited must
        // count as an answer to this ping.
        let sent_at = Instant::now();
        if !send(sink, Message::Ping(Default::default())).await {
            return false;
        }
        *unanswered = Some(sent_at);
    }
    *last_sent = tokio::time::Instant::now();
    true
}

/// The size and limit when a read failed because the client's frame or message is over
/// [`MAX_FRAME`].
fn too_large(error: axum::Error) -> Option<(usize, usize)> {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
            size,
            max_size,
        }) => Some((*size, *max_size)),
        other => {
            tracing::debug!(error = %other, "WebSocket read failed");
            None
        }
    }
}
