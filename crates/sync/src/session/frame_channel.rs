//! [`frame_channel`]: the bounded queue of frames between a session and its transport's
//! writer.
//!
//! Every open session holds one, so its idle size matters more than its speed: tokio's
//! `mpsc::channel(4)` allocates a block of 32 slots and cache-padded counters up front, 1,568
//! bytes per session (measured with a counting allocator), while a session rarely has more
//! than two frames queued. This one is a mutex around a `VecDeque` that grows only when used,
//! and two `Notify`s: about 150 bytes idle.
//!
//! Semantics are those of tokio's bounded channel as the session and the writer use it: a
//! full queue refuses `try_send` (the session coalesces instead of queueing), the receiver
//! sees `None` once every sender is gone and the queue is drained, and senders see `Closed`
//! once the receiver is gone.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::frames::Outbound;

/// A queue of at most `capacity` frames; the sender side may be cloned.
pub fn frame_channel(capacity: usize) -> (FrameSender, FrameReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            senders: 1,
            receiving: true,
        }),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    (
        FrameSender {
            shared: shared.clone(),
        },
        FrameReceiver { shared },
    )
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the receiver: a frame arrived, or the last sender left.
    readable: Notify,
    /// Wakes a sender waiting for room: a frame was taken, or the receiver left.
    writable: Notify,
}

struct State {
    queue: VecDeque<Outbound>,
    capacity: usize,
    senders: usize,
    receiving: bool,
}

/// Why [`FrameSender::try_send`] refused a frame (which it gives back).
#[derive(Debug)]
pub enum TrySendError {
    Full(Outbound),
    Closed(Outbound),
}

/// The sending side (the session, and the transport's control handle).
pub struct FrameSender {
    shared: Arc<Shared>,
}

impl FrameSender {
    /// Queues a frame if there is room and the receiver is still there.
    pub fn try_send(&self, frame: Outbound) -> Result<(), TrySendError> {
        let mut state = self.shared.state.lock();
        if !state.receiving {
            return Err(TrySendError::Closed(frame));
        }
        if state.queue.len() >= state.capacity {
            return Err(TrySendError::Full(frame));
        }
        state.queue.push_back(frame);
        drop(state);
        self.shared.readable.notify_one();
        Ok(())
    }

    /// Free slots now (0 once the receiver is gone).
    pub fn capacity(&self) -> usize {
        let state = self.shared.state.lock();
        if state.receiving {
            state.capacity.saturating_sub(state.queue.len())
        } else {
            0
        }
    }

    /// Completes when at least `slots` are free (capped at the capacity), or the receiver is
    /// gone. Counts against tokio's cooperative budget like tokio's own channels, so a caller
    /// that loops on it still lets other tasks of its worker run.
    pub async fn room(&self, slots: usize) {
        tokio::task::consume_budget().await;
        loop {
            let notified = self.shared.writable.notified();
            {
                let state = self.shared.state.lock();
                let wanted = slots.clamp(1, state.capacity);
                if !state.receiving || state.capacity - state.queue.len() >= wanted {
                    return;
                }
            }
            notified.await;
        }
    }
}

impl Clone for FrameSender {
    fn clone(&self) -> FrameSender {
        self.shared.state.lock().senders += 1;
        FrameSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.state.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.readable.notify_one();
        }
    }
}

/// The receiving side (the transport's writer).
pub struct FrameReceiver {
    shared: Arc<Shared>,
}

impl FrameReceiver {
    /// The next frame; `None` once every sender is gone and the queue is empty. Cancel-safe:
    /// a frame is taken only by a call that returns it.
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            let notified = self.shared.readable.notified();
            match self.take() {
                Taken::Frame(frame) => return Some(frame),
                Taken::Ended => return None,
                Taken::Empty => notified.await,
            }
        }
    }

    /// The next frame if one is queued now.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        match self.take() {
            Taken::Frame(frame) => Some(frame),
            Taken::Empty | Taken::Ended => None,
        }
    }

    fn take(&self) -> Taken {
        let mut state = self.shared.state.lock();
        match state.queue.pop_front() {
            Some(frame) => {
                drop(state);
                self.shared.writable.notify_one();
                Taken::Frame(frame)
            }
            None if state.senders == 0 => Taken::Ended,
            None => Taken::Empty,
        }
    }
}

enum Taken {
    Frame(Outbound),
    Empty,
    Ended,
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        self.shared.state.lock().receiving = false;
        self.shared.writable.notify_waiters();
        self.shared.writable.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Outbound {
        Outbound::Text(s.into())
    }

    fn is_text(frame: Option<Outbound>, expected: &str) -> bool {
        matches!(frame, Some(Outbound::Text(t)) if t == expected)
    }

    #[tokio::test]
    async fn frames_arrive_in_order_and_a_full_queue_refuses() {
        let (tx, mut rx) = frame_channel(2);
        assert_eq!(tx.capacity(), 2);
        tx.try_send(text("a")).expect("room");
        tx.try_send(text("b")).expect("room");
        assert!(matches!(tx.try_send(text("c")), Err(TrySendError::Full(_))));
        assert_eq!(tx.capacity(), 0);
        assert!(is_text(rx.recv().await, "a"));
        assert_eq!(tx.capacity(), 1);
        assert!(is_text(rx.try_recv(), "b"));
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn the_receiver_ends_when_every_sender_is_gone_after_the_last_frame() {
        let (tx, mut rx) = frame_channel(4);
        let control = tx.clone();
        tx.try_send(text("last")).expect("room");
        drop(tx);
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let end = rx.recv().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        drop(control);
        let (first, end) = waiting.await.expect("joined");
        assert!(is_text(first, "last"));
        assert!(end.is_none());
    }

    /// A session waiting to send a Transition needs two free slots; one is not enough.
    #[tokio::test]
    async fn room_waits_for_the_slots_asked_for() {
        let (tx, mut rx) = frame_channel(4);
        for frame in ["a", "b", "c"] {
            tx.try_send(text(frame)).expect("room");
        }
        let tx = Arc::new(tx);
        let waiter = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.room(2).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one slot free, two asked for");
        assert!(is_text(rx.recv().await, "a"));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("two slots free")
            .expect("joined");
        // More than the capacity is capped at it.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while rx.try_recv().is_some() {}
            tx.room(10).await
        })
        .await
        .expect("an empty queue has all the room there is");
    }

    #[tokio::test]
    async fn senders_see_the_receiver_go_and_a_waiter_for_room_is_released() {
        let (tx, mut rx) = frame_channel(1);
        tx.try_send(text("a")).expect("room");
        let tx = Arc::new(tx);
        let waiter = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.room(1).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert!(is_text(rx.recv().await, "a"));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("room after a frame was taken")
            .expect("joined");
        tx.try_send(text("b")).expect("room");
        let waiter = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.room(1).await })
        };
        tokio::task::yield_now().await;
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("released when the receiver left")
            .expect("joined");
        assert!(matches!(
            tx.try_send(text("c")),
            Err(TrySendError::Closed(_))
        ));
        assert_eq!(tx.capacity(), 0);
    }
}
