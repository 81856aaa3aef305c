//! Starting and stopping the `pulsebase` server under test: `pulsebase dev --dir APP --port
//! N`, its ready line, its output lines (kept, and appended to a log file), its PID (written
//! to `<work>/server.pid` so `bench/run.sh` can clean up after a crash), and a clean stop
//! (SIGTERM, then SIGKILL after 5 s).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Output lines kept in memory per server (the log file has them all).
const MAX_LINES: usize = 50_000;

pub struct Server {
    child: Child,
    pub pid: u32,
    pub port: u16,
    pub addr: SocketAddr,
    pub app_dir: PathBuf,
    /// The lines of stdout and stderr, as they arrived.
    lines: Arc<Mutex<Vec<String>>>,
    /// Process start → ready line.
    pub ready_ms: f64,
    pid_file: PathBuf,
    /// The dashboard logs viewer of `--dashboard-logs`.
    pub viewer: Option<crate::dashboard_viewer::Viewer>,
}

/// Rate limits for the server under test: every bucket stays on (so its cost is in the
/// figures) but at a rate no scenario reaches, since every client of the bench is one
/// address and some scenarios are one user at thousands of calls a second.
const BENCH_LIMITS: [&str; 6] = [
    "--rate-limit",
    "calls-per-user=100000000/s",
    "--rate-limit",
    "calls-per-ip=100000000/s",
    "--rate-limit",
    "connections-per-ip=100000000/s",
];

impl Server {
    /// Starts `bin dev --dir app_dir --port port` (0 = any) and waits for the ready line.
    pub async fn start(
        bin: &Path,
        app_dir: &Path,
        port: u16,
        work: &Path,
    ) -> anyhow::Result<Server> {
        Server::start_with(bin, app_dir, port, work, &[]).await
    }

    /// [`Server::start`] with extra command-line arguments (e.g. `--durability full`).
    pub async fn start_with(
        bin: &Path,
        app_dir: &Path,
        port: u16,
        work: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(work)?;
        let log_path = work.join("server.log");
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("dev")
            .arg("--dir")
            .arg(app_dir)
            .arg("--port")
            .arg(port.to_string())
            .args(BENCH_LIMITS)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let pid_file = work.join("server.pid");
        std::fs::write(&pid_file, pid.to_string())?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = oneshot::channel::<u16>();
        let log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .await?;
        let log = Arc::new(tokio::sync::Mutex::new(log));
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        spawn_reader(stdout, lines.clone(), log.clone(), Some(ready_tx));
        spawn_reader(stderr, lines.clone(), log, None);
        let port = match tokio::time::timeout(Duration::from_secs(60), ready_rx).await {
            Ok(Ok(port)) => port,
            _ => {
                let _ = child.kill().await;
                let tail = tail_of(&lines, 20);
                bail!("the server did not print its ready line; its output:\n{tail}");
            }
        };
        let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let viewer = crate::dashboard_viewer::open(addr, app_dir);
        Ok(Server {
            child,
            pid,
            port,
            addr,
            app_dir: app_dir.to_path_buf(),
            lines,
            ready_ms,
            pid_file,
            viewer,
        })
    }

    /// Number of output lines so far (an index for [`Server::lines_from`]).
    pub fn line_count(&self) -> usize {
        self.lines.lock().map_or(0, |l| l.len())
    }

    /// Output lines from index `from` on.
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    /// Output lines containing any of `needles`.
    pub fn lines_matching(&self, needles: &[&str]) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|s| needles.iter().any(|n| s.contains(n)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub async fn stop(mut self) {
        if let Some(viewer) = self.viewer.take() {
            println!(
                "   dashboard viewer received {} log records",
                viewer.records.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

fn tail_of(lines: &Arc<Mutex<Vec<String>>>, n: usize) -> String {
    lines
        .lock()
        .map(|l| {
            l.iter()
                .rev()
                .take(n)
                .rev()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn spawn_reader<R>(
    stream: R,
    lines: Arc<Mutex<Vec<String>>>,
    log: Arc<tokio::sync::Mutex<tokio::fs::File>>,
    mut ready: Option<oneshot::Sender<u16>>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if ready.is_some()
                && let Some(port) = ready_port(&line)
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(port);
            }
            {
                let mut file = log.lock().await;
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
            }
            if let Ok(mut l) = lines.lock()
                && l.len() < MAX_LINES
            {
                l.push(line);
            }
        }
    });
}

/// The port in a line containing `http://127.0.0.1:PORT`.
fn ready_port(line: &str) -> Option<u16> {
    let at = line.find("http://127.0.0.1:")? + "http://127.0.0.1:".len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A free loopback port (bound and released; good enough for a benchmark).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| anyhow!("{e}"))?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_port() {
        assert_eq!(
            ready_port("Pulsebase dev is serving x at http://127.0.0.1:34147 (8 functions)"),
            Some(34147)
        );
        assert_eq!(ready_port("nothing here"), None);
    }
}
