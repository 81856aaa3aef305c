//! Latency distributions (nearest-rank percentiles, as the PocketBase peer's `bench.py`
//! computes them), wall-clock nanoseconds, and rounding for the JSON output.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Wall-clock nanoseconds since the epoch (CLOCK_REALTIME, the clock of the kernel's
/// receive timestamps).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn now_rfc3339() -> String {
    let secs = wall_ns() / 1_000_000_000;
    // Civil date from days since the epoch (Howard Hinnant's algorithm), UTC.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Nearest-rank percentile of a sorted slice.
pub fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let k = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[k])
}

/// `{n, p50, p90, p99, max, mean}` in milliseconds, from nanosecond samples.
pub fn dist_ms(ns: &[i64]) -> Value {
    let mut xs: Vec<f64> = ns.iter().map(|&v| v as f64 / 1e6).collect();
    dist_of_ms(&mut xs)
}

/// The same from millisecond samples (sorted in place).
pub fn dist_of_ms(xs: &mut [f64]) -> Value {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        return json!({"n": 0, "p50": null, "p90": null, "p99": null, "max": null, "mean": null});
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let r = |v: Option<f64>| v.map(|v| round(v, 3));
    json!({
        "n": xs.len(),
        "p50": r(pct(xs, 50.0)),
        "p90": r(pct(xs, 90.0)),
        "p99": r(pct(xs, 99.0)),
        "max": r(xs.last().copied()),
        "mean": round(mean, 3),
    })
}

/// 201 quantile points (0, 0.5, ..., 100 %) of nanosecond samples, in ms, for plots.
pub fn quantiles_ms(ns: &[i64]) -> Value {
    let mut xs: Vec<f64> = ns.iter().map(|&v| v as f64 / 1e6).collect();
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        return json!([]);
    }
    let points: Vec<f64> = (0..=200)
        .map(|i| {
            let q = i as f64 / 2.0;
            round(
                if i == 0 {
                    xs[0]
                } else {
                    pct(&xs, q).unwrap_or(0.0)
                },
                3,
            )
        })
        .collect();
    json!(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct(&xs, 50.0), Some(50.0));
        assert_eq!(pct(&xs, 99.0), Some(99.0));
        assert_eq!(pct(&xs, 100.0), Some(100.0));
        assert_eq!(pct(&[], 50.0), None);
    }

    #[test]
    fn dates() {
        assert!(now_rfc3339().starts_with("20"));
    }
}
