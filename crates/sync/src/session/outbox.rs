//! [`Outbox`]: a session's frames on their way to the client, and the back-pressure rules.
//!
//! Frames go to a bounded channel drained by the transport's writer. A Transition is computed
//! only when the channel has room ([`Outbox::ready_for_transition`]), so while a client is slow
//! the session coalesces every change into the next Transition instead of queueing. Other
//! frames (mutation responses, errors) wait in a small queue of their own. A client that stays
//! unable to receive for [`stall_limit`] is disconnected with a log line.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::frame_channel::{FrameSender, TrySendError};
use protocol::ServerMessage;

use super::frames::{End, Outbound};

/// Most frames waiting in the session's own queue (mutation responses, errors).
const MAX_OUTBOX: usize = 1_000;
/// Free slots in the transport channel required before computing a Transition, which keeps
/// at most a couple of unsent Transitions per client.
const TRANSITION_HEADROOM: usize = 2;

/// How long a client may stay unable to receive before it is dropped: 30 s, or
/// `PULSEBASE_STALL_LIMIT_SECS`.
pub fn stall_limit() -> Duration {
    static LIMIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let secs = std::env::var("PULSEBASE_STALL_LIMIT_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(30);
        Duration::from_secs(secs)
    })
}

/// The frames of one session not yet handed to the transport, and the channel to it.
pub(crate) struct Outbox {
    queue: VecDeque<Outbound>,
    channel: FrameSender,
    /// Since when the client has not taken what we have for it.
    blocked_since: Option<Instant>,
    /// Free slots [`Outbox::room`] waits for: one while queued frames wait, the Transition's
    /// headroom when a Transition is what waits. Waiting for less than is needed would wake
    /// the session into the same refusal again and again without yielding.
    room_needed: usize,
}

impl Outbox {
    pub(crate) fn new(channel: FrameSender) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            channel,
            blocked_since: None,
            room_needed: 1,
        }
    }

    /// Queues a frame; a client that lets [`MAX_OUTBOX`] frames pile up is disconnected.
    pub(crate) fn push(&mut self, frame: Outbound) -> Result<(), End> {
        if self.queue.len() >= MAX_OUTBOX {
            return Err(End::Close {
                code: 1013,
                reason: "too many undelivered messages; the client is not reading".into(),
            });
        }
        self.queue.push_back(frame);
        Ok(())
    }

    /// Moves queued frames into the transport channel while it has room.
    pub(crate) fn flush(&mut self) -> Result<(), End> {
        while let Some(frame) = self.queue.pop_front() {
            match self.channel.try_send(frame) {
                Ok(()) => self.blocked_since = None,
                Err(TrySendError::Full(frame)) => {
                    self.queue.push_front(frame);
                    self.room_needed = 1;
                    return self.note_blocked();
                }
                Err(TrySendError::Closed(_)) => {
                    return Err(End::Close {
                        code: 1000,
                        reason: "transport closed".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the transport channel has room for a Transition (the client is then not
    /// blocked).
    pub(crate) fn ready_for_transition(&mut self) -> bool {
        if self.channel.capacity() >= TRANSITION_HEADROOM {
            self.blocked_since = None;
            self.room_needed = 1;
            true
        } else {
            self.room_needed = TRANSITION_HEADROOM;
            false
        }
    }

    /// The client is not taking frames: fails once that has lasted past [`stall_limit`].
    pub(crate) fn note_blocked(&mut self) -> Result<(), End> {
        let since = *self.blocked_since.get_or_insert_with(Instant::now);
        if since.elapsed() > stall_limit() {
            return Err(End::Close {
                code: 1013,
                reason: format!(
                    "client did not read its messages for {} s; reconnect to resync",
                    stall_limit().as_secs()
                ),
            });
        }
        Ok(())
    }

    /// The transport channel can take one more frame (the close of a draining session).
    pub(crate) fn has_room(&self) -> bool {
        self.channel.capacity() >= 1
    }

    /// Frames are waiting for the client.
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked_since.is_some() || !self.queue.is_empty()
    }

    /// Completes when the transport channel has the room the session waits for (or is
    /// closed).
    pub(crate) async fn room(&self) {
        self.channel.room(self.room_needed).await;
    }

    /// Tells the client why its session ended early, if the channel takes it. Returns
    /// [`Closing::AfterClient`] when the close is still to come: after an `AuthError` the
    /// session first gives the client a moment to close (`Session::await_client_close`), then
    /// calls [`Outbox::close_after_auth_error`].
    pub(crate) fn send_end(&mut self, session: u64, end: End) -> Closing {
        match end {
            End::Fatal(reason) => {
                tracing::warn!(session, %reason, "closing session after a protocol violation");
                let frame = ServerMessage::FatalError { error: &reason }.to_text();
                let _ = self.channel.try_send(Outbound::Text(frame));
                let _ = self.channel.try_send(Outbound::Close {
                    code: 1008,
                    reason: truncate(&reason, 120),
                });
            }
            End::Close { code, reason } => {
                tracing::warn!(session, %reason, "closing session");
                let _ = self.channel.try_send(Outbound::Close { code, reason });
            }
            End::AuthFailed(frame) => {
                // What the session already owes goes first (a finished mutation's response
                // must reach the client), then the AuthError; the close comes later.
                for owed in self.queue.drain(..) {
                    let _ = self.channel.try_send(owed);
                }
                let _ = self.channel.try_send(frame);
                return Closing::AfterClient;
            }
            End::Shutdown => {
                tracing::debug!(session, "session drained; closing it for the shutdown");
                let _ = self.channel.try_send(Outbound::Close {
                    code: 1001,
                    reason: "server shutting down; reconnect".into(),
                });
            }
        }
        Closing::Sent
    }

    /// The close that follows an `AuthError` ([`Closing::AfterClient`]).
    pub(crate) fn close_after_auth_error(&mut self, session: u64) {
        tracing::debug!(session, "closing session after an AuthError");
        let _ = self.channel.try_send(Outbound::Close {
            code: 1000,
            reason: "authentication failed; reconnect with a fresh token".into(),
        });
    }
}

/// What [`Outbox::send_end`] left to do.
#[derive(PartialEq, Eq)]
pub(crate) enum Closing {
    /// The close frame is queued.
    Sent,
    /// The close waits for the client (see [`Outbox::send_end`]).
    AfterClient,
}

fn truncate(text: &str, max: usize) -> String {
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}
