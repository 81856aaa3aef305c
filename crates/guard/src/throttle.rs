//! [`LogThrottle`]: at most one log line per interval for an event that can repeat
//! thousands of times a second (refused connections, rate-limited calls), carrying how many
//! happened since the previous line.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Default)]
struct State {
    last: Option<Instant>,
    since_last: u64,
}

/// Counts events and says when one should be logged.
pub struct LogThrottle {
    every: Duration,
    state: Mutex<State>,
}

impl LogThrottle {
    pub fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            state: Mutex::new(State::default()),
        }
    }

    /// Counts one event; `Some(n)` when it is time to log, `n` being the events since the
    /// previous line (this one included).
    pub fn hit(&self) -> Option<u64> {
        let mut state = self.state.lock();
        state.since_last += 1;
        if state.last.is_some_and(|last| last.elapsed() < self.every) {
            return None;
        }
        state.last = Some(Instant::now());
        Some(std::mem::take(&mut state.since_last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_logs_and_the_rest_are_counted() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.hit(), Some(1));
        assert_eq!(throttle.hit(), None);
        assert_eq!(throttle.hit(), None);
        let quick = LogThrottle::new(Duration::ZERO);
        assert_eq!(quick.hit(), Some(1));
        assert_eq!(quick.hit(), Some(1));
    }
}
