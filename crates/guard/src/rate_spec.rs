//! [`Rate`]: one configured token bucket, written `N/s`, `N/min` or `N/h` with an optional
//! `:BURST` (`100/s:1000` refills 100 tokens a second and holds at most 1,000), or `off`.
//! Without `:BURST` the bucket holds one period's worth (`100/s` bursts to 100).

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// A refill rate and a bucket size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per `period`.
    pub count: NonZeroU32,
    pub period: Duration,
    /// Most tokens the bucket holds: how many calls may come at once after a quiet spell.
    pub burst: NonZeroU32,
}

/// Why a rate could not be read; the text says what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid rate {text:?}: {why} (write N/s, N/min or N/h, optionally :BURST, e.g. 100/s:1000, or off)"
)]
pub struct RateSpecError {
    pub text: String,
    pub why: String,
}

impl Rate {
    /// Reads `N/UNIT[:BURST]`; `off` (or `none`, `0`) is `Ok(None)`.
    pub fn parse(text: &str) -> Result<Option<Rate>, RateSpecError> {
        let fail = |why: &str| RateSpecError {
            text: text.to_string(),
            why: why.to_string(),
        };
        let trimmed = text.trim();
        if matches!(trimmed.to_ascii_lowercase().as_str(), "off" | "none" | "0") {
            return Ok(None);
        }
        let (rate, burst) = match trimmed.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (trimmed, None),
        };
        let (count, unit) = rate
            .split_once('/')
            .ok_or_else(|| fail("missing '/' between the count and the unit"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| fail("the count is not a whole number"))?;
        let count = NonZeroU32::new(count).ok_or_else(|| fail("the count must be above 0"))?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(fail("the unit must be s, min or h")),
        };
        let burst = match burst {
            None => count,
            Some(burst) => {
                let burst: u32 = burst
                    .trim()
                    .parse()
                    .map_err(|_| fail("the burst is not a whole number"))?;
                NonZeroU32::new(burst).ok_or_else(|| fail("the burst must be above 0"))?
            }
        };
        Ok(Some(Rate {
            count,
            period,
            burst,
        }))
    }

    /// The governor quota: one token every `period / count`, at most `burst` stored.
    pub(crate) fn quota(&self) -> governor::Quota {
        let every = self.period / self.count.get();
        // `with_period` refuses only a zero interval; a count above a billion per second
        // is as good as no limit, so it becomes one token per nanosecond.
        governor::Quota::with_period(every.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MAX))
            .allow_burst(self.burst)
    }

    fn unit(&self) -> &'static str {
        match self.period.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        }
    }
}

impl fmt::Display for Rate {
    /// The form it is written in: `100/s:1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.unit())?;
        if self.burst != self.count {
            write!(f, ":{}", self.burst)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rate(text: &str) -> Rate {
        match Rate::parse(text) {
            Ok(Some(rate)) => rate,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn reads_counts_units_and_bursts() {
        let r = rate("100/s:1000");
        assert_eq!(
            (r.count.get(), r.period, r.burst.get()),
            (100, Duration::from_secs(1), 1000)
        );
        let r = rate("30/min");
        assert_eq!(
            (r.count.get(), r.period, r.burst.get()),
            (30, Duration::from_secs(60), 30)
        );
        assert_eq!(rate(" 5 / h : 7 ").to_string(), "5/h:7");
        assert_eq!(Rate::parse("off"), Ok(None));
        assert_eq!(Rate::parse("OFF"), Ok(None));
    }

    #[test]
    fn refuses_what_it_cannot_read_and_says_how() {
        for bad in ["", "100", "100/d", "x/s", "-1/s", "0/s:5", "5/s:0", "5/s:x"] {
            let error = Rate::parse(bad).expect_err(bad);
            assert!(error.to_string().contains("e.g. 100/s:1000"), "{error}");
        }
    }

    proptest! {
        #[test]
        fn what_it_writes_it_reads_back(count in 1u32..1_000_000, unit in 0usize..3, burst in 1u32..1_000_000) {
            let text = format!("{count}/{}:{burst}", ["s", "min", "h"][unit]);
            let parsed = rate(&text);
            prop_assert_eq!(Rate::parse(&parsed.to_string()), Ok(Some(parsed)));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = Rate::parse(&text);
        }
    }
}
