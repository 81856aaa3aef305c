//! The sync WebSocket: upgrades the connection and wires it to a `sync` session.
//!
//! Two tasks per connection: the session (which reads frames in order) and a writer that
//! drains the session's bounded channel into the socket and sends a protocol `Ping` after
//! [`PING_AFTER`] of silence, so the client's 60 s inactivity timer never fires on an idle
//! but healthy connection. Socket buffers are kept small so idle sessions stay cheap.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use protocol::ServerMessage;
use sync::{Inbound, Outbound, run_session};
use tokio::sync::mpsc;

use crate::ServerState;

/// Silence after which the writer sends `{"type":"Ping"}` (the client gives up after 60 s).
const PING_AFTER: Duration = Duration::from_secs(15);
/// How often the writer checks whether a Ping is due (so one is sent 15–17 s into silence).
const PING_CHECK: Duration = Duration::from_secs(2);
/// Largest frame accepted from a client (DESIGN §3).
const MAX_FRAME: usize = 20 << 20;
/// Frames queued between a session and its writer. Small on purpose: the session coalesces
/// updates instead of queueing them.
const CHANNEL: usize = 4;

pub(crate) async fn upgrade(
    upgrade: WebSocketUpgrade,
    State(state): State<Arc<ServerState>>,
) -> Response {
    upgrade
        .read_buffer_size(4 << 10)
        .write_buffer_size(0)
        .max_write_buffer_size(64 << 20)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| connection(socket, state))
}

async fn connection(socket: WebSocket, state: Arc<ServerState>) {
    let (mut sink, stream) = socket.split();
    let (outbound, mut frames) = mpsc::channel::<Outbound>(CHANNEL);
    let writer = tokio::spawn(async move {
        let ping = ServerMessage::Ping.to_text();
        // One periodic tick per connection instead of a timer per frame: frames are the hot
        // path (a fan-out writes one to every session), pings are rare.
        let mut tick = tokio::time::interval(PING_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sent = tokio::time::Instant::now();
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Some(Outbound::Text(text)) => {
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                        last_sent = tokio::time::Instant::now();
                    }
                    Some(Outbound::Close { code, reason }) => {
                        let frame = CloseFrame {
                            code,
                            reason: reason.into(),
                        };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        break;
                    }
                    None => {
                        let _ = sink.close().await;
                        break;
                    }
                },
                _ = tick.tick() => {
                    if last_sent.elapsed() >= PING_AFTER {
                        if sink.send(Message::Text(ping.clone().into())).await.is_err() {
                            break;
                        }
                        last_sent = tokio::time::Instant::now();
                    }
                }
            }
        }
    });
    let inbound = futures::stream::unfold(stream, |mut stream| async move {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Some((Inbound::Text(text.to_string()), stream));
                }
                Some(Ok(Message::Binary(_))) => return Some((Inbound::Binary, stream)),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
            }
        }
    });
    run_session(state.hub.clone(), Box::pin(inbound), outbound).await;
    let _ = writer.await;
}
