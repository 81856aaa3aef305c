//! [`TestClock`]: the fake clock of one test. It starts at the wall-clock millisecond the test
//! starts and then stands still: it moves only when the test calls `t.advanceTime(ms)`, so
//! `ctx.now()` in every function the test calls (and `t.now()` in the test) reads a time the
//! test controls.
//!
//! The seam for scheduled functions is [`ClockListener`]: whatever registers one with
//! [`TestClock::listen`] is told of every advance, in order, after the clock has moved, on the
//! test's thread (outside any transaction). The caller of `run_test` makes the clock, so that is
//! where a listener is registered. The scheduler, when it exists, is meant to be such a listener
//! (running every function due by the new time); until then none is registered and advancing
//! the clock only moves the time.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// Told of every advance of a [`TestClock`]; an `Err` fails the `t.advanceTime` call that
/// moved the clock, with that message.
pub trait ClockListener: Send + Sync {
    fn advanced(&self, from_ms: f64, to_ms: f64) -> Result<(), String>;
}

/// The clock of one test, shared by every `t` handle of the test.
pub struct TestClock {
    now_ms: Mutex<f64>,
    listeners: Mutex<Vec<Arc<dyn ClockListener>>>,
}

impl TestClock {
    /// A clock standing at `now_ms` (milliseconds since the epoch).
    pub fn at(now_ms: f64) -> TestClock {
        TestClock {
            now_ms: Mutex::new(now_ms),
            listeners: Mutex::new(Vec::new()),
        }
    }

    /// A clock standing at the current wall-clock millisecond.
    pub fn starting_now() -> TestClock {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        TestClock::at(now as f64)
    }

    pub fn now(&self) -> f64 {
        *self.now_ms.lock()
    }

    /// Registers a listener for every later advance.
    pub fn listen(&self, listener: Arc<dyn ClockListener>) {
        self.listeners.lock().push(listener);
    }

    /// Moves the clock forward by `ms` (at least 0, a finite number), then tells the
    /// listeners, in the order they registered; the first `Err` stops and is returned.
    pub fn advance(&self, ms: f64) -> Result<f64, String> {
        if !ms.is_finite() || ms < 0.0 {
            return Err(format!(
                "t.advanceTime(ms) takes a number of milliseconds of at least 0, not {ms}; the test clock only moves forward"
            ));
        }
        let (from, to) = {
            let mut now = self.now_ms.lock();
            let from = *now;
            *now += ms;
            (from, *now)
        };
        // Cloned so a listener may read the clock (or register another) without deadlock.
        let listeners = self.listeners.lock().clone();
        for listener in listeners {
            listener.advanced(from, to)?;
        }
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Mutex<Vec<(f64, f64)>>);

    impl ClockListener for Recorder {
        fn advanced(&self, from_ms: f64, to_ms: f64) -> Result<(), String> {
            self.0.lock().push((from_ms, to_ms));
            if to_ms > 10_000.0 {
                return Err("too late".to_string());
            }
            Ok(())
        }
    }

    #[test]
    fn the_clock_stands_still_until_advanced_and_tells_its_listeners() {
        let clock = TestClock::at(1_000.0);
        let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
        clock.listen(recorder.clone());
        assert_eq!(clock.now(), 1_000.0);
        assert_eq!(clock.advance(500.0), Ok(1_500.0));
        assert_eq!(clock.now(), 1_500.0);
        assert_eq!(clock.advance(10_000.0), Err("too late".to_string()));
        assert_eq!(
            *recorder.0.lock(),
            vec![(1_000.0, 1_500.0), (1_500.0, 11_500.0)]
        );
        assert!(
            clock
                .advance(-1.0)
                .is_err_and(|e| e.contains("only moves forward"))
        );
        assert!(clock.advance(f64::NAN).is_err());
        assert_eq!(clock.now(), 11_500.0);
    }
}
