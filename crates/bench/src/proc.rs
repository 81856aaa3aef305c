//! What `/proc` and `getrusage` say about the server and this client: CPU seconds, RSS,
//! descriptors, the load average, and raising this process's descriptor limit.

use std::time::Instant;

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};

/// Clock ticks per second for `/proc/<pid>/stat` (100 on every Linux we run on).
const CLK_TCK: f64 = 100.0;

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Raises this process's soft descriptor limit to its hard limit (children inherit it).
pub fn raise_fd_limit() {
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// This process's soft descriptor limit.
pub fn own_fd_limit() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// A process's soft descriptor limit ("Max open files").
pub fn fd_limit(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}

/// utime + stime of a process, in seconds.
pub fn cpu_s(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLK_TCK)
}

/// A `/proc/<pid>/status` field in kB (VmRSS, VmHWM, ...), or a count (Threads).
pub fn status_field(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS")
}

/// Open descriptors of a process.
pub fn fd_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// This process's user + system CPU seconds.
pub fn self_cpu_s() -> f64 {
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// Server and client CPU use, in cores, over an interval.
pub struct Meter {
    pid: u32,
    t0: Instant,
    server0: f64,
    client0: f64,
}

impl Meter {
    pub fn start(pid: u32) -> Meter {
        Meter {
            pid,
            t0: Instant::now(),
            server0: cpu_s(pid).unwrap_or(0.0),
            client0: self_cpu_s(),
        }
    }

    /// The CPU used since [`Meter::start`].
    pub fn stop(&self) -> CpuUse {
        let dt = self.t0.elapsed().as_secs_f64().max(1e-9);
        let server = (cpu_s(self.pid).unwrap_or(self.server0) - self.server0) / dt;
        let client = (self_cpu_s() - self.client0) / dt;
        CpuUse {
            server_cores: server,
            client_cores: client,
            wall_s: dt,
        }
    }
}

/// What a [`Meter`] measured.
#[derive(Clone, Copy, Debug)]
pub struct CpuUse {
    /// CPU seconds of the server process per wall second.
    pub server_cores: f64,
    /// CPU seconds of this process per wall second.
    pub client_cores: f64,
    /// The interval, in seconds.
    pub wall_s: f64,
}
